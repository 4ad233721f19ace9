//! The commands over every node's faults: `list`, `abort-all`, and `get`, `cancel`,
//! `renew` of one id, which whichever daemon holds it answers.

use std::future::Future;
use std::io::Write;

use chaos_proto::v1::fault_service_client::FaultServiceClient;
use chaos_proto::v1::{
    AbortAllRequest, CancelRequest, Fault, GetRequest, ListRequest, RenewRequest,
};
use tonic::transport::Channel;

use super::args::Format;
use super::daemons;
use super::error::PluginError;
use super::fanout::{self, is_not_found, with_node, Node};
use super::render;
use super::session::Session;

/// A call on one fault id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByIdCall {
    /// `get`: the fault in detail.
    Get,
    /// `cancel`: end it now.
    Cancel,
    /// `renew`: hold its lease one more period.
    Renew,
}

/// `list`: every node's faults, one table with a NODE column (or one JSON/YAML array).
/// Nodes that cannot answer make it fail, naming them, after the others' faults are printed.
pub async fn list(
    session: &Session,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), PluginError> {
    print_all(session, format, out, |_, mut client| async move {
        let answer = client.list(ListRequest {}).await?;
        Ok(answer.map(|list| list.faults))
    })
    .await
}

/// `abort-all`: ends every fault of every node; prints the faults ended. Nodes that cannot
/// answer make it fail, naming them.
pub async fn abort_all(
    session: &Session,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), PluginError> {
    print_all(session, format, out, |_, mut client| async move {
        let answer = client.abort_all(AbortAllRequest {}).await?;
        Ok(answer.map(|aborted| aborted.faults))
    })
    .await
}

/// `get`, `cancel` or `renew` of `id`: every daemon is asked; NOT_FOUND only when none has
/// it and every one answered.
pub async fn by_id(
    session: &Session,
    call: ByIdCall,
    id: String,
    format: Format,
    out: &mut dyn Write,
    progress: &mut dyn Write,
) -> Result<(), PluginError> {
    let (nodes, mut failures) = connect(session).await?;
    let daemons = nodes.len() + failures.len();
    let answers = fanout::call_each(&nodes, |_, mut client| {
        let id = id.clone();
        async move {
            match call {
                ByIdCall::Get => client.get(GetRequest { id }).await,
                ByIdCall::Cancel => client.cancel(CancelRequest { id }).await,
                ByIdCall::Renew => client.renew(RenewRequest { id }).await,
            }
        }
    })
    .await;
    let mut found = None;
    for (node, answer) in nodes.iter().zip(answers) {
        match answer {
            Ok(fault) => {
                found.get_or_insert(with_node(fault, &node.daemon.node));
            }
            Err(err) if is_not_found(&err) => {}
            Err(err) => failures.push((node.daemon.node.clone(), err)),
        }
    }
    if let Some(fault) = found {
        // The answer stands; the nodes that could not say whether they hold it too are
        // worth a warning (ids are unique, so they should not).
        for (node, err) in &failures {
            writeln!(progress, "warning: node {node}: {err}")?;
        }
        return match call {
            ByIdCall::Get => render::write_fault(out, format, &fault),
            ByIdCall::Cancel | ByIdCall::Renew => {
                render::write_faults(out, format, std::slice::from_ref(&fault))
            }
        };
    }
    if failures.is_empty() {
        return Err(PluginError::FaultNotFound { id, daemons });
    }
    // Every daemon refused alike (e.g. a malformed id): that answer and its exit code.
    let code = failures[0].1.exit_code();
    if failures.len() == daemons && failures.iter().all(|(_, e)| e.exit_code() == code) {
        return Err(failures.remove(0).1);
    }
    // Some said NOT_FOUND, others could not answer: the fault may be on those.
    Err(partial(failures))
}

/// Makes `call` on every node's daemon and prints the faults, sorted by node and start.
/// Succeeds only if every node answered; those that did not are named after the others'
/// faults are printed.
async fn print_all<F, Fut>(
    session: &Session,
    format: Format,
    out: &mut dyn Write,
    call: F,
) -> Result<(), PluginError>
where
    F: Fn(&Node, FaultServiceClient<Channel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Vec<Fault>>, tonic::Status>>,
{
    let (nodes, mut failures) = connect(session).await?;
    let answers = fanout::call_each(&nodes, call).await;
    let mut faults = Vec::new();
    for (node, answer) in nodes.iter().zip(answers) {
        match answer {
            Ok(each) => faults.extend(each.into_iter().map(|f| with_node(f, &node.daemon.node))),
            Err(err) => failures.push((node.daemon.node.clone(), err)),
        }
    }
    faults.sort_by(|a, b| {
        (&a.node, a.start_at_unix_ns, &a.id).cmp(&(&b.node, b.start_at_unix_ns, &b.id))
    });
    render::write_faults(out, format, &faults)?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(partial(failures))
    }
}

/// Connects to every node's daemon; those that cannot be reached come back apart, with why.
async fn connect(
    session: &Session,
) -> Result<(Vec<Node>, Vec<(String, PluginError)>), PluginError> {
    let daemons = daemons::everywhere(&session.client, &session.daemons).await?;
    let mut nodes = Vec::new();
    let mut failures = Vec::new();
    for node in fanout::connect_each(session, daemons).await {
        match node {
            Ok(node) => nodes.push(node),
            Err((daemon, err)) => failures.push((daemon.node, err)),
        }
    }
    Ok((nodes, failures))
}

/// The failures of several nodes as one error.
fn partial(failures: Vec<(String, PluginError)>) -> PluginError {
    PluginError::Partial(
        failures
            .into_iter()
            .map(|(node, err)| format!("node {node}: {err}"))
            .collect(),
    )
}
