//! `cargo xtask test`: sets up, then checks formatting, lints and runs the tests (as CI does).

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Result};

use crate::{cmd, privilege, setup, vm, workspace};

#[derive(clap::Args)]
pub struct Args {
    /// Kernels of the matrix to test on (repeatable); all when omitted.
    #[arg(long = "kernel", value_name = "NAME")]
    kernels: Vec<String>,
    /// Test name filter (after `--`), passed to every test binary.
    #[arg(last = true, value_name = "TEST-FILTER")]
    filter: Vec<String>,
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

    let totals_file = workspace::target_dir()
        .join("vm-test")
        .join(vm::TOTALS_FILE);
    let _ = std::fs::remove_file(&totals_file);
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
    // Last, the matrix's totals: the line CI reads to know how many tests ran.
    if let Ok(totals) = std::fs::read_to_string(&totals_file) {
        println!("{}", totals.trim());
    }
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

    // The tests run on the host and in a VM per kernel of the matrix (`vm-test`), after the
    // check that the matrix reports failures at all (`vm-self-test`).
    let xtask = std::env::current_exe().unwrap_or_else(|_| "xtask".into());
    let mut self_test = Command::new(&xtask);
    self_test.arg("vm-self-test");
    let mut matrix = Command::new(&xtask);
    matrix.arg("vm-test");
    for kernel in &args.kernels {
        matrix.args(["--kernel", kernel]);
    }
    if !args.filter.is_empty() {
        matrix.arg("--").args(&args.filter);
    }

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
            name: "matrix-self-test",
            command: self_test,
        },
        Stage {
            name: "matrix",
            command: matrix,
        },
    ]
}
