//! Runs a parsed `kubectl chaos` command: opens the session, dispatches, prints.

use std::io::Write;

use super::args::{Format, PluginCli, PluginCommand};
use super::error::PluginError;
use super::inject::{self, Streams};
use super::manage::{self, ByIdCall};
use super::session::Session;

/// Connects to the cluster named by `cli`, runs its command, and prints the answer on
/// stdout and each node's progress on stderr.
pub async fn run(cli: PluginCli) -> Result<(), PluginError> {
    let session = Session::open(&cli).await?;
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let streams = Streams {
        out: &mut stdout,
        progress: &mut stderr,
    };
    let result = execute(&session, cli.command, cli.cluster.format, streams).await;
    stdout.flush()?;
    result
}

/// Runs `command` in `session`, writing to `streams`.
pub async fn execute(
    session: &Session,
    command: PluginCommand,
    format: Format,
    streams: Streams<'_>,
) -> Result<(), PluginError> {
    let command = match command.into_inject() {
        Ok((pods, fault)) => return inject::inject(session, pods, fault, format, streams).await,
        Err(other) => *other,
    };
    let Streams { out, progress } = streams;
    match command {
        PluginCommand::List => manage::list(session, format, out).await,
        PluginCommand::AbortAll => manage::abort_all(session, format, out).await,
        PluginCommand::Get(args) => {
            manage::by_id(session, ByIdCall::Get, args.id, format, out, progress).await
        }
        PluginCommand::Cancel(args) => {
            manage::by_id(session, ByIdCall::Cancel, args.id, format, out, progress).await
        }
        PluginCommand::Renew(args) => {
            manage::by_id(session, ByIdCall::Renew, args.id, format, out, progress).await
        }
        // `into_inject` took every inject subcommand above.
        PluginCommand::Network { .. }
        | PluginCommand::Process { .. }
        | PluginCommand::Stress { .. }
        | PluginCommand::Storage { .. }
        | PluginCommand::IoLimit { .. }
        | PluginCommand::DiskFill { .. } => Ok(()),
    }
}
