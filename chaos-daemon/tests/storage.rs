//! Storage faults against real file systems and disks: a tmpfs mounted only in the target's
//! own mount namespace is filled (the node's directory of the same path is untouched) and
//! freed, also by a restarted daemon after a crash; an I/O limit on a loop device slows the
//! target's direct writes and the previous limit comes back, also after a crash.
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chaos_proto::v1::{
    inject_request::Spec, storage_fault::Action, DiskFill, Fault, FaultState, InjectRequest,
    IoLimit, StorageFault,
};
use support::blockdev::LoopFs;
use support::procs::{spawn_in, Spawned, V1Cgroup};
use support::{enable_v2_controllers, require_root, skip, wait_until, Daemon, TestCgroup};
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
        ..InjectRequest::default()
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
    assert!(
        wait_until(DEADLINE, || fs.used_percent() < 5.0),
        "the space was not given back: {:.1} % used",
        fs.used_percent()
    );
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
        let message = daemon.refused(req, code).await;
        assert!(message.contains(needle), "{message}");
    }
    assert_eq!(fs.files_in_target(), 0);
}

/// Where a target's I/O limits live: its own `io.max` (v2 with the io controller), or a v1
/// blkio cgroup its processes join (hybrid hosts).
struct IoHome {
    v1: Option<V1Cgroup>,
    cgroup: TestCgroup,
}

impl IoHome {
    fn new() -> IoHome {
        enable_v2_controllers(&["io"]);
        let cgroup = TestCgroup::new();
        let v1 = if cgroup.path().join("io.max").exists() {
            None
        } else {
            Some(V1Cgroup::of("blkio").expect("neither io.max nor a v1 blkio hierarchy"))
        };
        IoHome { v1, cgroup }
    }

    fn dirs(&self) -> Vec<&Path> {
        let mut dirs = vec![self.cgroup.path()];
        if let Some(v1) = &self.v1 {
            dirs.push(v1.path());
        }
        dirs
    }

    /// The write limit in force for device `dev` (`MAJ:MIN`), in bytes/s.
    fn write_bps(&self, dev: &str) -> Option<u64> {
        match &self.v1 {
            None => std::fs::read_to_string(self.cgroup.path().join("io.max"))
                .ok()?
                .lines()
                .find(|l| l.starts_with(&format!("{dev} ")))?
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("wbps=")?.parse().ok()),
            Some(v1) => std::fs::read_to_string(v1.path().join("blkio.throttle.write_bps_device"))
                .ok()?
                .lines()
                .find(|l| l.starts_with(&format!("{dev} ")))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok(),
        }
    }
}

fn io_limit(target: &str, path: &Path, write_bps: u64, duration: Duration) -> InjectRequest {
    InjectRequest {
        spec: Some(Spec::Storage(StorageFault {
            action: Some(Action::IoLimit(IoLimit {
                path: path.display().to_string(),
                write_bytes_per_second: write_bps,
                ..IoLimit::default()
            })),
        })),
        ..request(target, path, 0.0, 0, duration)
    }
}

/// A target with one process, a disk, and the write limit the disk had for it before.
struct IoCase {
    disk: LoopFs,
    home: IoHome,
    _resident: Spawned,
    dev: String,
    before: Option<u64>,
}

impl IoCase {
    /// `None` (the test is skipped) when this machine has no loop device.
    fn new() -> Option<IoCase> {
        let disk = loop_fs()?;
        let home = IoHome::new();
        let resident = spawn_in(&home.dirs(), "exec sleep 1000");
        assert!(wait_until(DEADLINE, || home.cgroup.procs().len() == 1));
        let dev = disk.dev();
        let before = home.write_bps(&dev);
        Some(IoCase {
            disk,
            home,
            _resident: resident,
            dev,
            before,
        })
    }

    /// Injects a write limit on the disk that must be accepted.
    async fn limit(&self, daemon: &Daemon, write_bps: u64, duration: Duration) -> Fault {
        daemon
            .client()
            .await
            .inject(io_limit(
                &self.home.cgroup.target(),
                self.disk.mount(),
                write_bps,
                duration,
            ))
            .await
            .expect("inject io_limit")
            .into_inner()
    }
}

/// A loop-device file system, or the reason the test is skipped.
fn loop_fs() -> Option<LoopFs> {
    match LoopFs::new(64) {
        Ok(fs) => Some(fs),
        Err(reason) => {
            skip("a loop device", &reason);
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_limit_slows_the_targets_writes_and_is_restored() {
    if !require_root() {
        return;
    }
    let Some(case) = IoCase::new() else { return };
    let (disk, home, dev, before) = (&case.disk, &case.home, &case.dev, case.before);
    let daemon = Daemon::start(&[]).await;
    let fault = case.limit(&daemon, 1 << 20, Duration::from_secs(30)).await;
    assert_eq!(
        home.write_bps(dev),
        Some(1 << 20),
        "the limit is not in force"
    );
    // 2 MiB of direct writes by a process of the target take about 2 s at 1 MiB/s; the
    // throttle can only make them slower, so a lower bound holds on any machine.
    let file = disk.mount().join("written");
    let started = std::time::Instant::now();
    let mut writer = spawn_in(
        &home.dirs(),
        &format!(
            "exec dd if=/dev/zero of={} bs=256k count=8 oflag=direct",
            file.display()
        ),
    );
    assert!(
        wait_until(DEADLINE, || writer.exited()),
        "dd never finished"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1200),
        "2 MiB written in {took:?} under 1 MiB/s"
    );
    daemon
        .client()
        .await
        .cancel(chaos_proto::v1::CancelRequest { id: fault.id })
        .await
        .expect("cancel");
    assert_eq!(
        home.write_bps(dev),
        before,
        "the previous limit was not restored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_restores_an_io_limit_left_by_a_crash() {
    if !require_root() {
        return;
    }
    let Some(case) = IoCase::new() else { return };
    let (home, dev, before) = (&case.home, &case.dev, case.before);
    let mut daemon = Daemon::start(&[]).await;
    let fault = case
        .limit(&daemon, 4 << 20, Duration::from_millis(500))
        .await;
    assert_eq!(home.write_bps(dev), Some(4 << 20));
    daemon.kill9();
    assert!(wait_until(DEADLINE, || {
        chaos_daemon::clock::unix_now_ns() > fault.end_at_unix_ns
    }));
    assert_eq!(
        home.write_bps(dev),
        Some(4 << 20),
        "restored without a daemon"
    );
    daemon.restart().await;
    assert_eq!(
        home.write_bps(dev),
        before,
        "the restarted daemon left the limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_limit_on_a_file_system_without_a_disk_is_refused() {
    if !require_root() {
        return;
    }
    let fs = PrivateFs::new();
    let daemon = Daemon::start(&[]).await;
    let status = daemon
        .client()
        .await
        .inject(io_limit(
            &fs.cgroup.target(),
            &fs.path,
            1 << 20,
            Duration::from_secs(1),
        ))
        .await
        .expect_err("tmpfs has no block device");
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("without a block device"),
        "{}",
        status.message()
    );
}
