//! Atomic read-modify-write on map values shared by every CPU: the `BPF_ATOMIC` instructions
//! Rust's atomics do not emit on the BPF target.
use core::arch::asm;

/// Adds `n` to `*value` and returns the value before.
#[inline(always)]
pub fn fetch_add(value: *mut u64, n: u64) -> u64 {
    let mut before: u64 = n;
    // SAFETY: `value` points into a map value the verifier checked; the instruction only
    // reads and writes those 8 bytes.
    unsafe {
        asm!(
            "{0} = atomic_fetch_add((u64 *)({1} + 0), {0})",
            inout(reg) before,
            in(reg) value,
        );
    }
    before
}

/// Stores `new` if `*value` is still `expected`; returns the value found.
#[inline(always)]
pub fn compare_exchange(value: *mut u64, expected: u64, new: u64) -> u64 {
    let found: u64;
    // SAFETY: as for `fetch_add`; BPF_CMPXCHG compares with and returns through r0
    // (<https://docs.kernel.org/bpf/standardization/instruction-set.html#atomic-operations>).
    unsafe {
        asm!(
            "r0 = cmpxchg_64({0} + 0, r0, {1})",
            in(reg) value,
            in(reg) new,
            inout("r0") expected => found,
        );
    }
    found
}
