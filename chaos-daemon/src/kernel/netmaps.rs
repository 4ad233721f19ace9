//! Typed access to the network fault maps shared with `chaos-ebpf/src/net.rs`.
use std::os::fd::AsFd as _;

use aya::{
    maps::{lpm_trie::Key, Array, LpmTrie, MapData, MapError, PerCpuArray, PerCpuValues},
    programs::CgroupSkbAttachType,
    Ebpf,
};
use chaos_common::{
    net::{
        NetCounters, NetFault, PeerKey, TargetSlots, COUNTERS_MAP, FAULTS_MAP, PEERS_MAP, SLOTS_MAP,
    },
    Counters,
};

use super::{sys, Error};

/// The network maps, owned.
pub struct NetMaps {
    /// Cgroup storage: aya has no typed wrapper for it, so it is written by `sys`.
    slots: MapData,
    faults: Array<MapData, NetFault>,
    peers: LpmTrie<MapData, PeerKey, u8>,
    counters: PerCpuArray<MapData, NetCounters>,
    cpus: usize,
}

/// A peer CIDR as the LPM map stores it: address (IPv4 mapped) and prefix over 128 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub addr: [u8; 16],
    pub prefix: u32,
}

pub(super) fn map_err(name: &'static str) -> impl Fn(MapError) -> Error {
    move |source| Error::Map { name, source }
}

pub(super) fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, Error>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf.take_map(name).ok_or(Error::Map {
        name,
        source: MapError::InvalidName {
            name: name.to_string(),
        },
    })?;
    T::try_from(map).map_err(map_err(name))
}

impl NetMaps {
    /// Takes the network maps out of the loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, Error> {
        let cpus = possible_cpus(COUNTERS_MAP)?;
        let slots = match ebpf.take_map(SLOTS_MAP) {
            Some(aya::maps::Map::CgroupStorage(data)) => data,
            _ => {
                return Err(Error::Map {
                    name: SLOTS_MAP,
                    source: MapError::InvalidName {
                        name: SLOTS_MAP.to_string(),
                    },
                })
            }
        };
        Ok(Self {
            slots,
            faults: take(ebpf, FAULTS_MAP)?,
            peers: take(ebpf, PEERS_MAP)?,
            counters: take(ebpf, COUNTERS_MAP)?,
            cpus,
        })
    }

    /// Writes a fault's parameters and zeroes its counters; done before any target points at
    /// the slot, so the program never sees a half-written fault.
    pub fn write_fault(&mut self, slot: u32, fault: &NetFault) -> Result<(), Error> {
        let zero = per_cpu_zero(COUNTERS_MAP, self.cpus)?;
        self.counters
            .set(slot, zero, 0)
            .map_err(map_err(COUNTERS_MAP))?;
        self.faults.set(slot, fault, 0).map_err(map_err(FAULTS_MAP))
    }

    /// Clears a slot's parameters (after no target points at it any more).
    pub fn clear_fault(&mut self, slot: u32) -> Result<(), Error> {
        self.faults
            .set(slot, NetFault::default(), 0)
            .map_err(map_err(FAULTS_MAP))
    }

    /// A slot's counters, summed over CPUs.
    pub fn counters(&self, slot: u32) -> Result<NetCounters, Error> {
        let values = self.counters.get(&slot, 0).map_err(map_err(COUNTERS_MAP))?;
        Ok(sum_counters(values.iter()))
    }

    fn peer_key(slot: u32, peer: &Peer) -> Key<PeerKey> {
        Key::new(
            32 + peer.prefix,
            PeerKey {
                slot_be: slot.to_be_bytes(),
                addr: peer.addr,
            },
        )
    }

    pub fn add_peer(&mut self, slot: u32, peer: &Peer) -> Result<(), Error> {
        self.peers
            .insert(&Self::peer_key(slot, peer), 1, 0)
            .map_err(map_err(PEERS_MAP))
    }

    /// Removes a peer entry; a missing one is fine (undo must be repeatable).
    pub fn remove_peer(&mut self, slot: u32, peer: &Peer) -> Result<(), Error> {
        ignore_missing(self.peers.remove(&Self::peer_key(slot, peer))).map_err(map_err(PEERS_MAP))
    }

    /// Writes the fault slots one attachment applies (the attachment must exist: the
    /// kernel allocates its storage when the program is attached).
    pub fn write_slots(
        &self,
        cgroup_id: u64,
        attach_type: CgroupSkbAttachType,
        slots: &TargetSlots,
    ) -> Result<(), Error> {
        let key = StorageKey {
            cgroup_inode_id: cgroup_id,
            attach_type: match attach_type {
                CgroupSkbAttachType::Ingress => BPF_CGROUP_INET_INGRESS,
                CgroupSkbAttachType::Egress => BPF_CGROUP_INET_EGRESS,
            },
            _pad: 0,
        };
        sys::map_update(self.slots.fd().as_fd(), &key, slots).map_err(|io_error| Error::Map {
            name: SLOTS_MAP,
            source: MapError::SyscallError(aya::sys::SyscallError {
                call: "bpf_map_update_elem",
                io_error,
            }),
        })
    }
}

/// Per-CPU counters summed; first/last are the earliest and latest over CPUs.
pub(super) fn sum_counters<'a>(values: impl Iterator<Item = &'a Counters>) -> Counters {
    let mut sum = Counters::default();
    for cpu in values {
        sum.seen += cpu.seen;
        sum.matched += cpu.matched;
        sum.affected += cpu.affected;
        (sum.first_ns, sum.last_ns) =
            span((sum.first_ns, sum.last_ns), (cpu.first_ns, cpu.last_ns));
    }
    sum
}

/// The earliest first and the latest last of two (first, last) pairs, 0 meaning never.
pub(super) fn span(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    let first = match (a.0, b.0) {
        (0, x) | (x, 0) => x,
        (x, y) => x.min(y),
    };
    (first, a.1.max(b.1))
}

/// A zeroed per-CPU value of `T` for `cpus` CPUs.
pub(super) fn per_cpu_zero<T: aya::Pod + Default>(
    name: &'static str,
    cpus: usize,
) -> Result<PerCpuValues<T>, Error> {
    PerCpuValues::try_from(vec![T::default(); cpus]).map_err(|io_error| Error::Map {
        name,
        source: MapError::SyscallError(aya::sys::SyscallError {
            call: "per-CPU values",
            io_error,
        }),
    })
}

/// The number of possible CPUs, which sizes per-CPU values.
pub(super) fn possible_cpus(name: &'static str) -> Result<usize, Error> {
    aya::util::nr_cpus().map_err(|(what, source)| Error::Map {
        name,
        source: MapError::SyscallError(aya::sys::SyscallError {
            call: what,
            io_error: source,
        }),
    })
}

/// Key of a cgroup storage map (`struct bpf_cgroup_storage_key`).
#[repr(C)]
struct StorageKey {
    cgroup_inode_id: u64,
    attach_type: u32,
    _pad: u32,
}
const _: () = assert!(std::mem::size_of::<StorageKey>() == 16);

/// `enum bpf_attach_type` values of the two network attach points.
const BPF_CGROUP_INET_INGRESS: u32 = 0;
const BPF_CGROUP_INET_EGRESS: u32 = 1;

pub(super) fn ignore_missing(result: Result<(), MapError>) -> Result<(), MapError> {
    match result {
        Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(err)) if err.io_error.raw_os_error() == Some(libc::ENOENT) => {
            Ok(())
        }
        other => other,
    }
}

impl NetMaps {
    /// The parameters at a slot.
    pub fn fault(&self, slot: u32) -> Result<NetFault, Error> {
        self.faults.get(&slot, 0).map_err(map_err(FAULTS_MAP))
    }
}
