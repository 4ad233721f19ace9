//! `chaosctl`: parses the command line, runs it against chaos-daemon, reports errors.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context;
use chaos_daemon::cli::{self, error, Cli};
use clap::error::ErrorKind;
use clap::Parser;

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(err) => return report_usage(&err, &argv),
    };
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
    match runtime.block_on(cli::run(cli)) {
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
        // Help requested, or implied by a bare `chaosctl`/`chaosctl inject`: print it whole.
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
            let command = cli::args::command_path(argv);
            eprintln!("{}", cli::clap_error_line(err, &command));
            ExitCode::from(error::EXIT_INVALID_ARGUMENT)
        }
    }
}
