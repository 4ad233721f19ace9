//! Network impairments — delay with jitter, a bandwidth bottleneck, corruption, duplication —
//! for targeted cgroups: one TC egress program, on the interfaces of the target's network
//! namespace (its egress) and on the other end of its veth pairs (its ingress).
//!
//! How: the program gives each packet an earliest departure time (`skb->tstamp`) and the
//! `fq` qdisc the daemon installs at the root of the interface holds it until then
//! (<https://lwn.net/Articles/766564/>). No timer of ours, no queue of ours: a packet
//! leaves on time however busy the daemon is, and the program stops changing packets at
//! the window's end by itself.
//!
//! - Delay: `latency + jitter` per packet, jitter drawn uniformly or from a quantile table
//!   the daemon fills ([`SHAPE_TABLES`]). Unless the fault allows reordering, a packet never
//!   departs before the one sent ahead of it in its flow ([`SHAPE_FLOWS`], keyed by the
//!   socket's flow hash): `fq` sorts each flow by departure time, so crossing delays would
//!   otherwise reorder it.
//! - Bandwidth: one virtual clock per fault and direction ([`SHAPE_CLOCKS`]) says when the
//!   bottleneck is free again; each packet takes the next `len × 8 / rate` of it, atomically
//!   across CPUs, and is dropped when it would wait longer than the queue allows.
//! - Corrupt: one random bit flipped, checksums left wrong. Duplicate: a clone sent out of
//!   the same interface, carrying the original's departure time.
//!
//! Who, on egress: TC runs before any cgroup program could tell, so the sending socket's
//! ancestor cgroup at each depth where a target sits is looked up in [`SHAPE_TARGETS`],
//! deepest first, as the storage programs do. Packets without a local socket (forwarded)
//! are not a target's.
//!
//! Who, on ingress: departure times only work on the way out, so a target's ingress is
//! impaired where it leaves the other end of the target's veth pair (for a pod, the node's
//! side). Every packet leaving that interface goes to the target; the filter there carries a
//! classid the program reads as `tc_classid`, the interface's tag in [`SHAPE_IFACES`].
//! Fault parameters and filters are the network fault's, at the same slot.
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use aya_ebpf::{
    bindings::{__sk_buff, TC_ACT_STOLEN, TC_ACT_UNSPEC},
    helpers::generated::{
        bpf_clone_redirect, bpf_get_hash_recalc, bpf_get_prandom_u32, bpf_ktime_get_ns,
        bpf_skb_ancestor_cgroup_id, bpf_skb_store_bytes,
    },
    macros::{classifier, map},
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
    programs::TcContext,
};
use chaos_common::{
    net::{
        NetFault, DIR_EGRESS, DIR_INGRESS, DIST_SIZE, DIST_TABLES, DIST_UNIFORM, MAX_FAULTS,
        PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, SHAPE_EGRESS, SHAPE_INGRESS, SHAPE_REORDER,
    },
    shape::{
        FlowKey, JitterTable, ShapeCounters, ShapeSlots, DUPLICATE_MARK, FLOW_INGRESS, MAX_FLOWS,
        MAX_IFACES, MAX_TARGETS,
    },
};

use crate::{
    atomic,
    clock::now_ns,
    net::{self, Packet},
    targets,
};

#[map]
static SHAPE_LEVELS: Array<u32> = Array::pinned(1, 0);
#[map]
static SHAPE_TARGETS: HashMap<u64, ShapeSlots> = HashMap::pinned(MAX_TARGETS, 0);
/// Faults of the targets whose ingress leaves an interface, by the interface's tag − 1.
#[map]
static SHAPE_IFACES: Array<ShapeSlots> = Array::pinned(MAX_IFACES, 0);
/// Per slot (egress) and MAX_FAULTS + slot (ingress): when the fault's bottleneck is free
/// again (`CLOCK_MONOTONIC` ns).
#[map]
static SHAPE_CLOCKS: Array<u64> = Array::pinned(2 * MAX_FAULTS, 0);
/// Last departure time given to a flow of a fault.
#[map]
static SHAPE_FLOWS: LruHashMap<FlowKey, u64> = LruHashMap::pinned(MAX_FLOWS, 0);
/// Jitter quantile tables, one per non-uniform distribution.
#[map]
static SHAPE_TABLES: Array<JitterTable> = Array::pinned(DIST_TABLES, 0);
/// Per slot and CPU: the previous jitter, for correlation.
#[map]
static SHAPE_JITTER: PerCpuArray<i64> = PerCpuArray::pinned(MAX_FAULTS, 0);
#[map]
static SHAPE_COUNTERS: PerCpuArray<ShapeCounters> = PerCpuArray::pinned(MAX_FAULTS, 0);

/// A departure time the socket already set (TCP's pacing) is kept as the starting point
/// when it lies within this much of now; anything else is another clock's or bogus.
const PACING_AHEAD_NS: u64 = 10_000_000_000;

/// What the packet's faults decided.
struct Verdict {
    departure: u64,
    drop: bool,
    corrupt: bool,
    duplicate: bool,
}

/// Every return but a drop is `TC_ACT_UNSPEC`: "no verdict", so the next filter on the hook
/// runs (ours on the other route, or someone else's) and the packet then goes on
/// (<https://elixir.bootlin.com/linux/v6.1/source/net/sched/cls_api.c#L1578>).
#[classifier]
pub fn net_shape(ctx: TcContext) -> i32 {
    let skb = ctx.skb.skb;
    // SAFETY: `skb` is the context the verifier checked; cb and tstamp are plain fields.
    unsafe {
        if read_volatile(addr_of!((*skb).cb[0])) == DUPLICATE_MARK {
            // Our own duplicate coming back through the interface: redirection cleared its
            // departure time, which the original left in cb. The mark stays, so our filter
            // of the other route lets it pass too; fq reuses that space once it queues it.
            let high = u64::from(read_volatile(addr_of!((*skb).cb[2])));
            let low = u64::from(read_volatile(addr_of!((*skb).cb[1])));
            write_volatile(addr_of_mut!((*skb).tstamp), high << 32 | low);
            return TC_ACT_UNSPEC;
        }
    }
    // SAFETY: tc_classid is readable by TC programs.
    let tag = unsafe { read_volatile(addr_of!((*skb).tc_classid)) };
    let (target, dir) = if tag != 0 {
        match SHAPE_IFACES.get(tag - 1) {
            Some(slots) => (*slots, DIR_INGRESS),
            None => return TC_ACT_UNSPEC,
        }
    } else {
        match target_slots(skb) {
            Some(slots) => (slots, DIR_EGRESS),
            None => return TC_ACT_UNSPEC,
        }
    };
    let mut pkt = Packet::EMPTY;
    if !net::parse(skb, dir, &mut pkt) {
        return TC_ACT_UNSPEC;
    }
    let now = now_ns();
    // SAFETY: helper without arguments. Departure times are CLOCK_MONOTONIC, as fq reads
    // them; the window may be in CLOCK_TAI (`clock.rs`).
    let mono = unsafe { bpf_ktime_get_ns() };
    // SAFETY: as above.
    let paced = unsafe { read_volatile(addr_of!((*skb).tstamp)) };
    let base = if paced > mono && paced - mono < PACING_AHEAD_NS {
        paced
    } else {
        mono
    };
    let mut verdict = Verdict {
        departure: base,
        drop: false,
        corrupt: false,
        duplicate: false,
    };
    for slot_tag in target.slots {
        if slot_tag == 0 {
            break;
        }
        apply(slot_tag - 1, dir, now, mono, skb, &pkt, &mut verdict);
        if verdict.drop {
            // Silent, as a full queue on a link is: TC_ACT_STOLEN from clsact tells the
            // sender the packet left (`kernels.md`, network return codes).
            return TC_ACT_STOLEN;
        }
    }
    if verdict.departure != base {
        // SAFETY: tstamp is writable from TC programs.
        unsafe { write_volatile(addr_of_mut!((*skb).tstamp), verdict.departure) };
    }
    if verdict.duplicate {
        duplicate(skb, verdict.departure);
    }
    if verdict.corrupt {
        corrupt(skb, &pkt);
    }
    TC_ACT_UNSPEC
}

/// The slots of the deepest targeted cgroup above the sending socket.
#[inline(always)]
fn target_slots(skb: *mut __sk_buff) -> Option<ShapeSlots> {
    // SAFETY: `skb` is the program's context. 0: no full socket, or shallower.
    targets::deepest(&SHAPE_LEVELS, &SHAPE_TARGETS, |level| unsafe {
        bpf_skb_ancestor_cgroup_id(skb, level)
    })
}

#[inline(always)]
fn draw() -> u64 {
    // SAFETY: helper without pointer arguments.
    u64::from(unsafe { bpf_get_prandom_u32() })
}

/// One fault on one packet: window, filters, then rate, delay, duplicate, corrupt.
#[inline(always)]
fn apply(
    slot: u32,
    dir: u8,
    now: u64,
    mono: u64,
    skb: *mut __sk_buff,
    pkt: &Packet,
    verdict: &mut Verdict,
) {
    let Some(fault) = net::fault(slot) else {
        return;
    };
    let wanted = if dir == DIR_INGRESS {
        SHAPE_INGRESS
    } else {
        SHAPE_EGRESS
    };
    if fault.shape & wanted == 0 {
        return;
    }
    let Some(counters) = SHAPE_COUNTERS.get_ptr_mut(slot) else {
        return;
    };
    // SAFETY: per-CPU value of this slot; this CPU is the only writer while we run.
    let counters = unsafe { &mut *counters };
    counters.seen += 1;
    if now < fault.start_ns || now >= fault.end_ns || !net::matches(slot, fault, pkt) {
        return;
    }
    counters.matched += 1;
    let before = verdict.departure;
    if fault.rate_bits != 0 {
        // SAFETY: as above.
        let len = u64::from(unsafe { (*skb).len });
        let clock = if dir == DIR_INGRESS {
            MAX_FAULTS + slot
        } else {
            slot
        };
        match pace(clock, fault, len, verdict.departure, mono) {
            Some(departure) => verdict.departure = departure,
            None => {
                counters.dropped += 1;
                counters.affected += 1;
                verdict.drop = true;
                stamp(counters, now);
                return;
            }
        }
    }
    let delay = fault.delay_ns as i64 + jitter(slot, fault);
    if delay > 0 {
        verdict.departure += delay as u64;
    }
    if fault.shape & SHAPE_REORDER == 0 && (fault.delay_ns != 0 || fault.jitter_ns != 0) {
        let flow = if dir == DIR_INGRESS {
            slot | FLOW_INGRESS
        } else {
            slot
        };
        keep_order(flow, skb, verdict);
    }
    let mut affected = false;
    if verdict.departure > before {
        counters.delayed += 1;
        affected = true;
    }
    if fault.duplicate != 0 && draw() < fault.duplicate {
        counters.duplicated += 1;
        verdict.duplicate = true;
        affected = true;
    }
    if fault.corrupt != 0 && draw() < fault.corrupt {
        counters.corrupted += 1;
        verdict.corrupt = true;
        affected = true;
    }
    if affected {
        counters.affected += 1;
        stamp(counters, now);
    }
}

#[inline(always)]
fn stamp(counters: &mut ShapeCounters, now: u64) {
    if counters.first_ns == 0 {
        counters.first_ns = now;
    }
    counters.last_ns = now;
}

/// Takes the packet's turn on the fault's bottleneck; its departure, or None when the queue
/// in front of the bottleneck is full.
#[inline(always)]
fn pace(clock: u32, fault: &NetFault, len: u64, base: u64, mono: u64) -> Option<u64> {
    let clock = SHAPE_CLOCKS.get_ptr_mut(clock)?;
    let serialize = len * 8_000_000_000 / fault.rate_bits;
    // After an idle period the bottleneck restarts from now, minus the burst it may send
    // back to back.
    let floor = base.saturating_sub(fault.burst_ns);
    // SAFETY: `clock` points into the array's value for this slot.
    let free = unsafe { read_volatile(clock) };
    if free < floor {
        // Losing this race to another CPU is fine: it moved the clock forward itself.
        atomic::compare_exchange(clock, free, floor);
    }
    let start = atomic::fetch_add(clock, serialize).max(floor);
    if fault.queue_ns != 0 && start > mono + fault.queue_ns {
        atomic::fetch_add(clock, serialize.wrapping_neg());
        return None;
    }
    Some((start + serialize).max(base))
}

/// Jitter of this packet in ns, signed.
#[inline(always)]
fn jitter(slot: u32, fault: &NetFault) -> i64 {
    if fault.jitter_ns == 0 {
        return 0;
    }
    let Some(last) = SHAPE_JITTER.get_ptr_mut(slot) else {
        return 0;
    };
    // Correlation keeps the distribution: a share of packets repeats the previous value.
    if fault.correlation != 0 && draw() < fault.correlation {
        // SAFETY: per-CPU value of this slot.
        return unsafe { *last };
    }
    let value = if fault.distribution == DIST_UNIFORM {
        let span = 2 * fault.jitter_ns + 1;
        ((draw() << 32 | draw()) % span) as i64 - fault.jitter_ns as i64
    } else {
        let Some(table) = SHAPE_TABLES.get(u32::from(fault.distribution - 1)) else {
            return 0;
        };
        // The mask keeps the offset inside the value, as the verifier checks.
        let quantile = &table.quantiles[draw() as usize & (DIST_SIZE as usize - 1)];
        // Quantiles are in 1/65536 of a standard deviation.
        (i64::from(*quantile) * fault.jitter_ns as i64) >> 16
    };
    // SAFETY: per-CPU value of this slot.
    unsafe { *last = value };
    value
}

/// Holds the packet until the previous one of its flow has left, and records its departure.
#[inline(always)]
fn keep_order(slot: u32, skb: *mut __sk_buff, verdict: &mut Verdict) {
    // SAFETY: `skb` is the program's context.
    let hash = unsafe { bpf_get_hash_recalc(skb) };
    let key = FlowKey { slot, hash };
    // SAFETY: the value is copied out.
    if let Some(last) = unsafe { SHAPE_FLOWS.get(key) } {
        if *last > verdict.departure {
            verdict.departure = *last;
        }
    }
    let _ = SHAPE_FLOWS.insert(key, verdict.departure, 0);
}

/// Sends a copy of the packet out of the same interface, with the same departure time.
#[inline(always)]
fn duplicate(skb: *mut __sk_buff, departure: u64) {
    // SAFETY: cb is scratch space of TC programs, copied into the clone; the mark is
    // cleared from the original right after.
    unsafe {
        write_volatile(addr_of_mut!((*skb).cb[1]), departure as u32);
        write_volatile(addr_of_mut!((*skb).cb[2]), (departure >> 32) as u32);
        write_volatile(addr_of_mut!((*skb).cb[0]), DUPLICATE_MARK);
        let ifindex = (*skb).ifindex;
        let _ = bpf_clone_redirect(skb, ifindex, 0);
        write_volatile(addr_of_mut!((*skb).cb[0]), 0);
    }
}

/// Flips one random bit from the IP header on and leaves the checksums wrong: IPv4's header
/// checksum, which every receiver verifies in software
/// (<https://elixir.bootlin.com/linux/v6.1/source/net/ipv4/ip_input.c#L499>); for IPv6, the
/// transport checksum, also when the sender left it to the device (`CHECKSUM_PARTIAL`: the
/// field then holds the seed the device adds to).
#[inline(always)]
fn corrupt(skb: *mut __sk_buff, pkt: &Packet) {
    // SAFETY: `skb` is the program's context.
    let len = unsafe { (*skb).len };
    let Ok(first) = net::load::<u8>(skb, 0) else {
        return;
    };
    let version = first >> 4;
    // Where the IP header starts in the frame: its own length field says how much follows.
    let ip_len = match version {
        4 => match net::load::<[u8; 2]>(skb, 2) {
            Ok(b) => u32::from(u16::from_be_bytes(b)),
            Err(_) => return,
        },
        6 => match net::load::<[u8; 2]>(skb, 4) {
            Ok(b) => u32::from(u16::from_be_bytes(b)) + 40,
            Err(_) => return,
        },
        _ => return,
    };
    if ip_len == 0 || ip_len > len {
        return;
    }
    let l3 = len - ip_len;
    let r = draw() as u32;
    let offset = l3 + r % ip_len;
    flip(skb, offset, 1 << (draw() as u8 & 7));
    let checksum = if version == 4 {
        // Only when the flipped bit is not in the header: a flip there already breaks it.
        if offset < l3 + u32::from(first & 0x0f) * 4 {
            return;
        }
        l3 + 10
    } else {
        match pkt.protocol {
            PROTO_TCP => l3 + 40 + 16,
            PROTO_UDP => l3 + 40 + 6,
            PROTO_ICMPV6 => l3 + 40 + 2,
            _ => return,
        }
    };
    if offset != checksum && offset != checksum + 1 {
        flip(skb, checksum + 1, 1);
    }
}

#[inline(always)]
fn flip(skb: *mut __sk_buff, offset: u32, bit: u8) {
    let mut byte = [0u8; 1];
    // SAFETY: the helpers bound-check `offset` against the packet.
    unsafe {
        if aya_ebpf::helpers::generated::bpf_skb_load_bytes(
            skb as *const _,
            offset,
            byte.as_mut_ptr() as *mut _,
            1,
        ) != 0
        {
            return;
        }
        byte[0] ^= bit;
        let _ = bpf_skb_store_bytes(skb, offset, byte.as_ptr() as *const _, 1, 0);
    }
}
