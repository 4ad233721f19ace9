//! `cargo xtask test`: sets up, then checks formatting, lints and runs the tests (as CI does).

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Result};

use crate::{cmd, privilege, setup, workspace};

#[derive(clap::Args)]
pub struct Args {
    /// Extra arguments for `cargo test` (after `--`), e.g. `-p chaos-daemon -- --nocapture`.
    #[arg(last = true, value_name = "CARGO-TEST-ARGS")]
    cargo_test_args: Vec<String>,
}

/// One stage of the run: its name and the command it runs.
struct Stage {
    name: &'static str,
    command: Command,
}

/// Checks for root, runs setup, then every stage in order. A failed stage does not stop the
/// later ones, so one run shows every problem; the exit status is non-zero if any failed.
pub fn run(args: &Args) -> Result<()> {
    privilege::require_root("running the tests (they load eBPF programs and make cgroups)")?;
    setup::run()?;

    let mut results = Vec::new();
    for mut stage in stages(args) {
        println!("xtask test: {} ...", stage.name);
        let start = Instant::now();
        let outcome = cmd::run(&mut stage.command);
        let secs = start.elapsed().as_secs_f64();
        match &outcome {
            Ok(()) => println!("xtask test: {} ok ({secs:.1}s)", stage.name),
            Err(err) => eprintln!("xtask test: {} FAILED ({secs:.1}s): {err:#}", stage.name),
        }
        results.push((stage.name, outcome.is_ok(), secs));
    }

    let summary: Vec<String> = results
        .iter()
        .map(|(name, ok, secs)| {
            format!("{name} {} ({secs:.1}s)", if *ok { "ok" } else { "FAILED" })
        })
        .collect();
    let failed: Vec<&str> = results
        .iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(name, _, _)| *name)
        .collect();
    let verdict = if failed.is_empty() { "OK" } else { "FAILED" };
    println!("xtask test summary: {verdict} | {}", summary.join(", "));
    if !failed.is_empty() {
        bail!("failed stage(s): {}", failed.join(", "));
    }
    Ok(())
}

/// The stages: formatting, host lints, eBPF lints, tests.
fn stages(args: &Args) -> Vec<Stage> {
    let mut clippy = workspace::cargo(["clippy"]);
    clippy
        .args(workspace::HOST_CRATES)
        .args(["--all-targets", "--", "-D", "warnings"]);

    // The eBPF crate is no default member and cannot build for the host, so it is linted
    // on its own target with the nightly toolchain and a core library built from rust-src
    // (clippy only checks: bpf-linker is not involved).
    let clippy_ebpf = workspace::cargo_nightly([
        "clippy",
        "-p",
        "chaos-ebpf",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--",
        "-D",
        "warnings",
    ]);

    let mut test = workspace::cargo(["test"]);
    test.args(workspace::HOST_CRATES)
        .args(&args.cargo_test_args);

    vec![
        Stage {
            name: "fmt",
            command: workspace::cargo(["fmt", "--all", "--", "--check"]),
        },
        Stage {
            name: "clippy",
            command: clippy,
        },
        Stage {
            name: "clippy-ebpf",
            command: clippy_ebpf,
        },
        Stage {
            name: "cargo-test",
            command: test,
        },
    ]
}
