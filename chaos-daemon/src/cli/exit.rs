//! How a command-line front-end (`chaosctl`, `kubectl chaos`) ends: help and usage errors as
//! clap renders them, the command run to completion, its error on one line with its exit code.

use std::future::Future;
use std::process::ExitCode;

use clap::error::ErrorKind;

use super::error::{clap_error_line, CliError, EXIT_FAILURE, EXIT_INVALID_ARGUMENT};

/// An error a front-end reports when its command fails.
pub trait Failure: std::fmt::Display {
    /// The process exit code it maps to.
    fn exit_code(&self) -> u8;

    /// Whether it is a standard output closed by its reader (e.g. `| head`), which is how a
    /// reader says it has seen enough rather than a failure worth reporting.
    fn is_broken_pipe(&self) -> bool;
}

impl Failure for CliError {
    fn exit_code(&self) -> u8 {
        CliError::exit_code(self)
    }

    fn is_broken_pipe(&self) -> bool {
        CliError::is_broken_pipe(self)
    }
}

/// Prints help and version as clap renders them, and usage errors as one line pointing at
/// `command`'s help (`command` is the subcommand path typed, e.g. "chaosctl inject network").
pub fn usage(err: &clap::Error, command: &str) -> ExitCode {
    match err.kind() {
        // Help requested, or implied by a bare `chaosctl`/`chaosctl inject`: print it whole.
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // If even printing help fails there is nowhere left to report it.
            let _ = err.print();
            match err.exit_code() {
                0 => ExitCode::SUCCESS,
                _ => ExitCode::from(EXIT_INVALID_ARGUMENT),
            }
        }
        _ => {
            eprintln!("{}", clap_error_line(err, command));
            ExitCode::from(EXIT_INVALID_ARGUMENT)
        }
    }
}

/// Runs `command` to completion on a single-threaded runtime and reports how it ended: an
/// error as "error: …" on stderr with its exit code, a closed stdout as success.
pub fn run<E: Failure>(command: impl Future<Output = Result<(), E>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!(
                "error: cannot start the async runtime: {}",
                crate::error::chain(&err)
            );
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
