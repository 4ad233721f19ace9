//! Storage errno faults: make a targeted task's file system calls fail with a chosen errno.
//!
//! One decision, three ways into the kernel, chosen per operation by the daemon:
//! - `lsm_*`: BPF LSM programs on the `file_open`, `file_permission`, `inode_*` and
//!   `*_truncate` hooks, where `bpf` is an active LSM;
//! - `mr_*`: the same decision as `fmod_ret` programs on the `security_*` functions behind
//!   those hooks, where trampolines work but `bpf` is not an active LSM (the daemon loads
//!   them as `BPF_MODIFY_RETURN`; the object only carries their code);
//! - `kp_*`: kprobes on the `__x64_sys_fsync`/`fdatasync`/`sync_file_range` entry points
//!   with `bpf_override_return`: those calls pass no LSM hook.
//!
//! Who: the calling task's ancestor cgroup at each depth where a target sits
//! ([`STORAGE_LEVELS`]) is looked up in [`STORAGE_TARGETS`], deepest first; a task outside
//! every target leaves after one lookup per such depth (one when targets sit at one depth,
//! as a node's pods do).
//!
//! Where: the daemon resolves the fault's path in the target's mount namespace and stores
//! (device, inode) of the path and of every mount root below it in [`STORAGE_PATHS`]. The
//! program walks from the file's dentry up its `d_parent` chain (at most `MAX_DEPTH`
//! steps, stopping at the file system's root) and looks each (device, inode) up. No string
//! is compared, the cost is bounded, and a path means what it means inside the container.
//! Struct offsets come from the daemon ([`STORAGE_LAYOUT`], read from the kernel's BTF).
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_probe_read_kernel,
        generated::{
            bpf_get_current_ancestor_cgroup_id, bpf_get_current_task, bpf_get_prandom_u32,
            bpf_override_return,
        },
    },
    macros::{kprobe, lsm, map},
    maps::{Array, HashMap, PerCpuArray},
    programs::{LsmContext, ProbeContext},
    EbpfContext as _, Global,
};
use chaos_common::storage::{
    KernelLayout, PathKey, StorageCounters, StorageFault, StorageSlots, MAX_DEPTH, MAX_FAULTS,
    MAX_PATHS, MAX_TARGETS, OP_CREATE, OP_FDATASYNC, OP_FSYNC, OP_MKDIR, OP_OPEN, OP_READ,
    OP_RENAME, OP_RMDIR, OP_SYNC_FILE_RANGE, OP_TRUNCATE, OP_UNLINK, OP_WRITE,
};

use crate::{atomic, clock::now_ns, targets};

#[map]
static STORAGE_LEVELS: Array<u32> = Array::pinned(1, 0);
#[map]
static STORAGE_TARGETS: HashMap<u64, StorageSlots> = HashMap::pinned(MAX_TARGETS, 0);
#[map]
static STORAGE_FAULTS: Array<StorageFault> = Array::pinned(MAX_FAULTS, 0);
#[map]
static STORAGE_PATHS: HashMap<PathKey, u8> = HashMap::pinned(MAX_PATHS, 0);
#[map]
static STORAGE_COUNTERS: PerCpuArray<StorageCounters> = PerCpuArray::pinned(MAX_FAULTS, 0);
/// Failures per slot over all CPUs, for `max_failures`.
#[map]
static STORAGE_FAILURES: Array<u64> = Array::pinned(MAX_FAULTS, 0);

/// Set by the daemon from the kernel's BTF.
#[unsafe(no_mangle)]
static STORAGE_LAYOUT: Global<KernelLayout> = Global::new(KernelLayout {
    file_dentry: 0,
    path_dentry: 0,
    dentry_parent: 0,
    dentry_inode: 0,
    dentry_sb: 0,
    inode_ino: 0,
    inode_mode: 0,
    sb_dev: 0,
    task_files: 0,
    files_fdt: 0,
    fdtable_fd: 0,
    fdtable_max_fds: 0,
});

/// `MAY_*` bits of `file_permission`'s mask (include/linux/fs.h).
const MAY_WRITE: u64 = 0x2;
const MAY_READ: u64 = 0x4;
const MAY_APPEND: u64 = 0x8;
const S_IFMT: u16 = 0o170_000;
const S_IFDIR: u16 = 0o040_000;
/// Offset of `di` (the first syscall argument) in x86-64 `struct pt_regs`: its layout is ABI.
const PT_REGS_DI: usize = 14 * 8;

/// The files a call touches: up to two dentries (rename has two).
#[derive(Clone, Copy)]
struct Files {
    first: *const u8,
    second: *const u8,
}

impl Files {
    const fn one(dentry: *const u8) -> Self {
        Self {
            first: dentry,
            second: core::ptr::null(),
        }
    }
}

/// Argument `n` of a BTF-typed program (LSM, fmod_ret): the context is an array of u64.
#[inline(always)]
fn arg(ctx: *mut c_void, n: usize) -> u64 {
    // SAFETY: the verifier checks each constant-offset context read against the hook's BTF.
    unsafe { *(ctx as *const u64).add(n) }
}

#[inline(always)]
fn read<T>(base: *const u8, offset: u32) -> Option<T> {
    if base.is_null() {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel copes with any address, returning an error for bad ones.
    unsafe { bpf_probe_read_kernel(base.add(offset as usize) as *const T).ok() }
}

/// `-errno` if a fault fails this call of `op` on `files`, else 0.
#[inline(always)]
fn decide(op: u32, files: impl FnOnce(&KernelLayout) -> Option<Files>) -> i32 {
    let Some(target) = target_slots() else {
        return 0;
    };
    let layout = STORAGE_LAYOUT.load();
    let Some(found) = files(&layout) else {
        return 0;
    };
    let now = now_ns();
    for tag in target.slots {
        if tag == 0 {
            break;
        }
        let ret = apply(tag - 1, op, now, found, &layout);
        if ret != 0 {
            return ret;
        }
    }
    0
}

/// The calling task's fault slots: those of its deepest ancestor cgroup (or itself) that is
/// targeted. The daemon folds a targeted cgroup's targeted ancestors' faults into its list,
/// so one hit is the whole answer.
#[inline(always)]
fn target_slots() -> Option<StorageSlots> {
    // SAFETY: helper without pointer arguments; 0 when the task's cgroup is shallower.
    targets::deepest(&STORAGE_LEVELS, &STORAGE_TARGETS, |level| unsafe {
        bpf_get_current_ancestor_cgroup_id(level)
    })
}

/// One fault on one call: counters, window, path, draw, budget; `-errno` to fail it.
#[inline(always)]
fn apply(slot: u32, op: u32, now: u64, files: Files, layout: &KernelLayout) -> i32 {
    let Some(fault) = STORAGE_FAULTS.get(slot) else {
        return 0;
    };
    if fault.ops & op == 0 {
        return 0;
    }
    let Some(counters) = STORAGE_COUNTERS.get_ptr_mut(slot) else {
        return 0;
    };
    // SAFETY: per-CPU value of this slot; this CPU is the only writer while we run.
    let counters = unsafe { &mut *counters };
    counters.seen += 1;
    if now < fault.start_ns || now >= fault.end_ns {
        return 0;
    }
    if !covers(slot, files.first, layout) && !covers(slot, files.second, layout) {
        return 0;
    }
    counters.matched += 1;
    // SAFETY: helper without pointer arguments.
    if u64::from(unsafe { bpf_get_prandom_u32() }) >= fault.threshold {
        return 0;
    }
    if fault.max_failures != 0 {
        let Some(total) = STORAGE_FAILURES.get_ptr_mut(slot) else {
            return 0;
        };
        if atomic::fetch_add(total, 1) >= fault.max_failures {
            return 0;
        }
    }
    counters.affected += 1;
    if counters.first_ns == 0 {
        counters.first_ns = now;
    }
    counters.last_ns = now;
    -(fault.errno as i32)
}

/// True when `dentry` is, or is below, a directory of `slot`'s path set.
#[inline(always)]
fn covers(slot: u32, dentry: *const u8, layout: &KernelLayout) -> bool {
    let Some(sb) = read::<*const u8>(dentry, layout.dentry_sb) else {
        return false;
    };
    let Some(dev) = read::<u32>(sb, layout.sb_dev) else {
        return false;
    };
    let mut dentry = dentry;
    for _ in 0..MAX_DEPTH {
        // A negative dentry (the name a create or mkdir is making) has no inode yet.
        if let Some(inode) = read::<*const u8>(dentry, layout.dentry_inode) {
            if let Some(ino) = read::<u64>(inode, layout.inode_ino) {
                let key = PathKey { slot, dev, ino };
                // SAFETY: the value is only tested for presence.
                if unsafe { STORAGE_PATHS.get(key) }.is_some() {
                    return true;
                }
            }
        }
        let Some(parent) = read::<*const u8>(dentry, layout.dentry_parent) else {
            return false;
        };
        // The root of a file system is its own parent.
        if parent == dentry {
            return false;
        }
        dentry = parent;
    }
    false
}

/// The dentry of a `struct file *`.
#[inline(always)]
fn file_dentry(file: u64, layout: &KernelLayout) -> Option<*const u8> {
    read::<*const u8>(file as *const u8, layout.file_dentry)
}

/// A regular file's (or other non-directory's) dentry: read and write faults spare directory
/// listings, which pass `file_permission` too.
#[inline(always)]
fn not_directory(dentry: *const u8, layout: &KernelLayout) -> Option<*const u8> {
    let inode = read::<*const u8>(dentry, layout.dentry_inode)?;
    let mode = read::<u16>(inode, layout.inode_mode)?;
    (mode & S_IFMT != S_IFDIR).then_some(dentry)
}

// Each hook body takes the context and the index of its first argument; the caller has
// already passed on an earlier program's refusal.

#[inline(always)]
fn on_file_open(ctx: *mut c_void) -> i32 {
    decide(OP_OPEN, |l| file_dentry(arg(ctx, 0), l).map(Files::one))
}

#[inline(always)]
fn on_file_permission(ctx: *mut c_void) -> i32 {
    let mask = arg(ctx, 1);
    let op = if mask & (MAY_WRITE | MAY_APPEND) != 0 {
        OP_WRITE
    } else if mask & MAY_READ != 0 {
        OP_READ
    } else {
        return 0;
    };
    decide(op, |l| {
        file_dentry(arg(ctx, 0), l)
            .and_then(|d| not_directory(d, l))
            .map(Files::one)
    })
}

/// `inode_create`, `inode_mkdir`, `inode_unlink`, `inode_rmdir`: (dir inode, dentry, ...).
#[inline(always)]
fn on_inode_entry(ctx: *mut c_void, op: u32) -> i32 {
    decide(op, |_| Some(Files::one(arg(ctx, 1) as *const u8)))
}

#[inline(always)]
fn on_inode_rename(ctx: *mut c_void) -> i32 {
    decide(OP_RENAME, |_| {
        Some(Files {
            first: arg(ctx, 1) as *const u8,
            second: arg(ctx, 3) as *const u8,
        })
    })
}

#[inline(always)]
fn on_path_truncate(ctx: *mut c_void) -> i32 {
    decide(OP_TRUNCATE, |l| {
        read::<*const u8>(arg(ctx, 0) as *const u8, l.path_dentry).map(Files::one)
    })
}

#[inline(always)]
fn on_file_truncate(ctx: *mut c_void) -> i32 {
    decide(OP_TRUNCATE, |l| file_dentry(arg(ctx, 0), l).map(Files::one))
}

/// Runs `body` unless an earlier program or LSM already refused: its return value (at
/// argument index `ret`) is passed on.
#[inline(always)]
fn chained(ctx: *mut c_void, ret: usize, body: fn(*mut c_void) -> i32) -> i32 {
    let earlier = arg(ctx, ret) as i32;
    if earlier != 0 {
        return earlier;
    }
    body(ctx)
}

/// An LSM program and its `fmod_ret` twin for one hook. The argument index of the earlier
/// return value is the hook's argument count: the same for `security_*` but for rename,
/// whose function takes `flags` besides.
macro_rules! hook {
    ($lsm:ident, $modret:ident, $hook:literal, $section:literal, $lsm_ret:literal,
     $fn_ret:literal, $body:expr) => {
        #[lsm(hook = $hook)]
        pub fn $lsm(ctx: LsmContext) -> i32 {
            chained(ctx.as_ptr(), $lsm_ret, $body)
        }

        // By hand, not `#[fexit]`: that macro discards the program's return value, which is
        // the whole point of `fmod_ret`. aya parses the section as `fexit`; the daemon loads
        // it as `BPF_MODIFY_RETURN`.
        #[unsafe(no_mangle)]
        #[unsafe(link_section = $section)]
        pub fn $modret(ctx: *mut c_void) -> i32 {
            chained(ctx, $fn_ret, $body)
        }
    };
}

hook!(
    lsm_open,
    mr_open,
    "file_open",
    "fexit/security_file_open",
    1,
    1,
    on_file_open
);
hook!(
    lsm_perm,
    mr_perm,
    "file_permission",
    "fexit/security_file_permission",
    2,
    2,
    on_file_permission
);
hook!(
    lsm_create,
    mr_create,
    "inode_create",
    "fexit/security_inode_create",
    3,
    3,
    |ctx| on_inode_entry(ctx, OP_CREATE)
);
hook!(
    lsm_mkdir,
    mr_mkdir,
    "inode_mkdir",
    "fexit/security_inode_mkdir",
    3,
    3,
    |ctx| on_inode_entry(ctx, OP_MKDIR)
);
hook!(
    lsm_unlink,
    mr_unlink,
    "inode_unlink",
    "fexit/security_inode_unlink",
    2,
    2,
    |ctx| on_inode_entry(ctx, OP_UNLINK)
);
hook!(
    lsm_rmdir,
    mr_rmdir,
    "inode_rmdir",
    "fexit/security_inode_rmdir",
    2,
    2,
    |ctx| on_inode_entry(ctx, OP_RMDIR)
);
hook!(
    lsm_rename,
    mr_rename,
    "inode_rename",
    "fexit/security_inode_rename",
    4,
    5,
    on_inode_rename
);
hook!(
    lsm_ptrunc,
    mr_ptrunc,
    "path_truncate",
    "fexit/security_path_truncate",
    1,
    1,
    on_path_truncate
);
hook!(
    lsm_ftrunc,
    mr_ftrunc,
    "file_truncate",
    "fexit/security_file_truncate",
    1,
    1,
    on_file_truncate
);

/// The file behind the first argument of a `__x64_sys_*` call (a file descriptor), through
/// `current->files->fdt->fd[fd]`.
#[inline(always)]
fn fd_file(ctx: &ProbeContext, layout: &KernelLayout) -> Option<Files> {
    // The syscall wrapper's only argument is the user's saved registers.
    let user_regs: *const u8 = ctx.arg(0)?;
    let fd = read::<u64>(user_regs, PT_REGS_DI as u32)?;
    // SAFETY: helper without arguments.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let files = read::<*const u8>(task, layout.task_files)?;
    let fdt = read::<*const u8>(files, layout.files_fdt)?;
    let max = read::<u32>(fdt, layout.fdtable_max_fds)?;
    if fd >= u64::from(max) {
        return None;
    }
    let table = read::<*const u8>(fdt, layout.fdtable_fd)?;
    let file = read::<u64>(table, (fd as u32).wrapping_mul(8))?;
    file_dentry(file, layout).map(Files::one)
}

#[inline(always)]
fn syscall(ctx: ProbeContext, op: u32) -> u32 {
    let ret = decide(op, |l| fd_file(&ctx, l));
    if ret != 0 {
        // SAFETY: called from a kprobe on a function on the error-injection list, as the
        // helper requires; the kernel skips the function and returns this value.
        unsafe { bpf_override_return(ctx.regs, ret as i64 as u64) };
    }
    0
}

#[kprobe]
pub fn kp_fsync(ctx: ProbeContext) -> u32 {
    syscall(ctx, OP_FSYNC)
}

#[kprobe]
pub fn kp_fdatasync(ctx: ProbeContext) -> u32 {
    syscall(ctx, OP_FDATASYNC)
}

#[kprobe]
pub fn kp_sync_range(ctx: ProbeContext) -> u32 {
    syscall(ctx, OP_SYNC_FILE_RANGE)
}

/// Does nothing: the benchmark's baseline for the cost of any LSM program on
/// `file_permission`.
#[lsm(hook = "file_permission")]
pub fn lsm_noop(_ctx: LsmContext) -> i32 {
    0
}

/// Does nothing: the benchmark's baseline for the cost of a kprobe on a syscall.
#[kprobe]
pub fn kp_noop(_ctx: ProbeContext) -> u32 {
    0
}
