//! Stress faults with real workers in real cgroups: the target's own accounting sees the
//! load (`cpu.stat`, `memory.current` or the v1 memory cgroup on hybrid hosts), it drops
//! back after the end, and no worker outlives the window or the daemon.
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chaos_proto::v1::{
    inject_request::Spec, stress_fault::Load, CpuStress, Fault, GetRequest, InjectRequest,
    MemoryStress, StressFault,
};
use support::procs::{cpu_usage_usec as usage_usec, spawn_in, Spawned, V1Cgroup};
use support::{enable_v2_controllers, require_root, wait_until, Daemon, TestCgroup};
use tonic::Code;

const DEADLINE: Duration = Duration::from_secs(30);
const MIB: u64 = 1 << 20;

fn request(target: &str, load: Load, duration: Duration) -> InjectRequest {
    InjectRequest {
        target: target.to_string(),
        start_at_unix_ns: 0,
        duration: Some(duration.try_into().expect("duration")),
        spec: Some(Spec::Stress(StressFault { load: Some(load) })),
        ..InjectRequest::default()
    }
}

/// Injects a stress fault that must be accepted.
async fn inject(daemon: &Daemon, target: &TestCgroup, load: Load, duration: Duration) -> Fault {
    daemon
        .client()
        .await
        .inject(request(&target.target(), load, duration))
        .await
        .expect("inject stress")
        .into_inner()
}

fn cpu(workers: u32, load_percent: f64) -> Load {
    Load::Cpu(CpuStress {
        workers,
        load_percent,
        period: None,
        cpus: Vec::new(),
    })
}

fn memory(bytes: u64, allow_oom: bool) -> Load {
    Load::Memory(MemoryStress {
        bytes,
        allow_oom,
        ..MemoryStress::default()
    })
}

/// The workers' cgroups under the target (`faultline-stress-*`).
fn stress_cgroups(target: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(target)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("faultline-stress-"))
        })
        .collect()
}

fn worker_pids(target: &Path) -> Vec<u32> {
    stress_cgroups(target)
        .iter()
        .flat_map(|dir| {
            std::fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Where the target's memory is accounted: its v2 cgroup when the memory controller is on
/// v2 (pure layout), else a v1 memory cgroup its processes join (hybrid layout).
struct MemoryHome {
    v1: Option<V1Cgroup>,
    v2: Option<PathBuf>,
}

impl MemoryHome {
    fn new(target: &TestCgroup) -> MemoryHome {
        if target.path().join("memory.current").exists() {
            return MemoryHome {
                v1: None,
                v2: Some(target.path().to_path_buf()),
            };
        }
        MemoryHome {
            v1: Some(V1Cgroup::of("memory").expect("neither a v2 nor a v1 memory controller")),
            v2: None,
        }
    }

    /// The cgroup directories a target process must join.
    fn dirs<'a>(&'a self, target: &'a TestCgroup) -> Vec<&'a Path> {
        let mut dirs = vec![target.path()];
        if let Some(v1) = &self.v1 {
            dirs.push(v1.path());
        }
        dirs
    }

    fn usage(&self) -> u64 {
        let file = match (&self.v2, &self.v1) {
            (Some(v2), _) => v2.join("memory.current"),
            (None, Some(v1)) => v1.path().join("memory.usage_in_bytes"),
            (None, None) => return 0,
        };
        std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn set_limit(&self, bytes: u64) {
        let file = match (&self.v2, &self.v1) {
            (Some(v2), _) => v2.join("memory.max"),
            (None, Some(v1)) => v1.path().join("memory.limit_in_bytes"),
            (None, None) => return,
        };
        std::fs::write(&file, bytes.to_string())
            .unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_stress_runs_at_the_requested_load_then_stops() {
    if !require_root() {
        return;
    }
    let target = TestCgroup::new();
    let _resident = spawn_in(&[target.path()], "exec sleep 1000");
    let daemon = Daemon::start(&[]).await;
    let fault = inject(&daemon, &target, cpu(1, 50.0), Duration::from_secs(4)).await;
    assert_eq!(fault.counters.map(|c| c.affected), Some(1));
    assert_eq!(
        worker_pids(target.path()).len(),
        1,
        "the worker is not in the target"
    );
    // Measure the target's CPU time over one second of the window (an observation
    // interval, not a synchronisation).
    let (u0, t0) = (usage_usec(target.path()), Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let (u1, t1) = (usage_usec(target.path()), Instant::now());
    let cpus = (u1 - u0) as f64 / (t1 - t0).as_micros() as f64;
    // One worker at 50 %: 0.5 CPU, within ±30 % for a shared 2-CPU machine or VM.
    assert!(
        (0.35..=0.65).contains(&cpus),
        "target used {cpus:.3} CPUs; asked for 0.5"
    );
    // After the end: no worker, no workers' cgroup, and the usage stops growing.
    assert!(
        wait_until(DEADLINE, || stress_cgroups(target.path()).is_empty()),
        "workers' cgroup left: {:?}",
        stress_cgroups(target.path())
    );
    let after = usage_usec(target.path());
    let grew = wait_until(Duration::from_millis(300), || {
        usage_usec(target.path()) > after + 30_000
    });
    assert!(!grew, "the target keeps burning CPU after the end");
}

/// A target cgroup with one process, whose memory is accounted in `MemoryHome`.
fn memory_target() -> (TestCgroup, MemoryHome, Spawned) {
    enable_v2_controllers(&["memory"]);
    let target = TestCgroup::new();
    let home = MemoryHome::new(&target);
    let resident = spawn_in(&home.dirs(&target), "exec sleep 1000");
    assert!(wait_until(DEADLINE, || target.procs().len() == 1));
    (target, home, resident)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stress_is_charged_to_the_target_and_released() {
    if !require_root() {
        return;
    }
    let (target, home, _resident) = memory_target();
    let base = home.usage();
    let daemon = Daemon::start(&[]).await;
    let want = 64 * MIB;
    let fault = inject(
        &daemon,
        &target,
        memory(want, false),
        Duration::from_secs(3),
    )
    .await;
    // Charges are batched per CPU (up to 64 pages each), and the target's own small usage
    // moves a little meanwhile: 2 MiB of slack.
    let floor = base + want - 2 * MIB;
    assert!(
        wait_until(DEADLINE, || home.usage() >= floor),
        "the target's memory reached {} bytes, not {floor}",
        home.usage()
    );
    let held = daemon
        .client()
        .await
        .get(GetRequest {
            id: fault.id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .outcome
        .expect("outcome");
    assert!(
        held.memory_bytes >= want,
        "worker holds {}",
        held.memory_bytes
    );
    // The worker's own binary pages, faulted in after it joined, stay charged as page
    // cache: what must go is the memory it held.
    let peak = home.usage();
    assert!(
        wait_until(DEADLINE, || home.usage() + want * 3 / 4 <= peak),
        "memory not released after the end: {} of a peak of {peak}",
        home.usage()
    );
    // The memory goes as the worker exits, a moment before it leaves its cgroup.
    assert!(wait_until(DEADLINE, || stress_cgroups(target.path()).is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_over_the_limit_needs_allow_oom_and_then_reports_the_oom_kill() {
    if !require_root() {
        return;
    }
    let (target, home, _resident) = memory_target();
    home.set_limit(32 * MIB);
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let refused = client
        .inject(request(
            &target.target(),
            memory(64 * MIB, false),
            Duration::from_secs(3),
        ))
        .await
        .expect_err("over the limit without allow_oom");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("stress.memory.bytes"),
        "{}",
        refused.message()
    );
    let fault = client
        .inject(request(
            &target.target(),
            memory(64 * MIB, true),
            Duration::from_secs(5),
        ))
        .await
        .expect("allowed with allow_oom")
        .into_inner();
    let mut outcome = None;
    assert!(
        wait_until(DEADLINE, || {
            outcome = daemon.get_blocking(&fault.id).and_then(|f| f.outcome);
            outcome.as_ref().is_some_and(|o| o.oom_kills >= 1)
        }),
        "no OOM kill reported: {outcome:?}"
    );
    client
        .cancel(chaos_proto::v1::CancelRequest { id: fault.id })
        .await
        .expect("cancel");
    assert!(stress_cgroups(target.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_die_with_the_daemon_and_its_successor_removes_their_cgroup() {
    if !require_root() {
        return;
    }
    let target = TestCgroup::new();
    let mut daemon = Daemon::start(&[]).await;
    let fault = inject(&daemon, &target, cpu(2, 20.0), Duration::from_secs(1)).await;
    let workers = worker_pids(target.path());
    assert_eq!(workers.len(), 2);
    daemon.kill9();
    assert!(
        wait_until(DEADLINE, || worker_pids(target.path()).is_empty()),
        "workers outlived the daemon: {:?}",
        worker_pids(target.path())
    );
    assert!(wait_until(DEADLINE, || chaos_daemon::clock::unix_now_ns()
        > fault.end_at_unix_ns));
    daemon.restart().await;
    assert!(
        stress_cgroups(target.path()).is_empty(),
        "the restarted daemon left {:?}",
        stress_cgroups(target.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_stress_input_names_the_field() {
    if !require_root() {
        return;
    }
    let target = TestCgroup::new();
    let daemon = Daemon::start(&[]).await;
    let second = Duration::from_secs(1);
    let cases = [
        (
            request(&target.target(), cpu(1, 150.0), second),
            "stress.cpu.load_percent",
        ),
        (
            request(&target.target(), cpu(5000, 10.0), second),
            "stress.cpu.workers",
        ),
        (
            request(
                &target.target(),
                Load::Cpu(CpuStress {
                    workers: 1,
                    load_percent: 10.0,
                    period: None,
                    cpus: vec![4096],
                }),
                second,
            ),
            "stress.cpu.cpus[0]",
        ),
        (
            request(&target.target(), memory(0, false), second),
            "stress.memory.bytes",
        ),
        (
            request(
                &target.target(),
                Load::Memory(MemoryStress {
                    percent_of_limit: 50.0,
                    ..MemoryStress::default()
                }),
                second,
            ),
            "stress.memory.percent_of_limit",
        ),
    ];
    for (req, field) in cases {
        let message = daemon.refused(req, Code::InvalidArgument).await;
        assert!(message.starts_with(field), "{message}");
    }
    assert!(stress_cgroups(target.path()).is_empty());
}
