//! `cargo xtask build`: sets up, then builds every host crate of the workspace.

use anyhow::Result;

use crate::{cmd, setup, workspace};

#[derive(clap::Args)]
pub struct Args {
    /// Build with the release profile.
    #[arg(long)]
    release: bool,
}

/// Runs setup, then `cargo build` on the host crates (the daemon's build script builds the
/// eBPF object with the nightly toolchain and bpf-linker).
pub fn run(args: &Args) -> Result<()> {
    setup::run()?;
    let mut build = workspace::cargo(["build"]);
    build.args(workspace::HOST_CRATES);
    if args.release {
        build.arg("--release");
    }
    cmd::run(&mut build)
}
