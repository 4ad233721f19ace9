//! `chaosctl`: parses the command line, runs it against chaos-daemon, reports errors.

use std::ffi::OsString;
use std::process::ExitCode;

use chaos_daemon::cli::{self, exit, Cli};
use clap::Parser;

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    match Cli::try_parse_from(&argv) {
        Ok(cli) => exit::run(cli::run(cli)),
        Err(err) => exit::usage(&err, &cli::args::command_path(&argv)),
    }
}
