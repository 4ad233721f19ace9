//! Reaches a node's daemon through a port-forward of its pod: a byte tunnel through the API
//! server, with gRPC (and TLS, when given) running end to end inside it.
//!
//! Why not the API server's pod proxy (`pods/NAME:PORT/proxy`): the proxy terminates HTTP
//! and TLS and speaks HTTP/1.1 to the pod, so neither gRPC's HTTP/2 nor the daemon's mutual
//! TLS (the client certificate must reach the daemon) can cross it. A port-forward carries
//! raw bytes, so the daemon sees this client's own TLS handshake.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos_proto::v1::fault_service_client::FaultServiceClient;
use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tonic::transport::Channel;
use tracing::debug;

use super::daemons::DaemonPod;
use super::error::PluginError;
use super::session::Session;
use crate::cli::connect::connect_over;
use crate::cli::error::CliError;

/// How long to wait, once connecting failed, for the port-forward to say why (it sends
/// its error on a channel of its own, e.g. "connection refused" inside the pod).
const FORWARD_ERROR_WAIT: Duration = Duration::from_secs(2);

/// The latest port-forward's error channel, read only when connecting fails.
type ErrorSlot = Arc<Mutex<Option<BoxFuture<'static, Option<String>>>>>;

/// A gRPC client of `daemon`'s `FaultService`, over a fresh port-forward per connection
/// (tonic reconnects by dialing again), with the session's TLS inside the tunnel.
pub async fn connect(
    session: &Session,
    daemon: &DaemonPod,
) -> Result<FaultServiceClient<Channel>, PluginError> {
    let port = session.daemons.port;
    let api: Api<Pod> = Api::namespaced(session.client.clone(), &daemon.namespace);
    let errors: ErrorSlot = Arc::default();
    let (name, slot) = (daemon.name.clone(), Arc::clone(&errors));
    let dial = move || {
        let (api, name, slot) = (api.clone(), name.clone(), Arc::clone(&slot));
        async move {
            let mut forwarder = api
                .portforward(&name, &[port])
                .await
                .map_err(|e| std::io::Error::other(format!("port-forward: {e}")))?;
            let stream = forwarder.take_stream(port).ok_or_else(|| {
                std::io::Error::other(format!("port-forward opened no stream for port {port}"))
            })?;
            if let Some(error) = forwarder.take_error(port) {
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some(error.boxed());
                }
            }
            // The forwarder's task carries the bytes until either side closes; dropping
            // the handle leaves it running.
            drop(forwarder);
            Ok(stream)
        }
    };
    let what = format!("pod {} port {port}", daemon.path());
    match connect_over(dial, session.tls.clone(), &what).await {
        Ok(client) => {
            debug!(node = %daemon.node, pod = %daemon.path(), "connected by port-forward");
            Ok(client)
        }
        Err(err) => {
            let mut cause = match err {
                CliError::ConnectServer { cause, .. } => cause,
                other => other.to_string(),
            };
            if let Some(reason) = forward_error(&errors).await {
                cause = format!("{cause} (port-forward: {reason})");
            }
            Err(PluginError::Unreachable {
                node: daemon.node.clone(),
                pod: daemon.path(),
                port,
                cause,
            })
        }
    }
}

/// What the port-forward's error channel said, if it said anything in time.
async fn forward_error(errors: &ErrorSlot) -> Option<String> {
    let pending = errors.lock().ok()?.take()?;
    tokio::time::timeout(FORWARD_ERROR_WAIT, pending)
        .await
        .ok()
        .flatten()
        .map(|reason| reason.trim().to_owned())
        .filter(|reason| !reason.is_empty())
}
