//! Process and stress fault benchmarks: kill latency for 1, 100 and 1,000 processes, pause
//! and thaw latency with the thaw's error against the requested end, and CPU stress accuracy
//! side by side with `stress-ng` in the same cgroup and run.
//!
//! Run by `cargo xtask bench`; by hand: `cargo bench -p chaos-daemon --bench process -- --markdown out.md`.
#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    fmt::Write as _,
    path::Path,
    time::{Duration, Instant},
};

use chaos_daemon::clock::unix_now_ns;
use chaos_proto::v1::{
    fault_service_client::FaultServiceClient, inject_request::Spec, process_fault, stress_fault,
    CpuStress, InjectRequest, Kill, Pause, ProcessFault, StressFault,
};
use support::{
    procs::{cpu_usage_usec as usage_usec, spawn_in},
    wait_until, Daemon, TestCgroup,
};
use tonic::transport::Channel;

const DEADLINE: Duration = Duration::from_secs(60);

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
        kill_latency(&mut client, &mut out).await?;
        pause_accuracy(&mut client, &mut out).await?;
        cpu_accuracy(&mut client, &mut out).await
    })?;
    support::bench_finish(&out, markdown)?;
    Ok(())
}

fn request(target: &str, start_at_unix_ns: u64, duration: Duration, spec: Spec) -> InjectRequest {
    InjectRequest {
        target: target.to_string(),
        start_at_unix_ns,
        duration: Some(duration.try_into().unwrap_or_default()),
        spec: Some(spec),
        ..InjectRequest::default()
    }
}

fn process(action: process_fault::Action) -> Spec {
    Spec::Process(ProcessFault {
        action: Some(action),
    })
}

fn procs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn frozen(dir: &Path) -> Option<bool> {
    let events = std::fs::read_to_string(dir.join("cgroup.events")).ok()?;
    Some(events.lines().any(|l| l == "frozen 1"))
}

/// Spins (no sleep: this is the measurement) until `done`, returning Unix ns when it held.
fn spin_until(deadline: Duration, mut done: impl FnMut() -> bool) -> Option<u64> {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if done() {
            return Some(unix_now_ns());
        }
        std::hint::spin_loop();
    }
    None
}

/// p50, p99 and max of `values` in whole µs, for a table row.
fn summary(values: &mut [f64]) -> String {
    support::percentiles(values, 0)
}

/// From the `Inject` call to the last process of the target gone, for trees of 1, 100 and
/// 1,000 processes; SIGKILL (cgroup.kill) and SIGTERM (the per-process walk).
async fn kill_latency(
    client: &mut FaultServiceClient<Channel>,
    out: &mut String,
) -> anyhow::Result<()> {
    writeln!(out, "## Kill latency (real processes)\n")?;
    writeln!(
        out,
        "`sleep` processes in a fresh cgroup; the time runs from the `Inject` call to \
         `cgroup.procs` empty (read in a tight loop). SIGKILL uses `cgroup.kill`, one write that \
         the kernel applies to the whole tree; SIGTERM walks the tree, signalling each process \
         and re-reading until no new one appears (the path taken for any signal other than \
         SIGKILL). Each `Inject` first writes and fsyncs its journal record (about 1 ms on \
         this disk), then acts.\n"
    )?;
    writeln!(out, "| processes | signal | rounds | p50 (µs) | p99 (µs) | max (µs) |\n|---:|---|---:|---:|---:|---:|")?;
    let sizes = [(1usize, 20usize), (100, 10), (1000, 5)];
    for (count, rounds) in sizes {
        for signal in ["SIGKILL", "SIGTERM"] {
            let mut samples = Vec::new();
            for _ in 0..rounds {
                let cgroup = TestCgroup::new();
                let script = format!(
                    "i=1; while [ $i -lt {count} ]; do sleep 1000 & i=$((i+1)); done; exec sleep 1000"
                );
                let mut shell = spawn_in(&[cgroup.path()], &script);
                anyhow::ensure!(
                    wait_until(DEADLINE, || procs(cgroup.path()) == count),
                    "{count} processes never started"
                );
                let called = unix_now_ns();
                client
                    .inject(request(
                        &cgroup.target(),
                        0,
                        Duration::from_secs(5),
                        process(process_fault::Action::Kill(Kill {
                            signal: signal.into(),
                            ..Kill::default()
                        })),
                    ))
                    .await?;
                let gone = spin_until(DEADLINE, || procs(cgroup.path()) == 0)
                    .ok_or_else(|| anyhow::anyhow!("{count} processes not gone after {signal}"))?;
                shell.stop();
                samples.push((gone - called) as f64 / 1e3);
            }
            writeln!(
                out,
                "| {count} | {signal} | {rounds} | {} |",
                summary(&mut samples)
            )?;
        }
    }
    writeln!(out)?;
    Ok(())
}

/// Pause: from the call to every process frozen; thaw: observed thaw − requested end.
async fn pause_accuracy(
    client: &mut FaultServiceClient<Channel>,
    out: &mut String,
) -> anyhow::Result<()> {
    const ROUNDS: usize = 30;
    let cgroup = TestCgroup::new();
    let _tree = spawn_in(
        &[cgroup.path()],
        "i=1; while [ $i -lt 100 ]; do sleep 1000 & i=$((i+1)); done; while :; do :; done",
    );
    anyhow::ensure!(
        wait_until(DEADLINE, || procs(cgroup.path()) == 100),
        "tree never started"
    );
    let window = Duration::from_millis(50 * support::bench_scale());
    let (mut freeze, mut thaw, mut thaw_scheduled) = (Vec::new(), Vec::new(), Vec::new());
    let (mut freeze_written, mut thaw_written) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Half the rounds start now, half 20 ms ahead (the start edge is then the daemon's
        // precise timer too).
        let ahead = if round % 2 == 0 {
            0
        } else {
            20_000_000 * support::bench_scale()
        };
        let start = if ahead == 0 { 0 } else { unix_now_ns() + ahead };
        let called = unix_now_ns();
        let fault = client
            .inject(request(
                &cgroup.target(),
                start,
                window,
                process(process_fault::Action::Pause(Pause {})),
            ))
            .await?
            .into_inner();
        let frozen_at = spin_until(DEADLINE, || frozen(cgroup.path()) == Some(true))
            .ok_or_else(|| anyhow::anyhow!("round {round}: never frozen: {fault:?}"))?;
        let thawed_at = spin_until(DEADLINE, || frozen(cgroup.path()) == Some(false))
            .ok_or_else(|| anyhow::anyhow!("round {round}: never thawed: {fault:?}"))?;
        if ahead == 0 {
            freeze.push((frozen_at - called) as f64 / 1e3);
        } else {
            thaw_scheduled.push((frozen_at as f64 - fault.start_at_unix_ns as f64) / 1e3);
        }
        thaw.push((thawed_at as f64 - fault.end_at_unix_ns as f64) / 1e3);
        let done = client
            .get(chaos_proto::v1::GetRequest {
                id: fault.id.clone(),
            })
            .await?
            .into_inner();
        if ahead != 0 {
            freeze_written
                .push((done.first_affected_unix_ns as f64 - done.start_at_unix_ns as f64) / 1e3);
        }
        thaw_written.push((done.last_affected_unix_ns as f64 - done.end_at_unix_ns as f64) / 1e3);
    }
    writeln!(out, "## Pause and thaw (100 processes, one of them busy)\n")?;
    writeln!(
        out,
        "`cgroup.events` is read in a tight loop for `frozen 1` and then `frozen 0`; \
         {ROUNDS} windows of {} ms. The daemon wakes 2 ms before each edge and waits out the \
         rest with an absolute `clock_nanosleep` under `SCHED_FIFO`, so the edge does not \
         depend on the runtime's millisecond timer. Errors are observed − requested \
         (positive = late). The \"written\" rows are the daemon's own edge (when it wrote \
         `cgroup.freeze`); the observed rows add the kernel's work: `frozen 1` appears once \
         every task has stopped, `frozen 0` once every task is woken, here for 100 tasks on a \
         busy 2-core machine.\n",
        window.as_millis()
    )?;
    writeln!(
        out,
        "| measure (µs) | p50 | p99 | max |\n|---|---:|---:|---:|"
    )?;
    writeln!(
        out,
        "| `Inject` sent → frozen (start = now) | {} |",
        summary(&mut freeze)
    )?;
    writeln!(
        out,
        "| frozen − requested start (start ahead) | {} |",
        summary(&mut thaw_scheduled)
    )?;
    writeln!(
        out,
        "| freeze written − requested start (daemon's clock, start ahead) | {} |",
        summary(&mut freeze_written)
    )?;
    writeln!(out, "| thawed − requested end | {} |", summary(&mut thaw))?;
    writeln!(
        out,
        "| thaw written − requested end (daemon's clock) | {} |\n",
        summary(&mut thaw_written)
    )?;
    Ok(())
}

/// CPUs used by `dir` over `span`, starting `settle` from now.
fn cpus_used(dir: &Path, settle: Duration, span: Duration) -> f64 {
    std::thread::sleep(settle);
    let (u0, t0) = (usage_usec(dir), Instant::now());
    std::thread::sleep(span);
    let (u1, t1) = (usage_usec(dir), Instant::now());
    (u1 - u0) as f64 / (t1 - t0).as_micros() as f64
}

/// Achieved/requested load of faultline's CPU workers and of stress-ng's, each alone in a
/// fresh cgroup, one after the other in the same run.
async fn cpu_accuracy(
    client: &mut FaultServiceClient<Channel>,
    out: &mut String,
) -> anyhow::Result<()> {
    let settle = Duration::from_millis(300 * support::bench_scale());
    let span = Duration::from_secs(2 * support::bench_scale());
    let window = settle + span + Duration::from_millis(500 * support::bench_scale());
    let stress_ng = std::process::Command::new("stress-ng")
        .arg("--version")
        .output()
        .is_ok();
    writeln!(
        out,
        "## CPU stress accuracy (side by side with stress-ng)\n"
    )?;
    writeln!(
        out,
        "Each row runs alone in a fresh cgroup; the load is the cgroup's `cpu.stat` \
         `usage_usec` over {} ms of the window after {} ms to settle, in CPUs. Both tools \
         duty-cycle each worker over a 100 ms period.\n",
        span.as_millis(),
        settle.as_millis()
    )?;
    writeln!(out, "| workers × load | requested (CPUs) | faultline (CPUs) | faultline ÷ requested | stress-ng (CPUs) | stress-ng ÷ requested |\n|---|---:|---:|---:|---:|---:|")?;
    for (workers, load) in [(1u32, 25.0f64), (1, 50.0), (2, 50.0), (2, 80.0)] {
        let requested = f64::from(workers) * load / 100.0;
        let ours = {
            let cgroup = TestCgroup::new();
            client
                .inject(request(
                    &cgroup.target(),
                    0,
                    window,
                    Spec::Stress(StressFault {
                        load: Some(stress_fault::Load::Cpu(CpuStress {
                            workers,
                            load_percent: load,
                            period: None,
                            cpus: Vec::new(),
                        })),
                    }),
                ))
                .await?;
            let used = tokio::task::block_in_place(|| cpus_used(cgroup.path(), settle, span));
            wait_until(DEADLINE, || {
                std::fs::read_dir(cgroup.path())
                    .map(|d| {
                        d.flatten()
                            .all(|e| !e.file_type().is_ok_and(|t| t.is_dir()))
                    })
                    .unwrap_or(true)
            });
            used
        };
        let theirs = if stress_ng {
            let cgroup = TestCgroup::new();
            let script = format!(
                "exec stress-ng --quiet --cpu {workers} --cpu-load {load} --timeout {}s",
                window.as_secs() + 1
            );
            let mut child = spawn_in(&[cgroup.path()], &script);
            let used = cpus_used(cgroup.path(), settle, span);
            child.stop();
            format!("{used:.3} | {:.2}", used / requested)
        } else {
            "not installed | –".into()
        };
        writeln!(
            out,
            "| {workers} × {load} % | {requested:.2} | {ours:.3} | {:.2} | {theirs} |",
            ours / requested
        )?;
    }
    writeln!(out)?;
    Ok(())
}
