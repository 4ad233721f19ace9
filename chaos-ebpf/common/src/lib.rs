//! Types and limits shared by faultline's eBPF programs and the daemon that fills their maps.
#![no_std]

pub mod net;
pub mod shape;
pub mod storage;

/// Per-CPU counters of one fault slot, network or storage. Times are in the object's clock,
/// 0 = never.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events of the target in the fault's scope while it was armed (packets in its
    /// directions; calls of its operations).
    pub seen: u64,
    /// Of those, events inside the window that passed every filter.
    pub matched: u64,
    /// Of those, events affected (packets dropped; calls failed).
    pub affected: u64,
    /// First and last affected event.
    pub first_ns: u64,
    pub last_ns: u64,
}
const _: () = assert!(core::mem::size_of::<Counters>() == 40);

#[cfg(feature = "user")]
// SAFETY: #[repr(C)], five u64, no padding.
unsafe impl aya::Pod for Counters {}

/// Which clock the programs read for fault windows (the `CLOCK` global of the object).
///
/// `CLOCK_TAI` follows wall-clock steps, so a window given in Unix time stays where the user put
/// it even if NTP steps the clock before it opens; `bpf_ktime_get_tai_ns` exists from Linux 6.1
/// (<https://lore.kernel.org/bpf/20220822080352.3785-1-kurt@linutronix.de/>), older kernels fall
/// back to `CLOCK_MONOTONIC`.
pub mod clock {
    /// Windows are in `CLOCK_MONOTONIC` nanoseconds (`bpf_ktime_get_ns`).
    pub const MONOTONIC: u8 = 0;
    /// Windows are in `CLOCK_TAI` nanoseconds (`bpf_ktime_get_tai_ns`).
    pub const TAI: u8 = 1;
}
