//! The matrix report: one row per kernel, on the terminal and as Markdown and JSON files.
use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::suite::{BinaryRun, Outcome, TestResult};

/// What happened on one kernel.
#[derive(Debug, Serialize)]
pub struct KernelRun {
    pub kernel: String,
    /// `uname -r` seen by the tests, when they ran.
    pub release: Option<String>,
    /// Why the kernel produced no test results at all (no boot, panic, hang).
    pub boot_failure: Option<String>,
    /// Each binary's results and wall time, in the order they ran.
    pub binaries: Vec<BinaryRun>,
    pub seconds: f64,
    /// Why a first attempt was run again (it hung), if it was.
    pub retried: Option<String>,
}

impl KernelRun {
    /// Every test's result, binary by binary.
    pub fn results(&self) -> impl Iterator<Item = &TestResult> {
        self.binaries.iter().flat_map(|b| &b.results)
    }

    fn count(&self, want: fn(&Outcome) -> bool) -> usize {
        self.results().filter(|r| want(&r.outcome)).count()
    }

    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Passed))
    }

    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed { .. }))
    }

    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped { .. }))
    }

    /// Why this run counts as a hang (a watchdog fired), if it does.
    pub fn hang(&self) -> Option<String> {
        let watchdog = |text: &str| text.starts_with("watchdog");
        if let Some(why) = self.boot_failure.as_deref().filter(|w| watchdog(w)) {
            return Some(why.lines().next().unwrap_or_default().to_string());
        }
        self.results().find_map(|r| match &r.outcome {
            Outcome::Failed { detail } if watchdog(detail) => {
                Some(format!("{}: {detail}", r.binary))
            }
            _ => None,
        })
    }

    /// A kernel is green only if tests ran and none failed.
    pub fn ok(&self) -> bool {
        self.boot_failure.is_none() && self.failed() == 0 && self.results().next().is_some()
    }
}

/// The table printed at the end and written to `report.md`.
pub fn markdown(runs: &[KernelRun]) -> String {
    let mut text = String::from("# faultline kernel matrix\n\n");
    text.push_str("| kernel | release | result | passed | failed | skipped | time |\n");
    text.push_str("|---|---|---|---:|---:|---:|---:|\n");
    for run in runs {
        let verdict = match (&run.boot_failure, run.ok()) {
            (Some(_), _) => "DID NOT RUN",
            (None, true) => "ok",
            (None, false) => "FAILED",
        };
        let _ = writeln!(
            text,
            "| {} | {} | {verdict} | {} | {} | {} | {:.0} s |",
            run.kernel,
            run.release.as_deref().unwrap_or("-"),
            run.passed(),
            run.failed(),
            run.skipped(),
            run.seconds
        );
    }
    let _ = writeln!(
        text,
        "\nOn the host only, as their subject does not depend on the kernel: {}.",
        super::suite::HOST_ONLY.join(", ")
    );
    for spec in super::kernels::ALL {
        if let Some(only) = spec
            .only
            .filter(|_| runs.iter().any(|r| r.kernel == spec.name))
        {
            let _ = writeln!(text, "\n{} runs only: {}.", spec.name, only.join(", "));
        }
    }
    text.push_str(&times(runs));
    for run in runs {
        let mut details = String::new();
        if let Some(why) = &run.boot_failure {
            let _ = writeln!(details, "- did not run the tests: {why}");
        }
        if let Some(why) = &run.retried {
            let _ = writeln!(
                details,
                "- booted a second time: the first attempt hung ({why})"
            );
        }
        for result in run.results() {
            match &result.outcome {
                Outcome::Failed { detail } => {
                    let line = detail.replace('\n', " ");
                    let _ = writeln!(
                        details,
                        "- FAILED {}::{}: {line}",
                        result.binary, result.name
                    );
                }
                Outcome::Skipped { reason } => {
                    let _ = writeln!(
                        details,
                        "- skipped {}::{}: {reason}",
                        result.binary, result.name
                    );
                }
                Outcome::Passed => {}
            }
        }
        if !details.is_empty() {
            let _ = write!(text, "\n## {}\n\n{details}", run.kernel);
        }
    }
    text
}

/// Where the matrix's time goes: each binary's wall time per kernel, and the slowest tests, so
/// that CI's time limit is kept by facts.
fn times(runs: &[KernelRun]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for binary in runs.iter().flat_map(|r| &r.binaries) {
        if !names.contains(&binary.binary.as_str()) {
            names.push(&binary.binary);
        }
    }
    if names.is_empty() {
        return String::new();
    }
    let mut text = String::from("\n## Time per test binary (s)\n\n| binary |");
    for run in runs {
        let _ = write!(text, " {} |", run.kernel);
    }
    text.push_str("\n|---|");
    text.push_str(&"---:|".repeat(runs.len()));
    text.push('\n');
    for name in names {
        let _ = write!(text, "| {name} |");
        for run in runs {
            // A binary can appear twice (a crate's lib and bin tests share its name).
            let seconds: f64 = run
                .binaries
                .iter()
                .filter(|b| b.binary == name)
                .map(|b| b.seconds)
                .sum();
            let ran = run.binaries.iter().any(|b| b.binary == name);
            let cell = if ran {
                format!("{seconds:.1}")
            } else {
                "-".into()
            };
            let _ = write!(text, " {cell} |");
        }
        text.push('\n');
    }
    text.push_str("\n## Slowest tests (s)\n\n");
    for run in runs {
        let mut slow: Vec<&TestResult> = run.results().filter(|r| r.seconds.is_some()).collect();
        slow.sort_by(|a, b| {
            b.seconds
                .partial_cmp(&a.seconds)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let list: Vec<String> = slow
            .iter()
            .take(SLOWEST)
            .map(|r| {
                format!(
                    "{}::{} {:.1}",
                    r.binary,
                    r.name,
                    r.seconds.unwrap_or_default()
                )
            })
            .collect();
        if !list.is_empty() {
            let _ = writeln!(text, "- {}: {}", run.kernel, list.join(", "));
        }
    }
    text
}

/// How many of a kernel's slowest tests the report names.
const SLOWEST: usize = 8;

/// Writes `report.md` and `report.json` into `dir`.
pub fn write(dir: &Path, runs: &[KernelRun]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let md = dir.join("report.md");
    std::fs::write(&md, markdown(runs)).with_context(|| format!("write {}", md.display()))?;
    let json = dir.join("report.json");
    let body = serde_json::to_string_pretty(runs).context("encode the report")?;
    std::fs::write(&json, body).with_context(|| format!("write {}", json.display()))?;
    Ok(())
}

/// The closing line: totals over every kernel, in the form CI tools read.
pub fn totals(runs: &[KernelRun]) -> String {
    let sum = |count: fn(&KernelRun) -> usize| runs.iter().map(count).sum::<usize>();
    format!(
        "vm-test: {} passed, {} failed, {} skipped",
        sum(KernelRun::passed),
        sum(KernelRun::failed) + runs.iter().filter(|r| r.boot_failure.is_some()).count(),
        sum(KernelRun::skipped)
    )
}

/// `1m 05s`-style duration.
pub fn elapsed(duration: Duration) -> String {
    let secs = duration.as_secs();
    format!("{}m {:02}s", secs / 60, secs % 60)
}
