//! The network programs' attachments at the cgroup v2 root, pinned so they outlive the daemon.
//!
//! Attached when the first network fault is armed and removed when the last one ends: an idle
//! node runs no faultline program. A restarted daemon adopts pinned links while faults it
//! adopted still need them, instead of detaching and re-attaching (which would let packets
//! through in between).
use std::path::Path;

use aya::{
    programs::{links::FdLink, links::PinnedLink, CgroupAttachMode, CgroupSkbAttachType},
    Ebpf,
};
use tracing::info;

use super::{loader, pins::Pins, Error};

/// Both directions' pinned links, when attached.
#[derive(Default)]
pub struct NetLinks {
    links: Vec<PinnedLink>,
}

const DIRECTIONS: [(&str, &str, CgroupSkbAttachType); 2] = [
    ("egress", loader::NET_EGRESS, CgroupSkbAttachType::Egress),
    ("ingress", loader::NET_INGRESS, CgroupSkbAttachType::Ingress),
];

impl NetLinks {
    pub fn attached(&self) -> bool {
        !self.links.is_empty()
    }

    /// Takes over links a previous daemon pinned, if any.
    pub fn adopt(&mut self, pins: &Pins) -> Result<bool, Error> {
        for (direction, _, _) in DIRECTIONS {
            let path = pins.net_link(direction);
            if path.exists() {
                let link = PinnedLink::from_pin(&path).map_err(|err| Error::Link {
                    path: path.display().to_string(),
                    reason: format!("bpf_obj_get: {err}"),
                })?;
                self.links.push(link);
            }
        }
        Ok(self.attached())
    }

    /// Attaches both programs at `root` (the v2 root cgroup) and pins the links.
    pub fn attach(&mut self, ebpf: &mut Ebpf, root: &Path, pins: &Pins) -> Result<(), Error> {
        if self.attached() {
            return Ok(());
        }
        let cgroup = std::fs::File::open(root).map_err(|source| Error::Cgroup {
            path: root.display().to_string(),
            source,
        })?;
        for (direction, name, attach_type) in DIRECTIONS {
            let path = pins.net_link(direction);
            let program = loader::cgroup_skb(ebpf, name)?;
            // A bpf_link is always attached as one of many (other software may attach at the
            // root too); the kernel refuses BPF_F_ALLOW_MULTI in link_create's flags, so the
            // mode must be `Single`, which passes no flag
            // (<https://elixir.bootlin.com/linux/v6.1/source/kernel/bpf/cgroup.c#L1241>).
            let id = program
                .attach(&cgroup, attach_type, CgroupAttachMode::Single)
                .map_err(|source| Error::Program { name, source })?;
            let link = program
                .take_link(id)
                .map_err(|source| Error::Program { name, source })?;
            let pinned = FdLink::try_from(link)
                .map_err(|err| Error::Link {
                    path: path.display().to_string(),
                    reason: format!("not a bpf_link: {err}"),
                })?
                .pin(&path)
                .map_err(|err| Error::Link {
                    path: path.display().to_string(),
                    reason: format!("bpf_obj_pin: {err}"),
                });
            match pinned {
                Ok(pinned) => self.links.push(pinned),
                Err(err) => {
                    self.detach();
                    return Err(err);
                }
            }
            info!(direction, cgroup = %root.display(), "network program attached");
        }
        Ok(())
    }

    /// Unpins and closes the links, which detaches the programs.
    pub fn detach(&mut self) {
        for link in self.links.drain(..) {
            match link.unpin() {
                Ok(fd_link) => drop(fd_link),
                Err(err) => tracing::warn!(error = %err, "unpinning a network link"),
            }
        }
        info!("network programs detached");
    }
}
