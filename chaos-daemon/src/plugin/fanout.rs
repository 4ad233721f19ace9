//! Talks to several nodes' daemons at once: connects to each, and makes the same call on
//! each, keeping every node's answer apart.

use std::future::Future;

use chaos_proto::v1::fault_service_client::FaultServiceClient;
use chaos_proto::v1::Fault;
use futures::future::join_all;
use tonic::transport::Channel;

use super::daemons::DaemonPod;
use super::error::PluginError;
use super::forward;
use super::session::Session;
use crate::cli::error::CliError;

/// A node's daemon, connected.
#[derive(Clone)]
pub struct Node {
    /// Its pod.
    pub daemon: DaemonPod,
    /// A client over a port-forward to it.
    pub client: FaultServiceClient<Channel>,
}

/// Connects to every daemon of `daemons` at once; each gets its own result.
pub async fn connect_each(
    session: &Session,
    daemons: Vec<DaemonPod>,
) -> Vec<Result<Node, (DaemonPod, PluginError)>> {
    join_all(daemons.into_iter().map(|daemon| async move {
        match forward::connect(session, &daemon).await {
            Ok(client) => Ok(Node { daemon, client }),
            Err(err) => Err((daemon, err)),
        }
    }))
    .await
}

/// Connects to every daemon of `daemons`, or fails with the first that cannot be reached.
pub async fn connect_all(
    session: &Session,
    daemons: Vec<DaemonPod>,
) -> Result<Vec<Node>, PluginError> {
    connect_each(session, daemons)
        .await
        .into_iter()
        .map(|node| node.map_err(|(_, err)| err))
        .collect()
}

/// Makes `call` on every node at once (given the node and a client of it); the answers
/// come back in the nodes' order.
pub async fn call_each<T, F, Fut>(nodes: &[Node], call: F) -> Vec<Result<T, PluginError>>
where
    F: Fn(&Node, FaultServiceClient<Channel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    join_all(nodes.iter().map(|node| {
        let answer = call(node, node.client.clone());
        async move {
            answer
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| PluginError::from(CliError::Rpc(status)))
        }
    }))
    .await
}

/// `fault` with its node named, for daemons that do not set it themselves.
pub fn with_node(mut fault: Fault, node: &str) -> Fault {
    if fault.node.is_empty() {
        fault.node = node.to_owned();
    }
    fault
}

/// Whether `err` is a daemon's NOT_FOUND: "not here", when asking every node for an id.
pub fn is_not_found(err: &PluginError) -> bool {
    matches!(err, PluginError::Cli(cli) if matches!(cli.as_ref(), CliError::Rpc(status) if status.code() == tonic::Code::NotFound))
}
