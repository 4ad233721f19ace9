//! Storage errno fault benchmarks: what a file system call pays when the programs are
//! attached (for a process outside every target, for the target outside the fault's path,
//! against an empty program and a FUSE passthrough mount), and how closely the calls of the
//! target start and stop failing at the requested window's edges.
//!
//! Needs a kernel with a storage route (a VM of the matrix; the CI host has none): run by
//! `cargo xtask bench`; by hand: `cargo bench -p chaos-daemon --bench storage -- --markdown out.md`.
#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use aya::programs::{KProbe, Lsm};
use chaos_daemon::{
    clock::{unix_now_ns, KernelClock},
    kernel::{loader, pins::Pins},
};
use chaos_proto::v1::{
    fault_service_client::FaultServiceClient, inject_request::Spec, storage_fault::Action,
    CancelRequest, CapabilitiesRequest, ErrnoFault, InjectRequest, StorageFault, StorageOperation,
};
use support::{bench_scale, spawn_probe_with, Daemon, ProbeJob, TestCgroup};
use tonic::transport::Channel;

/// Calls per measurement, and rounds (the median is kept).
const CALLS: u64 = 10_000;
const ROUNDS: usize = 5;
/// Window edges measured.
const EDGES: usize = 10;

fn main() -> anyhow::Result<()> {
    // Probes are this binary run again with a job.
    let Some(markdown) = support::bench_start() else {
        return Ok(());
    };
    let runtime = support::bench_runtime()?;
    let mut out = String::new();
    runtime.block_on(async {
        let daemon = Daemon::start(&[]).await;
        let mut client = daemon.client().await;
        let caps = client
            .capabilities(CapabilitiesRequest {})
            .await?
            .into_inner();
        writeln!(out, "## Storage errno faults\n")?;
        let supported = |op: &str| {
            caps.faults
                .iter()
                .any(|f| f.kind == format!("storage.errno.{op}") && f.supported)
        };
        if !supported("read") {
            writeln!(
                out,
                "Not measured on kernel {}: no route to fail a read here (see `chaosctl \
                 capabilities`).\n",
                caps.kernel_release
            )?;
            return Ok(());
        }
        let files = Files::new()?;
        call_overhead(&mut client, &files, supported("fsync"), &mut out).await?;
        window_edges(&mut client, &files, &mut out).await
    })?;
    support::bench_finish(&out, markdown)?;
    Ok(())
}

/// A tmpfs with `data/f` (the fault's path) and `other/f`, and a bindfs (FUSE passthrough,
/// no page cache) view of it; unmounted on drop.
struct Files {
    dir: tempfile::TempDir,
    fuse: Option<PathBuf>,
}

impl Files {
    fn new() -> anyhow::Result<Files> {
        let dir = tempfile::Builder::new().prefix("fl-bench-").tempdir()?;
        let root = dir.path().join("tmpfs");
        std::fs::create_dir(&root)?;
        nix::mount::mount(
            Some("fl-bench"),
            &root,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=8m"),
        )?;
        for d in ["data", "other"] {
            std::fs::create_dir(root.join(d))?;
            std::fs::write(root.join(d).join("f"), b"0123456789")?;
        }
        let fuse = dir.path().join("fuse");
        std::fs::create_dir(&fuse)?;
        // direct_io: every read goes to the FUSE daemon, as it must for a FUSE layer that
        // fails reads.
        let mounted = Command::new("bindfs")
            .args(["-o", "direct_io"])
            .arg(&root)
            .arg(&fuse)
            .status()
            .is_ok_and(|s| s.success());
        Ok(Files {
            dir,
            fuse: mounted.then_some(fuse),
        })
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("tmpfs")
    }

    fn data(&self) -> PathBuf {
        self.root().join("data")
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        if let Some(fuse) = &self.fuse {
            let _ = nix::mount::umount2(fuse, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = nix::mount::umount2(&self.root(), nix::mount::MntFlags::MNT_DETACH);
    }
}

fn errno_request(
    target: &str,
    ops: &[StorageOperation],
    path: &Path,
    start: u64,
    duration: Duration,
) -> InjectRequest {
    InjectRequest {
        target: target.to_string(),
        start_at_unix_ns: start,
        duration: Some(duration.try_into().unwrap_or_default()),
        spec: Some(Spec::Storage(StorageFault {
            action: Some(Action::Errno(ErrnoFault {
                errno: "EIO".into(),
                operations: ops.iter().map(|o| *o as i32).collect(),
                path: path.display().to_string(),
                percent: 100.0,
                max_failures: 0,
            })),
        })),
        ..InjectRequest::default()
    }
}

/// Median ns per call of `op` on `path` by a process in `cgroup`, over [`ROUNDS`] runs.
fn ns_per_call(cgroup: &TestCgroup, op: &str, path: &Path) -> anyhow::Result<f64> {
    eprintln!(
        "storage bench: {op} {} from {}",
        path.display(),
        cgroup.rel_path()
    );
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let job = ProbeJob::FileCalls {
            op: op.into(),
            path: path.to_path_buf(),
            count: CALLS,
        };
        let result = spawn_probe_with(job, None, Some(cgroup)).wait();
        let elapsed = result["elapsed_ns"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("probe failed: {result}"))?;
        if result["ok"].as_u64() != Some(CALLS) {
            anyhow::bail!("calls failed where none should: {result}");
        }
        rounds.push(elapsed as f64 / CALLS as f64);
    }
    rounds.sort_by(f64::total_cmp);
    Ok(rounds[ROUNDS / 2])
}

/// An object of the daemon's programs of its own, to attach the empty baselines.
struct Baseline {
    pins: Pins,
    ebpf: aya::Ebpf,
}

impl Baseline {
    fn load() -> anyhow::Result<Baseline> {
        let pins =
            Pins::new(PathBuf::from("/sys/fs/bpf").join(support::unique_name("faultline-bench-")));
        pins.prepare()?;
        let ebpf = loader::load_with(&pins, KernelClock::Monotonic, &Default::default())?;
        Ok(Baseline { pins, ebpf })
    }

    /// Runs `measure` with the empty LSM program attached to `file_permission`.
    fn with_lsm_noop<T>(&mut self, measure: impl FnOnce() -> T) -> anyhow::Result<T> {
        let btf = aya::Btf::from_sys_fs()?;
        let program: &mut Lsm = self
            .ebpf
            .program_mut("lsm_noop")
            .ok_or_else(|| anyhow::anyhow!("no lsm_noop"))?
            .try_into()?;
        program.load("file_permission", &btf)?;
        let link = program.attach()?;
        let value = measure();
        program.detach(link)?;
        Ok(value)
    }

    /// Runs `measure` with the empty kprobe attached to `function`.
    fn with_kprobe_noop<T>(
        &mut self,
        function: &str,
        measure: impl FnOnce() -> T,
    ) -> anyhow::Result<T> {
        let program: &mut KProbe = self
            .ebpf
            .program_mut("kp_noop")
            .ok_or_else(|| anyhow::anyhow!("no kp_noop"))?
            .try_into()?;
        program.load()?;
        let link = program.attach(function, 0)?;
        let value = measure();
        program.detach(link)?;
        Ok(value)
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.pins.remove_all();
    }
}

/// ns per `pread` of one byte (and per `fsync` where a route exists) for a process outside
/// every target, with no program, an empty program, faultline's programs attached (a fault
/// on another cgroup), the target itself outside the fault's path, and through FUSE.
async fn call_overhead(
    client: &mut FaultServiceClient<Channel>,
    files: &Files,
    fsync: bool,
    out: &mut String,
) -> anyhow::Result<()> {
    let target = TestCgroup::new();
    let _process = support::procs::spawn_in(&[target.path()], "exec sleep 1000");
    let bystander = TestCgroup::new();
    let other = files.root().join("other").join("f");
    let mut rows: Vec<(String, f64, Option<f64>)> = Vec::new();
    let none_read = ns_per_call(&bystander, "read", &other)?;
    let none_fsync = ns_per_call(&bystander, "fsync", &other)?;
    rows.push(("no program attached".into(), none_read, Some(none_fsync)));
    let mut baseline = Baseline::load()?;
    let noop_read = baseline.with_lsm_noop(|| ns_per_call(&bystander, "read", &other))??;
    let noop_fsync = baseline
        .with_kprobe_noop("__x64_sys_fsync", || {
            ns_per_call(&bystander, "fsync", &other)
        })
        .ok()
        .and_then(Result::ok);
    rows.push((
        "empty LSM program (`file_permission`), empty kprobe (`fsync`)".into(),
        noop_read,
        noop_fsync,
    ));
    drop(baseline);
    let mut ops = vec![StorageOperation::Read];
    if fsync {
        ops.push(StorageOperation::Fsync);
    }
    let fault = client
        .inject(errno_request(
            &target.target(),
            &ops,
            &files.data(),
            0,
            Duration::from_secs(600),
        ))
        .await?
        .into_inner();
    let fsync_of = |cgroup: &TestCgroup| {
        fsync
            .then(|| ns_per_call(cgroup, "fsync", &other))
            .transpose()
    };
    rows.push((
        "faultline, caller outside every target".into(),
        ns_per_call(&bystander, "read", &other)?,
        fsync_of(&bystander)?,
    ));
    rows.push((
        "faultline, the target itself, file outside the fault's path".into(),
        ns_per_call(&target, "read", &other)?,
        fsync_of(&target)?,
    ));
    client
        .cancel(CancelRequest {
            id: fault.id.clone(),
        })
        .await?;
    if let Some(fuse) = &files.fuse {
        let through = fuse.join("other").join("f");
        rows.push((
            "FUSE passthrough (bindfs, `direct_io`), no faultline: what a FUSE layer that can \
             fail calls adds to every caller of the mount"
                .into(),
            ns_per_call(&bystander, "read", &through)?,
            Some(ns_per_call(&bystander, "fsync", &through)?),
        ));
    }
    writeln!(out, "### Cost per call\n")?;
    writeln!(
        out,
        "Median of {ROUNDS} runs of {CALLS} calls by a real process, on a tmpfs file: `pread` of \
         one byte, and `fsync`. A read passes the `file_permission` hook; `fsync` passes the \
         syscall kprobe where the kernel has `bpf_override_return`. Ratios are to the first \
         row, measured in the same run.\n"
    )?;
    writeln!(
        out,
        "| case | ns/pread | × none | ns/fsync | × none |\n|---|---:|---:|---:|---:|"
    )?;
    for (case, read, sync) in rows {
        let (sync_ns, sync_ratio) = sync.map_or(("–".into(), "–".into()), |s| {
            (format!("{s:.0}"), format!("{:.2}", s / none_fsync))
        });
        writeln!(
            out,
            "| {case} | {read:.0} | {:.2} | {sync_ns} | {sync_ratio} |",
            read / none_read
        )?;
    }
    if files.fuse.is_none() {
        writeln!(out, "\n(bindfs not available: no FUSE row.)")?;
    }
    writeln!(out)?;
    Ok(())
}

/// Faults with a window in the future; a process of the target opens a file under the path
/// back to back: the first failed call against the requested start, the first successful
/// one after against the requested end.
async fn window_edges(
    client: &mut FaultServiceClient<Channel>,
    files: &Files,
    out: &mut String,
) -> anyhow::Result<()> {
    let target = TestCgroup::new();
    let _process = support::procs::spawn_in(&[target.path()], "exec sleep 1000");
    let file = files.data().join("f");
    let lead = Duration::from_millis(300).mul_f64(bench_scale() as f64);
    let window = Duration::from_millis(200).mul_f64(bench_scale() as f64);
    let (mut start_err, mut end_err, mut gaps) = (Vec::new(), Vec::new(), Vec::new());
    for edge in 0..EDGES {
        eprintln!("storage bench: window edges, fault {edge}");
        let prober = spawn_probe_with(
            ProbeJob::FileEdges {
                op: "open".into(),
                path: file.clone(),
                max_duration_ms: (lead + window).as_millis() as u64 * 4,
            },
            None,
            Some(&target),
        );
        let start = unix_now_ns() + lead.as_nanos() as u64;
        let fault = client
            .inject(errno_request(
                &target.target(),
                &[StorageOperation::Open],
                &files.data(),
                start,
                window,
            ))
            .await?
            .into_inner();
        let mut prober = prober;
        let result = tokio::task::spawn_blocking(move || prober.wait()).await?;
        let (Some(fail), Some(ok)) = (
            result["first_fail_unix_ns"].as_u64(),
            result["first_ok_after_unix_ns"].as_u64(),
        ) else {
            anyhow::bail!("the prober did not see both edges: {result}");
        };
        start_err.push((fail as f64 - fault.start_at_unix_ns as f64) / 1e3);
        end_err.push((ok as f64 - fault.end_at_unix_ns as f64) / 1e3);
        let calls = result["calls"].as_f64().unwrap_or(1.0).max(1.0);
        gaps.push(result["elapsed_ns"].as_f64().unwrap_or(0.0) / calls / 1e3);
    }
    writeln!(out, "### Window edges seen by the target\n")?;
    writeln!(
        out,
        "{EDGES} faults on `open`, each with its window {:.0} ms ahead; a process of the \
         target opens a file under the path back to back. Error = the first failed call \
         minus the requested start, and the first successful call after minus the requested \
         end, in µs. The kernel checks the window on every call, so the error is the time \
         from the edge to the prober's next call: the time between two calls (p50 / p99 / max \
         here: {} µs) while it runs, more when it is descheduled at that moment.\n",
        lead.as_secs_f64() * 1e3,
        support::percentiles(&mut gaps, 1).replace(" | ", " / ")
    )?;
    writeln!(
        out,
        "| edge | p50 µs | p99 µs | max µs |\n|---|---:|---:|---:|"
    )?;
    writeln!(
        out,
        "| start | {} |",
        support::percentiles(&mut start_err, 0)
    )?;
    writeln!(out, "| end | {} |\n", support::percentiles(&mut end_err, 0))?;
    Ok(())
}
