//! `cargo xtask setup`: makes this machine ready to build and test faultline, idempotently.

mod apt;
mod bpf_linker;
pub mod bpffs;
mod rust;

use std::time::Instant;

use anyhow::Result;

/// Runs every setup step; each checks first and does nothing if its work is already done.
pub fn run() -> Result<()> {
    let start = Instant::now();
    apt::ensure()?;
    rust::ensure()?;
    bpf_linker::ensure()?;
    bpffs::ensure()?;
    println!("setup: done in {:.1}s", start.elapsed().as_secs_f64());
    Ok(())
}

/// Prints one step's line: `setup: WHAT ... OUTCOME`.
fn report(what: &str, outcome: &str) {
    println!("setup: {what} ... {outcome}");
}
