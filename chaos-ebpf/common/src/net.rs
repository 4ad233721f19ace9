//! Network fault maps: fault slots per targeted cgroup, fault parameters by slot, peer CIDRs,
//! counters.
//!
//! The programs are attached to each targeted cgroup, so untargeted traffic never runs them.
//! Each attachment has its own value in [`SLOTS_MAP`] (cgroup storage, keyed by cgroup id and
//! attach type): up to [`SLOTS_PER_TARGET`] fault slots whose parameters live in an array
//! indexed by slot.

/// Number of network fault slots (array size of the parameter and counter maps).
pub const MAX_FAULTS: u32 = 16_384;
/// Faults that can target the same cgroup at the same time.
pub const SLOTS_PER_TARGET: usize = 8;
/// Port ranges a fault can filter on.
pub const MAX_PORT_RANGES: usize = 4;
/// Peer CIDR entries across all faults.
pub const MAX_PEERS: u32 = 65_536;

/// Map names, shared so the daemon never spells them twice.
pub const SLOTS_MAP: &str = "NET_SLOTS";
pub const FAULTS_MAP: &str = "NET_FAULTS";
pub const PEERS_MAP: &str = "NET_PEERS";
pub const COUNTERS_MAP: &str = "NET_COUNTERS";

/// Direction bits of [`NetFault::directions`].
pub const DIR_EGRESS: u8 = 1;
pub const DIR_INGRESS: u8 = 2;

/// [`NetFault::protocol`] values; `PROTO_ANY` matches every IP packet.
pub const PROTO_ANY: u8 = 0;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

/// [`NetFault::flags`]: the peer address must be in this fault's CIDR set.
pub const FLAG_PEERS: u8 = 1;

/// `threshold` that drops every matching packet (draws are 32-bit).
pub const ALWAYS: u64 = 1 << 32;

/// [`NetFault::shape`] bits: the fault has impairments; packets may overtake in a flow; the
/// directions the impairments act in (loss uses [`NetFault::directions`]).
pub const SHAPE_ON: u8 = 1;
pub const SHAPE_REORDER: u8 = 2;
pub const SHAPE_EGRESS: u8 = 4;
pub const SHAPE_INGRESS: u8 = 8;

/// [`NetFault::distribution`] values. Uniform is drawn directly; the others come from a
/// table of [`DIST_SIZE`] quantiles each, in units of 1/[`DIST_ONE`] standard deviation.
pub const DIST_UNIFORM: u8 = 0;
pub const DIST_NORMAL: u8 = 1;
pub const DIST_PARETO: u8 = 2;
pub const DIST_PARETONORMAL: u8 = 3;
/// Number of tables ([`DIST_NORMAL`] is table 0).
pub const DIST_TABLES: u32 = 3;
pub const DIST_SIZE: u32 = 4096;
pub const DIST_ONE: i64 = 1 << 16;

/// Value of [`SLOTS_MAP`] for one attachment: slot + 1 of each fault on the cgroup in that
/// direction, 0 = empty.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetSlots {
    pub slots: [u32; SLOTS_PER_TARGET],
}
const _: () = assert!(core::mem::size_of::<TargetSlots>() == 32);

/// Inclusive port range; a packet matches if its local or its peer port is inside.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}
const _: () = assert!(core::mem::size_of::<PortRange>() == 4);

/// Value of [`FAULTS_MAP`] at a slot: one network fault as the kernel applies it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetFault {
    /// Window start, inclusive, in the object's clock (see `clock`).
    pub start_ns: u64,
    /// Window end, exclusive.
    pub end_ns: u64,
    /// Drop when a 32-bit random draw is below this; [`ALWAYS`] drops every packet.
    pub threshold: u64,
    pub ports: [PortRange; MAX_PORT_RANGES],
    /// Number of valid entries in `ports`; 0 = any port.
    pub port_count: u8,
    /// [`DIR_EGRESS`] | [`DIR_INGRESS`].
    pub directions: u8,
    /// One of the `PROTO_*` values.
    pub protocol: u8,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// `DIST_*` value of the jitter draw.
    pub distribution: u8,
    /// `SHAPE_*` bits; 0 = loss or partition only.
    pub shape: u8,
    pub _pad: [u8; 2],
    /// Impairments (`shape.rs`), all 0 when unused. Fixed delay added to each packet.
    pub delay_ns: u64,
    /// Jitter: uniform half-width, or standard deviation of the table distributions.
    pub jitter_ns: u64,
    /// A draw below this reuses the previous jitter (correlation).
    pub correlation: u64,
    /// Bottleneck rate in bit/s; 0 = no limit.
    pub rate_bits: u64,
    /// How far behind now the rate's virtual clock may lag after idling (the burst).
    pub burst_ns: u64,
    /// Longest wait in the bottleneck's queue before a packet is dropped.
    pub queue_ns: u64,
    /// Corrupt when a 32-bit draw is below this.
    pub corrupt: u64,
    /// Duplicate when a 32-bit draw is below this.
    pub duplicate: u64,
}
const _: () = assert!(core::mem::size_of::<NetFault>() == 112);

/// Per-CPU value of [`COUNTERS_MAP`] at a slot (`affected`: packets dropped).
pub type NetCounters = crate::Counters;

/// Data part of a [`PEERS_MAP`] LPM key: the fault's slot (big-endian, so it is the first 32
/// bits of the prefix) then the peer address, IPv4 mapped into `::ffff:0:0/96`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerKey {
    pub slot_be: [u8; 4],
    pub addr: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<PeerKey>() == 20);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: every type is #[repr(C)], made of integers, with explicit padding fields.
    unsafe impl aya::Pod for super::TargetSlots {}
    unsafe impl aya::Pod for super::NetFault {}
    unsafe impl aya::Pod for super::PeerKey {}
}
