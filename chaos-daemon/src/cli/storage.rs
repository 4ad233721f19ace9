//! Flags of `inject storage` (errno), `inject io-limit` and `inject disk-fill`, and the
//! requests they make.

use std::time::SystemTime;

use chaos_proto::v1::{
    inject_request, storage_fault, DiskFill, ErrnoFault, InjectRequest, IoLimit, StorageFault,
    StorageOperation,
};
use clap::{ArgGroup, Args, ValueEnum};

use super::{
    args::WindowArgs,
    error::CliError,
    parse::{
        parse_errno, parse_fail_percent, parse_positive_count, parse_rate, parse_size_or_percent,
        SizeOrPercent,
    },
};

pub const STORAGE_AFTER_HELP: &str = "\
EXAMPLES:
  # PostgreSQL's checkpoints cannot fsync its data files (EIO) for 30 s
  chaosctl inject storage --target cgroup:/system.slice/postgresql.service \\
      --errno EIO --ops fsync --path /var/lib/postgresql/data --duration 30s

  # 1% of a container's reads under /data fail with EIO, 100 failures at most
  chaosctl inject storage --target container:3f2a9c1b7d04 --errno EIO --ops read \\
      --path /data --percent 1 --max-failures 100 --duration 5m

  # WAL writes fail as if the disk were full
  chaosctl inject storage --target cgroup:/system.slice/postgresql.service \\
      --errno ENOSPC --ops write,create --path /var/lib/postgresql/data/pg_wal --duration 1m

A failed call returns -1 with the errno set and does nothing else. Only the target's
processes see failures (others using the same files do not), and nothing is paused, killed
or restarted. --path covers the file or directory and everything below it, including file
systems mounted below it, as the target sees them (its mount namespace).

The kernel fails calls by one of these routes, best first: BPF LSM programs, fmod_ret
programs on the kernel's security_* functions, and, for fsync, fdatasync and
sync_file_range, a kprobe with bpf_override_return. `chaosctl capabilities` shows which
this node has (storage.errno), and `get` shows the route each operation took. An operation
no route of this kernel can fail is refused with FAILED_PRECONDITION (exit code 4).";

pub const IO_LIMIT_AFTER_HELP: &str = "\
EXAMPLES:
  # A slow disk: 1 MiB/s and 50 write IOPS on the disk holding PostgreSQL's data
  chaosctl inject io-limit --target cgroup:/system.slice/postgresql.service \\
      --path /var/lib/postgresql --write-bps 1MiB/s --write-iops 50 --duration 2m

  # A container reads its volume at 10 MiB/s at most
  chaosctl inject io-limit --target container:3f2a9c1b7d04 --path /data --read-bps 10MiB/s --duration 5m

The limits use the target's io.max (cgroup v2, io controller enabled) or the v1 blkio
throttle of its processes, on the whole disk holding --path. The limits found before are
written back at the end, on cancel, and by a restarted daemon.";

pub const DISK_FILL_AFTER_HELP: &str = "\
EXAMPLES:
  # Fill PostgreSQL's data file system to 95% for 5 minutes
  chaosctl inject disk-fill --target cgroup:/system.slice/postgresql.service \\
      --path /var/lib/postgresql --fill 95% --duration 5m

  # Add 2 GiB to the file system a container sees at /data (its volume, not the node's /data)
  chaosctl inject disk-fill --target container:3f2a9c1b7d04 --path /data --fill 2GiB --duration 1m

The fill file (.faultline-fill-<id> in --path, or in its directory) is removed at the end,
on cancel, and by a restarted daemon.";

/// Flags of `inject storage`: file system calls failing with an errno.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Who, when and how long.
    #[command(flatten)]
    pub window: WindowArgs,

    /// The error the calls fail with: a name (any case) or a number in [1, 4095].
    ///
    /// Common ones: EIO (I/O error), ENOSPC (no space), EDQUOT (quota), EROFS (read-only
    /// file system), EACCES, EPERM, EBUSY, EAGAIN, ENOMEM, EINTR.
    /// Examples: --errno EIO, --errno enospc, --errno 5
    #[arg(long, value_name = "ERRNO", value_parser = parse_errno)]
    pub errno: String,

    /// The calls to fail; repeat the flag or separate with commas, `all` for every one.
    ///
    /// Examples: --ops fsync, --ops read,write, --ops all
    #[arg(
        long = "ops",
        value_name = "OPERATION",
        value_enum,
        value_delimiter = ',',
        ignore_case = true,
        required = true
    )]
    pub operations: Vec<OperationArg>,

    /// An absolute path as the target sees it (resolved in its mount namespace): the file,
    /// or the directory and everything below it.
    ///
    /// Example: --path /var/lib/postgresql/data
    #[arg(long, value_name = "PATH")]
    pub path: String,

    /// Fail this percentage of matching calls, each call drawn on its own.
    ///
    /// In (0, 100], resolution 0.01; the % sign is optional.
    /// Examples: --percent 1, --percent 0.5%
    #[arg(
        long,
        value_name = "PERCENT",
        value_parser = parse_fail_percent,
        default_value = "100",
        allow_negative_numbers = true
    )]
    pub percent: f64,

    /// Stop failing calls after this many failures [default: no limit].
    ///
    /// Example: --max-failures 10
    #[arg(long, value_name = "COUNT", value_parser = parse_positive_count)]
    pub max_failures: Option<u64>,
}

/// `--ops` values: the file system calls an errno fault can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OperationArg {
    /// open(2), openat(2), creat(2) of an existing or new file.
    Open,
    /// read(2), pread(2), readv(2)... of a file.
    Read,
    /// write(2), pwrite(2), writev(2)...
    Write,
    /// fsync(2).
    Fsync,
    /// fdatasync(2).
    Fdatasync,
    /// sync_file_range(2).
    #[value(name = "sync_file_range", alias = "sync-file-range")]
    SyncFileRange,
    /// Creating a regular file (open with O_CREAT of a new name, creat, mknod).
    Create,
    /// mkdir(2).
    Mkdir,
    /// unlink(2).
    Unlink,
    /// rmdir(2).
    Rmdir,
    /// rename(2) from or to a name under --path.
    Rename,
    /// truncate(2), ftruncate(2), open with O_TRUNC.
    Truncate,
    /// Every operation above.
    All,
}

/// Every operation, in the proto's order.
const ALL_OPERATIONS: [StorageOperation; 12] = [
    StorageOperation::Open,
    StorageOperation::Read,
    StorageOperation::Write,
    StorageOperation::Fsync,
    StorageOperation::Fdatasync,
    StorageOperation::SyncFileRange,
    StorageOperation::Create,
    StorageOperation::Mkdir,
    StorageOperation::Unlink,
    StorageOperation::Rmdir,
    StorageOperation::Rename,
    StorageOperation::Truncate,
];

impl OperationArg {
    /// The operations this value stands for: one, or every one for `all`.
    fn operations(self) -> &'static [StorageOperation] {
        match self {
            Self::Open => &[StorageOperation::Open],
            Self::Read => &[StorageOperation::Read],
            Self::Write => &[StorageOperation::Write],
            Self::Fsync => &[StorageOperation::Fsync],
            Self::Fdatasync => &[StorageOperation::Fdatasync],
            Self::SyncFileRange => &[StorageOperation::SyncFileRange],
            Self::Create => &[StorageOperation::Create],
            Self::Mkdir => &[StorageOperation::Mkdir],
            Self::Unlink => &[StorageOperation::Unlink],
            Self::Rmdir => &[StorageOperation::Rmdir],
            Self::Rename => &[StorageOperation::Rename],
            Self::Truncate => &[StorageOperation::Truncate],
            Self::All => &ALL_OPERATIONS,
        }
    }
}

/// The operations `args` name, each once, in the proto's order.
fn operations(args: &[OperationArg]) -> Vec<i32> {
    let mut operations: Vec<i32> = args
        .iter()
        .flat_map(|arg| arg.operations())
        .map(|op| *op as i32)
        .collect();
    operations.sort_unstable();
    operations.dedup();
    operations
}

impl StorageArgs {
    /// The `Inject` request these flags describe.
    pub fn to_inject_request(&self, now: SystemTime) -> Result<InjectRequest, CliError> {
        let errno = ErrnoFault {
            errno: self.errno.clone(),
            operations: operations(&self.operations),
            path: self.path.clone(),
            percent: self.percent,
            max_failures: self.max_failures.unwrap_or(0),
        };
        storage_request(&self.window, now, storage_fault::Action::Errno(errno))
    }
}

/// Flags of `inject io-limit`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("limit").required(true).multiple(true).args([
    "read_bps", "write_bps", "read_iops", "write_iops"
])))]
pub struct IoLimitArgs {
    /// Who, when and how long.
    #[command(flatten)]
    pub window: WindowArgs,

    /// A path as the target sees it (resolved in its mount namespace); the limits apply to
    /// the whole disk holding it.
    ///
    /// Example: --path /var/lib/postgresql/data
    #[arg(long, value_name = "PATH")]
    pub path: String,

    /// Limit the target's reads from that disk to this rate.
    ///
    /// Example: --read-bps 10MiB/s
    #[arg(long, value_name = "SIZE/s", value_parser = parse_rate)]
    pub read_bps: Option<u64>,

    /// Limit the target's writes to that disk to this rate.
    ///
    /// Example: --write-bps 1MiB/s
    #[arg(long, value_name = "SIZE/s", value_parser = parse_rate)]
    pub write_bps: Option<u64>,

    /// Limit the target's read operations per second on that disk.
    ///
    /// Example: --read-iops 100
    #[arg(long, value_name = "IOPS")]
    pub read_iops: Option<u64>,

    /// Limit the target's write operations per second on that disk.
    ///
    /// Example: --write-iops 50
    #[arg(long, value_name = "IOPS")]
    pub write_iops: Option<u64>,
}

impl IoLimitArgs {
    /// The `Inject` request these flags describe.
    pub fn to_inject_request(&self, now: SystemTime) -> Result<InjectRequest, CliError> {
        let limit = IoLimit {
            path: self.path.clone(),
            read_bytes_per_second: self.read_bps.unwrap_or(0),
            write_bytes_per_second: self.write_bps.unwrap_or(0),
            read_iops: self.read_iops.unwrap_or(0),
            write_iops: self.write_iops.unwrap_or(0),
        };
        storage_request(&self.window, now, storage_fault::Action::IoLimit(limit))
    }
}

/// Flags of `inject disk-fill`.
#[derive(Debug, Clone, Args)]
pub struct DiskFillArgs {
    /// Who, when and how long.
    #[command(flatten)]
    pub window: WindowArgs,

    /// A path as the target sees it (resolved in its mount namespace); the fill file goes
    /// in the file system holding it.
    ///
    /// Example: --path /var/lib/postgresql/data
    #[arg(long, value_name = "PATH")]
    pub path: String,

    /// Fill that file system: up to a percentage used, or by a size.
    ///
    /// Examples: --fill 95%, --fill 2GiB
    #[arg(long, value_name = "PERCENT|SIZE", value_parser = parse_size_or_percent)]
    pub fill: SizeOrPercent,
}

impl DiskFillArgs {
    /// The `Inject` request these flags describe.
    pub fn to_inject_request(&self, now: SystemTime) -> Result<InjectRequest, CliError> {
        let (percent, bytes) = match self.fill {
            SizeOrPercent::Percent(p) => (p, 0),
            SizeOrPercent::Bytes(b) => (0.0, b),
        };
        let fill = DiskFill {
            path: self.path.clone(),
            percent,
            bytes,
        };
        storage_request(&self.window, now, storage_fault::Action::DiskFill(fill))
    }
}

/// A request for a storage fault doing `action` in `window`.
fn storage_request(
    window: &WindowArgs,
    now: SystemTime,
    action: storage_fault::Action,
) -> Result<InjectRequest, CliError> {
    window.to_request(
        now,
        inject_request::Spec::Storage(StorageFault {
            action: Some(action),
        }),
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::args::{Cli, Command, InjectCommand};
    use crate::cli::view::operation_name;

    const WINDOW: [&str; 4] = ["--target", "pid:1", "--duration", "5s"];

    fn parse(kind: &str, extra: &[&str]) -> Result<Cli, clap::Error> {
        let command = ["chaosctl", "inject", kind];
        Cli::try_parse_from(command.iter().chain(&WINDOW).chain(extra))
    }

    fn storage_action(kind: &str, extra: &[&str]) -> storage_fault::Action {
        let cli = parse(kind, extra).expect("parses");
        let now = SystemTime::now();
        let Command::Inject(inject) = cli.command else {
            panic!("not an inject: {:?}", cli.command);
        };
        let request = match *inject {
            InjectCommand::Storage(a) => a.to_inject_request(now),
            InjectCommand::IoLimit(a) => a.to_inject_request(now),
            InjectCommand::DiskFill(a) => a.to_inject_request(now),
            other => panic!("unexpected {other:?}"),
        }
        .expect("request");
        match request.spec {
            Some(inject_request::Spec::Storage(StorageFault {
                action: Some(action),
            })) => action,
            other => panic!("not a storage fault: {other:?}"),
        }
    }

    #[test]
    fn errno_fault_with_defaults() {
        let action = storage_action(
            "storage",
            &["--errno", "eio", "--ops", "fsync,write", "--path", "/data"],
        );
        let expected = ErrnoFault {
            errno: "EIO".into(),
            operations: vec![
                StorageOperation::Write as i32,
                StorageOperation::Fsync as i32,
            ],
            path: "/data".into(),
            percent: 100.0,
            max_failures: 0,
        };
        assert_eq!(action, storage_fault::Action::Errno(expected));
    }

    #[test]
    fn all_operations_once_with_share_and_limit() {
        let action = storage_action(
            "storage",
            &[
                "--errno",
                "28",
                "--ops",
                "read",
                "--ops",
                "ALL,sync-file-range",
                "--path",
                "/data",
                "--percent",
                "0.5%",
                "--max-failures",
                "10",
            ],
        );
        let storage_fault::Action::Errno(errno) = action else {
            panic!("not an errno fault: {action:?}");
        };
        assert_eq!(errno.errno, "28");
        let all: Vec<i32> = ALL_OPERATIONS.iter().map(|op| *op as i32).collect();
        assert_eq!(errno.operations, all);
        assert_eq!(errno.percent, 0.5);
        assert_eq!(errno.max_failures, 10);
    }

    #[test]
    fn every_operation_value_is_named_as_views_name_it() {
        for arg in OperationArg::value_variants() {
            let Some(value) = arg.to_possible_value() else {
                panic!("{arg:?} has no value");
            };
            let names: Vec<&str> = arg
                .operations()
                .iter()
                .map(|op| operation_name(*op as i32))
                .collect();
            match arg {
                OperationArg::All => assert_eq!(names.len(), ALL_OPERATIONS.len()),
                _ => assert_eq!(names, [value.get_name()]),
            }
        }
    }

    #[test]
    fn errno_fault_needs_errno_ops_and_path() {
        let full = ["--errno", "EIO", "--ops", "read", "--path", "/data"];
        assert!(parse("storage", &full).is_ok());
        for missing in [0, 2, 4] {
            let mut args = full.to_vec();
            args.drain(missing..missing + 2);
            assert!(parse("storage", &args).is_err(), "{args:?} parsed");
        }
        let with = |extra: &[&str]| parse("storage", &[&full[..], extra].concat()).is_ok();
        assert!(!with(&["--percent", "0"]));
        assert!(!with(&["--percent", "-1"]));
        assert!(!with(&["--percent", "101"]));
        assert!(!with(&["--max-failures", "0"]));
        assert!(!with(&["--ops", "chmod"]));
        assert!(!with(&["--fill", "95%"]));
    }

    #[test]
    fn io_limit_needs_a_limit() {
        assert!(parse("io-limit", &["--path", "/data"]).is_err());
        let action = storage_action(
            "io-limit",
            &[
                "--path",
                "/data",
                "--write-bps",
                "1MiB/s",
                "--read-iops",
                "50",
            ],
        );
        let expected = IoLimit {
            path: "/data".into(),
            read_bytes_per_second: 0,
            write_bytes_per_second: 1 << 20,
            read_iops: 50,
            write_iops: 0,
        };
        assert_eq!(action, storage_fault::Action::IoLimit(expected));
    }

    #[test]
    fn disk_fill_needs_fill() {
        assert!(parse("disk-fill", &["--path", "/data"]).is_err());
        let action = storage_action("disk-fill", &["--path", "/data", "--fill", "95%"]);
        let expected = DiskFill {
            path: "/data".into(),
            percent: 95.0,
            bytes: 0,
        };
        assert_eq!(action, storage_fault::Action::DiskFill(expected));
        let action = storage_action("disk-fill", &["--path", "/data", "--fill", "2GiB"]);
        let expected = DiskFill {
            path: "/data".into(),
            percent: 0.0,
            bytes: 2 << 30,
        };
        assert_eq!(action, storage_fault::Action::DiskFill(expected));
    }
}
