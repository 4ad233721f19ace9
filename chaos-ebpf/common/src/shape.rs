//! Network impairment maps (`chaos-ebpf/src/shape.rs`): who is targeted, the rate clocks,
//! per-flow departure times, jitter tables and counters.
//!
//! The impairment program runs at TC egress of the target's interfaces, where it cannot use
//! the loss program's cgroup storage: it finds its faults by the sending socket's ancestor
//! cgroup at each depth where a target sits ([`LEVELS_MAP`], [`TARGETS_MAP`]), as the storage
//! programs do. Fault parameters are the network fault's, at the same slot.

/// Map names, shared so the daemon never spells them twice.
pub const LEVELS_MAP: &str = "SHAPE_LEVELS";
pub const TARGETS_MAP: &str = "SHAPE_TARGETS";
pub const IFACES_MAP: &str = "SHAPE_IFACES";
pub const CLOCKS_MAP: &str = "SHAPE_CLOCKS";
pub const FLOWS_MAP: &str = "SHAPE_FLOWS";
pub const TABLES_MAP: &str = "SHAPE_TABLES";
pub const JITTER_MAP: &str = "SHAPE_JITTER";
pub const COUNTERS_MAP: &str = "SHAPE_COUNTERS";

/// Targeted cgroups with impairments at one time.
pub const MAX_TARGETS: u32 = 16_384;
/// Interfaces carrying targets' ingress (the other end of their veth), by the tag their
/// filter's classid gives the program (1-based: 0 is "egress of a target's own interface").
pub const MAX_IFACES: u32 = 4_096;
/// Flows whose last departure time is remembered (LRU: idle flows are forgotten first).
pub const MAX_FLOWS: u32 = 65_536;
/// `cb[0]` of a duplicate on its way back through the program: let it pass as it is.
pub const DUPLICATE_MARK: u32 = 0xfa17_d0b1;

/// Value of [`TARGETS_MAP`]: slot + 1 of each impairment fault on the cgroup or a cgroup
/// above it, 0 = empty.
pub type ShapeSlots = crate::net::TargetSlots;

/// [`FlowKey::slot`] bit of the ingress route, whose flows are not the egress ones.
pub const FLOW_INGRESS: u32 = 1 << 31;

/// Key of [`FLOWS_MAP`]: a fault's slot (| [`FLOW_INGRESS`]) and the packet's flow hash.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowKey {
    pub slot: u32,
    pub hash: u32,
}
const _: () = assert!(core::mem::size_of::<FlowKey>() == 8);

/// A value of [`TABLES_MAP`]: one jitter table, [`crate::net::DIST_SIZE`] quantiles. A whole
/// table per element, so the daemon writes the tables with one `BPF_MAP_UPDATE_ELEM` each at
/// start rather than one per quantile (12,288 syscalls cost seconds on an emulated machine),
/// and the program indexes it with a mask the verifier can bound.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JitterTable {
    pub quantiles: [i32; crate::net::DIST_SIZE as usize],
}
const _: () = assert!(core::mem::size_of::<JitterTable>() == 16_384);

/// Every table, in map order: normal, pareto, paretonormal.
pub type JitterTables = [JitterTable; crate::net::DIST_TABLES as usize];

/// Per-CPU value of [`COUNTERS_MAP`] at a slot. Times are in the window's clock.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShapeCounters {
    /// Packets of the target that met the fault while armed.
    pub seen: u64,
    /// Of those, inside the window and passing the filters.
    pub matched: u64,
    /// Given a later departure time (delay or rate).
    pub delayed: u64,
    /// Dropped because the bandwidth queue was full.
    pub dropped: u64,
    pub corrupted: u64,
    pub duplicated: u64,
    /// Impaired in any of these ways (a packet counts once).
    pub affected: u64,
    /// First and last impaired packet.
    pub first_ns: u64,
    pub last_ns: u64,
}
const _: () = assert!(core::mem::size_of::<ShapeCounters>() == 72);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)], integers only, no padding.
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::ShapeCounters {}
    unsafe impl aya::Pod for super::JitterTable {}
}
