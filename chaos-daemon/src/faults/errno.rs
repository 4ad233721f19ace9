//! Storage errno faults: the request validated, and its path turned into the (device, inode)
//! set the kernel programs match files against.
use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use chaos_common::storage::{self as common, ALWAYS};
use chaos_proto::v1::{ErrnoFault, StorageOperation};
use serde::{Deserialize, Serialize};

use crate::{error::Error, targets::mountns};

/// Largest errno the kernel lets a call return (`MAX_ERRNO`, include/linux/err.h).
const MAX_ERRNO: u32 = 4095;
/// Mount points below the path taken into the set, at most.
const MAX_MOUNTS: usize = 256;

/// Every operation: its API value, its name and its bit in the kernel's fault.
pub const OPERATIONS: [(StorageOperation, &str, u32); 12] = [
    (StorageOperation::Open, "open", common::OP_OPEN),
    (StorageOperation::Read, "read", common::OP_READ),
    (StorageOperation::Write, "write", common::OP_WRITE),
    (StorageOperation::Fsync, "fsync", common::OP_FSYNC),
    (
        StorageOperation::Fdatasync,
        "fdatasync",
        common::OP_FDATASYNC,
    ),
    (
        StorageOperation::SyncFileRange,
        "sync_file_range",
        common::OP_SYNC_FILE_RANGE,
    ),
    (StorageOperation::Create, "create", common::OP_CREATE),
    (StorageOperation::Mkdir, "mkdir", common::OP_MKDIR),
    (StorageOperation::Unlink, "unlink", common::OP_UNLINK),
    (StorageOperation::Rmdir, "rmdir", common::OP_RMDIR),
    (StorageOperation::Rename, "rename", common::OP_RENAME),
    (StorageOperation::Truncate, "truncate", common::OP_TRUNCATE),
];

/// Names of the operations in `ops` (bits), in API order.
pub fn op_names(ops: u32) -> Vec<&'static str> {
    OPERATIONS
        .iter()
        .filter(|(_, _, bit)| ops & bit != 0)
        .map(|(_, name, _)| *name)
        .collect()
}

/// A validated errno fault.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Positive errno.
    pub errno: u32,
    /// `OP_*` bits.
    pub ops: u32,
    pub path: PathBuf,
    /// Draw threshold over 2^32.
    pub threshold: u64,
    pub max_failures: u64,
}

/// A directory or file the fault covers, as the kernel names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Inode {
    /// Kernel `dev_t` (major << 20 | minor), as in `super_block.s_dev`.
    pub dev: u32,
    pub ino: u64,
}

/// Validates an `ErrnoFault`; errors name the field.
pub fn plan(spec: &ErrnoFault) -> Result<Plan, Error> {
    let errno = parse_errno(&spec.errno)?;
    let mut ops = 0;
    for (i, value) in spec.operations.iter().enumerate() {
        let bit = OPERATIONS
            .iter()
            .find(|(op, _, _)| *op as i32 == *value)
            .map(|(_, _, bit)| *bit)
            .ok_or_else(|| {
                Error::invalid(
                    format!("storage.errno.operations[{i}]"),
                    format!("{value} is not an operation; use {}", all_names()),
                )
            })?;
        ops |= bit;
    }
    if ops == 0 {
        return Err(Error::invalid(
            "storage.errno.operations",
            format!("name at least one of {}", all_names()),
        ));
    }
    let path = PathBuf::from(&spec.path);
    if !path.is_absolute() || spec.path.contains('\0') {
        return Err(Error::invalid(
            "storage.errno.path",
            format!("{:?} is not an absolute path", spec.path),
        ));
    }
    let percent = if spec.percent == 0.0 {
        100.0
    } else {
        spec.percent
    };
    // Hundredths of a percent: the resolution promised.
    let hundredths = (percent * 100.0).round();
    if !(0.0..=100.0).contains(&percent) || hundredths < 1.0 {
        return Err(Error::invalid(
            "storage.errno.percent",
            format!("{} is not in [0.01, 100]", spec.percent),
        ));
    }
    let threshold = if hundredths >= 10_000.0 {
        ALWAYS
    } else {
        ((hundredths / 10_000.0) * ALWAYS as f64).round() as u64
    };
    Ok(Plan {
        errno,
        ops,
        path,
        threshold,
        max_failures: spec.max_failures,
    })
}

fn all_names() -> String {
    OPERATIONS
        .iter()
        .map(|(_, name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An errno by name (`EIO`, case-insensitive) or number.
fn parse_errno(text: &str) -> Result<u32, Error> {
    let text = text.trim();
    let invalid = |reason: String| Error::invalid("storage.errno.errno", reason);
    if text.is_empty() {
        return Err(invalid(
            "is required: a name such as EIO or a number".into(),
        ));
    }
    if let Ok(number) = text.parse::<u32>() {
        if (1..=MAX_ERRNO).contains(&number) {
            return Ok(number);
        }
        return Err(invalid(format!("{number} is not in [1, {MAX_ERRNO}]")));
    }
    let wanted = text.to_ascii_uppercase();
    (1..=MAX_ERRNO as i32)
        .find(|&n| format!("{:?}", nix::errno::Errno::from_raw(n)) == wanted)
        .map(|n| n as u32)
        .ok_or_else(|| {
            invalid(format!(
                "{text:?} is not an errno name (e.g. EIO, ENOSPC, EACCES, EROFS, EDQUOT, EPERM)"
            ))
        })
}

/// The name of an errno, or its number when it has none.
pub fn errno_name(errno: u32) -> String {
    let name = format!("{:?}", nix::errno::Errno::from_raw(errno as i32));
    if name.starts_with('E') {
        name
    } else {
        errno.to_string()
    }
}

/// The inodes the fault covers in the target's mount namespace: the path itself, and the
/// root of every file system mounted below it (a file there never walks up to the path).
pub fn resolve(dirs: &[PathBuf], path: &Path) -> Result<Vec<Inode>, Error> {
    let (pid, root) = mountns::process_root(dirs, "storage.errno")?;
    let relative = path.strip_prefix("/").unwrap_or(path);
    let at = |p: &Path| {
        std::fs::metadata(root.join(p)).map(|m| Inode {
            dev: kernel_dev(m.dev()),
            ino: m.ino(),
        })
    };
    let own = at(relative).map_err(|err| {
        Error::invalid(
            "storage.errno.path",
            format!(
                "{} in the target's mount namespace (process {pid}): {err}",
                path.display()
            ),
        )
    })?;
    let mut inodes = vec![own];
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .map_err(|err| Error::Internal(format!("read /proc/{pid}/mountinfo: {err}")))?;
    for mount_point in mounts_below(&mountinfo, path).into_iter().take(MAX_MOUNTS) {
        let relative = mount_point.strip_prefix("/").unwrap_or(&mount_point);
        // A mount that vanished since mountinfo was read covers nothing.
        if let Ok(inode) = at(relative) {
            inodes.push(inode);
        }
    }
    inodes.sort();
    inodes.dedup();
    Ok(inodes)
}

/// Mount points strictly below `path`, from a `/proc/PID/mountinfo` (fifth field, with its
/// octal escapes for space, tab, newline and backslash).
fn mounts_below(mountinfo: &str, path: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .filter(|mount| mount != path && mount.starts_with(path))
        .collect()
}

fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A `stat` device number in the kernel's internal encoding (`MKDEV`: major << 20 | minor),
/// which `super_block.s_dev` holds; `st_dev` uses the other, `new_encode_dev`.
fn kernel_dev(st_dev: u64) -> u32 {
    let major = libc::major(st_dev);
    let minor = libc::minor(st_dev);
    (major << 20) | (minor & 0xf_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(errno: &str, ops: &[StorageOperation], percent: f64) -> ErrnoFault {
        ErrnoFault {
            errno: errno.into(),
            operations: ops.iter().map(|o| *o as i32).collect(),
            path: "/var/lib/postgresql".into(),
            percent,
            max_failures: 0,
        }
    }

    #[test]
    fn errno_by_name_or_number() {
        let ops = [StorageOperation::Fsync];
        assert_eq!(plan(&spec("EIO", &ops, 0.0)).map(|p| p.errno).ok(), Some(5));
        assert_eq!(
            plan(&spec("enospc", &ops, 0.0)).map(|p| p.errno).ok(),
            Some(28)
        );
        assert_eq!(
            plan(&spec("122", &ops, 0.0)).map(|p| p.errno).ok(),
            Some(122)
        );
        for bad in ["", "EWHAT", "0", "4096"] {
            let err = plan(&spec(bad, &ops, 0.0)).err().map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|e| e.starts_with("storage.errno.errno")),
                "{bad}: {err:?}"
            );
        }
        assert_eq!(errno_name(5), "EIO");
    }

    #[test]
    fn operations_and_percent() {
        let both = plan(&spec(
            "EIO",
            &[StorageOperation::Fsync, StorageOperation::Write],
            1.0,
        ));
        let both = both.ok();
        assert_eq!(
            both.as_ref().map(|p| p.ops),
            Some(common::OP_FSYNC | common::OP_WRITE)
        );
        assert_eq!(
            both.map(|p| p.threshold),
            Some((ALWAYS as f64 / 100.0).round() as u64)
        );
        let none = plan(&spec("EIO", &[], 0.0)).err().map(|e| e.to_string());
        assert!(none.is_some_and(|e| e.starts_with("storage.errno.operations")));
        let unspecified = plan(&spec("EIO", &[StorageOperation::Unspecified], 0.0));
        assert!(unspecified.is_err());
        for bad in [0.001, 100.5, -1.0, f64::NAN] {
            let err = plan(&spec("EIO", &[StorageOperation::Open], bad));
            assert!(
                err.err()
                    .is_some_and(|e| e.to_string().starts_with("storage.errno.percent")),
                "{bad}"
            );
        }
        assert_eq!(
            plan(&spec("EIO", &[StorageOperation::Open], 100.0))
                .map(|p| p.threshold)
                .ok(),
            Some(ALWAYS)
        );
    }

    #[test]
    fn mounts_below_a_path() {
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    30 22 0:40 / /var/lib/pg rw - tmpfs tmpfs rw\n\
                    31 30 0:41 / /var/lib/pg/wal\\040dir rw - tmpfs tmpfs rw\n\
                    32 22 0:42 / /var/lib/pgx rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mounts_below(info, Path::new("/var/lib/pg")),
            vec![PathBuf::from("/var/lib/pg/wal dir")]
        );
        assert_eq!(mounts_below(info, Path::new("/")).len(), 3);
    }

    #[test]
    fn kernel_device_numbers() {
        assert_eq!(kernel_dev(libc::makedev(8, 1)), (8 << 20) | 1);
        assert_eq!(kernel_dev(libc::makedev(259, 300)), (259 << 20) | 300);
    }
}
