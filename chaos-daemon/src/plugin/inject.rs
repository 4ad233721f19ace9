//! Injects one fault into pods on however many nodes they run: cluster-wide guard rails,
//! a dry run on every node first, then arming on every node, and cancelling what was armed
//! if any node refuses.

use std::io::Write;
use std::time::SystemTime;

use chaos_proto::v1::{CancelRequest, Fault, InjectRequest};

use super::args::{window_mut, Format, PodSelection};
use super::census::{self, protected_namespaces, Census};
use super::daemons;
use super::error::PluginError;
use super::fanout::{self, Node};
use super::guard;
use super::render;
use super::rows::merge;
use super::session::Session;
use super::target::PodTarget;
use crate::cli::args::InjectCommand;
use crate::cli::error::CliError;
use crate::cli::podview::TargetView;

/// Where the answer goes: the rows on `out`, one progress line per node on `progress`.
pub struct Streams<'a> {
    /// Standard output: the pods, or the faults as JSON/YAML.
    pub out: &'a mut dyn Write,
    /// Standard error: what each node did ("node-a: armed 0b6f… (2 pods)").
    pub progress: &'a mut dyn Write,
}

/// Injects `fault` into the pods `selection` names: see the module's doc for the steps.
/// Nothing is sent unless every node involved has a daemon and every guard rail holds.
pub async fn inject(
    session: &Session,
    selection: PodSelection,
    mut fault: InjectCommand,
    format: Format,
    streams: Streams<'_>,
) -> Result<(), PluginError> {
    let target = PodTarget::from_selection(&selection, &session.namespace)?;
    let window = window_mut(&mut fault);
    window.target = target.to_target();
    let protected = protected_namespaces(&session.daemons.namespace, &window.allow_protected);
    if let Some(ns) = target.namespace() {
        if protected.iter().any(|p| p == ns) {
            return Err(PluginError::Protected {
                namespace: ns.to_owned(),
            });
        }
    }
    let pods = census::fetch(&session.client, &target).await?;
    let census = Census::new(&pods, &protected);
    guard::check(&census, &target, window)?;
    let dry_run = window.dry_run;

    let nodes = census.nodes();
    if nodes.is_empty() {
        write_table(streams.out, format, census.views())?;
        return Err(PluginError::NothingToTarget(format!(
            "{}: no running pod to act on ({} matched); nothing was sent",
            target.describe(),
            census.pods.len()
        )));
    }
    let found = daemons::on_nodes(&session.client, &session.daemons, nodes.keys()).await?;
    let missing: Vec<String> = found
        .iter()
        .filter(|(_, daemon)| daemon.is_none())
        .map(|(node, _)| node.clone())
        .collect();
    if !missing.is_empty() {
        write_table(
            streams.out,
            format,
            without_daemon(census.views(), &missing),
        )?;
        return Err(PluginError::NoDaemon {
            nodes: missing,
            namespace: session.daemons.namespace.clone(),
            selector: session.daemons.selector.clone(),
        });
    }
    let nodes = fanout::connect_all(session, found.into_values().flatten().collect()).await?;
    let request = request(&fault, SystemTime::now())?;

    // Every node answers a dry run first, so a refusal (a guard rail on one node, a kernel
    // that cannot do the fault) stops everything before a single process is killed.
    let rehearsal = InjectRequest {
        dry_run: true,
        ..request.clone()
    };
    let rehearsed = inject_each(&nodes, &rehearsal).await;
    if let Some((node, source)) = first_refusal(&nodes, rehearsed.iter(), streams.progress)? {
        if dry_run {
            // What the other nodes answered is still the answer the user asked for.
            let answered: Vec<Fault> = rehearsed.into_iter().filter_map(Result::ok).collect();
            let rows = merge(census.views(), &answered);
            render::write_pods(streams.out, format, &rows, &answered)?;
        }
        return Err(PluginError::Refused {
            node,
            source,
            undone: vec!["nothing was armed (every node dry-ran it first)".into()],
        });
    }
    let faults: Vec<Fault> = rehearsed.into_iter().flatten().collect();
    if dry_run {
        for (node, fault) in nodes.iter().zip(&faults) {
            writeln!(
                streams.progress,
                "{}: dry run: {} pod(s) would be targeted",
                node.daemon.node,
                targeted(fault)
            )?;
        }
        let rows = merge(census.views(), &faults);
        return render::write_pods(streams.out, format, &rows, &faults);
    }

    let armed = inject_each(&nodes, &request).await;
    if let Some((node, source)) = first_refusal(&nodes, armed.iter(), streams.progress)? {
        let undone = cancel_armed(&nodes, &armed, &node, streams.progress).await?;
        return Err(PluginError::Refused {
            node,
            source,
            undone,
        });
    }
    let faults: Vec<Fault> = armed.into_iter().flatten().collect();
    for (node, fault) in nodes.iter().zip(&faults) {
        writeln!(
            streams.progress,
            "{}: armed {} ({} pod(s))",
            node.daemon.node,
            fault.id,
            targeted(fault)
        )?;
    }
    let rows = merge(census.views(), &faults);
    render::write_pods(streams.out, format, &rows, &faults)
}

/// The request chaosctl would send for `fault`, with `--start-at +…` resolved against `now`
/// once, so every node opens the window at the same time.
fn request(fault: &InjectCommand, now: SystemTime) -> Result<InjectRequest, CliError> {
    match fault {
        InjectCommand::Network(args) => args.to_inject_request(now),
        InjectCommand::Process(args) => args.to_inject_request(now),
        InjectCommand::Stress(args) => args.to_inject_request(now),
        InjectCommand::Storage(args) => args.to_inject_request(now),
        InjectCommand::IoLimit(args) => args.to_inject_request(now),
        InjectCommand::DiskFill(args) => args.to_inject_request(now),
    }
}

/// Sends `request` to every node at once; answers in the nodes' order.
async fn inject_each(nodes: &[Node], request: &InjectRequest) -> Vec<Result<Fault, PluginError>> {
    fanout::call_each(nodes, |_, mut client| {
        let request = request.clone();
        async move { client.inject(request).await }
    })
    .await
}

/// Reports every refusal among `answers` on `progress` and returns the first (its node and
/// the daemon's answer), or `None` when every node accepted.
fn first_refusal<'a>(
    nodes: &[Node],
    answers: impl Iterator<Item = &'a Result<Fault, PluginError>>,
    progress: &mut dyn Write,
) -> Result<Option<(String, Box<CliError>)>, PluginError> {
    let mut first = None;
    for (node, answer) in nodes.iter().zip(answers) {
        let Err(err) = answer else { continue };
        writeln!(progress, "{}: refused: {err}", node.daemon.node)?;
        if first.is_none() {
            let source = match err {
                PluginError::Cli(cli) => match cli.as_ref() {
                    CliError::Rpc(status) => CliError::Rpc(status.clone()),
                    other => CliError::Rpc(tonic::Status::unknown(other.to_string())),
                },
                other => CliError::Rpc(tonic::Status::unknown(other.to_string())),
            };
            first = Some((node.daemon.node.clone(), Box::new(source)));
        }
    }
    Ok(first)
}

/// Cancels the faults that nodes armed before `refused` said no; one line per fault, which
/// also goes to `progress` as it happens.
async fn cancel_armed(
    nodes: &[Node],
    armed: &[Result<Fault, PluginError>],
    refused: &str,
    progress: &mut dyn Write,
) -> Result<Vec<String>, PluginError> {
    let held: Vec<(Node, String)> = nodes
        .iter()
        .zip(armed)
        .filter_map(|(node, answer)| {
            let fault = answer.as_ref().ok()?;
            Some((node.clone(), fault.id.clone()))
        })
        .collect();
    let holders: Vec<Node> = held.iter().map(|(node, _)| node.clone()).collect();
    let cancels = fanout::call_each(&holders, |holder, mut client| {
        let id = held
            .iter()
            .find(|(node, _)| node.daemon == holder.daemon)
            .map(|(_, id)| id.clone())
            .unwrap_or_default();
        async move { client.cancel(CancelRequest { id }).await }
    })
    .await;
    let mut undone = Vec::new();
    for ((node, id), cancel) in held.iter().zip(cancels) {
        let line = match cancel {
            Ok(_) => format!(
                "{}: cancelled {id} because node {refused} refused",
                node.daemon.node
            ),
            Err(err) => format!(
                "{}: could NOT cancel {id} ({err}); run `kubectl chaos cancel {id}`",
                node.daemon.node
            ),
        };
        writeln!(progress, "{line}")?;
        undone.push(line);
    }
    Ok(undone)
}

/// Prints `views` as the pod table, when the format is a table: the answer to a request
/// refused before any daemon heard of it. JSON and YAML carry daemons' faults, so they
/// print nothing then.
fn write_table(
    out: &mut dyn Write,
    format: Format,
    views: Vec<TargetView>,
) -> Result<(), PluginError> {
    if matches!(format, Format::Json | Format::Yaml) {
        return Ok(());
    }
    render::write_pods(out, format, &merge(views, &[]), &[])
}

/// The plugin's rows with the pods of `nodes` marked as having no daemon there.
fn without_daemon(mut views: Vec<TargetView>, nodes: &[String]) -> Vec<TargetView> {
    for view in &mut views {
        if view.status == "unknown" && nodes.contains(&view.node) {
            view.status = "no-daemon";
            view.reason = format!("no faultline daemon on node {}", view.node);
        }
    }
    views
}

/// How many pods a node's answer targets.
fn targeted(fault: &Fault) -> usize {
    fault
        .targets
        .iter()
        .filter(|t| t.status == chaos_proto::v1::TargetStatus::Targeted as i32)
        .count()
}
