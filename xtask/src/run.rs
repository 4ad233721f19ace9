//! `cargo xtask run`: sets up, builds the daemon in release mode and runs it as root.

use anyhow::Result;

use crate::{cmd, privilege, setup, workspace};

#[derive(clap::Args)]
pub struct Args {
    /// Arguments for chaos-daemon (after `--`).
    #[arg(last = true, value_name = "DAEMON-ARGS")]
    daemon_args: Vec<String>,
}

/// Checks for root, runs setup, builds `chaos-daemon` (release) and replaces this process
/// with it, so signals and the exit status are the daemon's own.
pub fn run(args: &Args) -> Result<()> {
    privilege::require_root("running the daemon (it loads eBPF programs)")?;
    setup::run()?;
    cmd::run(&mut workspace::cargo([
        "build",
        "--release",
        "-p",
        "chaos-daemon",
        "--bins",
    ]))?;
    let daemon = workspace::target_dir().join("release/chaos-daemon");
    Err(cmd::exec(
        std::process::Command::new(daemon).args(&args.daemon_args),
    ))
}
