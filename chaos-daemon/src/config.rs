//! The daemon's command line.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;

use crate::faults::window::Limits;
use crate::tls::server::ServerFiles;

/// faultline's node daemon: injects network faults into targeted cgroups with eBPF.
///
/// Serves the faultline.v1 gRPC API on a Unix socket (root only, mode 0600) and optionally on
/// TCP. Faults are enforced by the kernel inside their [start, end) window, so they start and
/// stop on time even if this daemon is busy or killed; a restarted daemon adopts or removes
/// what a killed one left. SIGTERM ends every fault and removes every attachment and pin.
///
/// Example: chaos-daemon --socket /run/faultline/faultline.sock
#[derive(Debug, Parser)]
#[command(name = "chaos-daemon", version)]
pub struct Config {
    /// Unix socket to serve the API on (created mode 0600).
    #[arg(
        long,
        env = "FAULTLINE_SOCKET",
        default_value = "/run/faultline/faultline.sock"
    )]
    pub socket: PathBuf,

    /// Also serve the API on this TCP address, e.g. 127.0.0.1:7465.
    ///
    /// A non-loopback address needs mTLS (--tls-cert, --tls-key, --tls-client-ca) or
    /// --insecure-listen: whoever reaches the port can inject faults on this node.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Serve --listen in plaintext even on a non-loopback address, without any client
    /// authentication.
    #[arg(long, requires = "listen", conflicts_with = "tls_cert")]
    pub insecure_listen: bool,

    /// PEM certificate chain the --listen port presents (TLS 1.2/1.3), leaf first; needs
    /// --tls-key and --tls-client-ca. The three files are reloaded when they change.
    #[arg(
        long,
        env = "FAULTLINE_TLS_CERT",
        value_name = "FILE",
        requires_all = ["listen", "tls_key", "tls_client_ca"]
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(
        long,
        env = "FAULTLINE_TLS_KEY",
        value_name = "FILE",
        requires_all = ["tls_cert", "tls_client_ca"]
    )]
    pub tls_key: Option<PathBuf>,

    /// PEM certificates of the CAs whose client certificates --listen accepts; a client
    /// without one is refused during the handshake (mTLS).
    #[arg(
        long,
        env = "FAULTLINE_TLS_CLIENT_CA",
        value_name = "FILE",
        requires_all = ["tls_cert", "tls_key"]
    )]
    pub tls_client_ca: Option<PathBuf>,

    /// Serve only the gRPC health service (grpc.health.v1) on this TCP address, in
    /// plaintext, e.g. 0.0.0.0:7466: for kubelet's gRPC probes, which cannot do TLS.
    #[arg(long, env = "FAULTLINE_HEALTH_LISTEN", value_name = "ADDR")]
    pub health_listen: Option<SocketAddr>,

    /// Directory of the journal of armed faults (survives restarts).
    #[arg(long, default_value = "/var/lib/faultline")]
    pub state_dir: PathBuf,

    /// bpffs directory for pinned maps and links (mounts bpffs at /sys/fs/bpf if needed).
    #[arg(long, default_value = crate::kernel::pins::DEFAULT_DIR)]
    pub bpffs_dir: PathBuf,

    /// Longest fault accepted, e.g. 1h, 30m.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub max_duration: Duration,

    /// How far in the past a requested start may be (client clock skew), e.g. 1s, 500ms.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub start_tolerance: Duration,

    /// This node's name in the cluster (the DaemonSet sets it from the downward API). With it,
    /// the daemon accepts pod targets (pod:<namespace>/<name>, pods:<namespace>?labelSelector=…)
    /// and resolves them through the API server (in-cluster service account, or KUBECONFIG),
    /// acting on the pods of this node only.
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,

    /// A namespace whose pods no request may touch unless it names the namespace in
    /// allow_protected_namespaces (repeatable, or comma-separated). The daemon's own namespace
    /// (POD_NAMESPACE) is always protected as well.
    #[arg(
        long = "protected-namespace",
        env = "FAULTLINE_PROTECTED_NAMESPACES",
        value_name = "NAMESPACE",
        value_delimiter = ',',
        default_value = "kube-system"
    )]
    pub protected_namespaces: Vec<String>,

    /// The daemon's own namespace (the DaemonSet sets it from the downward API); protected.
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub pod_namespace: Option<String>,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The protected namespaces: the flag's, plus the daemon's own.
    pub fn protected(&self) -> Vec<String> {
        let mut all = self.protected_namespaces.clone();
        all.extend(self.pod_namespace.clone());
        all.retain(|ns| !ns.trim().is_empty());
        all.sort();
        all.dedup();
        all
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_duration: self.max_duration,
            start_tolerance: self.start_tolerance,
        }
    }
}

/// Why the command line cannot be served as given.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--listen` is not a loopback address, and neither TLS nor `--insecure-listen` is set.
    #[error(
        "--listen {addr}: not a loopback address and no TLS: anyone who can reach it could \
         inject faults on this node; set --tls-cert, --tls-key and --tls-client-ca (mTLS), \
         or --insecure-listen to serve it in plaintext anyway"
    )]
    InsecureListen {
        /// The address asked for.
        addr: SocketAddr,
    },
}

impl Config {
    /// The TLS files of the `--listen` port, if TLS is set (clap ensures all three or none).
    pub fn tls_files(&self) -> Option<ServerFiles> {
        Some(ServerFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone()?,
        })
    }

    /// Refuses a plaintext `--listen` beyond loopback unless `--insecure-listen` says so.
    pub fn check_listen(&self) -> Result<(), Error> {
        match self.listen {
            Some(addr)
                if !addr.ip().is_loopback()
                    && self.tls_files().is_none()
                    && !self.insecure_listen =>
            {
                Err(Error::InsecureListen { addr })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod listen_tests {
    use super::*;

    /// The three TLS files of `--listen`.
    const TLS: [&str; 6] = ["--tls-cert", "c", "--tls-key", "k", "--tls-client-ca", "ca"];

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("chaos-daemon").chain(args.iter().copied()))
    }

    #[test]
    fn plaintext_beyond_loopback_needs_insecure_listen() {
        let config = parse(&["--listen", "0.0.0.0:7465"]).expect("parses");
        let err = config.check_listen().expect_err("refused");
        assert!(
            err.to_string()
                .starts_with("--listen 0.0.0.0:7465: not a loopback address"),
            "{err}"
        );
        let exposed_tls = [&["--listen", "0.0.0.0:7465"][..], &TLS].concat();
        for ok in [
            &["--listen", "127.0.0.1:7465"][..],
            &["--listen", "[::1]:7465"],
            &["--listen", "0.0.0.0:7465", "--insecure-listen"],
            &exposed_tls,
            &[],
        ] {
            let config = parse(ok).expect("parses");
            assert!(config.check_listen().is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn tls_flags_come_all_three_with_listen() {
        let full = [&["--listen", "127.0.0.1:1"][..], &TLS].concat();
        let files = parse(&full).expect("parses").tls_files().expect("files");
        assert_eq!(files.client_ca, PathBuf::from("ca"));
        assert!(parse(&full[..6]).is_err(), "no client CA");
        assert!(parse(&full[2..]).is_err(), "no --listen");
        assert!(parse(&[&full[..], &["--insecure-listen"]].concat()).is_err());
    }
}
