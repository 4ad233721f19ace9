//! Process faults against real process trees in real cgroups: kill reaches every process
//! (including ones forked meanwhile) and nothing outside; pause freezes and thaws at the end,
//! also after the daemon was killed; restart sees the supervisor's new process.
mod support;

use std::path::Path;
use std::time::Duration;

use chaos_proto::v1::{
    inject_request::Spec, process_fault::Action, Fault, FaultState, InjectRequest, Kill,
    MainProcess, Pause, ProcessFault, Restart,
};
use support::procs::{alive, spawn_in, Spawned, Supervisor};
use support::{require_root, wait_until, Daemon, TestCgroup};
use tonic::Code;

const DEADLINE: Duration = Duration::from_secs(20);

fn request(target: &str, action: Action, duration: Duration) -> InjectRequest {
    InjectRequest {
        target: target.to_string(),
        start_at_unix_ns: 0,
        duration: Some(duration.try_into().expect("duration")),
        spec: Some(Spec::Process(ProcessFault {
            action: Some(action),
        })),
        ..InjectRequest::default()
    }
}

fn frozen(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .map(|e| e.lines().any(|l| l == "frozen 1"))
        .unwrap_or(false)
}

/// The number a counting loop last wrote.
fn counter(file: &Path) -> Option<u64> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_reaches_a_forking_tree_and_nothing_outside() {
    // SIGKILL goes through cgroup.kill; SIGTERM through the re-reading walk of the tree.
    kill_tree_with("").await;
    kill_tree_with("SIGTERM").await;
}

async fn kill_tree_with(signal: &str) {
    if !require_root() {
        return;
    }
    let target = TestCgroup::new();
    let nested = TestCgroup::child_of(&target);
    let outside = TestCgroup::new();
    let daemon = Daemon::start(&[]).await;
    // A steady tree, a process in a child cgroup, and a loop that forks all the time.
    let steady = spawn_in(
        &[target.path()],
        "sleep 1000 & sleep 1000 & exec sleep 1000",
    );
    let deep = spawn_in(&[nested.path()], "exec sleep 1000");
    let forker = spawn_in(&[target.path()], "while :; do sleep 1000 & done");
    let bystander = spawn_in(&[outside.path()], "exec sleep 1000");
    assert!(wait_until(DEADLINE, || target.procs().len() >= 10));

    let fault = daemon
        .client()
        .await
        .inject(request(
            &target.target(),
            Action::Kill(Kill {
                signal: signal.into(),
                ..Kill::default()
            }),
            Duration::from_secs(2),
        ))
        .await
        .expect("inject kill")
        .into_inner();
    assert!(
        wait_until(DEADLINE, || target.procs().is_empty()
            && nested.procs().is_empty()),
        "{signal}: processes left in the target: {:?} {:?}",
        target.procs(),
        nested.procs()
    );
    for pid in [steady.id(), deep.id(), forker.id()] {
        assert!(wait_until(DEADLINE, || !alive(pid)), "{pid} survived");
    }
    assert!(
        alive(bystander.id()),
        "a process outside the target was killed"
    );
    let outcome = fault.outcome.expect("outcome");
    assert_eq!(outcome.rounds, 1);
    assert!(outcome.signalled >= 5, "signalled {}", outcome.signalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_main_only_with_a_signal_spares_the_others() {
    if !require_root() {
        return;
    }
    let target = TestCgroup::new();
    let daemon = Daemon::start(&[]).await;
    let main = spawn_in(&[target.path()], "exec sleep 1000");
    assert!(wait_until(DEADLINE, || target.procs().len() == 1));
    let helper = spawn_in(&[target.path()], "exec sleep 1001");
    assert!(wait_until(DEADLINE, || target.procs().len() == 2));
    let kill = Kill {
        signal: "TERM".into(),
        main_only: true,
        main: Some(MainProcess {
            pid: 0,
            command: "sleep".into(),
        }),
        interval: None,
    };
    let fault = daemon
        .client()
        .await
        .inject(request(
            &target.target(),
            Action::Kill(kill),
            Duration::from_secs(2),
        ))
        .await
        .expect("inject")
        .into_inner();
    assert!(
        wait_until(DEADLINE, || !alive(main.id())),
        "main survived SIGTERM"
    );
    assert!(
        alive(helper.id()),
        "a process other than the main one was signalled"
    );
    let outcome = fault.outcome.expect("outcome");
    assert_eq!((outcome.main_pid, outcome.signalled), (main.id(), 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_freezes_then_thaws_at_the_end() {
    if !require_root() {
        return;
    }
    let target = TestCgroup::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("count");
    let daemon = Daemon::start(&[]).await;
    let _counting = spawn_in(
        &[target.path()],
        &format!(
            "i=0; while :; do i=$((i+1)); echo $i > {}; done",
            file.display()
        ),
    );
    assert!(wait_until(DEADLINE, || counter(&file).is_some_and(|c| c > 10)));
    // A window long enough for an emulated (TCG) VM to observe it frozen.
    let fault = daemon
        .client()
        .await
        .inject(request(
            &target.target(),
            Action::Pause(Pause {}),
            Duration::from_secs(6),
        ))
        .await
        .expect("inject pause")
        .into_inner();
    assert!(
        wait_until(DEADLINE, || frozen(target.path())),
        "never frozen"
    );
    let mut state = None;
    assert!(
        wait_until(DEADLINE, || {
            state = daemon.get_blocking(&fault.id);
            state
                .as_ref()
                .and_then(|f| f.outcome.as_ref())
                .is_some_and(|o| o.frozen)
        }),
        "the fault does not report the cgroup frozen: {state:?}"
    );
    let at_freeze = counter(&file);
    // While frozen the counter must not move (a poll that expects to see no change).
    let moved = wait_until(Duration::from_millis(300), || counter(&file) != at_freeze);
    assert!(!moved, "the counter advanced while frozen");
    // The end thaws it, and the loop goes on.
    assert!(
        wait_until(DEADLINE, || !frozen(target.path())),
        "never thawed"
    );
    assert!(wait_until(DEADLINE, || counter(&file) > at_freeze));
    let mut ended = None;
    assert!(wait_until(DEADLINE, || {
        ended = daemon.get_blocking(&fault.id);
        ended
            .as_ref()
            .is_some_and(|f| f.state == FaultState::Completed as i32)
    }));
}

/// Pauses a one-process cgroup for `window` with a daemon that is then killed (-9).
async fn pause_then_kill_the_daemon(window: Duration) -> (TestCgroup, Spawned, Daemon, Fault) {
    let target = TestCgroup::new();
    let sleeper = spawn_in(&[target.path()], "exec sleep 1000");
    assert!(wait_until(DEADLINE, || target.procs().len() == 1));
    let mut daemon = Daemon::start(&[]).await;
    let fault = daemon
        .client()
        .await
        .inject(request(&target.target(), Action::Pause(Pause {}), window))
        .await
        .expect("inject pause")
        .into_inner();
    assert!(wait_until(DEADLINE, || frozen(target.path())));
    daemon.kill9();
    assert!(frozen(target.path()), "a killed daemon's pause ended early");
    (target, sleeper, daemon, fault)
}

/// Pids of the thaw guards for the cgroup `dir` (their spec names its freezer).
fn guards_of(dir: &Path) -> Vec<i32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| {
                let cmd = String::from_utf8_lossy(&cmd);
                cmd.contains("__worker") && cmd.contains(&needle)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_ends_on_time_after_the_daemon_is_killed() {
    if !require_root() {
        return;
    }
    let (target, _sleeper, mut daemon, fault) =
        pause_then_kill_the_daemon(Duration::from_secs(3)).await;
    assert_eq!(guards_of(target.path()).len(), 1, "no thaw guard");
    assert!(
        wait_until(DEADLINE, || !frozen(target.path())),
        "nothing thawed the pause of a killed daemon"
    );
    assert!(
        chaos_daemon::clock::unix_now_ns() >= fault.end_at_unix_ns,
        "thawed before the end"
    );
    assert!(wait_until(DEADLINE, || guards_of(target.path()).is_empty()));
    daemon.restart().await;
    let after = daemon
        .get_blocking(&fault.id)
        .expect("the restarted daemon knows the fault");
    assert_eq!(after.state, FaultState::Completed as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_thaws_a_pause_whose_guard_died_too() {
    if !require_root() {
        return;
    }
    let (target, _sleeper, mut daemon, fault) =
        pause_then_kill_the_daemon(Duration::from_secs(2)).await;
    // As when a whole container is killed: the guard goes with the daemon.
    for pid in guards_of(target.path()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(wait_until(DEADLINE, || guards_of(target.path()).is_empty()));
    assert!(wait_until(DEADLINE, || chaos_daemon::clock::unix_now_ns()
        > fault.end_at_unix_ns));
    assert!(frozen(target.path()), "thawed without a daemon or a guard");
    daemon.restart().await;
    assert!(
        wait_until(DEADLINE, || !frozen(target.path())),
        "the restarted daemon did not thaw\n{}",
        daemon.logs()
    );
    let after = daemon
        .get_blocking(&fault.id)
        .expect("the restarted daemon knows the fault");
    assert_eq!(after.state, FaultState::Completed as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reports_the_supervisors_new_process() {
    if !require_root() {
        return;
    }
    let target = TestCgroup::new();
    let supervisor = Supervisor::start(&[target.path()]);
    let first = supervisor.pid();
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let fault = client
        .inject(request(
            &target.target(),
            Action::Restart(Restart::default()),
            Duration::from_secs(5),
        ))
        .await
        .expect("inject restart")
        .into_inner();
    assert_eq!(fault.outcome.map(|o| o.main_pid), Some(first));
    let mut seen = None;
    assert!(wait_until(DEADLINE, || {
        seen = daemon.get_blocking(&fault.id).and_then(|f| f.outcome);
        seen.as_ref().is_some_and(|o| o.new_main_pid != 0)
    }));
    let outcome = seen.expect("outcome");
    assert_ne!(outcome.new_main_pid, first);
    // The supervisor learns its child's pid when spawn returns, after the child is already
    // in the cgroup (where the daemon may see it first).
    assert!(
        wait_until(DEADLINE, || supervisor.pid() == outcome.new_main_pid),
        "new main {} is not the supervisor's child {}",
        outcome.new_main_pid,
        supervisor.pid()
    );
    assert!(outcome.restart_after_ns > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_process_input_names_the_field() {
    if !require_root() {
        return;
    }
    let target = TestCgroup::new();
    let empty = TestCgroup::new();
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let kill = |signal: &str| {
        Action::Kill(Kill {
            signal: signal.into(),
            ..Kill::default()
        })
    };
    let cases = [
        (
            request(&target.target(), kill("SIGNOPE"), Duration::from_secs(1)),
            Code::InvalidArgument,
            "process.kill.signal",
        ),
        (
            request(
                &target.target(),
                Action::Kill(Kill {
                    interval: Some(prost_types::Duration {
                        seconds: 0,
                        nanos: 1000,
                    }),
                    ..Kill::default()
                }),
                Duration::from_secs(1),
            ),
            Code::InvalidArgument,
            "process.kill.interval",
        ),
        (
            InjectRequest {
                spec: Some(Spec::Process(ProcessFault { action: None })),
                ..request(&target.target(), kill(""), Duration::from_secs(1))
            },
            Code::InvalidArgument,
            "process.action",
        ),
        (
            request("cgroup:/no-such-cgroup", kill(""), Duration::from_secs(1)),
            Code::NotFound,
            "no-such-cgroup",
        ),
        (
            request(
                &empty.target(),
                Action::Restart(Restart::default()),
                Duration::from_secs(1),
            ),
            Code::FailedPrecondition,
            "has no process",
        ),
    ];
    for (req, code, needle) in cases {
        let message = daemon.refused(req, code).await;
        assert!(message.contains(needle), "{message}");
    }
    let faults = client
        .list(chaos_proto::v1::ListRequest {})
        .await
        .expect("list")
        .into_inner()
        .faults;
    assert!(
        faults.is_empty(),
        "a refused request left a fault: {faults:?}"
    );
}
