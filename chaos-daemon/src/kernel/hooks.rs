//! The storage programs: which route fails each operation on this kernel, loading them once,
//! and attaching (pinned) only those the armed faults need.
//!
//! An operation is failed by the best route the kernel allows: a BPF LSM program where `bpf`
//! is an active LSM, else `fmod_ret` on the `security_*` function behind the same hook; and,
//! for fsync, fdatasync and sync_file_range, which pass no LSM hook, a kprobe with
//! `bpf_override_return` on the syscall. Programs are attached when the first fault needing
//! them is armed and detached after the last one, so an idle node runs none.
use std::{
    collections::{BTreeMap, BTreeSet},
    os::fd::{AsFd as _, OwnedFd},
    path::PathBuf,
};

use aya::{
    programs::{links::FdLink, KProbe, Lsm},
    Ebpf,
};
use chaos_common::storage::{
    OP_CREATE, OP_FDATASYNC, OP_FSYNC, OP_MKDIR, OP_OPEN, OP_READ, OP_RENAME, OP_RMDIR,
    OP_SYNC_FILE_RANGE, OP_TRUNCATE, OP_UNLINK, OP_WRITE,
};
use tracing::info;

use super::{btf::KernelBtf, features::refusal, links::unpin, modret, pins::Pins, sys, Error};
use crate::error::chain;

/// How an operation is failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A BPF LSM program on the hook.
    Lsm,
    /// An `fmod_ret` program on the hook's `security_*` function.
    ModRet,
    /// A kprobe with `bpf_override_return` on the syscall.
    KprobeOverride,
}

impl Route {
    pub fn name(self) -> &'static str {
        match self {
            Self::Lsm => "bpf_lsm",
            Self::ModRet => "fmod_ret",
            Self::KprobeOverride => "kprobe_override",
        }
    }
}

/// One LSM hook: its programs and the operations it fails. `optional` hooks are attached
/// where the kernel has them (file_truncate: Linux 6.2+, where ftruncate moved to it).
struct LsmHook {
    hook: &'static str,
    lsm: &'static str,
    modret: &'static str,
    ops: u32,
    optional: bool,
}

const LSM_HOOKS: [LsmHook; 9] = [
    lsm_hook("file_open", "lsm_open", "mr_open", OP_OPEN),
    lsm_hook("file_permission", "lsm_perm", "mr_perm", OP_READ | OP_WRITE),
    lsm_hook("inode_create", "lsm_create", "mr_create", OP_CREATE),
    lsm_hook("inode_mkdir", "lsm_mkdir", "mr_mkdir", OP_MKDIR),
    lsm_hook("inode_unlink", "lsm_unlink", "mr_unlink", OP_UNLINK),
    lsm_hook("inode_rmdir", "lsm_rmdir", "mr_rmdir", OP_RMDIR),
    lsm_hook("inode_rename", "lsm_rename", "mr_rename", OP_RENAME),
    lsm_hook("path_truncate", "lsm_ptrunc", "mr_ptrunc", OP_TRUNCATE),
    LsmHook {
        optional: true,
        ..lsm_hook("file_truncate", "lsm_ftrunc", "mr_ftrunc", OP_TRUNCATE)
    },
];

const fn lsm_hook(
    hook: &'static str,
    lsm: &'static str,
    modret: &'static str,
    ops: u32,
) -> LsmHook {
    LsmHook {
        hook,
        lsm,
        modret,
        ops,
        optional: false,
    }
}

/// Syscalls failed by kprobes: (function, program, operation).
const SYSCALL_HOOKS: [(&str, &str, u32); 3] = [
    ("__x64_sys_fsync", "kp_fsync", OP_FSYNC),
    ("__x64_sys_fdatasync", "kp_fdatasync", OP_FDATASYNC),
    (
        "__x64_sys_sync_file_range",
        "kp_sync_range",
        OP_SYNC_FILE_RANGE,
    ),
];

/// A program loaded and ready to attach.
struct Program {
    route: Route,
    /// LSM hook or kernel function.
    target: &'static str,
    ops: u32,
    /// `fmod_ret` programs live outside aya: their fd.
    fd: Option<OwnedFd>,
}

/// What the node's kernel offers, as decided at start.
pub struct Offer<'a> {
    pub btf: Result<&'a KernelBtf, String>,
    /// The same BTF as aya parsed it, which it needs to load LSM programs.
    pub aya_btf: Option<&'a aya::Btf>,
    /// Struct offsets for the programs, or why they are unknown.
    pub layout: Result<(), String>,
    pub lsm: Result<(), String>,
    pub trampoline: Result<(), String>,
    pub override_return: Result<(), String>,
}

/// The storage programs and their attachments.
#[derive(Default)]
pub struct StorageHooks {
    programs: BTreeMap<&'static str, Program>,
    /// Per operation bit: its route, or why none.
    routes: BTreeMap<u32, Result<Route, String>>,
    /// Programs attached, with their link pins.
    attached: BTreeMap<&'static str, PathBuf>,
}

impl StorageHooks {
    /// Loads the programs of the best route for every operation (none is attached).
    pub fn load(ebpf: &mut Ebpf, offer: &Offer<'_>) -> Self {
        let mut hooks = Self::default();
        let common = offer
            .btf
            .as_ref()
            .map_err(|why| format!("no kernel BTF: {why}"))
            .and_then(|btf| offer.layout.clone().map(|()| *btf));
        let relocated = match (&common, &offer.lsm, &offer.trampoline) {
            (Ok(_), Err(_), Ok(())) => {
                Some(modret::Relocated::new(ebpf).map_err(|err| err.to_string()))
            }
            _ => None,
        };
        for hook in &LSM_HOOKS {
            let route = common
                .clone()
                .and_then(|btf| hooks.load_lsm_hook(ebpf, btf, hook, offer, relocated.as_ref()));
            if !hook.optional {
                hooks.set_route(hook.ops, route);
            }
        }
        for (function, name, op) in SYSCALL_HOOKS {
            let route = common.clone().and_then(|_| {
                offer.override_return.clone().map_err(|why| {
                    format!(
                        "needs a kprobe with bpf_override_return (CONFIG_BPF_KPROBE_OVERRIDE): \
                         {why}"
                    )
                })?;
                let program: &mut KProbe = program_mut(ebpf, name)?;
                program
                    .load()
                    .map_err(|err| format!("kprobe {name}: {}", refusal(&err)))?;
                Ok(Route::KprobeOverride)
            });
            if let Ok(route) = route {
                hooks.programs.insert(
                    name,
                    Program {
                        route,
                        target: function,
                        ops: op,
                        fd: None,
                    },
                );
            }
            hooks.set_route(op, route);
        }
        hooks
    }

    fn set_route(&mut self, ops: u32, route: Result<Route, String>) {
        for bit in 0..32 {
            if ops & (1 << bit) != 0 {
                self.routes.insert(1 << bit, route.clone());
            }
        }
    }

    /// Loads one LSM hook's program by the LSM or the `fmod_ret` route.
    fn load_lsm_hook(
        &mut self,
        ebpf: &mut Ebpf,
        btf: &KernelBtf,
        hook: &LsmHook,
        offer: &Offer<'_>,
        relocated: Option<&Result<modret::Relocated, String>>,
    ) -> Result<Route, String> {
        let (name, route, fd) = match (&offer.lsm, &offer.trampoline, relocated) {
            (Ok(()), _, _) => {
                if btf.function_id(&format!("bpf_lsm_{}", hook.hook)).is_none() {
                    return Err(format!("this kernel has no LSM hook {}", hook.hook));
                }
                let aya_btf = offer
                    .aya_btf
                    .ok_or("aya could not parse the kernel's BTF")?;
                let program: &mut Lsm = program_mut(ebpf, hook.lsm)?;
                program
                    .load(hook.hook, aya_btf)
                    .map_err(|err| format!("lsm/{}: {}", hook.hook, refusal(&err)))?;
                (hook.lsm, Route::Lsm, None)
            }
            (Err(_), Ok(()), Some(relocated)) => {
                let relocated = relocated.as_ref().map_err(Clone::clone)?;
                let function = format!("security_{}", hook.hook);
                let fd = relocated
                    .load(hook.modret, &function, btf)
                    .map_err(|err| err.to_string())?;
                (hook.modret, Route::ModRet, Some(fd))
            }
            (Err(lsm), trampoline, _) => {
                let trampoline = match trampoline {
                    Err(why) => why.as_str(),
                    Ok(()) => "the object could not be relocated",
                };
                return Err(format!(
                    "needs BPF LSM ({lsm}) or BPF trampolines for fmod_ret on security_* \
                     ({trampoline})"
                ));
            }
        };
        self.programs.insert(
            name,
            Program {
                route,
                target: hook.hook,
                ops: hook.ops,
                fd,
            },
        );
        Ok(route)
    }

    /// Per operation name: its route or why none, for `Capabilities`.
    pub fn routes(&self) -> impl Iterator<Item = (u32, &Result<Route, String>)> {
        self.routes.iter().map(|(op, route)| (*op, route))
    }

    /// Takes over the links a previous daemon pinned.
    pub fn adopt(&mut self, pins: &Pins) -> Result<(), Error> {
        for (name, path) in pins.storage_links()? {
            match self.programs.keys().find(|known| **known == name) {
                Some(known) => {
                    self.attached.insert(known, path);
                }
                // A program this daemon did not load: its link goes.
                None => unpin(&path),
            }
        }
        Ok(())
    }

    /// Attaches the programs the operations `ops` need and detaches the others; on failure
    /// the attachments are as they were.
    pub fn sync(&mut self, ebpf: &mut Ebpf, pins: &Pins, ops: u32) -> Result<(), Error> {
        let wanted: BTreeSet<&'static str> = self
            .programs
            .iter()
            .filter(|(_, p)| p.ops & ops != 0)
            .map(|(name, _)| *name)
            .collect();
        let mut added = Vec::new();
        for name in &wanted {
            if self.attached.contains_key(name) {
                continue;
            }
            let path = pins.storage_link(name);
            match self.attach(ebpf, name, &path) {
                Ok(()) => {
                    self.attached.insert(name, path);
                    added.push(*name);
                }
                Err(err) => {
                    for name in added {
                        if let Some(path) = self.attached.remove(name) {
                            unpin(&path);
                        }
                    }
                    return Err(err);
                }
            }
        }
        let unwanted: Vec<&'static str> = self
            .attached
            .keys()
            .filter(|name| !wanted.contains(*name))
            .copied()
            .collect();
        for name in unwanted {
            if let Some(path) = self.attached.remove(name) {
                unpin(&path);
                info!(program = name, "storage program detached");
            }
        }
        Ok(())
    }

    fn attach(
        &self,
        ebpf: &mut Ebpf,
        name: &'static str,
        path: &std::path::Path,
    ) -> Result<(), Error> {
        let program = self.programs.get(name).ok_or_else(|| Error::Link {
            path: path.display().to_string(),
            reason: format!("program {name} is not loaded"),
        })?;
        let link_error = |reason: String| Error::Link {
            path: path.display().to_string(),
            reason,
        };
        let fd_link = match (program.route, &program.fd) {
            (Route::ModRet, Some(fd)) => {
                let link = sys::raw_tracepoint_open(fd.as_fd())
                    .map_err(|err| link_error(format!("bpf(BPF_RAW_TRACEPOINT_OPEN): {err}")))?;
                sys::obj_pin(link.as_fd(), path)
                    .map_err(|err| link_error(format!("bpf(BPF_OBJ_PIN): {err}")))?;
                info!(
                    program = name,
                    function = program.target,
                    "storage program attached"
                );
                return Ok(());
            }
            (Route::Lsm, _) => {
                let lsm: &mut Lsm = program_mut(ebpf, name).map_err(link_error)?;
                let id = lsm
                    .attach()
                    .map_err(|source| Error::Program { name, source })?;
                let link = lsm
                    .take_link(id)
                    .map_err(|source| Error::Program { name, source })?;
                FdLink::from(link)
            }
            (Route::KprobeOverride, _) => {
                let kprobe: &mut KProbe = program_mut(ebpf, name).map_err(link_error)?;
                let id = kprobe
                    .attach(program.target, 0)
                    .map_err(|source| Error::Program { name, source })?;
                let link = kprobe
                    .take_link(id)
                    .map_err(|source| Error::Program { name, source })?;
                FdLink::try_from(link)
                    .map_err(|err| link_error(format!("not a bpf_link: {err}")))?
            }
            (Route::ModRet, None) => return Err(link_error("fmod_ret program without fd".into())),
        };
        fd_link
            .pin(path)
            .map_err(|err| link_error(format!("bpf_obj_pin: {err}")))?;
        info!(
            program = name,
            hook = program.target,
            "storage program attached"
        );
        Ok(())
    }

    /// Detaches every storage program (clean shutdown).
    pub fn detach_all(&mut self) {
        for (_, path) in std::mem::take(&mut self.attached) {
            unpin(&path);
        }
    }

    /// "open, write: bpf_lsm; fsync: kprobe_override" for the operations in `ops`.
    pub fn describe(&self, ops: u32) -> String {
        let mut by_route: Vec<(Route, Vec<&str>)> = Vec::new();
        for (op, route) in &self.routes {
            let (Ok(route), true) = (route, ops & op != 0) else {
                continue;
            };
            let names = crate::faults::errno::op_names(*op);
            match by_route.iter_mut().find(|(r, _)| r == route) {
                Some((_, known)) => known.extend(names),
                None => by_route.push((*route, names)),
            }
        }
        by_route
            .iter()
            .map(|(route, names)| format!("{}: {}", names.join(", "), route.name()))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn program_mut<'a, P>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P, String>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?
        .try_into()
        .map_err(|err: aya::programs::ProgramError| chain(&err))
}
