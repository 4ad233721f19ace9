//! `cargo xtask vm-test`: the test suite on the host and inside VMs on a matrix of kernels.
//!
//! Each VM boots once (virtme-ng, QEMU under TCG) with the host's root filesystem, so the
//! host's test binaries, iproute2 and bpftool run unchanged; inside, `xtask vm-guest` runs
//! them and prints one result line per test on the console, which the host collects.
pub mod cache;
mod debian;
pub mod kernels;
pub mod report;
pub mod selftest;
pub mod suite;
pub mod virtme;

use std::{
    io::{BufRead as _, BufReader},
    process::Stdio,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::{privilege, setup, workspace};
use report::KernelRun;
use suite::BinaryRun;

/// Prefix of the line a guest prints on its console for each binary: its results and time.
const BINARY_LINE: &str = "FAULTLINE-VM-BINARY ";
/// Prefix of the line with the guest's kernel release.
const RELEASE_LINE: &str = "FAULTLINE-VM-RELEASE ";
/// File beside the report holding its closing totals line.
pub const TOTALS_FILE: &str = "totals.txt";
/// Environment variable that makes the deliberately failing test fail.
const FAIL_ON_PURPOSE: &str = "FAULTLINE_FAIL_ON_PURPOSE";

#[derive(clap::Args)]
pub struct Args {
    /// Kernels to run on (repeatable); all when omitted: host, debian-6.1, debian-6.1-nolsm,
    /// faultline-6.1.
    #[arg(long = "kernel", value_name = "NAME")]
    kernels: Vec<String>,
    /// Extra kernel command-line argument for every VM (repeatable), e.g. `mem=40M` to see a
    /// boot that panics reported as such.
    #[arg(long = "boot-arg", value_name = "ARG")]
    boot_args: Vec<String>,
    /// Also run the test that fails on purpose (proves a failure turns its kernel red).
    #[arg(long)]
    fail_on_purpose: bool,
    /// Minutes one kernel may take, boot included, before it counts as hung.
    #[arg(long, default_value_t = 30)]
    watchdog_minutes: u64,
    /// Where the report goes (default: target/vm-test).
    #[arg(long, value_name = "DIR")]
    report_dir: Option<std::path::PathBuf>,
    /// Test name filter passed to every test binary (after `--`).
    #[arg(last = true, value_name = "TEST-FILTER")]
    filter: Vec<String>,
}

/// Builds the tests, runs them on each kernel, prints and writes the report; fails if any
/// kernel failed or did not run.
pub fn run(args: &Args) -> Result<()> {
    privilege::require_root("running the tests (they load eBPF programs and make cgroups)")?;
    setup::run()?;
    let specs = if args.kernels.is_empty() {
        kernels::ALL.iter().collect()
    } else {
        args.kernels
            .iter()
            .map(|name| kernels::find(name))
            .collect::<Result<Vec<_>>>()?
    };
    let binaries = suite::build_binaries()?;
    let dir = args
        .report_dir
        .clone()
        .unwrap_or_else(|| workspace::target_dir().join("vm-test"));
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let watchdog = Duration::from_secs(args.watchdog_minutes * 60);

    let mut runs = Vec::new();
    for spec in specs {
        let started = Instant::now();
        eprintln!("vm-test: {} ({})", spec.name, spec.summary);
        let mut run = match kernels::prepare(spec) {
            Err(err) => KernelRun {
                kernel: spec.name.to_string(),
                release: None,
                boot_failure: Some(format!("could not prepare the kernel: {err:#}")),
                binaries: Vec::new(),
                seconds: 0.0,
                retried: None,
            },
            Ok(prepared) if prepared.image.is_none() => on_host(args, &binaries, watchdog),
            Ok(mut prepared) => {
                prepared.append.extend(args.boot_args.iter().cloned());
                let manifest = dir.join(format!("manifest-{}.json", spec.name));
                let listed = suite::for_vm(&binaries, spec.only);
                std::fs::write(&manifest, serde_json::to_string(&listed)?)
                    .with_context(|| format!("write {}", manifest.display()))?;
                let first = in_vm(args, &prepared, &manifest, watchdog)?;
                match first.hang() {
                    // A guest under TCG has hung once in a while; a second hang, or any
                    // other failure, stands. The report keeps the first attempt's reason.
                    Some(why) => {
                        eprintln!("vm-test: {}: {why}; booting it once more", spec.name);
                        let mut second = in_vm(args, &prepared, &manifest, watchdog)?;
                        second.retried = Some(why);
                        second
                    }
                    None => first,
                }
            }
        };
        run.kernel = spec.name.to_string();
        run.seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "vm-test: {}: {} passed, {} failed, {} skipped in {}",
            run.kernel,
            run.passed(),
            run.failed(),
            run.skipped(),
            report::elapsed(started.elapsed())
        );
        runs.push(run);
    }
    report::write(&dir, &runs)?;
    println!("{}", report::markdown(&runs));
    println!("vm-test: report in {}", dir.join("report.md").display());
    let totals = report::totals(&runs);
    let totals_path = dir.join(TOTALS_FILE);
    std::fs::write(&totals_path, &totals)
        .with_context(|| format!("write {}", totals_path.display()))?;
    println!("{totals}");
    let bad: Vec<&str> = runs
        .iter()
        .filter(|r| !r.ok())
        .map(|r| r.kernel.as_str())
        .collect();
    if !bad.is_empty() {
        bail!("kernel(s) failed or did not run: {}", bad.join(", "));
    }
    Ok(())
}

/// Name of the matrix kernel, for tests that assert per-kernel probe results.
const KERNEL_ENV: &str = "FAULTLINE_KERNEL";

fn test_env(args: &Args) {
    std::env::set_var(KERNEL_ENV, "host");
    if args.fail_on_purpose {
        std::env::set_var(FAIL_ON_PURPOSE, "1");
    } else {
        std::env::remove_var(FAIL_ON_PURPOSE);
    }
}

/// The host row: the binaries run directly.
fn on_host(args: &Args, binaries: &[std::path::PathBuf], watchdog: Duration) -> KernelRun {
    test_env(args);
    KernelRun {
        kernel: String::new(),
        release: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|r| r.trim().to_string()),
        boot_failure: None,
        binaries: suite::run_all(binaries, &args.filter, watchdog),
        seconds: 0.0,
        retried: None,
    }
}

/// SIGKILL to `pid` and every process below it (vng, virtme-run, QEMU), by kill(1).
fn kill_tree(pid: u32) {
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(children(parent));
        i += 1;
    }
    let pids: Vec<String> = tree.iter().map(u32::to_string).collect();
    let _ = std::process::Command::new("kill")
        .arg("-KILL")
        .args(&pids)
        .status();
}

/// Processes whose parent is `pid` (field 4 of /proc/PID/stat, after the command in parens).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// A VM row: boots the kernel with `xtask vm-guest` as the command and collects its lines.
fn in_vm(
    args: &Args,
    kernel: &kernels::Prepared,
    manifest: &std::path::Path,
    watchdog: Duration,
) -> Result<KernelRun> {
    let vng = virtme::ensure_virtme()?;
    let xtask = std::env::current_exe().context("path of the xtask binary")?;
    let mut exec = format!(
        "{} vm-guest --manifest {}",
        shell_quote(&xtask.display().to_string()),
        shell_quote(&manifest.display().to_string())
    );
    if args.fail_on_purpose {
        exec = format!("{FAIL_ON_PURPOSE}=1 {exec}");
    }
    exec = format!("{KERNEL_ENV}={} {exec}", kernel.name);
    if !args.filter.is_empty() {
        exec.push_str(" --");
        for word in &args.filter {
            exec.push(' ');
            exec.push_str(&shell_quote(word));
        }
    }
    let mut command = virtme::command(&vng, kernel, &exec);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    eprintln!("$ {}", crate::cmd::display(&command));
    let mut child = command
        .spawn()
        .with_context(|| format!("could not start vng for {}", kernel.name))?;
    let (tx, rx) = mpsc::channel();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let deadline = Instant::now() + watchdog;
    let mut run = KernelRun {
        kernel: kernel.name.to_string(),
        release: None,
        boot_failure: None,
        binaries: Vec::new(),
        seconds: 0.0,
        retried: None,
    };
    let mut console = Vec::new();
    let mut hung = false;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if let Some(json) = line.split_once(BINARY_LINE).map(|(_, j)| j) {
                    match serde_json::from_str::<BinaryRun>(json) {
                        Ok(binary) => run.binaries.push(binary),
                        Err(err) => console.push(format!("unreadable binary line ({err}): {line}")),
                    }
                } else if let Some((_, release)) = line.split_once(RELEASE_LINE) {
                    run.release = Some(release.trim().to_string());
                } else {
                    eprintln!("  [{}] {line}", kernel.name);
                    console.push(line);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                hung = true;
                // vng starts QEMU as a grandchild, which killing vng alone leaves running
                // (a hung guest would then eat the CPU of every later run).
                kill_tree(child.id());
                let _ = child.kill();
                break;
            }
        }
    }
    let status = child.wait().context("waiting for vng")?;
    let tail = console[console.len().saturating_sub(15)..].join("\n");
    if hung {
        run.boot_failure = Some(format!(
            "watchdog: no end after {} minutes; last console lines:\n{tail}",
            watchdog.as_secs() / 60
        ));
    } else if run.release.is_none() {
        run.boot_failure = Some(format!(
            "the guest never reached the tests (vng {status}); last console lines:\n{tail}"
        ));
    } else if !status.success() {
        run.boot_failure = Some(format!("the guest's test run ended with {status}:\n{tail}"));
    }
    Ok(run)
}

/// Quotes a word for the guest's shell.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[derive(clap::Args)]
pub struct GuestArgs {
    /// JSON list of test binaries written by `vm-test` on the host.
    #[arg(long)]
    manifest: std::path::PathBuf,
    /// Minutes one test binary may take before it counts as hung.
    #[arg(long, default_value_t = 10)]
    watchdog_minutes: u64,
    #[arg(last = true)]
    filter: Vec<String>,
}

/// Inside a VM: runs the binaries and prints the release and one line per result.
pub fn guest(args: &GuestArgs) -> Result<()> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .context("read /proc/sys/kernel/osrelease")?;
    println!("{RELEASE_LINE}{}", release.trim());
    // The guest boots with cgroup2 only; mount bpffs once here so that daemons started by
    // tests in parallel do not each mount one over the other's pins.
    setup::bpffs::ensure()?;
    let binaries = suite::read_manifest(&args.manifest)?;
    let watchdog = Duration::from_secs(args.watchdog_minutes * 60);
    // Results go out binary by binary, so a hang later still leaves the earlier ones.
    for binary in &binaries {
        for ran in suite::run_all(std::slice::from_ref(binary), &args.filter, watchdog) {
            println!("{BINARY_LINE}{}", serde_json::to_string(&ran)?);
        }
    }
    Ok(())
}
