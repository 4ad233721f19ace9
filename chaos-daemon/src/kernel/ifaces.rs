//! Which interfaces carry a target's impairments: its own (its egress), and the other end
//! of each of its veth pairs (its ingress), found through its processes' namespaces.
use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{
    rtnl::Rtnl,
    shaper::{Error, FILTER_PRIO},
};

/// An interface carrying impairments, as the journal records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Iface {
    /// The network namespace (nsfs inode number).
    pub netns: u64,
    pub ifindex: u32,
    pub name: String,
    /// 0: one of the target's own interfaces (the program finds the target by the sending
    /// socket's cgroup); else the ingress route's tag, given to the program as the filter's
    /// classid.
    #[serde(default)]
    pub tag: u16,
}

impl Iface {
    /// The filter's priority: the ingress route's sits next to the egress route's, so one
    /// device can carry both.
    pub fn prio(&self) -> u16 {
        if self.tag == 0 {
            FILTER_PRIO
        } else {
            FILTER_PRIO + 1
        }
    }

    /// The same device, whatever the route.
    pub fn same_device(&self, other: &Iface) -> bool {
        self.netns == other.netns && self.ifindex == other.ifindex
    }
}

impl std::fmt::Display for Iface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (ifindex {}, netns {})",
            self.name, self.ifindex, self.netns
        )
    }
}

pub(super) fn open(netns: &Path) -> Result<Rtnl, Error> {
    Rtnl::open_in(netns).map_err(|source| Error::Rtnl {
        iface: format!("netns {}", netns.display()),
        source,
    })
}

/// The interfaces of the network namespaces `pids` live in (up, not loopback), and with
/// `ingress` the other end of each of them, which must be veths (tag 0: the caller tags
/// them).
pub fn interfaces_of(
    pids: impl IntoIterator<Item = u32>,
    ingress: bool,
) -> Result<(Vec<Iface>, Vec<Iface>), Error> {
    let mut seen = BTreeMap::new();
    for pid in pids {
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        // A process that exits meanwhile is skipped.
        if let Ok(meta) = std::fs::metadata(&path) {
            seen.entry(meta.ino()).or_insert(path);
        }
    }
    if seen.is_empty() {
        return Err(Error::NoInterface(
            "the target has no process, so its network namespace is unknown".into(),
        ));
    }
    let (mut own, mut other_ends) = (Vec::new(), Vec::new());
    for (netns, path) in &seen {
        let mut rtnl = open(path)?;
        let links = rtnl.links().map_err(|source| Error::Rtnl {
            iface: format!("netns {netns}"),
            source,
        })?;
        for link in links.into_iter().filter(|l| l.up && !l.loopback) {
            let iface = Iface {
                netns: *netns,
                ifindex: link.ifindex,
                name: link.name,
                tag: 0,
            };
            if ingress {
                match (link.kind.as_deref(), link.peer_ifindex) {
                    (Some("veth"), Some(peer)) => {
                        let peer = (peer, link.peer_netnsid);
                        other_ends.push(other_end(&iface, peer, &mut rtnl, &seen)?);
                    }
                    (kind, _) => {
                        return Err(Error::NoInterface(format!(
                            "{iface} is a {} interface: ingress impairments act on the other \
                             end of a veth",
                            kind.unwrap_or("physical")
                        )))
                    }
                }
            }
            own.push(iface);
        }
    }
    if own.is_empty() {
        return Err(Error::NoInterface(
            "the target's network namespace has no interface up besides loopback".into(),
        ));
    }
    Ok((own, other_ends))
}

/// The other end of the veth `iface`: index `peer` in the namespace the target's (`rtnl`'s)
/// numbers `nsid`. Looked for in the daemon's own namespace first (a pod's veth ends on the
/// node), then in named namespaces and those of processes, skipping the target's. Indexes
/// repeat across namespaces (every new one numbers from 1), so a namespace whose id, as the
/// target's numbers it, is not the veth's `IFLA_LINK_NETNSID` is passed over.
fn other_end(
    iface: &Iface,
    (peer, nsid): (u32, Option<i32>),
    rtnl: &mut Rtnl,
    targets: &BTreeMap<u64, PathBuf>,
) -> Result<Iface, Error> {
    let mut tried = BTreeSet::new();
    for path in netns_paths() {
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        let Ok(meta) = file.metadata() else {
            continue;
        };
        if targets.contains_key(&meta.ino()) || !tried.insert(meta.ino()) {
            continue;
        }
        // A kernel that cannot say keeps the index and peer-index match below.
        if let (Some(want), Ok(got)) = (nsid, rtnl.nsid_of(&file)) {
            if got != Some(want) {
                continue;
            }
        }
        let Ok(links) = open(&path).and_then(|mut rtnl| {
            rtnl.links().map_err(|source| Error::Rtnl {
                iface: format!("netns {}", path.display()),
                source,
            })
        }) else {
            continue;
        };
        if let Some(link) = links.into_iter().find(|l| {
            l.ifindex == peer
                && l.kind.as_deref() == Some("veth")
                && l.peer_ifindex == Some(iface.ifindex)
        }) {
            return Ok(Iface {
                netns: meta.ino(),
                ifindex: link.ifindex,
                name: link.name,
                tag: 0,
            });
        }
    }
    Err(Error::NoInterface(format!(
        "the other end of {iface} (ifindex {peer} in another namespace) was not found; \
         ingress impairments act there"
    )))
}

/// Network namespaces to look in: the daemon's, named ones (`ip netns`), every process's.
fn netns_paths() -> impl Iterator<Item = PathBuf> {
    let named = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path());
    let procs = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .map(|e| e.path().join("ns/net"));
    std::iter::once(PathBuf::from("/proc/self/ns/net"))
        .chain(named)
        .chain(procs)
}

/// A path to the network namespace with this inode.
pub(super) fn find_netns(inode: u64) -> Option<PathBuf> {
    netns_paths().find(|p| std::fs::metadata(p).is_ok_and(|m| m.ino() == inode))
}
