//! Serves the API (plus gRPC health and reflection) on the Unix socket and optional TCP port.
use std::{os::unix::fs::PermissionsExt as _, path::Path};

use chaos_proto::v1::{fault_service_server::FaultServiceServer, FILE_DESCRIPTOR_SET};
use tokio::{net::UnixListener, sync::watch};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::Server;
use tracing::info;

use crate::api::Api;

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
    /// Binding the TCP listener failed.
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

/// Serves until `shutdown` flips to true.
pub async fn serve(
    api: Api,
    unix: UnixListener,
    socket: &Path,
    tcp: Option<std::net::SocketAddr>,
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
    let router = Server::builder()
        .add_service(health)
        .add_service(reflection)
        .add_service(FaultServiceServer::new(api));
    let until = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    info!(socket = %socket.display(), "serving the API");
    let unix_server = router
        .clone()
        .serve_with_incoming_shutdown(UnixListenerStream::new(unix), until(shutdown.clone()));
    match tcp {
        None => unix_server.await?,
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Tcp { addr, source })?;
            info!(%addr, "serving the API on TCP");
            let tcp_server = router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), until(shutdown));
            let (a, b) = tokio::join!(unix_server, tcp_server);
            a?;
            b?;
        }
    }
    Ok(())
}
