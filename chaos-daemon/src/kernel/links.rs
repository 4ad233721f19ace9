//! The network programs' attachments, one pair (egress, ingress) per targeted cgroup, pinned
//! so armed faults outlive the daemon.
//!
//! A cgroup is attached when its first network fault is armed and detached when its last one
//! ends: an idle node runs no faultline program, and untargeted cgroups never do. A restarted
//! daemon adopts pinned links whose faults are still armed instead of re-attaching them
//! (which would let packets through in between).
//!
//! Only the pins are kept, not the link fds: a pin holds a link by itself, and thousands of
//! targeted cgroups would otherwise exhaust the daemon's file descriptors.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use aya::{
    programs::{links::FdLink, links::PinnedLink, CgroupAttachMode, CgroupSkbAttachType},
    Ebpf,
};
use tracing::{info, warn};

use super::{loader, pins::Pins, Error};

/// Both directions, with their program and the name used in pin paths.
pub const DIRECTIONS: [(&str, &str, CgroupSkbAttachType); 2] = [
    ("egress", loader::NET_EGRESS, CgroupSkbAttachType::Egress),
    ("ingress", loader::NET_INGRESS, CgroupSkbAttachType::Ingress),
];

/// Pin paths of the links, by cgroup id.
#[derive(Default)]
pub struct NetLinks {
    links: BTreeMap<u64, Vec<PathBuf>>,
}

impl NetLinks {
    /// Cgroups that have the programs attached.
    pub fn cgroups(&self) -> impl Iterator<Item = u64> + '_ {
        self.links.keys().copied()
    }

    pub fn attached(&self, cgroup_id: u64) -> bool {
        self.links.contains_key(&cgroup_id)
    }

    /// Takes over every link a previous daemon pinned.
    pub fn adopt(&mut self, pins: &Pins) -> Result<(), Error> {
        for (cgroup_id, path) in pins.net_links()? {
            self.links.entry(cgroup_id).or_default().push(path);
        }
        Ok(())
    }

    /// Attaches both programs to the cgroup at `dir` and pins the links; all or nothing.
    pub fn attach(
        &mut self,
        ebpf: &mut Ebpf,
        cgroup_id: u64,
        dir: &Path,
        pins: &Pins,
    ) -> Result<(), Error> {
        if self.attached(cgroup_id) {
            return Ok(());
        }
        let cgroup = std::fs::File::open(dir).map_err(|source| Error::Cgroup {
            path: dir.display().to_string(),
            source,
        })?;
        let mut pinned = Vec::new();
        for (direction, name, attach_type) in DIRECTIONS {
            let path = pins.net_link(cgroup_id, direction);
            match attach_one(ebpf, &cgroup, name, attach_type, &path) {
                // Closing the fd leaves the link to its pin.
                Ok(link) => {
                    drop(link);
                    pinned.push(path);
                }
                Err(err) => {
                    unpin_all(pinned);
                    return Err(err);
                }
            }
        }
        info!(cgroup.id = cgroup_id, cgroup.path = %dir.display(), "network programs attached");
        self.links.insert(cgroup_id, pinned);
        Ok(())
    }

    /// Unpins and closes a cgroup's links, which detaches the programs (and frees their
    /// cgroup storage).
    pub fn detach(&mut self, cgroup_id: u64) {
        if let Some(links) = self.links.remove(&cgroup_id) {
            unpin_all(links);
            info!(cgroup.id = cgroup_id, "network programs detached");
        }
    }
}

fn attach_one(
    ebpf: &mut Ebpf,
    cgroup: &std::fs::File,
    name: &'static str,
    attach_type: CgroupSkbAttachType,
    path: &Path,
) -> Result<PinnedLink, Error> {
    let program = loader::cgroup_skb(ebpf, name)?;
    // A bpf_link is always attached as one of many (other software may attach to the same
    // cgroup); the kernel refuses BPF_F_ALLOW_MULTI in link_create's flags, so the mode must
    // be `Single`, which passes no flag
    // (<https://elixir.bootlin.com/linux/v6.1/source/kernel/bpf/cgroup.c#L1241>).
    let id = program
        .attach(cgroup, attach_type, CgroupAttachMode::Single)
        .map_err(|source| Error::Program { name, source })?;
    let link = program
        .take_link(id)
        .map_err(|source| Error::Program { name, source })?;
    let link_error = |reason: String| Error::Link {
        path: path.display().to_string(),
        reason,
    };
    FdLink::try_from(link)
        .map_err(|err| link_error(format!("not a bpf_link: {err}")))?
        .pin(path)
        .map_err(|err| link_error(format!("bpf_obj_pin: {err}")))
}

fn unpin_all(paths: Vec<PathBuf>) {
    for path in paths {
        unpin(&path);
    }
}

/// Unpins a link; with no other reference left, the kernel detaches it.
pub(super) fn unpin(path: &Path) {
    let unpinned = PinnedLink::from_pin(path)
        .map_err(|err| err.to_string())
        .and_then(|link| link.unpin().map_err(|err| err.to_string()));
    match unpinned {
        // Closing the last fd of an unpinned link detaches it.
        Ok(fd_link) => drop(fd_link),
        Err(err) => warn!(path = %path.display(), error = %err, "unpinning a link"),
    }
}
