//! Types and limits shared by faultline's eBPF programs and the daemon that fills their maps.
#![no_std]

pub mod net;

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
