//! Typed access to the network fault maps shared with `chaos-ebpf/src/net.rs`.
use aya::{
    maps::{lpm_trie::Key, Array, HashMap, LpmTrie, MapData, MapError, PerCpuArray, PerCpuValues},
    Ebpf,
};
use chaos_common::net::{
    NetConfig, NetCounters, NetFault, PeerKey, TargetSlots, CONFIG_MAP, COUNTERS_MAP, FAULTS_MAP,
    MAX_TARGET_LEVELS, PEERS_MAP, SLOTS_PER_TARGET, TARGETS_MAP,
};

use super::Error;

/// The network maps, owned.
pub struct NetMaps {
    targets: HashMap<MapData, u64, TargetSlots>,
    faults: Array<MapData, NetFault>,
    peers: LpmTrie<MapData, PeerKey, u8>,
    counters: PerCpuArray<MapData, NetCounters>,
    config: Array<MapData, NetConfig>,
    cpus: usize,
}

/// A peer CIDR as the LPM map stores it: address (IPv4 mapped) and prefix over 128 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub addr: [u8; 16],
    pub prefix: u32,
}

fn map_err(name: &'static str) -> impl Fn(MapError) -> Error {
    move |source| Error::Map { name, source }
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, Error>
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
        let cpus = aya::util::nr_cpus().map_err(|(what, source)| Error::Map {
            name: COUNTERS_MAP,
            source: MapError::SyscallError(aya::sys::SyscallError {
                call: what,
                io_error: source,
            }),
        })?;
        Ok(Self {
            targets: take(ebpf, TARGETS_MAP)?,
            faults: take(ebpf, FAULTS_MAP)?,
            peers: take(ebpf, PEERS_MAP)?,
            counters: take(ebpf, COUNTERS_MAP)?,
            config: take(ebpf, CONFIG_MAP)?,
            cpus,
        })
    }

    /// Writes a fault's parameters and zeroes its counters; done before any target points at
    /// the slot, so the program never sees a half-written fault.
    pub fn write_fault(&mut self, slot: u32, fault: &NetFault) -> Result<(), Error> {
        let zero = PerCpuValues::try_from(vec![NetCounters::default(); self.cpus]).map_err(
            |io_error| Error::Map {
                name: COUNTERS_MAP,
                source: MapError::SyscallError(aya::sys::SyscallError {
                    call: "per-CPU counters",
                    io_error,
                }),
            },
        )?;
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

    /// Sums a slot's per-CPU counters; first/last are the earliest and latest over CPUs.
    pub fn counters(&self, slot: u32) -> Result<NetCounters, Error> {
        let values = self.counters.get(&slot, 0).map_err(map_err(COUNTERS_MAP))?;
        let mut sum = NetCounters::default();
        for cpu in values.iter() {
            sum.seen += cpu.seen;
            sum.matched += cpu.matched;
            sum.dropped += cpu.dropped;
            if cpu.first_ns != 0 && (sum.first_ns == 0 || cpu.first_ns < sum.first_ns) {
                sum.first_ns = cpu.first_ns;
            }
            sum.last_ns = sum.last_ns.max(cpu.last_ns);
        }
        Ok(sum)
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

    /// Points cgroup `id` at `slot` (idempotent).
    pub fn add_target(&mut self, id: u64, slot: u32) -> Result<(), Error> {
        let mut slots = self.target_slots(id)?;
        let tag = slot + 1;
        if slots.slots.contains(&tag) {
            return Ok(());
        }
        let free = slots.slots.iter_mut().find(|s| **s == 0).ok_or_else(|| {
            Error::Full(format!(
                "cgroup {id} already has {SLOTS_PER_TARGET} network faults, the most one cgroup can have"
            ))
        })?;
        *free = tag;
        self.targets
            .insert(id, slots, 0)
            .map_err(map_err(TARGETS_MAP))
    }

    /// Stops cgroup `id` pointing at `slot`; removes the entry when no slot is left.
    pub fn remove_target(&mut self, id: u64, slot: u32) -> Result<(), Error> {
        let mut slots = self.target_slots(id)?;
        for s in slots.slots.iter_mut().filter(|s| **s == slot + 1) {
            *s = 0;
        }
        if slots.slots.iter().all(|s| *s == 0) {
            ignore_missing(self.targets.remove(&id)).map_err(map_err(TARGETS_MAP))
        } else {
            self.targets
                .insert(id, slots, 0)
                .map_err(map_err(TARGETS_MAP))
        }
    }

    fn target_slots(&self, id: u64) -> Result<TargetSlots, Error> {
        match self.targets.get(&id, 0) {
            Ok(slots) => Ok(slots),
            Err(MapError::KeyNotFound) => Ok(TargetSlots::default()),
            Err(source) => Err(Error::Map {
                name: TARGETS_MAP,
                source,
            }),
        }
    }

    /// Sets which cgroup levels the programs look at; an empty set turns them into a no-op.
    pub fn set_levels(&mut self, levels: &std::collections::BTreeSet<u8>) -> Result<(), Error> {
        let mut config = NetConfig::default();
        if levels.len() > MAX_TARGET_LEVELS {
            return Err(Error::Full(format!(
                "targets would sit at {} distinct cgroup levels; at most {MAX_TARGET_LEVELS} at once",
                levels.len()
            )));
        }
        for (slot, level) in config.levels.iter_mut().zip(levels) {
            *slot = *level;
        }
        config.count = levels.len() as u8;
        self.config.set(0, config, 0).map_err(map_err(CONFIG_MAP))
    }
}

fn ignore_missing(result: Result<(), MapError>) -> Result<(), MapError> {
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
