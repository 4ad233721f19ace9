//! Disk fill against real file systems: a tmpfs mounted only in the target's own mount
//! namespace is filled (the node's directory of the same path is untouched), freed at the
//! end, and freed by a restarted daemon after a crash.
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chaos_proto::v1::{
    inject_request::Spec, storage_fault::Action, DiskFill, Fault, FaultState, InjectRequest,
    StorageFault,
};
use support::procs::{spawn_in, Spawned};
use support::{require_root, wait_until, Daemon, TestCgroup};
use tonic::Code;

const DEADLINE: Duration = Duration::from_secs(20);

fn request(
    target: &str,
    path: &Path,
    percent: f64,
    bytes: u64,
    duration: Duration,
) -> InjectRequest {
    InjectRequest {
        target: target.to_string(),
        start_at_unix_ns: 0,
        duration: Some(duration.try_into().expect("duration")),
        spec: Some(Spec::Storage(StorageFault {
            action: Some(Action::DiskFill(DiskFill {
                path: path.display().to_string(),
                percent,
                bytes,
            })),
        })),
    }
}

/// A target whose only process lives in a mount namespace of its own, with a 32 MiB tmpfs
/// at `dir` that the node does not see.
struct PrivateFs {
    _dir: tempfile::TempDir,
    path: PathBuf,
    process: Spawned,
    cgroup: TestCgroup,
}

impl PrivateFs {
    fn new() -> PrivateFs {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        let cgroup = TestCgroup::new();
        let process = spawn_in(
            &[cgroup.path()],
            &format!(
                "exec unshare -m --propagation private sh -c \
                 'mount -t tmpfs -o size=32m fl-fill {} && exec sleep 1000'",
                path.display()
            ),
        );
        let fs = PrivateFs {
            _dir: dir,
            path,
            process,
            cgroup,
        };
        assert!(
            wait_until(DEADLINE, || fs.in_target_is_tmpfs()),
            "the target's tmpfs never appeared"
        );
        fs
    }

    /// The path as the target sees it, reached from the node.
    fn seen_by_target(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.process.id()))
            .join(self.path.strip_prefix("/").expect("absolute"))
    }

    fn in_target_is_tmpfs(&self) -> bool {
        nix::sys::statfs::statfs(&self.seen_by_target())
            .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
    }

    /// Percent used of the target's file system at the path.
    fn used_percent(&self) -> f64 {
        let fs = nix::sys::statvfs::statvfs(&self.seen_by_target()).expect("statvfs");
        let total = fs.blocks() as f64;
        (total - fs.blocks_free() as f64) * 100.0 / total
    }

    /// Injects a fill of the target's path that must be accepted.
    async fn fill(&self, daemon: &Daemon, percent: f64, bytes: u64, duration: Duration) -> Fault {
        daemon
            .client()
            .await
            .inject(request(
                &self.cgroup.target(),
                &self.path,
                percent,
                bytes,
                duration,
            ))
            .await
            .expect("inject fill")
            .into_inner()
    }

    fn files_in_target(&self) -> usize {
        std::fs::read_dir(self.seen_by_target())
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_fill_fills_the_targets_own_file_system_and_frees_it() {
    if !require_root() {
        return;
    }
    let fs = PrivateFs::new();
    let daemon = Daemon::start(&[]).await;
    assert!(fs.used_percent() < 5.0);
    let fault = fs.fill(&daemon, 90.0, 0, Duration::from_secs(2)).await;
    let used = fs.used_percent();
    assert!(
        (89.0..=91.0).contains(&used),
        "the target's file system is {used:.1} % used"
    );
    assert_eq!(fs.files_in_target(), 1);
    // The node's directory of the same path is another file system: untouched.
    assert_eq!(std::fs::read_dir(&fs.path).map(|d| d.count()).ok(), Some(0));
    let outcome = fault.outcome.expect("outcome");
    assert!(outcome.filled_bytes >= 28 << 20, "{outcome:?}");
    assert!(
        wait_until(DEADLINE, || fs.files_in_target() == 0),
        "the fill file outlived its window"
    );
    assert!(fs.used_percent() < 5.0);
    let done = daemon.get_blocking(&fault.id).expect("get");
    assert_eq!(done.state, FaultState::Completed as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_removes_a_fill_left_by_a_crash() {
    if !require_root() {
        return;
    }
    let fs = PrivateFs::new();
    let mut daemon = Daemon::start(&[]).await;
    let fault = fs
        .fill(&daemon, 0.0, 8 << 20, Duration::from_millis(500))
        .await;
    assert_eq!(fs.files_in_target(), 1);
    daemon.kill9();
    assert!(wait_until(DEADLINE, || {
        chaos_daemon::clock::unix_now_ns() > fault.end_at_unix_ns
    }));
    assert_eq!(
        fs.files_in_target(),
        1,
        "nothing but the daemon removes the file"
    );
    daemon.restart().await;
    assert_eq!(
        fs.files_in_target(),
        0,
        "the restarted daemon left the fill file\n{}",
        daemon.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_fill_input_names_the_field() {
    if !require_root() {
        return;
    }
    let fs = PrivateFs::new();
    let empty = TestCgroup::new();
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let second = Duration::from_secs(1);
    let target = fs.cgroup.target();
    let cases = [
        (
            request(&target, Path::new("relative"), 50.0, 0, second),
            Code::InvalidArgument,
            "storage.disk_fill.path",
        ),
        (
            request(&target, &fs.path, 150.0, 0, second),
            Code::InvalidArgument,
            "storage.disk_fill.percent",
        ),
        (
            request(&target, &fs.path, 50.0, 10, second),
            Code::InvalidArgument,
            "storage.disk_fill.bytes",
        ),
        (
            request(&target, &fs.path.join("not-there"), 50.0, 0, second),
            Code::InvalidArgument,
            "storage.disk_fill.path",
        ),
        (
            request(&empty.target(), &fs.path, 50.0, 0, second),
            Code::FailedPrecondition,
            "process of the target",
        ),
    ];
    for (req, code, needle) in cases {
        let status = client.inject(req).await.expect_err("refused");
        assert_eq!(status.code(), code, "{}", status.message());
        assert!(status.message().contains(needle), "{}", status.message());
    }
    assert_eq!(fs.files_in_target(), 0);
}
