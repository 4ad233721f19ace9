//! Opens a gRPC channel to chaos-daemon: over its Unix socket, over TCP (plaintext or TLS), or over byte streams a caller dials itself (e.g. a port-forward), with TLS on top.

use std::error::Error;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chaos_proto::v1::fault_service_client::FaultServiceClient;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

use super::args::ConnectionArgs;
use super::error::CliError;
use super::errortap::{FirstError, Tapped};
use crate::tls::client::{ClientTls, Identity};

/// How long to wait for the daemon to accept (and, over TCP, to answer a health check);
/// a daemon answers in milliseconds, so anything longer means it is wedged or filtered
/// and the user should hear about it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// tonic needs an HTTP URI, but the connectors below ignore it and dial for themselves.
const PLACEHOLDER_URI: &str = "http://[::]:50051";

/// Where the daemon is and how to speak to it.
#[derive(Debug, Clone)]
pub enum Transport {
    /// The daemon's Unix socket (root only, no TLS).
    Unix(PathBuf),
    /// A TCP port of the daemon.
    Tcp {
        /// The `--server` URL as given, for messages.
        server: String,
        /// `host:port` to dial.
        authority: String,
        /// TLS on top of TCP (`https://`); plaintext (`http://`) when `None`.
        tls: Option<ClientTls>,
    },
}

impl From<&Path> for Transport {
    fn from(socket: &Path) -> Self {
        Transport::Unix(socket.to_owned())
    }
}

impl From<PathBuf> for Transport {
    fn from(socket: PathBuf) -> Self {
        Transport::Unix(socket)
    }
}

impl Transport {
    /// The transport `args` ask for: `--server` when given, else the Unix `--socket`. The
    /// TLS flags are read only for an `https://` server, so a shell that exports them for
    /// a daemon does not break local use.
    pub fn from_args(args: &ConnectionArgs) -> Result<Self, CliError> {
        let Some(server) = &args.server else {
            return Ok(Transport::Unix(args.socket.clone()));
        };
        let bad = |reason: String| CliError::Argument {
            flag: "--server",
            reason: format!("{server}: {reason}"),
        };
        let uri: Uri = server
            .parse()
            .map_err(|e| bad(format!("not a URL ({e}); e.g. https://node-1:7465")))?;
        let (Some(host), Some(port)) = (uri.host(), uri.port_u16()) else {
            return Err(bad(
                "needs a host and a port, e.g. https://node-1:7465".into()
            ));
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("takes no path, only a scheme, host and port".into()));
        }
        let authority = format!("{host}:{port}");
        let tls = match uri.scheme_str() {
            Some("http") => None,
            Some("https") => Some(client_tls(args, host)?),
            _ => return Err(bad("the scheme must be https:// (TLS) or http://".into())),
        };
        Ok(Transport::Tcp {
            server: server.clone(),
            authority,
            tls,
        })
    }
}

/// The TLS config of an `https://` server at `host`.
fn client_tls(args: &ConnectionArgs, host: &str) -> Result<ClientTls, CliError> {
    let ca = args.tls_ca.as_deref().ok_or_else(|| CliError::Argument {
        flag: "--tls-ca",
        reason: "an https:// --server needs the CA that signed the daemon's certificate".into(),
    })?;
    let identity = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Identity { cert, key }),
        _ => None,
    };
    // An IPv6 host comes bracketed in a URL, never in a certificate.
    let default_name = host.trim_start_matches('[').trim_end_matches(']');
    let name = args.tls_server_name.as_deref().unwrap_or(default_name);
    Ok(ClientTls::load(ca, identity, name)?)
}

/// Connects to the daemon's `FaultService` through `transport` (a socket path will do),
/// failing fast with [`CliError::Connect`] or [`CliError::ConnectServer`] and the root
/// cause if nothing answers there.
pub async fn connect(
    transport: impl Into<Transport>,
) -> Result<FaultServiceClient<Channel>, CliError> {
    match transport.into() {
        Transport::Unix(socket) => connect_unix(socket).await,
        Transport::Tcp {
            server,
            authority,
            tls,
        } => {
            let dial = move || {
                let authority = authority.clone();
                async move {
                    let stream = TcpStream::connect(authority).await?;
                    // gRPC exchanges small frames; Nagle would hold them back.
                    stream.set_nodelay(true)?;
                    Ok(stream)
                }
            };
            connect_over(dial, tls, &server).await
        }
    }
}

async fn connect_unix(socket: PathBuf) -> Result<FaultServiceClient<Channel>, CliError> {
    let unreachable = |cause: String| CliError::Connect {
        socket: socket.clone(),
        cause,
    };
    let endpoint = Endpoint::try_from(PLACEHOLDER_URI)
        .map_err(|e| unreachable(root_cause(&e)))?
        .connect_timeout(CONNECT_TIMEOUT);
    let path = socket.clone();
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .map_err(|e| unreachable(root_cause(&e)))?;
    Ok(FaultServiceClient::new(channel))
}

/// A byte stream the channel can run over.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Connects to the daemon over byte streams that `dial` opens: called for the first
/// connection and again whenever the channel reconnects. With `tls`, a TLS handshake runs
/// on each stream first. Then a gRPC health check must succeed: with TLS 1.3 a daemon
/// refusing the client's certificate says so only after the handshake, and the user
/// should learn it here rather than as a failed call. `target` names the daemon in errors
/// (a URL, or e.g. "pod faultline-x7k2p port 7465").
///
/// Fails with [`CliError::ConnectServer`] naming `target` and the root cause.
pub async fn connect_over<D, F, S>(
    dial: D,
    tls: Option<ClientTls>,
    target: &str,
) -> Result<FaultServiceClient<Channel>, CliError>
where
    D: Fn() -> F + Send + Sync + 'static,
    F: Future<Output = std::io::Result<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let unreachable = |cause: String| CliError::ConnectServer {
        server: target.to_owned(),
        cause,
    };
    let endpoint = Endpoint::try_from(PLACEHOLDER_URI)
        .map_err(|e| unreachable(root_cause(&e)))?
        .connect_timeout(CONNECT_TIMEOUT);
    let dial = Arc::new(dial);
    let first_error = FirstError::default();
    let tap = Arc::clone(&first_error);
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let (dial, tls, tap) = (Arc::clone(&dial), tls.clone(), Arc::clone(&tap));
            async move {
                let stream = dial().await?;
                let stream: Box<dyn Io> = match tls {
                    None => Box::new(stream),
                    Some(tls) => Box::new(tls.handshake(stream).await?),
                };
                Ok::<_, std::io::Error>(TokioIo::new(Tapped::new(stream, tap)))
            }
        }))
        .await
        .map_err(|e| unreachable(root_cause(&e)))?;
    check_answers(channel.clone()).await.map_err(|cause| {
        // The stream's own error (e.g. the daemon's TLS alert) says more than what
        // HTTP/2 made of it, which may be just "connection closed".
        unreachable(first_error.get().cloned().unwrap_or(cause))
    })?;
    Ok(FaultServiceClient::new(channel))
}

/// One gRPC health check over `channel`. Any status the daemon sends back proves the
/// connection works; a status made up on this side (it has a source error) does not.
async fn check_answers(channel: Channel) -> Result<(), String> {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let mut health = HealthClient::new(channel);
    let check = health.check(request);
    match tokio::time::timeout(CONNECT_TIMEOUT, check).await {
        Err(_) => Err(format!(
            "no answer to a health check within {CONNECT_TIMEOUT:?}"
        )),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) if status.source().is_none() => Ok(()),
        Ok(Err(status)) => Err(root_cause(&status)),
    }
}

/// The innermost error's message: tonic's outer layers only say "transport error",
/// while the OS or TLS error ("No such file or directory", "invalid peer certificate:
/// UnknownIssuer") tells the user what to fix.
pub(super) fn root_cause(err: &(dyn Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::Cli;

    fn transport(flags: &[&str]) -> Result<Transport, String> {
        let argv = ["chaosctl"].iter().chain(flags).chain(&["list"]);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        Transport::from_args(&cli.connection).map_err(|e| e.to_string())
    }

    #[test]
    fn server_url_picks_the_transport() {
        assert!(matches!(
            transport(&["--socket", "/tmp/s"]),
            Ok(Transport::Unix(p)) if p == Path::new("/tmp/s")
        ));
        // TLS flags inherited from a daemon's environment do not matter without https://.
        assert!(matches!(
            transport(&["--server", "http://127.0.0.1:7465", "--tls-ca", "/absent"]),
            Ok(Transport::Tcp { authority, tls: None, .. }) if authority == "127.0.0.1:7465"
        ));
    }

    #[test]
    fn server_url_mistakes_are_argument_errors() {
        for (flags, message) in [
            (
                &["--server", "https://node-1:7465"][..],
                "--tls-ca: an https:// --server needs the CA that signed the daemon's certificate",
            ),
            (
                &["--server", "https://node-1"],
                "--server: https://node-1: needs a host and a port, e.g. https://node-1:7465",
            ),
            (
                &["--server", "node-1:7465"],
                "--server: node-1:7465: the scheme must be https:// (TLS) or http://",
            ),
            (
                &["--server", "http://node-1:7465/api"],
                "--server: http://node-1:7465/api: takes no path, only a scheme, host and port",
            ),
        ] {
            assert_eq!(
                transport(flags).map(|_| ()),
                Err(message.to_string()),
                "{flags:?}"
            );
        }
        let err = transport(&[
            "--server",
            "https://[::1]:7465",
            "--tls-ca",
            "/absent/ca.crt",
        ]);
        assert_eq!(
            err.map(|_| ()),
            Err("TLS: read /absent/ca.crt: No such file or directory (os error 2)".into())
        );
    }
}
