//! faultline's eBPF object: every program the daemon loads, one module per fault family.
#![no_std]
#![no_main]
#![feature(asm_experimental_arch)]

mod atomic;
mod clock;
mod net;
mod probe;
mod shape;
mod storage;
mod targets;

/// The object must carry a GPL-compatible license to call GPL-only helpers such as
/// `bpf_ktime_get_tai_ns`.
#[unsafe(no_mangle)]
#[unsafe(link_section = "license")]
pub static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach here; it is never executed.
    loop {}
}
