//! Storage errno faults on real kernels: a real process in the target cgroup gets the chosen
//! errno from real `open`/`read`/`write`/`fsync`/... calls, only under the fault's path (a
//! tmpfs the test mounts, with another mounted below it) and only for the chosen
//! operations, while the same calls from another cgroup succeed. Each test runs where the
//! daemon's `Capabilities` says the operations it needs have a route (BPF LSM, fmod_ret, or
//! kprobe + bpf_override_return), and checks the refusal where they have none.
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chaos_proto::v1::{
    inject_request::Spec, storage_fault::Action, CancelRequest, CapabilitiesRequest, ErrnoFault,
    Fault, FaultState, InjectRequest, StorageFault, StorageOperation,
};
use serde_json::Value;
use support::procs::{spawn_in, Spawned};
use support::{require_root, skip, spawn_probe_with, wait_until, Daemon, ProbeJob, TestCgroup};
use tonic::Code;

probe_entry!();

const DEADLINE: Duration = Duration::from_secs(60);

/// A tmpfs with `data/` (the fault's path, holding file `f` and another tmpfs at
/// `data/wal` holding `w`) and `other/` (holding `f`), unmounted on drop.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::Builder::new()
            .prefix("fl-errno-")
            .tempdir()
            .expect("tempdir");
        mount_tmpfs(dir.path());
        let tree = Tree { dir };
        for d in ["data", "other"] {
            std::fs::create_dir(tree.root().join(d)).expect("mkdir");
            std::fs::write(tree.root().join(d).join("f"), b"0123456789").expect("write");
        }
        std::fs::create_dir(tree.wal_dir()).expect("mkdir wal");
        mount_tmpfs(&tree.wal_dir());
        std::fs::write(tree.wal_dir().join("w"), b"0123456789").expect("write");
        tree
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn data(&self) -> PathBuf {
        self.root().join("data")
    }

    fn wal_dir(&self) -> PathBuf {
        self.data().join("wal")
    }

    fn data_file(&self) -> PathBuf {
        self.data().join("f")
    }

    fn wal_file(&self) -> PathBuf {
        self.wal_dir().join("w")
    }

    fn other_file(&self) -> PathBuf {
        self.root().join("other").join("f")
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        for dir in [self.wal_dir(), self.root().to_path_buf()] {
            let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn mount_tmpfs(dir: &Path) {
    nix::mount::mount(
        Some("fl-errno"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=8m"),
    )
    .expect("mount tmpfs");
}

fn request(
    target: &str,
    errno: &str,
    ops: &[StorageOperation],
    path: &Path,
    percent: f64,
    duration: Duration,
) -> InjectRequest {
    InjectRequest {
        target: target.to_string(),
        start_at_unix_ns: 0,
        duration: Some(duration.try_into().expect("duration")),
        spec: Some(Spec::Storage(StorageFault {
            action: Some(Action::Errno(ErrnoFault {
                errno: errno.into(),
                operations: ops.iter().map(|o| *o as i32).collect(),
                path: path.display().to_string(),
                percent,
                max_failures: 0,
            })),
        })),
        ..InjectRequest::default()
    }
}

/// A target cgroup with a process living in it: the daemon resolves the fault's path in
/// the mount namespace of the target's oldest process.
fn target() -> (TestCgroup, Spawned) {
    let cgroup = TestCgroup::new();
    let process = spawn_in(&[cgroup.path()], "exec sleep 1000");
    (cgroup, process)
}

/// `count` calls of `op` on `path` by a fresh process in `cgroup`: (ok, errors by name).
fn calls(cgroup: &TestCgroup, op: &str, path: &Path, count: u64) -> (u64, Value) {
    let job = ProbeJob::FileCalls {
        op: op.into(),
        path: path.to_path_buf(),
        count,
    };
    let result = spawn_probe_with(job, None, Some(cgroup)).wait();
    assert!(
        result.get("setup_error").is_none(),
        "{op} {}: {result}",
        path.display()
    );
    (result["ok"].as_u64().unwrap_or(0), result["errors"].clone())
}

/// Starts a daemon and asks `Capabilities` for a route for each operation of `ops`: the
/// first one without, with the reason, if any.
async fn daemon_for(ops: &[&str]) -> (Daemon, Result<(), (String, String)>) {
    let daemon = Daemon::start(&[]).await;
    let missing = unroutable(&daemon, ops).await.into_iter().next();
    (daemon, missing.map_or(Ok(()), Err))
}

/// The operations of `ops` this daemon's kernel cannot fail, with the reason.
async fn unroutable(daemon: &Daemon, ops: &[&str]) -> Vec<(String, String)> {
    let caps = daemon
        .client()
        .await
        .capabilities(CapabilitiesRequest {})
        .await
        .expect("capabilities")
        .into_inner();
    let mut missing = Vec::new();
    for op in ops {
        let kind = format!("storage.errno.{op}");
        match caps.faults.iter().find(|f| f.kind == kind) {
            Some(f) if f.supported => {}
            Some(f) => missing.push((op.to_string(), format!("{kind}: {}", f.detail))),
            None => panic!("Capabilities has no {kind}: {caps:?}"),
        }
    }
    missing
}

/// Starts a daemon and injects `req`, which needs the operations `ops`; where one of them
/// has no route here, checks that `req` is refused, reports the skip and returns `None`.
async fn armed(ops: &[&str], req: InjectRequest) -> Option<(Daemon, Fault)> {
    let (daemon, routed) = daemon_for(ops).await;
    if let Err((op, why)) = routed {
        assert_refused(&daemon, req, &op).await;
        skip(&format!("storage.errno.{op}"), &why);
        return None;
    }
    let fault = daemon
        .client()
        .await
        .inject(req)
        .await
        .expect("inject")
        .into_inner();
    Some((daemon, fault))
}

async fn cancel(daemon: &Daemon, id: &str) {
    daemon
        .client()
        .await
        .cancel(CancelRequest { id: id.into() })
        .await
        .expect("cancel");
}

/// Inject must be refused with FAILED_PRECONDITION naming the operation, and leave no
/// storage program attached.
async fn assert_refused(daemon: &Daemon, req: InjectRequest, op: &str) {
    let message = daemon.refused(req, Code::FailedPrecondition).await;
    assert!(message.contains(op), "{message}");
    assert_eq!(storage_links(daemon), Vec::<String>::new());
}

/// Pinned storage program links of a daemon.
fn storage_links(daemon: &Daemon) -> Vec<String> {
    std::fs::read_dir(daemon.bpffs_dir().join("links"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("storage_"))
                .collect()
        })
        .unwrap_or_default()
}

fn count(errors: &Value, name: &str) -> u64 {
    errors[name].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_fail_only_for_the_target_under_the_path() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let (target, _process) = target();
    let bystander = TestCgroup::new();
    let ops = [StorageOperation::Read, StorageOperation::Write];
    let req = request(&target.target(), "EIO", &ops, &tree.data(), 0.0, DEADLINE);
    let Some((daemon, fault)) = armed(&["read", "write"], req).await else {
        return;
    };
    let n = 50;
    for file in [tree.data_file(), tree.wal_file()] {
        for op in ["read", "write"] {
            let (ok, errors) = calls(&target, op, &file, n);
            assert_eq!(
                (ok, count(&errors, "EIO")),
                (0, n),
                "{op} {}",
                file.display()
            );
        }
        // Not a chosen operation.
        assert_eq!(calls(&target, "fsync", &file, n).0, n);
        // Another cgroup, same file.
        assert_eq!(calls(&bystander, "write", &file, n).0, n);
    }
    // The target, outside the path.
    assert_eq!(calls(&target, "write", &tree.other_file(), n).0, n);
    let got = daemon.get_blocking(&fault.id).expect("get");
    let counters = got.counters.expect("counters");
    assert_eq!(counters.affected, 4 * n, "{counters:?}");
    assert!(counters.matched >= 4 * n && counters.seen >= counters.matched);
    assert!(got.first_affected_unix_ns >= fault.start_at_unix_ns);
    assert!(got.last_affected_unix_ns >= got.first_affected_unix_ns);
    let backends = got.outcome.map(|o| o.backends).unwrap_or_default();
    assert!(backends.contains("read, write"), "{backends}");
    cancel(&daemon, &fault.id).await;
    assert_eq!(calls(&target, "write", &tree.data_file(), n).0, n);
    assert_eq!(storage_links(&daemon), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_operations_fail_with_the_chosen_errno() {
    if !require_root() {
        return;
    }
    let all = [
        ("open", StorageOperation::Open),
        ("create", StorageOperation::Create),
        ("mkdir", StorageOperation::Mkdir),
        ("unlink", StorageOperation::Unlink),
        ("rename", StorageOperation::Rename),
        ("truncate", StorageOperation::Truncate),
    ];
    let tree = Tree::new();
    let (target, _process) = target();
    let daemon = Daemon::start(&[]).await;
    let names: Vec<&str> = all.iter().map(|(name, _)| *name).collect();
    let missing = unroutable(&daemon, &names).await;
    // Each operation this kernel cannot fail is refused on its own, naming it.
    for (op, _) in &missing {
        let (_, value) = all.iter().find(|(name, _)| name == op).expect("known op");
        let req = request(
            &target.target(),
            "ENOSPC",
            &[*value],
            &tree.data(),
            0.0,
            DEADLINE,
        );
        assert_refused(&daemon, req, op).await;
    }
    let routed: Vec<_> = all
        .iter()
        .filter(|(name, _)| !missing.iter().any(|(op, _)| op == name))
        .collect();
    if let (true, Some((op, why))) = (routed.is_empty(), missing.first()) {
        skip(&format!("storage.errno.{op}"), why);
        return;
    }
    let ops: Vec<StorageOperation> = routed.iter().map(|(_, op)| *op).collect();
    let req = request(
        &target.target(),
        "ENOSPC",
        &ops,
        &tree.data(),
        0.0,
        DEADLINE,
    );
    let fault = daemon
        .client()
        .await
        .inject(req)
        .await
        .expect("inject")
        .into_inner();
    let n = 20;
    for (op, _) in routed {
        let (ok, errors) = calls(&target, op, &tree.data_file(), n);
        assert_eq!((ok, count(&errors, "ENOSPC")), (0, n), "{op}: {errors}");
        let (ok, errors) = calls(&target, op, &tree.other_file(), n);
        assert_eq!(ok, n, "{op} outside the path: {errors}");
    }
    cancel(&daemon, &fault.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_is_honoured_over_thousands_of_calls() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let (target, _process) = target();
    let req = request(
        &target.target(),
        "5",
        &[StorageOperation::Read],
        &tree.data(),
        30.0,
        DEADLINE * 2,
    );
    let Some((daemon, fault)) = armed(&["read"], req).await else {
        return;
    };
    let n = 4000;
    let (ok, errors) = calls(&target, "read", &tree.data_file(), n);
    let failed = count(&errors, "EIO");
    assert_eq!(ok + failed, n, "{errors}");
    // Binomial(4000, 0.3): mean 1200, sd 29; five sd either side.
    assert!((1055..=1345).contains(&failed), "{failed} of {n} failed");
    let counters = daemon
        .get_blocking(&fault.id)
        .and_then(|f| f.counters)
        .expect("counters");
    assert_eq!((counters.matched, counters.affected), (n, failed));
    cancel(&daemon, &fault.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_failures_caps_the_failures() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let (target, _process) = target();
    let mut req = request(
        &target.target(),
        "EROFS",
        &[StorageOperation::Write],
        &tree.data(),
        0.0,
        DEADLINE,
    );
    if let Some(Spec::Storage(StorageFault {
        action: Some(Action::Errno(errno)),
    })) = req.spec.as_mut()
    {
        errno.max_failures = 3;
    }
    let Some((daemon, fault)) = armed(&["write"], req).await else {
        return;
    };
    let (ok, errors) = calls(&target, "write", &tree.data_file(), 50);
    assert_eq!((ok, count(&errors, "EROFS")), (47, 3), "{errors}");
    let counters = daemon
        .get_blocking(&fault.id)
        .and_then(|f| f.counters)
        .expect("counters");
    assert_eq!((counters.matched, counters.affected), (50, 3));
    cancel(&daemon, &fault.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_fails_through_the_syscall_probe() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let (target, _process) = target();
    let bystander = TestCgroup::new();
    let ops = [
        StorageOperation::Fsync,
        StorageOperation::Fdatasync,
        StorageOperation::SyncFileRange,
    ];
    let req = request(&target.target(), "EIO", &ops, &tree.data(), 0.0, DEADLINE);
    let Some((daemon, fault)) = armed(&["fsync", "fdatasync", "sync_file_range"], req).await else {
        return;
    };
    let n = 20;
    for op in ["fsync", "fdatasync", "sync_file_range"] {
        let (ok, errors) = calls(&target, op, &tree.data_file(), n);
        assert_eq!((ok, count(&errors, "EIO")), (0, n), "{op}: {errors}");
        assert_eq!(
            calls(&target, op, &tree.other_file(), n).0,
            n,
            "{op} outside"
        );
        assert_eq!(
            calls(&bystander, op, &tree.data_file(), n).0,
            n,
            "{op} bystander"
        );
    }
    assert_eq!(calls(&target, "write", &tree.data_file(), n).0, n);
    let backends = daemon
        .get_blocking(&fault.id)
        .and_then(|f| f.outcome)
        .map(|o| o.backends)
        .unwrap_or_default();
    assert!(backends.contains("kprobe_override"), "{backends}");
    cancel(&daemon, &fault.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_closes_in_the_kernel_after_kill9() {
    if !require_root() {
        return;
    }
    let tree = Tree::new();
    let (target, _process) = target();
    let window = Duration::from_secs(8);
    let req = request(
        &target.target(),
        "EIO",
        &[StorageOperation::Open],
        &tree.data(),
        0.0,
        window,
    );
    let Some((mut daemon, fault)) = armed(&["open"], req).await else {
        return;
    };
    daemon.kill9();
    // Still in force with no daemon: the programs and maps are pinned.
    let (ok, errors) = calls(&target, "open", &tree.data_file(), 1);
    let now = chaos_daemon::clock::unix_now_ns();
    if now < fault.end_at_unix_ns {
        assert_eq!((ok, count(&errors, "EIO")), (0, 1), "{errors}");
    }
    assert!(wait_until(DEADLINE, || {
        chaos_daemon::clock::unix_now_ns() > fault.end_at_unix_ns
    }));
    // Ended by the kernel's clock, with no daemon running.
    assert_eq!(calls(&target, "open", &tree.data_file(), 10).0, 10);
    daemon.restart().await;
    let done = daemon.get_blocking(&fault.id).expect("get after restart");
    assert_eq!(done.state, FaultState::Completed as i32);
    assert_eq!(
        storage_links(&daemon),
        Vec::<String>::new(),
        "{}",
        daemon.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_errno_input_names_the_field() {
    if !require_root() {
        return;
    }
    let (target, _process) = target();
    let daemon = Daemon::start(&[]).await;
    let t = target.target();
    let path = Path::new("/tmp");
    let second = Duration::from_secs(1);
    let open = [StorageOperation::Open];
    let cases = [
        (
            request(&t, "EWHAT", &open, path, 0.0, second),
            "storage.errno.errno",
        ),
        (
            request(&t, "0", &open, path, 0.0, second),
            "storage.errno.errno",
        ),
        (
            request(&t, "EIO", &[], path, 0.0, second),
            "storage.errno.operations",
        ),
        (
            request(
                &t,
                "EIO",
                &[StorageOperation::Unspecified],
                path,
                0.0,
                second,
            ),
            "storage.errno.operations[0]",
        ),
        (
            request(&t, "EIO", &open, Path::new("relative"), 0.0, second),
            "storage.errno.path",
        ),
        (
            request(&t, "EIO", &open, path, 100.5, second),
            "storage.errno.percent",
        ),
        (
            request(&t, "EIO", &open, path, 0.001, second),
            "storage.errno.percent",
        ),
    ];
    for (req, field) in cases {
        let message = daemon.refused(req, Code::InvalidArgument).await;
        assert!(message.starts_with(field), "{field}: {message}");
    }
    assert_eq!(storage_links(&daemon), Vec::<String>::new());
}
