//! `cargo xtask bench`: runs the benchmarks and writes BENCHMARKS.md, naming machine and kernel.
use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};

use crate::{cmd, privilege, setup, vm, workspace};

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the report (relative to the repository root).
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: String,
    /// Run the benchmarks on this kernel of the matrix (see `cargo xtask vm-test --help`):
    /// `host` (default) or a VM kernel, whose CPU QEMU emulates (TCG), so only ratios
    /// within the run mean anything.
    #[arg(long, default_value = "host")]
    kernel: String,
    /// The kernel the storage errno benchmark runs on: one with BPF LSM and
    /// `bpf_override_return` (the CI host has neither).
    #[arg(long, default_value = "faultline-6.1")]
    storage_kernel: String,
    /// The kernel the impairment benchmark runs on: one with `fq`, `netem` and `tbf`, where
    /// faultline and the peers' qdiscs run side by side (the CI host has neither fq nor
    /// netem).
    #[arg(long, default_value = "debian-6.1")]
    impair_kernel: String,
}

/// Which kernel a benchmark runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum On {
    /// `--kernel`, named in the report's header.
    Main,
    /// `--storage-kernel`.
    Storage,
    /// `--impair-kernel`.
    Impair,
}

/// Lines around a benchmark's Markdown on a VM's console.
const BEGIN: &str = "FAULTLINE-BENCH-BEGIN";
const END: &str = "FAULTLINE-BENCH-END";
const RELEASE: &str = "FAULTLINE-BENCH-RELEASE ";

/// Benchmark targets of chaos-daemon, each writing one Markdown section, and their kernel.
const BENCHES: [(&str, On); 4] = [
    ("network", On::Main),
    ("impair", On::Impair),
    ("process", On::Main),
    ("storage", On::Storage),
];

pub fn run(args: &Args) -> Result<()> {
    privilege::require_root("benchmarking (it loads eBPF programs and makes cgroups)")?;
    setup::run()?;
    let spec = vm::kernels::find(&args.kernel)?;
    let kernel = vm::kernels::prepare(spec)?;
    let storage_spec = vm::kernels::find(&args.storage_kernel)?;
    let storage_kernel = vm::kernels::prepare(storage_spec)?;
    let impair_spec = vm::kernels::find(&args.impair_kernel)?;
    let impair_kernel = vm::kernels::prepare(impair_spec)?;
    let dir = workspace::target_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let mut sections = String::new();
    let mut release = read_trimmed("/proc/sys/kernel/osrelease");
    for (bench, on) in BENCHES {
        let exe = build(bench)?;
        let (target, name) = match on {
            On::Main => (&kernel, spec.name),
            On::Storage => (&storage_kernel, storage_spec.name),
            On::Impair => (&impair_kernel, impair_spec.name),
        };
        let (section, guest_release) = match &target.image {
            None => (on_host(&exe, &dir.join(format!("{bench}.md")))?, None),
            Some(_) => in_vm(target, &exe)?,
        };
        if on != On::Main && name != spec.name {
            // A section from another kernel than the header's says which, before its table.
            let (title, body) = section.split_once('\n').unwrap_or((&section, ""));
            let emulated = if target.image.is_some() {
                " in a VM whose CPU QEMU emulates (TCG): only ratios within this section compare"
            } else {
                ""
            };
            let _ = write!(
                sections,
                "{title}\n\nMeasured on kernel {} (matrix kernel `{name}`){emulated}.\n{body}",
                guest_release.as_deref().unwrap_or("unknown")
            );
            continue;
        }
        if let Some(guest) = guest_release {
            release = guest;
        }
        sections.push_str(&section);
    }
    let mut report = header(spec.name, &release, kernel.image.is_some())?;
    report.push_str(&sections);
    let out = workspace::root().join(&args.out);
    std::fs::write(&out, report).with_context(|| format!("write {}", out.display()))?;
    println!("xtask bench: wrote {}", out.display());
    Ok(())
}

/// Builds a benchmark of chaos-daemon and returns its executable.
fn build(bench: &str) -> Result<std::path::PathBuf> {
    let mut cargo = workspace::cargo([
        "bench",
        "-p",
        "chaos-daemon",
        "--no-run",
        "--message-format=json",
    ]);
    cargo.args(["--bench", bench]);
    let out = cmd::output(&mut cargo)?;
    out.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bench)
        .find_map(|m| m["executable"].as_str().map(std::path::PathBuf::from))
        .with_context(|| format!("cargo bench --no-run built no executable for {bench}"))
}

fn on_host(exe: &Path, section: &Path) -> Result<String> {
    cmd::run(
        std::process::Command::new(exe)
            .arg("--bench")
            .arg("--markdown")
            .arg(section),
    )?;
    std::fs::read_to_string(section).with_context(|| format!("read {}", section.display()))
}

/// Runs the benchmark inside a VM booted on `kernel`; returns its Markdown and the guest's
/// kernel release.
fn in_vm(kernel: &vm::kernels::Prepared, exe: &Path) -> Result<(String, Option<String>)> {
    let vng = vm::virtme::ensure_virtme()?;
    // Emulation is about ten times slower: windows scale so injects still fit inside them.
    let exec = format!(
        "echo {RELEASE}$(uname -r); echo {BEGIN}; FAULTLINE_BENCH_SCALE=10 '{}' --bench; \
         status=$?; echo {END}; exit $status",
        exe.display()
    );
    let mut command = vm::virtme::command(&vng, kernel, &exec);
    eprintln!("$ {}", cmd::display(&command));
    let out = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("could not start vng for {}", kernel.name))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let release = stdout
        .lines()
        .find_map(|l| l.split_once(RELEASE).map(|(_, r)| r.trim().to_string()));
    let inner = stdout
        .split_once(BEGIN)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(markdown, _)| markdown.trim_start_matches('\n').to_string());
    match inner {
        Some(markdown) if out.status.success() => Ok((markdown, release)),
        _ => anyhow::bail!(
            "the benchmark failed in the {} VM ({}); its output:\n{stdout}",
            kernel.name,
            out.status
        ),
    }
}

/// Title, how to reproduce, and the machine and kernel the numbers come from.
fn header(kernel_name: &str, release: &str, emulated: bool) -> Result<String> {
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
    if emulated {
        writeln!(
            text,
            "| CPU | 2 vCPUs emulated by QEMU (TCG) on {cpu}, {cores} cores: absolute times are \
             emulation times, only ratios within the run compare |"
        )?;
    } else {
        writeln!(text, "| CPU | {cpu}, {cores} cores |")?;
    }
    if emulated {
        writeln!(text, "| memory | 2 GiB in the guest (host: {memory}) |")?;
    } else {
        writeln!(text, "| memory | {memory} |")?;
    }
    writeln!(
        text,
        "| kernel | {release} (matrix kernel `{kernel_name}`) |"
    )?;
    writeln!(text, "| commit | {} |\n", commit.trim())?;
    Ok(text)
}

fn read_trimmed(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
