//! The kernel clock fault windows are written in, chosen by the daemon at load time.
use aya_ebpf::{
    helpers::generated::{bpf_ktime_get_ns, bpf_ktime_get_tai_ns},
    Global,
};
use chaos_common::clock;

/// Set by the daemon (`override_global`) to `clock::TAI` where the kernel has
/// `bpf_ktime_get_tai_ns`. The verifier sees a constant and drops the branch not taken, so the
/// TAI helper is never checked on kernels that lack it.
#[unsafe(no_mangle)]
static CLOCK: Global<u8> = Global::new(clock::MONOTONIC);

/// Now, in the clock fault windows use.
#[inline(always)]
pub fn now_ns() -> u64 {
    if CLOCK.load() == clock::TAI {
        // SAFETY: helper without arguments.
        unsafe { bpf_ktime_get_tai_ns() }
    } else {
        // SAFETY: helper without arguments.
        unsafe { bpf_ktime_get_ns() }
    }
}
