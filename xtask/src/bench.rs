//! `cargo xtask bench`: runs the benchmarks and writes BENCHMARKS.md, naming machine and kernel.
use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};

use crate::{cmd, privilege, setup, workspace};

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the report (relative to the repository root).
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: String,
}

/// Benchmark targets of chaos-daemon, each writing one Markdown section.
const BENCHES: [&str; 1] = ["network"];

pub fn run(args: &Args) -> Result<()> {
    privilege::require_root("benchmarking (it loads eBPF programs and makes cgroups)")?;
    setup::run()?;
    let dir = workspace::target_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let mut report = header()?;
    for bench in BENCHES {
        let section = dir.join(format!("{bench}.md"));
        let section_arg = section.display().to_string();
        cmd::run(&mut workspace::cargo([
            "bench",
            "-p",
            "chaos-daemon",
            "--bench",
            bench,
            "--",
            "--markdown",
            &section_arg,
        ]))?;
        report.push_str(
            &std::fs::read_to_string(&section)
                .with_context(|| format!("read {}", section.display()))?,
        );
    }
    let out = workspace::root().join(&args.out);
    std::fs::write(&out, report).with_context(|| format!("write {}", out.display()))?;
    println!("xtask bench: wrote {}", out.display());
    Ok(())
}

/// Title, how to reproduce, and the machine the numbers come from.
fn header() -> Result<String> {
    let mut text = String::from("# faultline benchmarks\n\n");
    writeln!(
        text,
        "Written by `cargo xtask bench` (as root); every ratio compares two things measured in \
         the same run on the machine below. Numbers from another machine or kernel are not \
         comparable.\n"
    )?;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = read_trimmed("/proc/sys/kernel/osrelease");
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|kb| kb.trim().trim_end_matches(" kB").parse::<u64>().ok())
        })
        .map_or_else(
            || "unknown".into(),
            |kb| format!("{} GiB", kb / (1024 * 1024)),
        );
    let commit =
        cmd::probe(std::process::Command::new("git").args(["rev-parse", "--short", "HEAD"]))
            .unwrap_or_else(|| "unknown".into());
    writeln!(text, "| machine | |\n|---|---|")?;
    writeln!(text, "| CPU | {cpu}, {cores} cores |")?;
    writeln!(text, "| memory | {memory} |")?;
    writeln!(text, "| kernel | {kernel} |")?;
    writeln!(text, "| commit | {} |\n", commit.trim())?;
    Ok(text)
}

fn read_trimmed(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
