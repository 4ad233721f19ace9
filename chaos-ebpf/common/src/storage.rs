//! Storage errno fault maps: fault slots per targeted cgroup, fault parameters by slot, the
//! directories each fault covers, counters, and the kernel struct layout the programs read.
//!
//! The programs hook every file system call of the node, so the first thing they do is find
//! the calling task's faults: [`LEVELS_MAP`] says at which cgroup depths targets sit, and
//! [`TARGETS_MAP`] is looked up with the task's ancestor cgroup at each of those depths,
//! deepest first, until one is found (one lookup when every target sits at one depth, as a
//! node's pods do).
use crate::net::TargetSlots;

/// Number of storage fault slots.
pub const MAX_FAULTS: u32 = 4_096;
/// Targeted cgroups across all storage faults.
pub const MAX_TARGETS: u32 = 16_384;
/// Directory entries (fault slot, device, inode) across all storage faults.
pub const MAX_PATHS: u32 = 65_536;
/// Cgroup depths a target can sit at (bits of the [`LEVELS_MAP`] value).
pub const MAX_LEVELS: u32 = 32;
/// Directories walked up from a file to find a fault's path; a file deeper than this below
/// the fault's path is not matched.
pub const MAX_DEPTH: u32 = 16;

/// Map names, shared so the daemon never spells them twice.
pub const LEVELS_MAP: &str = "STORAGE_LEVELS";
pub const TARGETS_MAP: &str = "STORAGE_TARGETS";
pub const FAULTS_MAP: &str = "STORAGE_FAULTS";
pub const PATHS_MAP: &str = "STORAGE_PATHS";
pub const COUNTERS_MAP: &str = "STORAGE_COUNTERS";
pub const FAILURES_MAP: &str = "STORAGE_FAILURES";
/// The global holding [`KernelLayout`].
pub const LAYOUT_GLOBAL: &str = "STORAGE_LAYOUT";

/// Operation bits of [`StorageFault::ops`].
pub const OP_OPEN: u32 = 1 << 0;
pub const OP_READ: u32 = 1 << 1;
pub const OP_WRITE: u32 = 1 << 2;
pub const OP_FSYNC: u32 = 1 << 3;
pub const OP_FDATASYNC: u32 = 1 << 4;
pub const OP_SYNC_FILE_RANGE: u32 = 1 << 5;
pub const OP_CREATE: u32 = 1 << 6;
pub const OP_MKDIR: u32 = 1 << 7;
pub const OP_UNLINK: u32 = 1 << 8;
pub const OP_RMDIR: u32 = 1 << 9;
pub const OP_RENAME: u32 = 1 << 10;
pub const OP_TRUNCATE: u32 = 1 << 11;

/// `threshold` that fails every matching call (draws are 32-bit).
pub const ALWAYS: u64 = 1 << 32;

/// Value of [`TARGETS_MAP`]: slot + 1 of each storage fault on a cgroup or on a targeted
/// cgroup above it, packed at the front.
pub type StorageSlots = TargetSlots;

/// Value of [`FAULTS_MAP`] at a slot: one storage errno fault as the kernel applies it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageFault {
    /// Window start, inclusive, in the object's clock.
    pub start_ns: u64,
    /// Window end, exclusive.
    pub end_ns: u64,
    /// Fail when a 32-bit random draw is below this; [`ALWAYS`] fails every matching call.
    pub threshold: u64,
    /// Failures after which the fault stops failing; 0 = no limit.
    pub max_failures: u64,
    /// `OP_*` bits.
    pub ops: u32,
    /// The error, positive (the call returns `-errno`).
    pub errno: u32,
}
const _: () = assert!(core::mem::size_of::<StorageFault>() == 40);

/// Key of [`PATHS_MAP`]: a directory (or file) a fault covers, by device and inode, as the
/// kernel names them (`super_block.s_dev`, `inode.i_ino`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct PathKey {
    pub slot: u32,
    /// Kernel `dev_t`: major << 20 | minor.
    pub dev: u32,
    pub ino: u64,
}
const _: () = assert!(core::mem::size_of::<PathKey>() == 16);

/// Per-CPU value of [`COUNTERS_MAP`] at a slot (`seen`: calls of the target in the
/// fault's operations while armed; `matched`: inside the window, under the path;
/// `affected`: failed).
pub type StorageCounters = crate::Counters;

/// Byte offsets of the kernel struct fields the programs read, taken by the daemon from the
/// running kernel's BTF (aya has no CO-RE relocations for Rust programs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelLayout {
    /// `file.f_path.dentry`.
    pub file_dentry: u32,
    /// `path.dentry`.
    pub path_dentry: u32,
    pub dentry_parent: u32,
    pub dentry_inode: u32,
    pub dentry_sb: u32,
    pub inode_ino: u32,
    pub inode_mode: u32,
    pub sb_dev: u32,
    /// `task_struct.files`, `files_struct.fdt`, `fdtable.fd`, `fdtable.max_fds`: from a file
    /// descriptor to its file, for the syscall probes.
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_fd: u32,
    pub fdtable_max_fds: u32,
}
const _: () = assert!(core::mem::size_of::<KernelLayout>() == 48);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: every type is #[repr(C)], made of integers, with no implicit padding.
    unsafe impl aya::Pod for super::StorageFault {}
    unsafe impl aya::Pod for super::PathKey {}
    unsafe impl aya::Pod for super::KernelLayout {}
}
