//! What every command needs: the API server client from the kubeconfig, the namespace, where
//! the daemons are, and the TLS to speak to them.

use std::path::Path;

use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use tracing::debug;

use super::args::{ClusterArgs, PluginCli};
use super::error::PluginError;
use crate::cli::args::ConnectionArgs;
use crate::cli::error::CliError;
use crate::tls::client::{ClientTls, Identity};

/// Where the daemon pods are: one per node, found by namespace, labels and node name.
#[derive(Debug, Clone)]
pub struct DaemonLocation {
    /// The DaemonSet's namespace.
    pub namespace: String,
    /// The daemon pods' label selector.
    pub selector: String,
    /// The API port inside each daemon pod.
    pub port: u16,
}

/// A connected command: the cluster, the namespace of its pods, and how to reach daemons.
#[derive(Clone)]
pub struct Session {
    /// The API server client.
    pub client: kube::Client,
    /// `--namespace`, or the kubeconfig context's namespace.
    pub namespace: String,
    /// Where the daemon pods are.
    pub daemons: DaemonLocation,
    /// TLS through each port-forward, when `--tls-ca` is given.
    pub tls: Option<ClientTls>,
}

impl Session {
    /// Loads the kubeconfig (`--kubeconfig`, `--context`; else `KUBECONFIG`,
    /// `~/.kube/config` or the in-cluster service account), builds the client, and loads
    /// the TLS files.
    pub async fn open(cli: &PluginCli) -> Result<Self, PluginError> {
        let tls = client_tls(&cli.connection, &cli.cluster.daemon_namespace)?;
        let config = load_config(&cli.cluster).await?;
        let namespace = cli
            .cluster
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        debug!(server = %config.cluster_url, namespace = %namespace, "cluster configured");
        let client = kube::Client::try_from(config).map_err(PluginError::Client)?;
        Ok(Self {
            client,
            namespace,
            daemons: DaemonLocation {
                namespace: cli.cluster.daemon_namespace.clone(),
                selector: cli.cluster.daemon_selector.clone(),
                port: cli.cluster.daemon_port,
            },
            tls,
        })
    }
}

/// The client configuration the flags name, as kubectl would pick it.
async fn load_config(args: &ClusterArgs) -> Result<Config, PluginError> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let context = args
        .context
        .as_deref()
        .map(|c| format!(" (context {c})"))
        .unwrap_or_default();
    match &args.kubeconfig {
        Some(path) => {
            let what = || format!("{}{context}", path.display());
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|source| PluginError::Kubeconfig {
                    what: what(),
                    source,
                })?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|source| PluginError::Kubeconfig {
                    what: what(),
                    source,
                })
        }
        // A context only exists in a kubeconfig: no in-cluster fallback.
        None if args.context.is_some() => {
            Config::from_kubeconfig(&options)
                .await
                .map_err(|source| PluginError::Kubeconfig {
                    what: format!("of KUBECONFIG or ~/.kube/config{context}"),
                    source,
                })
        }
        None => Config::infer().await.map_err(PluginError::NoConfig),
    }
}

/// The TLS to each daemon, when `--tls-ca` is given. The daemons share one certificate
/// and are reached through pods, not by a host name, so the name checked defaults to the
/// one the TLS overlay's Service gives them.
fn client_tls(
    args: &ConnectionArgs,
    daemon_namespace: &str,
) -> Result<Option<ClientTls>, PluginError> {
    let Some(ca) = args.tls_ca.as_deref() else {
        if args.tls_cert.is_some() {
            return Err(PluginError::Argument {
                flag: "--tls-cert",
                reason: "needs --tls-ca, the CA that signed the daemons' certificate".into(),
            });
        }
        return Ok(None);
    };
    let identity = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Identity {
            cert: cert.as_path(),
            key: key.as_path(),
        }),
        _ => None,
    };
    let name = args
        .tls_server_name
        .clone()
        .unwrap_or_else(|| default_server_name(daemon_namespace));
    let tls = ClientTls::load(Path::new(ca), identity, &name).map_err(CliError::from)?;
    Ok(Some(tls))
}

/// The daemons' certificate name unless `--tls-server-name` says otherwise: the TLS
/// overlay's headless Service `chaos-daemon` in the daemons' namespace.
pub fn default_server_name(daemon_namespace: &str) -> String {
    format!("chaos-daemon.{daemon_namespace}.svc")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn args(ca: Option<&str>, cert: Option<&str>) -> ConnectionArgs {
        ConnectionArgs {
            socket: PathBuf::from("/unused"),
            server: None,
            tls_ca: ca.map(PathBuf::from),
            tls_cert: cert.map(PathBuf::from),
            tls_key: cert.map(|_| PathBuf::from("/tmp/client.key")),
            tls_server_name: None,
        }
    }

    #[test]
    fn tls_only_with_a_ca() {
        assert!(matches!(
            client_tls(&args(None, None), "faultline"),
            Ok(None)
        ));
        let err = client_tls(&args(None, Some("/tmp/client.crt")), "faultline");
        let err = err.err().map(|e| (e.exit_code(), e.to_string()));
        assert_eq!(
            err,
            Some((
                2,
                "--tls-cert: needs --tls-ca, the CA that signed the daemons' certificate".into()
            ))
        );
        let missing = client_tls(&args(Some("/nonexistent/ca.crt"), None), "faultline");
        let missing = missing.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(missing.contains("/nonexistent/ca.crt"), "{missing}");
        assert_eq!(
            default_server_name("faultline"),
            "chaos-daemon.faultline.svc"
        );
    }
}
