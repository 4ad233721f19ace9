//! The interfaces that carry network impairments: `fq` as root qdisc, where packets wait for
//! the departure time the program gives them, and the impairment program as a `cls_bpf`
//! egress filter.
//!
//! Only a root qdisc the kernel put there by itself (handle 0: `noqueue`, `pfifo_fast`,
//! `mq`, `fq_codel`) is replaced; deleting ours brings that default back, so nothing needs
//! remembering beyond the interface. A qdisc someone configured is left alone and the fault
//! refused. Our `fq` is recognised by its handle, our filter by its priority and name.
//!
//! The filter is attached through clsact by netlink on every kernel, rather than as a TCX
//! link where one exists, so one path installs, adopts after a restart and removes it.
use std::{collections::BTreeMap, fs::File, os::fd::AsRawFd as _, path::Path};

use tracing::{info, warn};

pub use super::ifaces::Iface;
use super::{
    ifaces::{find_netns, open},
    rtnl::{self, FqOptions, Rtnl, TcDir},
};
use crate::faults::shape::FQ_HORIZON;

/// Handle of the `fq` qdisc faultline installs (major 0xfa17).
pub const FQ_HANDLE: u32 = 0xfa17_0000;
/// Priority and handle of the impairment filter on clsact egress.
pub const FILTER_PRIO: u16 = 0xfa17;
pub const FILTER_HANDLE: u32 = 1;
/// Name the filter carries (`tc filter show` prints it).
pub const FILTER_NAME: &str = "faultline_shape";

/// `fq` as installed: room for long delays. Packets beyond the horizon are held at it rather
/// than dropped, but the daemon never asks for more (`faults::shape::MAX_DELAY`).
fn fq_options() -> FqOptions {
    FqOptions {
        // Held packets: 60 s of delay at a few thousand packets per second.
        limit: 100_000,
        flow_limit: 100_000,
        horizon_us: FQ_HORIZON.as_micros() as u32,
        horizon_drop: false,
    }
}

/// Installing or removing failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A netlink request failed.
    #[error("{iface}: {source}")]
    Rtnl { iface: String, source: rtnl::Error },
    /// Entering or identifying a network namespace failed.
    #[error("network namespace {path}: {source}")]
    Netns {
        path: String,
        source: std::io::Error,
    },
    /// The interface has a root qdisc someone configured; faultline does not replace it.
    #[error(
        "{iface} has root qdisc {kind} {handle:x}: that faultline did not install; \
         impairments need fq there and faultline replaces only the kernel's default qdisc"
    )]
    ForeignQdisc {
        iface: String,
        kind: String,
        handle: u32,
    },
    /// The target's processes have no interface to shape.
    #[error("{0}")]
    NoInterface(String),
}

impl Error {
    /// True when the node, not the daemon, is why it failed (FAILED_PRECONDITION).
    pub fn is_precondition(&self) -> bool {
        matches!(self, Self::ForeignQdisc { .. } | Self::NoInterface(_))
    }
}

/// A network namespace held open while faultline has interfaces in it, so they can be put
/// back even after every process of the target has gone; and whether our `fq` is there.
struct Held {
    netns: File,
    fq: bool,
}

impl Held {
    fn rtnl(&self) -> Result<Rtnl, Error> {
        open(Path::new(&format!(
            "/proc/self/fd/{}",
            self.netns.as_raw_fd()
        )))
    }
}

/// The interfaces faultline has installed `fq` and the filter on.
#[derive(Default)]
pub struct Shapers {
    installed: BTreeMap<Iface, Held>,
}

impl Shapers {
    pub fn installed(&self) -> impl Iterator<Item = &Iface> {
        self.installed.keys()
    }

    /// Makes `wanted` exactly the shaped interfaces (routes), with `fq` on a device when a
    /// fault of one of its routes gives departure times: installs the missing ones (all or
    /// nothing), then puts the others back.
    pub fn sync(
        &mut self,
        wanted: &[(Iface, bool)],
        program: std::os::fd::BorrowedFd<'_>,
    ) -> Result<(), Error> {
        let fq_on = |iface: &Iface| wanted.iter().any(|(w, fq)| *fq && w.same_device(iface));
        let mut added = Vec::new();
        for (iface, _) in wanted {
            let fq = fq_on(iface);
            if let Some(held) = self.installed.get_mut(iface) {
                if held.fq != fq {
                    set_fq(iface, held, fq)?;
                }
                continue;
            }
            match install(iface, fq, program) {
                Ok(held) => {
                    self.installed.insert(iface.clone(), held);
                    added.push(iface.clone());
                }
                Err(err) => {
                    for iface in added {
                        self.take_out(&iface);
                    }
                    return Err(err);
                }
            }
        }
        let stale: Vec<Iface> = self
            .installed
            .keys()
            .filter(|i| !wanted.iter().any(|(w, _)| w == *i))
            .cloned()
            .collect();
        for iface in stale {
            self.take_out(&iface);
        }
        Ok(())
    }

    /// Removes one route; the device's qdiscs go with its last route.
    fn take_out(&mut self, iface: &Iface) {
        if let Some(held) = self.installed.remove(iface) {
            let last = !self.installed.keys().any(|i| i.same_device(iface));
            remove(iface, &held, last);
        }
    }

    /// Puts every interface back (daemon shutdown).
    pub fn remove_all(&mut self) {
        let all: Vec<Iface> = self.installed.keys().cloned().collect();
        for iface in all {
            self.take_out(&iface);
        }
    }
}

/// Puts back a route a previous daemon installed, found by its namespace's inode (a
/// namespace that is gone took its interfaces with it); the device's qdiscs too when no
/// route of this daemon uses it.
pub fn remove_orphan(iface: &Iface, last: bool) {
    match find_netns(iface.netns) {
        Some(path) => match File::open(&path) {
            Ok(netns) => remove(iface, &Held { netns, fq: true }, last),
            Err(err) => warn!(iface = %iface, error = %err, "opening the network namespace"),
        },
        None => info!(iface = %iface, "network namespace gone: nothing to put back"),
    }
}

fn install(iface: &Iface, fq: bool, program: std::os::fd::BorrowedFd<'_>) -> Result<Held, Error> {
    let path = find_netns(iface.netns)
        .ok_or_else(|| Error::NoInterface(format!("{iface}: its network namespace is gone")))?;
    let netns = File::open(&path).map_err(|source| Error::Netns {
        path: path.display().to_string(),
        source,
    })?;
    let mut held = Held { netns, fq: false };
    if fq {
        set_fq(iface, &mut held, true)?;
    }
    let mut rtnl = held.rtnl()?;
    let at = |source| Error::Rtnl {
        iface: iface.to_string(),
        source,
    };
    let filter = rtnl.add_clsact(iface.ifindex).and_then(|_| {
        match rtnl.add_bpf_filter(
            iface.ifindex,
            TcDir::Egress,
            iface.prio(),
            FILTER_HANDLE,
            program,
            FILTER_NAME,
            u32::from(iface.tag),
        ) {
            // A previous daemon's filter, running the same pinned maps: kept.
            Err(err) if err.errno() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    });
    if let Err(err) = filter {
        remove(iface, &held, !fq);
        return Err(at(err));
    }
    info!(iface = %iface, "fq and impairment filter installed");
    Ok(held)
}

/// Installs our `fq` at the root (replacing only the kernel's default), or removes it.
fn set_fq(iface: &Iface, held: &mut Held, wanted: bool) -> Result<(), Error> {
    let mut rtnl = held.rtnl()?;
    let at = |source| Error::Rtnl {
        iface: iface.to_string(),
        source,
    };
    let root = rtnl.root_qdisc(iface.ifindex).map_err(at)?;
    let ours = root
        .as_ref()
        .is_some_and(|q| q.kind == "fq" && q.handle == FQ_HANDLE);
    if wanted && !ours {
        if let Some(q) = root.filter(|q| q.handle != 0) {
            return Err(Error::ForeignQdisc {
                iface: iface.to_string(),
                kind: q.kind,
                handle: q.handle >> 16,
            });
        }
        rtnl.replace_root(iface.ifindex, FQ_HANDLE, "fq", &fq_options().encode())
            .map_err(at)?;
    } else if !wanted && ours {
        rtnl.delete_root(iface.ifindex).map_err(at)?;
    }
    held.fq = wanted;
    Ok(())
}

/// Removes the route's filter and, with the device's `last` route, clsact when nothing else
/// is attached to it and our `fq` (the kernel then re-creates its default root qdisc). Each
/// step is tried whatever the others did.
fn remove(iface: &Iface, held: &Held, last: bool) {
    let mut rtnl = match held.rtnl() {
        Ok(rtnl) => rtnl,
        Err(err) => {
            warn!(iface = %iface, error = %err, "putting the interface back");
            return;
        }
    };
    let i = iface.ifindex;
    if let Err(err) = rtnl.delete_filter(i, TcDir::Egress, iface.prio(), FILTER_HANDLE) {
        warn!(iface = %iface, error = %err, "removing the impairment filter");
    }
    if !last {
        info!(iface = %iface, "impairment route removed");
        return;
    }
    let unused = |rtnl: &mut Rtnl, dir| rtnl.filters(i, dir).is_ok_and(|f| f.is_empty());
    if unused(&mut rtnl, TcDir::Egress) && unused(&mut rtnl, TcDir::Ingress) {
        if let Err(err) = rtnl.delete_clsact(i) {
            warn!(iface = %iface, error = %err, "removing clsact");
        }
    }
    match rtnl.root_qdisc(i) {
        Ok(Some(q)) if q.kind == "fq" && q.handle == FQ_HANDLE => {
            if let Err(err) = rtnl.delete_root(i) {
                warn!(iface = %iface, error = %err, "removing fq");
            }
        }
        Ok(_) => {}
        Err(err) => warn!(iface = %iface, error = %err, "reading the root qdisc"),
    }
    info!(iface = %iface, "interface put back");
}

/// Whether `fq` exists here: installed on the loopback of a scratch network namespace
/// (which loads the module where it is one).
pub fn probe_fq() -> Result<(), String> {
    let probe = std::thread::spawn(|| -> Result<(), String> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|err| format!("unshare(CLONE_NEWNET): {err}"))?;
        let mut rtnl = Rtnl::open().map_err(|err| err.to_string())?;
        let lo = rtnl
            .links()
            .map_err(|err| err.to_string())?
            .into_iter()
            .find(|l| l.loopback)
            .ok_or("no loopback in a new network namespace")?;
        rtnl.replace_root(lo.ifindex, FQ_HANDLE, "fq", &fq_options().encode())
            .map_err(|err| format!("the fq qdisc is not available: {err}"))
    });
    probe
        .join()
        .map_err(|_| "the fq probe thread panicked".to_string())?
}
