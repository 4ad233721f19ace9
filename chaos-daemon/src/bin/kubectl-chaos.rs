//! `kubectl-chaos`, the kubectl plugin (`kubectl chaos …`): parses the command line, runs it
//! against the cluster's faultline daemons, reports errors with chaosctl's exit codes.

use std::ffi::OsString;
use std::process::ExitCode;

use chaos_daemon::cli::exit;
use chaos_daemon::plugin::{self, args::command_path};

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = match plugin::parse_from(&argv) {
        Ok(cli) => cli,
        Err(err) => return exit::usage(&err, &command_path(&argv)),
    };
    // Port-forward errors and the like are logged at debug level: RUST_LOG=debug shows them.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    exit::run(plugin::run(cli))
}
