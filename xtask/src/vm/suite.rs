//! Runs the workspace's test binaries with libtest's JSON output and classifies every test:
//! passed, failed, or skipped with the reason the test printed. Used on the host and, through
//! `xtask vm-guest`, inside each VM.
use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::{cmd, workspace};

/// What a test prints (through `support::skip`) when the kernel lacks what it needs.
pub const SKIP_MARKER: &str = "FAULTLINE-SKIP:";

/// The outcome of one test.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Failed { detail: String },
    Skipped { reason: String },
}

/// Test binaries whose subject does not depend on the kernel: they run on the host only, since a
/// VM under TCG runs them ten times slower and can find nothing the host run did not. Each
/// either uses no kernel feature (protobuf, manifests, argument parsing, certificates) or uses
/// only loss on a cgroup, which `network` covers on every kernel; none of them skips anywhere.
pub const HOST_ONLY: &[&str] = &[
    "api",           // the gRPC API's validation and error codes
    "chaos_common",  // layouts of the structs shared with the eBPF programs
    "chaos_proto",   // the protobuf messages
    "chaosctl",      // the CLI client's parsing and output
    "cli",           // chaosctl against a daemon: flags, tables, exit codes
    "guards",        // guard rails: protected namespaces, limits, dry run, leases
    "kubectl_chaos", // the kubectl plugin's parsing
    "manifests",     // the DaemonSet's YAML
    "plugin",        // kubectl chaos through a port-forward
    "tls",           // mutual TLS and certificate reload
    "xtask",         // the developer tasks themselves
];

/// The binaries a VM runs: those that depend on the kernel, and of those only the ones in
/// `only` when the kernel names some.
pub fn for_vm(binaries: &[PathBuf], only: Option<&[&str]>) -> Vec<PathBuf> {
    binaries
        .iter()
        .filter(|binary| {
            let name = short_name(binary);
            !HOST_ONLY.contains(&name.as_str()) && only.is_none_or(|only| only.contains(&&*name))
        })
        .cloned()
        .collect()
}

/// One test of one binary.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestResult {
    pub binary: String,
    pub name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The test's own time (libtest's `exec_time`), when it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

/// One binary's results and its wall time (its tests run in parallel, so this is not the sum
/// of theirs). A guest prints one per binary, as soon as the binary ends.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BinaryRun {
    pub binary: String,
    pub seconds: f64,
    pub results: Vec<TestResult>,
}

/// Every test binary of the host crates, built if needed.
pub fn build_binaries() -> Result<Vec<PathBuf>> {
    let mut build = workspace::cargo(["test", "--no-run", "--message-format=json"]);
    build.args(workspace::HOST_CRATES);
    let out = cmd::output(&mut build)?;
    let mut binaries = Vec::new();
    for line in out.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact" && message["profile"]["test"] == true {
            if let Some(exe) = message["executable"].as_str() {
                binaries.push(PathBuf::from(exe));
            }
        }
    }
    binaries.sort();
    binaries.dedup();
    if binaries.is_empty() {
        bail!("cargo test --no-run built no test binary");
    }
    Ok(binaries)
}

/// Runs every binary (tests filtered by `filter`), each under `watchdog`.
pub fn run_all(binaries: &[PathBuf], filter: &[String], watchdog: Duration) -> Vec<BinaryRun> {
    binaries
        .iter()
        .map(|binary| {
            let started = Instant::now();
            let results = run_binary(binary, filter, watchdog);
            BinaryRun {
                binary: short_name(binary),
                seconds: started.elapsed().as_secs_f64(),
                results,
            }
        })
        .collect()
}

/// A short name for a test binary: `network` for `.../deps/network-0123abcd`.
pub fn short_name(binary: &Path) -> String {
    let name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rsplit_once('-') {
        Some((stem, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => stem.to_string(),
        _ => name,
    }
}

/// Runs one binary with `--format json`; a crash, a hang or a missing test result is a
/// failure of the binary, never a pass.
fn run_binary(binary: &Path, filter: &[String], watchdog: Duration) -> Vec<TestResult> {
    let short = short_name(binary);
    let failed = |detail: String| {
        vec![TestResult {
            binary: short.clone(),
            name: "<binary>".into(),
            outcome: Outcome::Failed { detail },
            seconds: None,
        }]
    };
    eprintln!("vm-test: running {short}");
    let mut command = Command::new(binary);
    // libtest's JSON output is unstable; RUSTC_BOOTSTRAP lets a stable-built binary use it.
    command
        .args([
            "--format",
            "json",
            "-Z",
            "unstable-options",
            "--show-output",
            "--report-time",
        ])
        .args(filter)
        .env("RUSTC_BOOTSTRAP", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => return failed(format!("could not start {}: {err}", binary.display())),
    };
    let Some(stdout) = child.stdout.take() else {
        return failed("no stdout".into());
    };
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + watchdog;
    let mut results = Vec::new();
    let mut suite_done = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(result) = parse_event(&short, &line, &mut suite_done) {
                    results.push(result);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                results.extend(failed(format!(
                    "watchdog: no end after {}s (hang)",
                    watchdog.as_secs()
                )));
                return results;
            }
        }
    }
    let status = child.wait();
    if !suite_done {
        results.extend(failed(format!(
            "ended before its test suite finished ({status:?}): crashed or killed"
        )));
    }
    results
}

/// Turns a libtest JSON event into a result (for finished tests).
fn parse_event(binary: &str, line: &str, suite_done: &mut bool) -> Option<TestResult> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    if event["type"] == "suite" && (event["event"] == "ok" || event["event"] == "failed") {
        *suite_done = true;
        return None;
    }
    if event["type"] != "test" {
        return None;
    }
    let name = event["name"].as_str()?.to_string();
    let stdout = event["stdout"].as_str().unwrap_or_default();
    let outcome = match event["event"].as_str()? {
        "ok" => match stdout.lines().find_map(|l| l.split_once(SKIP_MARKER)) {
            Some((_, reason)) => Outcome::Skipped {
                reason: reason.trim().to_string(),
            },
            None => Outcome::Passed,
        },
        "failed" => Outcome::Failed {
            detail: panic_message(stdout).unwrap_or_else(|| tail(stdout, 30)),
        },
        "ignored" => Outcome::Skipped {
            reason: "ignored".into(),
        },
        _ => return None,
    };
    Some(TestResult {
        binary: binary.to_string(),
        name,
        outcome,
        seconds: event["exec_time"].as_f64(),
    })
}

/// `panicked at FILE:LINE:` and the message after it, from a failed test's output.
fn panic_message(stdout: &str) -> Option<String> {
    let mut lines = stdout.lines();
    let at = lines.find(|l| l.contains("panicked at"))?;
    let message: Vec<&str> = lines
        .take_while(|l| !l.starts_with("stack backtrace"))
        .take(5)
        .collect();
    Some(format!("{} {}", at.trim(), message.join(" ").trim()))
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Reads the list of binaries written by the host for a guest.
pub fn read_manifest(path: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_libtest_events() {
        let mut done = false;
        let ok = r#"{ "type": "test", "name": "a", "event": "ok", "stdout": "" }"#;
        let skip = r#"{ "type": "test", "name": "b", "event": "ok", "stdout": "x\nFAULTLINE-SKIP: needs bpf_lsm: refused (kernel 6.18)\n" }"#;
        let fail = r#"{ "type": "test", "name": "c", "event": "failed", "stdout": "boom" }"#;
        assert_eq!(
            parse_event("t", ok, &mut done).map(|r| r.outcome),
            Some(Outcome::Passed)
        );
        assert_eq!(
            parse_event("t", skip, &mut done).map(|r| r.outcome),
            Some(Outcome::Skipped {
                reason: "needs bpf_lsm: refused (kernel 6.18)".into()
            })
        );
        assert!(matches!(
            parse_event("t", fail, &mut done).map(|r| r.outcome),
            Some(Outcome::Failed { .. })
        ));
        assert!(!done);
        parse_event(
            "t",
            r#"{ "type": "suite", "event": "ok", "passed": 1 }"#,
            &mut done,
        );
        assert!(done);
        assert_eq!(
            short_name(Path::new("/t/deps/network-0123abcdef")),
            "network"
        );
    }
}
