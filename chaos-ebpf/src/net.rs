//! Network loss and partition for targeted cgroups: `cgroup_skb` programs attached to each
//! targeted cgroup.
//!
//! Why `cgroup_skb`, attached to the target:
//! - At TC ingress the receiving socket, and so its cgroup, is not known yet; `cgroup_skb`
//!   ingress runs in `sk_filter()` after the socket lookup, so both directions are matched by
//!   cgroup, in every network namespace, with no per-interface attachment. An ingress drop
//!   there is silent to the sender, like loss on a wire.
//! - Egress drops return 2 (drop + congestion notification): the stack sees `NET_XMIT_DROP`,
//!   which UDP swallows unless the socket asked for `IP_RECVERR` and TCP treats as a local
//!   drop and retransmits, instead of the `EPERM` that return 0 hands to every `sendmsg`
//!   (<https://elixir.bootlin.com/linux/v6.1/source/kernel/bpf/cgroup.c#L1257>).
//! - Programs attached to a cgroup run for it and every cgroup below it, also ones created
//!   during the window (a container restarted in a pod), and for no other: untargeted
//!   traffic pays nothing. Each attachment finds its own faults in cgroup storage
//!   (`bpf_get_local_storage`, one pointer load), so a fault on a pod and another on one of
//!   its containers apply independently, each from its own attachment
//!   (<https://docs.kernel.org/bpf/map_cgroup_storage.html>).
// The attachment-keyed cgroup storage is deprecated in favour of BPF_MAP_TYPE_CGRP_STORAGE,
// which is keyed by a task's cgroup and so cannot tell a pod's attachment from its
// container's; it also needs Linux 6.2.
#![allow(deprecated)]

use core::{ffi::c_void, mem::size_of, mem::MaybeUninit};

use aya_ebpf::{
    bindings::{__sk_buff, bpf_hdr_start_off::BPF_HDR_START_NET},
    helpers::generated::{bpf_get_prandom_u32, bpf_skb_load_bytes_relative},
    macros::{cgroup_skb, map},
    maps::{lpm_trie::Key, Array, CgroupStorage, LpmTrie, PerCpuArray},
    programs::SkBuffContext,
};
use chaos_common::net::{
    NetCounters, NetFault, PeerKey, TargetSlots, DIR_EGRESS, DIR_INGRESS, FLAG_PEERS, MAX_FAULTS,
    MAX_PEERS, MAX_PORT_RANGES, PROTO_ANY, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP,
    SLOTS_PER_TARGET,
};

use crate::clock::now_ns;

#[map]
static NET_SLOTS: CgroupStorage<TargetSlots> = CgroupStorage::pinned();
#[map]
static NET_FAULTS: Array<NetFault> = Array::pinned(MAX_FAULTS, 0);
#[map]
static NET_PEERS: LpmTrie<PeerKey, u8> = LpmTrie::pinned(MAX_PEERS, 0);
#[map]
static NET_COUNTERS: PerCpuArray<NetCounters> = PerCpuArray::pinned(MAX_FAULTS, 0);

/// `cgroup_skb` verdicts (kernel/bpf/cgroup.c).
const DROP: i32 = 0;
const PASS: i32 = 1;
const DROP_CN: i32 = 2;

/// LPM prefix of a full peer key: 32 bits of slot + 128 bits of address.
const PEER_PREFIX: u32 = 32 + 128;

#[cgroup_skb(egress)]
pub fn net_egress(ctx: SkBuffContext) -> i32 {
    if judge(&ctx, DIR_EGRESS) {
        DROP_CN
    } else {
        PASS
    }
}

#[cgroup_skb(ingress)]
pub fn net_ingress(ctx: SkBuffContext) -> i32 {
    if judge(&ctx, DIR_INGRESS) {
        DROP
    } else {
        PASS
    }
}

/// Does nothing: the baseline the benchmark compares `net_egress` with.
#[cgroup_skb(egress)]
pub fn net_noop(_ctx: SkBuffContext) -> i32 {
    PASS
}

/// The fields of a packet that filters look at.
#[derive(Clone, Copy)]
pub(crate) struct Packet {
    pub(crate) protocol: u8,
    has_ports: bool,
    local_port: u16,
    peer_port: u16,
    /// Peer address, IPv4 mapped into `::ffff:0:0/96`.
    peer: [u8; 16],
}

impl Packet {
    pub(crate) const EMPTY: Self = Self {
        protocol: 0,
        has_ports: false,
        local_port: 0,
        peer_port: 0,
        peer: [0; 16],
    };
}

/// True when a fault of the cgroup this program is attached to drops the packet.
#[inline(always)]
fn judge(ctx: &SkBuffContext, dir: u8) -> bool {
    // SAFETY: the kernel allocates this attachment's storage before the program can run and
    // frees it only after the program is detached.
    let target = unsafe { &*NET_SLOTS.get_ptr_mut() };
    let mut pkt = Packet::EMPTY;
    let mut parsed = false;
    let mut now = 0;
    let mut drop = false;
    for s in 0..SLOTS_PER_TARGET {
        let slot = target.slots[s];
        // The daemon packs slots at the front: the first empty one ends the list.
        if slot == 0 {
            break;
        }
        // Parse and read the clock once, and only when a fault is there.
        if !parsed {
            if !parse(ctx.skb.skb, dir, &mut pkt) {
                return false;
            }
            parsed = true;
            now = now_ns();
        }
        if apply(slot - 1, dir, now, &pkt) {
            drop = true;
        }
    }
    drop
}

/// Evaluates one fault on one packet, updating its counters; true = drop.
#[inline(always)]
fn apply(slot: u32, dir: u8, now: u64, pkt: &Packet) -> bool {
    let Some(fault) = NET_FAULTS.get(slot) else {
        return false;
    };
    if fault.directions & dir == 0 {
        return false;
    }
    let Some(counters) = NET_COUNTERS.get_ptr_mut(slot) else {
        return false;
    };
    // SAFETY: per-CPU value of this slot; this CPU is the only writer while we run.
    let counters = unsafe { &mut *counters };
    counters.seen += 1;
    if now < fault.start_ns || now >= fault.end_ns || !matches(slot, fault, pkt) {
        return false;
    }
    counters.matched += 1;
    // SAFETY: helper without pointer arguments.
    let draw = u64::from(unsafe { bpf_get_prandom_u32() });
    if draw >= fault.threshold {
        return false;
    }
    counters.affected += 1;
    if counters.first_ns == 0 {
        counters.first_ns = now;
    }
    counters.last_ns = now;
    true
}

/// The fault at `slot` is about this packet: protocol, ports and peer all match.
#[inline(always)]
pub(crate) fn matches(slot: u32, fault: &NetFault, pkt: &Packet) -> bool {
    if !protocol_matches(fault.protocol, pkt.protocol) || !ports_match(fault, pkt) {
        return false;
    }
    if fault.flags & FLAG_PEERS != 0 {
        let key = Key::new(
            PEER_PREFIX,
            PeerKey {
                slot_be: slot.to_be_bytes(),
                addr: pkt.peer,
            },
        );
        if NET_PEERS.get(&key).is_none() {
            return false;
        }
    }
    true
}

/// A network fault's parameters.
#[inline(always)]
pub(crate) fn fault(slot: u32) -> Option<&'static NetFault> {
    NET_FAULTS.get(slot)
}

#[inline(always)]
fn protocol_matches(wanted: u8, got: u8) -> bool {
    match wanted {
        PROTO_ANY => true,
        PROTO_ICMP => got == PROTO_ICMP || got == PROTO_ICMPV6,
        _ => wanted == got,
    }
}

#[inline(always)]
fn ports_match(fault: &NetFault, pkt: &Packet) -> bool {
    if fault.port_count == 0 {
        return true;
    }
    if !pkt.has_ports {
        return false;
    }
    for i in 0..MAX_PORT_RANGES {
        if i >= fault.port_count as usize {
            break;
        }
        let range = fault.ports[i];
        let inside = |port: u16| port >= range.first && port <= range.last;
        if inside(pkt.local_port) || inside(pkt.peer_port) {
            return true;
        }
    }
    false
}

/// Reads protocol, ports and peer address into `pkt`; false for non-IP packets. Offsets are
/// from the IP header, where `cgroup_skb` data starts and TC data does not: the loads are
/// relative to the network header, so both program types share this.
#[inline(always)]
pub(crate) fn parse(skb: *mut __sk_buff, dir: u8, pkt: &mut Packet) -> bool {
    let Ok(first) = load::<u8>(skb, 0) else {
        return false;
    };
    let l4: usize;
    match first >> 4 {
        4 => {
            let Ok(header) = load::<[u8; 20]>(skb, 0) else {
                return false;
            };
            pkt.protocol = header[9];
            let peer = if dir == DIR_EGRESS { 16 } else { 12 };
            pkt.peer[10] = 0xff;
            pkt.peer[11] = 0xff;
            pkt.peer[12] = header[peer];
            pkt.peer[13] = header[peer + 1];
            pkt.peer[14] = header[peer + 2];
            pkt.peer[15] = header[peer + 3];
            // Later fragments carry no transport header: they match no port filter.
            if u16::from_be_bytes([header[6], header[7]]) & 0x1fff != 0 {
                return true;
            }
            l4 = usize::from(first & 0x0f) * 4;
        }
        6 => {
            let Ok(next) = load::<u8>(skb, 6) else {
                return false;
            };
            pkt.protocol = next;
            let peer = if dir == DIR_EGRESS { 24 } else { 8 };
            let Ok(addr) = load::<[u8; 16]>(skb, peer) else {
                return false;
            };
            pkt.peer = addr;
            l4 = 40;
        }
        _ => return false,
    }
    if pkt.protocol == PROTO_TCP || pkt.protocol == PROTO_UDP {
        if let Ok(ports) = load::<[u8; 4]>(skb, l4) {
            let src = u16::from_be_bytes([ports[0], ports[1]]);
            let dst = u16::from_be_bytes([ports[2], ports[3]]);
            (pkt.local_port, pkt.peer_port) = if dir == DIR_EGRESS {
                (src, dst)
            } else {
                (dst, src)
            };
            pkt.has_ports = true;
        }
    }
    true
}

/// Reads a `T` at `offset` bytes from the packet's network header.
#[inline(always)]
pub(crate) fn load<T>(skb: *mut __sk_buff, offset: usize) -> Result<T, i64> {
    let mut value = MaybeUninit::<T>::uninit();
    // SAFETY: the helper writes at most size_of::<T>() bytes into `value`, and fails (leaving
    // it unread) when the packet is shorter.
    let ret = unsafe {
        bpf_skb_load_bytes_relative(
            skb as *const c_void,
            offset as u32,
            value.as_mut_ptr() as *mut c_void,
            size_of::<T>() as u32,
            BPF_HDR_START_NET,
        )
    };
    if ret == 0 {
        // SAFETY: fully written by the helper.
        Ok(unsafe { value.assume_init() })
    } else {
        Err(ret)
    }
}
