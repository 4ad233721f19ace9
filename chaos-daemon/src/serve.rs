//! Serves the API (plus gRPC health and reflection) on the Unix socket and optional TCP port, and gRPC health alone on an optional probe port.
use std::{net::SocketAddr, os::unix::fs::PermissionsExt as _, path::Path, sync::Arc};

use chaos_proto::v1::{fault_service_server::FaultServiceServer, FILE_DESCRIPTOR_SET};
use tokio::{
    net::{TcpListener, UnixListener},
    sync::watch,
};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::Server;
use tracing::info;

use crate::api::Api;
use crate::tls::{incoming::incoming, reload};

/// How often an idle connection is pinged, and how long an answer may take.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the API could not be served.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating, binding or securing the Unix socket failed.
    #[error("{op} {path}: {source}")]
    Socket {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
    /// Binding a TCP listener failed.
    #[error("bind {addr}: {source}")]
    Tcp {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The reflection service could not read the descriptor set.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The API's TCP port: where, and with which TLS config if any.
#[derive(Debug)]
pub struct TcpApi {
    /// The address to bind.
    pub addr: SocketAddr,
    /// The mTLS config (reloaded when its files change); plaintext when `None`.
    pub tls: Option<Arc<reload::ReloadingConfig>>,
}

/// Binds the Unix socket: stale file removed, parent created, mode 0600 before serving.
pub fn bind_unix(path: &Path) -> Result<UnixListener, Error> {
    let err = |op: &'static str| {
        let path = path.display().to_string();
        move |source| Error::Socket { op, path, source }
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err("mkdir"))?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err("unlink")(e)),
        _ => {}
    }
    let listener = UnixListener::bind(path).map_err(err("bind"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err("chmod"))?;
    Ok(listener)
}

async fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Tcp { addr, source })
}

/// The address a listener got (the port the OS chose for `:0`), for the logs.
fn bound(listener: &TcpListener, asked: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(asked)
}

/// Serves until `shutdown` flips to true: the API on `unix` and on `tcp` if given, and
/// the health service alone on `health` if given.
pub async fn serve(
    api: Api,
    unix: UnixListener,
    socket: &Path,
    tcp: Option<TcpApi>,
    health_addr: Option<SocketAddr>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<FaultServiceServer<Api>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // Kubelet's probes reach this one without credentials, so it carries nothing else.
    let health_only = Server::builder().add_service(health.clone());
    // Keepalive pings find a client that vanished without closing its connection (a crashed
    // orchestrator, a node gone): its Watch streams end, and the leases they held count down.
    let router = Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE))
        .http2_keepalive_timeout(Some(KEEPALIVE))
        .add_service(health)
        .add_service(reflection)
        .add_service(FaultServiceServer::new(api));
    let until = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    // Every port is bound before anything is served, so a taken port fails the start.
    let tcp = match tcp {
        Some(TcpApi { addr, tls }) => Some((bind_tcp(addr).await?, addr, tls)),
        None => None,
    };
    let health_listener = match health_addr {
        Some(addr) => Some((bind_tcp(addr).await?, addr)),
        None => None,
    };

    info!(socket = %socket.display(), "serving the API");
    let unix_server = router
        .clone()
        .serve_with_incoming_shutdown(UnixListenerStream::new(unix), until(shutdown.clone()));
    let tcp_server = async {
        match tcp {
            None => Ok(()),
            Some((listener, addr, None)) => {
                info!(addr = %bound(&listener, addr), tls = false, "serving the API on TCP");
                router
                    .serve_with_incoming_shutdown(
                        TcpListenerStream::new(listener),
                        until(shutdown.clone()),
                    )
                    .await
            }
            Some((listener, addr, Some(tls))) => {
                info!(addr = %bound(&listener, addr), tls = true, "serving the API on TCP");
                tokio::spawn(Arc::clone(&tls).watch(reload::POLL_EVERY, shutdown.clone()));
                router
                    .serve_with_incoming_shutdown(incoming(listener, tls), until(shutdown.clone()))
                    .await
            }
        }
    };
    let health_server = async {
        match health_listener {
            None => Ok(()),
            Some((listener, addr)) => {
                info!(addr = %bound(&listener, addr), "serving gRPC health only on TCP");
                health_only
                    .serve_with_incoming_shutdown(
                        TcpListenerStream::new(listener),
                        until(shutdown.clone()),
                    )
                    .await
            }
        }
    };
    let (unix_served, tcp_served, health_served) =
        tokio::join!(unix_server, tcp_server, health_server);
    unix_served?;
    tcp_served?;
    health_served?;
    Ok(())
}
