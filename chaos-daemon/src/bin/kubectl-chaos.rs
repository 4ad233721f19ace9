//! `kubectl-chaos`, the kubectl plugin (`kubectl chaos …`): parses the command line, runs it
//! against the cluster's faultline daemons, reports errors with chaosctl's exit codes.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context;
use chaos_daemon::cli::{clap_error_line, error};
use chaos_daemon::plugin::{self, args::command_path};
use clap::error::ErrorKind;

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = match plugin::parse_from(&argv) {
        Ok(cli) => cli,
        Err(err) => return report_usage(&err, &argv),
    };
    // Port-forward errors and the like are logged at debug level: RUST_LOG=debug shows them.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(error::EXIT_FAILURE);
        }
    };
    match runtime.block_on(plugin::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader (e.g. `| head`) closed the pipe because it has what it wanted.
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// Prints help and version as clap renders them, and usage errors as one line.
fn report_usage(err: &clap::Error, argv: &[OsString]) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // If even printing help fails there is nowhere left to report it.
            let _ = err.print();
            match err.exit_code() {
                0 => ExitCode::SUCCESS,
                _ => ExitCode::from(error::EXIT_INVALID_ARGUMENT),
            }
        }
        _ => {
            eprintln!("{}", clap_error_line(err, &command_path(argv)));
            ExitCode::from(error::EXIT_INVALID_ARGUMENT)
        }
    }
}
