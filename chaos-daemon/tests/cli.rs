//! End-to-end tests of the `chaosctl` binary: help, argument errors, and every command
//! against an in-process fake `FaultService` on a Unix socket (no real daemon needed).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use chaos_proto::v1::fault_service_server::{FaultService, FaultServiceServer};
use chaos_proto::v1::{
    fault, inject_request, network_fault, storage_fault, CancelRequest, CapabilitiesRequest,
    CapabilitiesResponse, Counters, DiskFill, ErrnoFault, Fault, FaultEvent, FaultState,
    FaultSupport, Feature, GetRequest, InjectRequest, IoLimit, ListRequest, ListResponse, Outcome,
    StorageFault, StorageOperation, WatchRequest,
};
use chaos_proto::v1::{AbortAllRequest, AbortAllResponse, RenewRequest};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

fn chaosctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chaosctl"))
        .args(args)
        .env_remove("FAULTLINE_SOCKET")
        .output()
        .expect("run chaosctl")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ---------------------------------------------------------------- help

/// Every command's `--help` exits 0 and mentions the given words.
#[test]
fn help_of_every_command_teaches_its_flags() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--help"],
            &[
                "--socket",
                "FAULTLINE_SOCKET",
                "/run/faultline/faultline.sock",
                "--output",
                "inject",
                "list",
                "get",
                "cancel",
                "watch",
                "capabilities",
                "EXAMPLES",
                "EXIT CODES",
                "INVALID_ARGUMENT",
                "NOT_FOUND",
                "FAILED_PRECONDITION",
            ],
        ),
        (
            &["inject", "--help"],
            &[
                "network",
                "storage",
                "io-limit",
                "disk-fill",
                "EXAMPLES",
                "--socket",
            ],
        ),
        (
            &["inject", "storage", "--help"],
            &[
                "--target",
                "--duration",
                "--errno",
                "ENOSPC",
                "--ops",
                "fsync",
                "sync_file_range",
                "all",
                "--path",
                "--percent",
                "[default: 100]",
                "--max-failures",
                "EXAMPLES",
                "--errno EIO --ops fsync --path /var/lib/postgresql/data --duration 30s",
                "--percent 1",
                "pg_wal",
                "BPF LSM",
                "fmod_ret",
                "bpf_override_return",
                "chaosctl capabilities",
                "FAILED_PRECONDITION",
                "mounted below it",
                "nothing is paused",
            ],
        ),
        (
            &["inject", "io-limit", "--help"],
            &[
                "--path",
                "--read-bps",
                "--write-bps",
                "--read-iops",
                "--write-iops",
                "1MiB/s",
                "io.max",
                "EXAMPLES",
                "chaosctl inject io-limit --target",
            ],
        ),
        (
            &["inject", "disk-fill", "--help"],
            &[
                "--path",
                "--fill",
                "95%",
                "2GiB",
                "EXAMPLES",
                "chaosctl inject disk-fill --target",
            ],
        ),
        (
            &["inject", "network", "--help"],
            &[
                "--target",
                "cgroup:",
                "pid:",
                "container:",
                "--duration",
                "--loss",
                "30%",
                "--partition",
                "--direction",
                "egress",
                "--protocol",
                "icmp",
                "--port",
                "8000-8080",
                "--cidr",
                "--start-at",
                "+5s",
                "RFC 3339",
                "EXAMPLES",
                "chaosctl inject network --target cgroup:/system.slice/postgresql.service --loss 30 --duration 60s",
                "--partition --cidr 10.0.0.0/8 --direction egress",
            ],
        ),
        (&["list", "--help"], &["EXAMPLES", "chaosctl list", "--output"]),
        (&["get", "--help"], &["EXAMPLES", "<ID>", "--output"]),
        (&["cancel", "--help"], &["EXAMPLES", "<ID>", "--socket"]),
        (&["watch", "--help"], &["EXAMPLES", "[ID]", "Ctrl-C"]),
        (&["capabilities", "--help"], &["EXAMPLES", "chaosctl capabilities"]),
    ];
    for (args, words) in cases {
        let output = chaosctl(args);
        // Clap wraps help to the terminal; compare with line breaks folded away.
        let text = stdout(&output)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(output.status.success(), "{args:?}: {output:?}");
        for word in *words {
            assert!(text.contains(word), "{args:?} help lacks {word:?}:\n{text}");
        }
    }
}

#[test]
fn short_help_and_version_work() {
    for args in [
        &["-h"][..],
        &["inject", "network", "-h"],
        &["inject", "storage", "-h"],
        &["--version"],
    ] {
        let output = chaosctl(args);
        assert!(output.status.success(), "{args:?}: {output:?}");
        assert!(!stdout(&output).is_empty());
    }
}

// ---------------------------------------------------------------- argument errors

/// A usage error: exit 2, exactly one line on stderr, naming `flag`.
fn assert_usage_error(args: &[&str], flag: &str) {
    let output = chaosctl(args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line:\n{err}");
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    assert!(err.contains(flag), "{args:?}: does not name {flag}: {err}");
    assert!(stdout(&output).is_empty());
}

const NETWORK: &[&str] = &[
    "inject",
    "network",
    "--target",
    "pid:1",
    "--duration",
    "10s",
];

fn network<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    NETWORK.iter().chain(extra).copied().collect()
}

#[test]
fn bad_flags_fail_with_one_readable_line() {
    assert_usage_error(&["list", "--bogus"], "--bogus");
    assert_usage_error(&["frobnicate"], "frobnicate");
    assert_usage_error(&["-o", "yaml", "list"], "--output");
    assert_usage_error(&network(&["--loss", "lots"]), "--loss");
    assert_usage_error(&network(&["--loss", "30", "--port", "80-"]), "--port");
    assert_usage_error(&network(&["--loss", "30", "--port", "http"]), "--port");
    assert_usage_error(
        &network(&["--loss", "30", "--start-at", "soon"]),
        "--start-at",
    );
    assert_usage_error(
        &network(&["--loss", "30", "--direction", "up"]),
        "--direction",
    );
    assert_usage_error(
        &network(&["--loss", "30", "--protocol", "sctp"]),
        "--protocol",
    );
    assert_usage_error(&network(&["--loss", "30", "--partition"]), "--partition");
    assert_usage_error(&network(&[]), "--loss");
    assert_usage_error(
        &["inject", "network", "--loss", "30", "--duration", "10s"],
        "--target",
    );
    assert_usage_error(
        &[
            "inject",
            "network",
            "--target",
            "pid:1",
            "--duration",
            "10",
            "--loss",
            "3",
        ],
        "--duration",
    );
    assert_usage_error(&["get"], "<ID>");
}

const STORAGE: &[&str] = &[
    "inject",
    "storage",
    "--target",
    "pid:1",
    "--duration",
    "10s",
];

/// `inject storage` with `extra`, and `--errno EIO`, `--ops read`, `--path /data` for
/// those of the three it does not give.
fn storage<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = STORAGE.to_vec();
    for (flag, value) in [("--errno", "EIO"), ("--ops", "read"), ("--path", "/data")] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    args
}

#[test]
fn storage_flags_are_checked_before_sending() {
    assert_usage_error(&storage(&["--errno", "EFOO"]), "--errno");
    assert_usage_error(&storage(&["--errno", "0"]), "--errno");
    assert_usage_error(&storage(&["--errno", "4096"]), "--errno");
    assert_usage_error(&storage(&["--ops", "chmod"]), "--ops");
    assert_usage_error(&storage(&["--ops", "read,"]), "--ops");
    assert_usage_error(&storage(&["--percent", "0"]), "--percent");
    assert_usage_error(&storage(&["--percent", "-5"]), "--percent");
    assert_usage_error(&storage(&["--percent", "100.01"]), "--percent");
    assert_usage_error(&storage(&["--percent", "NaN"]), "--percent");
    assert_usage_error(&storage(&["--max-failures", "0"]), "--max-failures");
    // The disk-fill and I/O-limit flags moved to their own subcommands.
    assert_usage_error(&storage(&["--fill", "95%"]), "--fill");
    assert_usage_error(&storage(&["--write-bps", "1MiB/s"]), "--write-bps");
}

#[test]
fn unknown_errno_and_operation_errors_list_what_is_accepted() {
    let err = stderr(&chaosctl(&storage(&["--errno", "EFOO"])));
    for name in [
        "EFOO",
        "EIO",
        "ENOSPC",
        "EACCES",
        "EROFS",
        "EDQUOT",
        "ETIMEDOUT",
        "[1, 4095]",
    ] {
        assert!(err.contains(name), "lacks {name}: {err}");
    }
    let err = stderr(&chaosctl(&storage(&["--ops", "chmod"])));
    for name in [
        "chmod",
        "open",
        "fdatasync",
        "sync_file_range",
        "truncate",
        "all",
    ] {
        assert!(err.contains(name), "lacks {name}: {err}");
    }
}

#[test]
fn storage_subcommands_name_their_missing_flags() {
    let without = |flag: &str| {
        let mut args = storage(&[]);
        let at = args.iter().position(|a| *a == flag).expect("flag present");
        args.drain(at..at + 2);
        args
    };
    assert_usage_error(&without("--errno"), "--errno");
    assert_usage_error(&without("--ops"), "--ops");
    assert_usage_error(&without("--path"), "--path");
    assert_usage_error(&without("--target"), "--target");
    assert_usage_error(&without("--duration"), "--duration");

    let io_limit = [
        "inject",
        "io-limit",
        "--target",
        "pid:1",
        "--duration",
        "10s",
    ];
    let with = |base: &[&'static str], extra: &[&'static str]| [base, extra].concat();
    assert_usage_error(&with(&io_limit, &["--path", "/data"]), "--read-bps");
    assert_usage_error(&with(&io_limit, &["--write-bps", "1MiB/s"]), "--path");
    assert_usage_error(
        &with(&io_limit, &["--path", "/data", "--read-bps", "fast"]),
        "--read-bps",
    );

    let disk_fill = [
        "inject",
        "disk-fill",
        "--target",
        "pid:1",
        "--duration",
        "10s",
    ];
    assert_usage_error(&with(&disk_fill, &["--path", "/data"]), "--fill");
    assert_usage_error(&with(&disk_fill, &["--fill", "95%"]), "--path");
    assert_usage_error(
        &with(&disk_fill, &["--path", "/data", "--fill", "lots"]),
        "--fill",
    );
    let output = chaosctl(&with(&disk_fill, &["--path", "/data", "--fill", "lots"]));
    assert!(
        stderr(&output).contains("see 'chaosctl inject disk-fill --help'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn usage_error_points_at_the_subcommand_help() {
    let output = chaosctl(&network(&["--loss", "lots"]));
    assert!(
        stderr(&output).contains("see 'chaosctl inject network --help'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn missing_daemon_is_one_line_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("missing.sock");
    let output = chaosctl(&["--socket", socket.to_str().expect("utf-8"), "list"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "error: cannot reach the daemon at {}: No such file or directory (os error 2) \
             (is chaos-daemon running? --socket sets the path)\n",
            socket.display()
        )
    );
}

#[test]
fn socket_comes_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("env.sock");
    let output = Command::new(env!("CARGO_BIN_EXE_chaosctl"))
        .arg("capabilities")
        .env("FAULTLINE_SOCKET", &socket)
        .output()
        .expect("run chaosctl");
    assert!(stderr(&output).contains(&socket.display().to_string()));
}

// ---------------------------------------------------------------- fake daemon

/// Answers like the daemon would, and remembers the last `Inject` request.
#[derive(Default, Clone)]
struct FakeDaemon {
    last_inject: Arc<Mutex<Option<InjectRequest>>>,
}

const NOW_NS: u64 = 1_893_456_000_000_000_000; // 2030-01-01T00:00:00Z

fn fault(id: &str, state: FaultState) -> Fault {
    Fault {
        id: id.into(),
        target: "cgroup:/system.slice/postgresql.service".into(),
        cgroup_ids: vec![42],
        spec: Some(fault::Spec::Network(chaos_proto::v1::NetworkFault {
            action: Some(network_fault::Action::Loss(chaos_proto::v1::Loss {
                percent: 30.0,
            })),
            ..Default::default()
        })),
        start_at_unix_ns: NOW_NS,
        end_at_unix_ns: NOW_NS + 60_000_000_000,
        state: state as i32,
        counters: Some(Counters {
            seen: 1000,
            matched: 900,
            affected: 270,
            ..Counters::default()
        }),
        ..Default::default()
    }
}

/// An active errno fault failing PostgreSQL's writes and fsyncs, with its kernel routes.
fn errno_fault() -> Fault {
    Fault {
        id: "f-errno".into(),
        spec: Some(fault::Spec::Storage(StorageFault {
            action: Some(storage_fault::Action::Errno(ErrnoFault {
                errno: "EIO".into(),
                operations: vec![
                    StorageOperation::Write as i32,
                    StorageOperation::Fsync as i32,
                ],
                path: "/var/lib/postgresql/data".into(),
                percent: 1.0,
                max_failures: 0,
            })),
        })),
        outcome: Some(Outcome {
            backends: "write: bpf_lsm; fsync: kprobe_override".into(),
            ..Outcome::default()
        }),
        ..fault("f-errno", FaultState::Active)
    }
}

#[tonic::async_trait]
impl FaultService for FakeDaemon {
    async fn inject(&self, request: Request<InjectRequest>) -> Result<Response<Fault>, Status> {
        let request = request.into_inner();
        if let Ok(mut last) = self.last_inject.lock() {
            *last = Some(request.clone());
        }
        let spec = match request.spec {
            Some(inject_request::Spec::Network(network)) => {
                if let Some(network_fault::Action::Loss(loss)) = &network.action {
                    if loss.percent > 100.0 {
                        return Err(Status::invalid_argument(format!(
                            "loss.percent: must be in (0, 100], got {}",
                            loss.percent
                        )));
                    }
                }
                fault::Spec::Network(network)
            }
            Some(inject_request::Spec::Storage(storage)) => fault::Spec::Storage(storage),
            _ => return Err(Status::invalid_argument("spec: required")),
        };
        let duration = request.duration.unwrap_or_default();
        let start = request.start_at_unix_ns;
        Ok(Response::new(Fault {
            id: "f-new".into(),
            target: request.target,
            spec: Some(spec),
            start_at_unix_ns: start,
            end_at_unix_ns: start + duration.seconds as u64 * 1_000_000_000,
            state: FaultState::Pending as i32,
            ..Default::default()
        }))
    }

    async fn list(&self, _: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        Ok(Response::new(ListResponse {
            faults: vec![
                fault("f-1", FaultState::Active),
                fault("f-2", FaultState::Completed),
            ],
        }))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<Fault>, Status> {
        match request.into_inner().id.as_str() {
            "f-1" => Ok(Response::new(fault("f-1", FaultState::Active))),
            "f-errno" => Ok(Response::new(errno_fault())),
            id => Err(Status::not_found(format!("fault {id}: no such fault"))),
        }
    }

    async fn cancel(&self, request: Request<CancelRequest>) -> Result<Response<Fault>, Status> {
        match request.into_inner().id.as_str() {
            "f-1" => Ok(Response::new(fault("f-1", FaultState::Cancelled))),
            _ => Err(Status::failed_precondition("made up for the test")),
        }
    }

    type WatchStream = tokio_stream::Iter<std::vec::IntoIter<Result<FaultEvent, Status>>>;

    async fn watch(&self, _: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let events = [
            FaultState::Pending,
            FaultState::Active,
            FaultState::Completed,
        ]
        .map(|state| {
            Ok(FaultEvent {
                fault: Some(fault("f-1", state)),
            })
        });
        Ok(Response::new(tokio_stream::iter(events.to_vec())))
    }

    async fn renew(&self, request: Request<RenewRequest>) -> Result<Response<Fault>, Status> {
        match request.into_inner().id.as_str() {
            "f-1" => Ok(Response::new(Fault {
                lease_expires_unix_ns: 1_700_000_030_000_000_000,
                ..fault("f-1", FaultState::Active)
            })),
            _ => Err(Status::failed_precondition(
                "fault f-2 was injected without a lease",
            )),
        }
    }

    async fn abort_all(
        &self,
        _: Request<AbortAllRequest>,
    ) -> Result<Response<AbortAllResponse>, Status> {
        Ok(Response::new(AbortAllResponse {
            faults: vec![fault("f-1", FaultState::Cancelled)],
        }))
    }

    async fn capabilities(
        &self,
        _: Request<CapabilitiesRequest>,
    ) -> Result<Response<CapabilitiesResponse>, Status> {
        Ok(Response::new(CapabilitiesResponse {
            kernel_release: "6.8.0-test".into(),
            features: vec![Feature {
                name: "cgroup_skb".into(),
                available: true,
                detail: "program loaded".into(),
            }],
            faults: vec![FaultSupport {
                kind: "network.partition".into(),
                supported: false,
                detail: "needs cgroup_skb".into(),
            }],
        }))
    }
}

/// A fake daemon serving on a socket in a temporary directory while it lives.
struct Daemon {
    socket: PathBuf,
    fake: FakeDaemon,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

impl Daemon {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("faultline.sock");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let fake = FakeDaemon::default();
        let listener = runtime
            .block_on(async { tokio::net::UnixListener::bind(&socket) })
            .expect("bind");
        let service = FaultServiceServer::new(fake.clone());
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
        Self {
            socket,
            fake,
            _dir: dir,
            _runtime: runtime,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let socket: &Path = &self.socket;
        let mut all = vec!["--socket", socket.to_str().expect("utf-8")];
        all.extend_from_slice(args);
        chaosctl(&all)
    }

    fn last_inject(&self) -> Option<InjectRequest> {
        self.fake.last_inject.lock().ok().and_then(|l| l.clone())
    }
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON document")
}

#[test]
fn inject_sends_the_request_and_prints_id_and_window_as_json() {
    let daemon = Daemon::start();
    let before = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    let output = daemon.run(&[
        "-o",
        "json",
        "inject",
        "network",
        "--target",
        "cgroup:/system.slice/postgresql.service",
        "--loss",
        "30%",
        "--duration",
        "60s",
        "--direction",
        "egress",
        "--protocol",
        "tcp",
        "--port",
        "5432",
        "--port",
        "8000-8080",
        "--cidr",
        "10.0.0.0/8",
        "--start-at",
        "+5s",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let request = daemon.last_inject().expect("inject reached the daemon");
    assert_eq!(request.target, "cgroup:/system.slice/postgresql.service");
    assert_eq!(request.duration.map(|d| d.seconds), Some(60));
    let start = request.start_at_unix_ns;
    assert!(
        start >= before + 5_000_000_000 && start < before + 65_000_000_000,
        "start {start} not about now + 5 s ({before})"
    );
    let Some(inject_request::Spec::Network(network)) = request.spec else {
        panic!("no network spec");
    };
    assert_eq!(network.direction, chaos_proto::v1::Direction::Egress as i32);
    assert_eq!(network.protocol, chaos_proto::v1::Protocol::Tcp as i32);
    assert_eq!(network.peers, ["10.0.0.0/8"]);
    let ports: Vec<_> = network.ports.iter().map(|p| (p.first, p.last)).collect();
    assert_eq!(ports, [(5432, 5432), (8000, 8080)]);

    let printed = json(&output);
    assert_eq!(printed["id"], "f-new");
    assert_eq!(printed["state"], "pending");
    assert_eq!(printed["kind"], "network.loss");
    assert_eq!(printed["spec"]["loss_percent"], 30.0);
    assert_eq!(printed["spec"]["ports"][1]["last"], 8080);
    assert_eq!(printed["start_at_unix_ns"], start);
    assert_eq!(printed["end_at_unix_ns"], start + 60_000_000_000);
}

#[test]
fn inject_partition_table() {
    let daemon = Daemon::start();
    let output = daemon.run(&network(&["--partition", "--cidr", "10.0.0.0/8"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("ID "), "{text}");
    assert!(text.contains("f-new"), "{text}");
    assert!(text.contains("network.partition"), "{text}");
    assert_eq!(daemon.last_inject().map(|r| r.start_at_unix_ns), Some(0));
}

/// The storage action of the last request `daemon` received.
fn last_storage_action(daemon: &Daemon) -> Option<storage_fault::Action> {
    match daemon.last_inject()?.spec? {
        inject_request::Spec::Storage(storage) => storage.action,
        _ => None,
    }
}

#[test]
fn inject_storage_sends_an_errno_fault_and_prints_it() {
    let daemon = Daemon::start();
    let output = daemon.run(&[
        "-o",
        "json",
        "inject",
        "storage",
        "--target",
        "cgroup:/system.slice/postgresql.service",
        "--errno",
        "eio",
        "--ops",
        "fsync,write",
        "--path",
        "/var/lib/postgresql/data",
        "--percent",
        "1",
        "--max-failures",
        "5",
        "--duration",
        "30s",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = ErrnoFault {
        errno: "EIO".into(),
        operations: vec![
            StorageOperation::Write as i32,
            StorageOperation::Fsync as i32,
        ],
        path: "/var/lib/postgresql/data".into(),
        percent: 1.0,
        max_failures: 5,
    };
    assert_eq!(
        last_storage_action(&daemon),
        Some(storage_fault::Action::Errno(expected))
    );
    assert_eq!(
        daemon
            .last_inject()
            .and_then(|r| r.duration)
            .map(|d| d.seconds),
        Some(30)
    );

    let printed = json(&output);
    assert_eq!(printed["kind"], "storage.errno");
    assert_eq!(printed["storage"]["errno"], "EIO");
    assert_eq!(
        printed["storage"]["operations"],
        serde_json::json!(["write", "fsync"])
    );
    assert_eq!(printed["storage"]["path"], "/var/lib/postgresql/data");
    assert_eq!(printed["storage"]["percent"], 1.0);
    assert_eq!(printed["storage"]["max_failures"], 5);
}

#[test]
fn inject_storage_number_all_ops_and_defaults() {
    let daemon = Daemon::start();
    let output = daemon.run(&storage(&[
        "--errno",
        "28",
        "--ops",
        "all",
        "--ops",
        "sync-file-range",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let Some(storage_fault::Action::Errno(errno)) = last_storage_action(&daemon) else {
        panic!("no errno fault sent");
    };
    assert_eq!(errno.errno, "28");
    let all: Vec<i32> = (1..=12).collect();
    assert_eq!(errno.operations, all);
    assert_eq!(errno.percent, 100.0);
    assert_eq!(errno.max_failures, 0);
    let text = stdout(&output);
    assert!(text.contains("storage.errno"), "{text}");
}

#[test]
fn inject_io_limit_and_disk_fill() {
    let daemon = Daemon::start();
    let output = daemon.run(&[
        "inject",
        "io-limit",
        "--target",
        "pid:4242",
        "--path",
        "/var/lib/postgresql",
        "--write-bps",
        "1MiB/s",
        "--write-iops",
        "50",
        "--duration",
        "2m",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = IoLimit {
        path: "/var/lib/postgresql".into(),
        read_bytes_per_second: 0,
        write_bytes_per_second: 1 << 20,
        read_iops: 0,
        write_iops: 50,
    };
    assert_eq!(
        last_storage_action(&daemon),
        Some(storage_fault::Action::IoLimit(expected))
    );
    assert!(
        stdout(&output).contains("storage.io_limit"),
        "{}",
        stdout(&output)
    );

    let output = daemon.run(&[
        "-o",
        "json",
        "inject",
        "disk-fill",
        "--target",
        "container:3f2a9c1b7d04",
        "--path",
        "/data",
        "--fill",
        "95%",
        "--duration",
        "5m",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = DiskFill {
        path: "/data".into(),
        percent: 95.0,
        bytes: 0,
    };
    assert_eq!(
        last_storage_action(&daemon),
        Some(storage_fault::Action::DiskFill(expected))
    );
    let printed = json(&output);
    assert_eq!(printed["kind"], "storage.disk_fill");
    assert_eq!(printed["storage"]["fill_percent"], 95.0);
}

#[test]
fn get_shows_an_errno_fault_and_its_kernel_routes() {
    let daemon = Daemon::start();
    let output = daemon.run(&["get", "f-errno"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        "storage.errno",
        "Errno:",
        "EIO",
        "Operations:",
        "write, fsync",
        "/var/lib/postgresql/data",
        "1% of calls",
        "no limit",
        "Kernel routes:",
        "write: bpf_lsm; fsync: kprobe_override",
    ] {
        assert!(text.contains(expected), "lacks {expected:?}:\n{text}");
    }

    let output = daemon.run(&["get", "f-errno", "-o", "json"]);
    let printed = json(&output);
    assert_eq!(
        printed["outcome"]["backends"],
        "write: bpf_lsm; fsync: kprobe_override"
    );
    assert_eq!(printed["storage"]["operations"][1], "fsync");
    assert_eq!(printed["storage"].get("max_failures"), None);
}

#[test]
fn daemon_rejection_is_one_line_with_code_and_exit_2() {
    let daemon = Daemon::start();
    let output = daemon.run(&network(&["--loss", "150"]));
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "error: loss.percent: must be in (0, 100], got 150 (INVALID_ARGUMENT)\n"
    );
}

#[test]
fn not_found_exits_3_and_failed_precondition_exits_4() {
    let daemon = Daemon::start();
    let output = daemon.run(&["get", "nope"]);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(
        stderr(&output),
        "error: fault nope: no such fault (NOT_FOUND)\n"
    );
    let output = daemon.run(&["cancel", "nope"]);
    assert_eq!(output.status.code(), Some(4));
    assert_eq!(
        stderr(&output),
        "error: made up for the test (FAILED_PRECONDITION)\n"
    );
}

#[test]
fn list_table_and_json() {
    let daemon = Daemon::start();
    let output = daemon.run(&["list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for column in [
        "ID", "TARGET", "KIND", "STATE", "START", "END", "SEEN", "MATCHED", "AFFECTED",
    ] {
        assert!(lines[0].contains(column), "{text}");
    }
    assert!(lines[1].contains("2030-01-01T00:00:00.000Z"), "{text}");
    assert!(lines[1].contains("2030-01-01T00:01:00.000Z"), "{text}");
    assert!(lines[2].contains("completed"), "{text}");

    let output = daemon.run(&["list", "-o", "json"]);
    let printed = json(&output);
    assert_eq!(printed.as_array().map(Vec::len), Some(2));
    assert_eq!(printed[0]["counters"]["affected"], 270);
    assert_eq!(printed[1]["state"], "completed");
}

#[test]
fn get_and_cancel() {
    let daemon = Daemon::start();
    let output = daemon.run(&["get", "f-1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("Loss:"), "{text}");
    assert!(text.contains("30%"), "{text}");
    assert!(text.contains("Affected:"), "{text}");

    let output = daemon.run(&["cancel", "f-1", "-o", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(json(&output)["state"], "cancelled");
}

#[test]
fn watch_prints_one_json_object_per_event_until_the_stream_ends() {
    let daemon = Daemon::start();
    let output = daemon.run(&["watch", "-o", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let states: Vec<String> = stdout(&output)
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            event["state"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(states, ["pending", "active", "completed"]);

    let output = daemon.run(&["watch", "f-1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), 3);
}

#[test]
fn capabilities_table_and_json() {
    let daemon = Daemon::start();
    let output = daemon.run(&["capabilities"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("6.8.0-test"), "{text}");
    assert!(text.contains("FEATURE"), "{text}");
    assert!(text.contains("cgroup_skb"), "{text}");
    assert!(text.contains("FAULT"), "{text}");
    assert!(text.contains("needs cgroup_skb"), "{text}");

    let output = daemon.run(&["capabilities", "-o", "json"]);
    let printed = json(&output);
    assert_eq!(printed["kernel_release"], "6.8.0-test");
    assert_eq!(printed["features"][0]["available"], true);
    assert_eq!(printed["faults"][0]["kind"], "network.partition");
    assert_eq!(printed["faults"][0]["supported"], false);
}

#[test]
fn start_at_rfc3339_is_sent_as_unix_ns() {
    let daemon = Daemon::start();
    let output = daemon.run(&network(&[
        "--loss",
        "0.01",
        "--start-at",
        "2030-01-01T00:00:00.250Z",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let request = daemon.last_inject();
    assert_eq!(
        request.as_ref().map(|r| r.start_at_unix_ns),
        Some(NOW_NS + 250_000_000)
    );
}

#[test]
fn guard_rail_flags_reach_the_request() {
    let daemon = Daemon::start();
    let output = daemon.run(&[
        "inject",
        "network",
        "--target",
        "pods:db?labelSelector=app=postgres",
        "--container",
        "postgres",
        "--dry-run",
        "--max-targets",
        "2",
        "--max-percent",
        "50",
        "--allow-protected",
        "kube-system",
        "--lease",
        "30s",
        "--loss",
        "10",
        "--duration",
        "1m",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let sent = daemon.last_inject().expect("an inject reached the daemon");
    assert_eq!(sent.target, "pods:db?labelSelector=app=postgres");
    assert_eq!(sent.container, "postgres");
    assert!(sent.dry_run);
    assert_eq!(sent.max_targets, 2);
    assert_eq!(sent.max_percent, 50.0);
    assert_eq!(
        sent.allow_protected_namespaces,
        vec!["kube-system".to_string()]
    );
    assert_eq!(sent.lease.map(|l| l.seconds), Some(30));
}

#[test]
fn renew_and_abort_all() {
    let daemon = Daemon::start();
    let renewed = daemon.run(&["-o", "json", "renew", "f-1"]);
    assert!(renewed.status.success(), "{}", stderr(&renewed));
    assert_eq!(
        json(&renewed)["lease_expires_unix_ns"],
        1_700_000_030_000_000_000u64
    );
    let refused = daemon.run(&["renew", "f-2"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("without a lease"),
        "{}",
        stderr(&refused)
    );
    let aborted = daemon.run(&["-o", "json", "abort-all"]);
    assert!(aborted.status.success(), "{}", stderr(&aborted));
    assert_eq!(json(&aborted)[0]["state"], "cancelled");
    let table = daemon.run(&["abort-all"]);
    assert!(stdout(&table).contains("cancelled"), "{}", stdout(&table));
}
