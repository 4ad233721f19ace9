//! `cargo xtask vm-self-test`: proves the matrix reports failures: a test failing on purpose
//! turns its kernel's row red, and a kernel that panics at boot fails the run, named.
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::{cmd, workspace};

/// Runs `xtask vm-test ARGS` expecting it to fail, and returns its report.
fn expect_failure(name: &str, args: &[&str]) -> Result<serde_json::Value> {
    let dir = workspace::target_dir()
        .join("vm-test")
        .join(format!("self-test-{name}"));
    let xtask = std::env::current_exe().context("path of the xtask binary")?;
    let mut run = Command::new(xtask);
    run.arg("vm-test").arg("--report-dir").arg(&dir).args(args);
    if cmd::run(&mut run).is_ok() {
        bail!(
            "self-test {name}: `vm-test {}` passed but must fail",
            args.join(" ")
        );
    }
    let report = dir.join("report.json");
    let text = std::fs::read_to_string(&report)
        .with_context(|| format!("self-test {name}: no report at {}", report.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse {}", report.display()))
}

pub fn run() -> Result<()> {
    let failing = expect_failure(
        "fail-on-purpose",
        &[
            "--kernel",
            "host",
            "--fail-on-purpose",
            "--",
            "fails_on_purpose",
        ],
    )?;
    let binaries = failing[0]["binaries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let named = binaries
        .iter()
        .flat_map(|b| b["results"].as_array().cloned().unwrap_or_default())
        .any(|t| t["name"] == "fails_on_purpose" && t["outcome"] == "failed");
    if failing[0]["kernel"] != "host" || !named {
        bail!("self-test fail-on-purpose: the host row does not show the failed test: {failing}");
    }
    println!("vm-self-test: a failing test fails its kernel's row: ok");

    let panicking = expect_failure(
        "panic",
        &[
            "--kernel",
            "debian-6.1",
            "--boot-arg",
            "mem=40M",
            "--watchdog-minutes",
            "10",
            "--",
            "probes_match",
        ],
    )?;
    let why = panicking[0]["boot_failure"].as_str().unwrap_or_default();
    if panicking[0]["kernel"] != "debian-6.1" || why.is_empty() {
        bail!("self-test panic: the debian-6.1 row does not say it did not run: {panicking}");
    }
    println!("vm-self-test: a kernel that panics at boot fails the run, named: ok");
    Ok(())
}
