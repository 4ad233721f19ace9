//! Small helpers shared by every test: polling with a deadline, unique names, root checks, rate asserts and running commands.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Polls `poll_fn` until it returns `true` or `timeout` has passed; returns whether it did.
///
/// The poll interval starts at 1 ms and grows to 20 ms, so fast conditions are seen
/// quickly without spinning on slow ones. The condition is checked once more at the
/// deadline, so a condition that became true just then still counts.
pub fn wait_until(timeout: Duration, mut poll_fn: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if poll_fn() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return poll_fn();
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Asserts that `observed_hits` out of `trials` is consistent with a rate of `expected_p`:
/// `|hits/trials - p| <= sigmas * sqrt(p(1-p)/trials) + 1/trials`.
///
/// The `1/trials` term keeps p = 0 and p = 1 from demanding an exact count of zero
/// width; `sigmas` of 4 or 5 makes a false failure vanishingly rare.
#[track_caller]
pub fn assert_rate_within(observed_hits: u64, trials: u64, expected_p: f64, sigmas: f64) {
    if let Err(why) = rate_within(observed_hits, trials, expected_p, sigmas) {
        panic!("{why}");
    }
}

/// [`assert_rate_within`]'s check, returning why it fails for a caller that adds context.
pub fn rate_within(
    observed_hits: u64,
    trials: u64,
    expected_p: f64,
    sigmas: f64,
) -> Result<(), String> {
    assert!(trials > 0, "rate_within: no trials");
    assert!(
        (0.0..=1.0).contains(&expected_p),
        "rate_within: expected_p {expected_p} is not a probability"
    );
    let n = trials as f64;
    let observed = observed_hits as f64 / n;
    let sd = (expected_p * (1.0 - expected_p) / n).sqrt();
    let bound = sigmas * sd + 1.0 / n;
    let diff = (observed - expected_p).abs();
    if diff <= bound {
        return Ok(());
    }
    Err(format!(
        "rate out of bounds: observed {observed_hits}/{trials} = {observed:.5}, expected \
         {expected_p:.5} ± {bound:.5} ({sigmas} σ of {sd:.5} + 1/{trials}); off by {diff:.5}"
    ))
}

/// Returns true when running as root; otherwise prints why the test is skipped and
/// returns false. Use as `if !require_root() { return; }`.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("SKIPPED: this test needs root (network namespaces, cgroups, eBPF)");
        false
    }
}

/// A name unique across threads, test binaries and runs: `<prefix><8 hex digits>`.
///
/// Keep `prefix` short: interface names built from it must stay within 15 characters.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}{:08x}", random_u32())
}

/// 32 random-enough bits: std's randomly seeded hasher over pid, time and a counter,
/// so parallel threads and consecutive processes do not collide (no `rand` dependency).
pub fn random_u32() -> u32 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    let v = h.finish();
    (v ^ (v >> 32)) as u32
}

/// Runs `program args…`, returning its stdout, or an error naming the command with its
/// exit status and stderr.
pub fn run_cmd(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("`{program} {}`: cannot run: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Like [`run_cmd`] but panics on failure: for test setup, where failing is the right answer.
#[track_caller]
pub fn must_run(program: &str, args: &[&str]) -> String {
    match run_cmd(program, args) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

/// Marker the kernel-matrix runner (`cargo xtask vm-test`) reads to count a test as skipped.
pub const SKIP_MARKER: &str = "FAULTLINE-SKIP:";

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Reports a test as skipped (the test then returns): prints the missing feature, why, and
/// the kernel, in the line the matrix runner counts.
pub fn skip(feature: &str, reason: &str) {
    println!(
        "{SKIP_MARKER} needs {feature}: {reason} (kernel {})",
        kernel_release()
    );
}

/// How much slower than real time a benchmark runs: `FAULTLINE_BENCH_SCALE` (set for
/// emulated VMs), else 1. Windows and intervals are multiplied by it.
pub fn bench_scale() -> u64 {
    std::env::var("FAULTLINE_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// "p50 | p99 | max" of `values` (sorted in place) with `decimals` digits, for a Markdown
/// row; dashes when there is no value.
pub fn percentiles(values: &mut [f64], decimals: usize) -> String {
    if values.is_empty() {
        return "– | – | –".into();
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    format!(
        "{:.decimals$} | {:.decimals$} | {:.decimals$}",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

/// A benchmark binary's command line: `None` when it was started as a probe (whose job has
/// then run), else where `--markdown` asks the report to go.
pub fn bench_start() -> Option<Option<std::path::PathBuf>> {
    if std::env::var_os(super::probe::PROBE_ENV).is_some() {
        super::probe::probe_main();
        return None;
    }
    let mut markdown = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--markdown" {
            markdown = args.next().map(std::path::PathBuf::from);
        }
    }
    Some(markdown)
}

/// The runtime a benchmark's async parts run on.
pub fn bench_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Prints a benchmark's Markdown and writes it where `--markdown` said.
pub fn bench_finish(out: &str, markdown: Option<std::path::PathBuf>) -> std::io::Result<()> {
    print!("{out}");
    match markdown {
        Some(path) => std::fs::write(path, out),
        None => Ok(()),
    }
}
