//! Loads the embedded eBPF object once, with maps pinned so armed faults outlive the daemon.
use aya::{programs::CgroupSkb, Ebpf, EbpfLoader};
use chaos_common::storage::{KernelLayout, LAYOUT_GLOBAL};
use tracing::{info, warn};

use super::{pins::Pins, Error};
use crate::clock::KernelClock;

/// The object built from `chaos-ebpf` by build.rs.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/faultline"));

/// Network program names in the object.
pub const NET_EGRESS: &str = "net_egress";
pub const NET_INGRESS: &str = "net_ingress";
/// The network impairment program (TC egress).
pub const NET_SHAPE: &str = "net_shape";
/// Empty program, the benchmark's baseline.
pub const NET_NOOP: &str = "net_noop";

/// The loaded object and the choices made while loading it.
pub struct Loaded {
    pub ebpf: Ebpf,
    pub clock: KernelClock,
    /// Why `CLOCK_TAI` is not used, when it is not.
    pub tai_refused: Option<String>,
}

/// Loads the object and the network programs, preferring `CLOCK_TAI`: if the verifier refuses
/// the TAI helper (Linux < 6.1) the object is loaded again on `CLOCK_MONOTONIC`. `layout`
/// gives the storage programs the kernel's struct offsets.
pub fn load(pins: &Pins, layout: &KernelLayout) -> Result<Loaded, Error> {
    let (ebpf, clock, tai_refused) = match load_with(pins, KernelClock::Tai, layout) {
        Ok(ebpf) => (ebpf, KernelClock::Tai, None),
        Err(err) => {
            warn!(error = %err, "CLOCK_TAI refused; falling back to CLOCK_MONOTONIC");
            let refused = crate::error::chain(&err);
            (
                load_with(pins, KernelClock::Monotonic, layout)?,
                KernelClock::Monotonic,
                Some(refused),
            )
        }
    };
    info!(clock = clock.name(), "eBPF programs loaded");
    Ok(Loaded {
        ebpf,
        clock,
        tai_refused,
    })
}

/// Loads the object with `clock` and every program the daemon attaches (not the baseline).
pub fn load_with(pins: &Pins, clock: KernelClock, layout: &KernelLayout) -> Result<Ebpf, Error> {
    let global = clock.global();
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(pins.maps_dir())
        .override_global("CLOCK", &global, true)
        .override_global(LAYOUT_GLOBAL, layout, true)
        .load(OBJECT)?;
    for name in [NET_EGRESS, NET_INGRESS] {
        cgroup_skb(&mut ebpf, name)?
            .load()
            .map_err(|source| Error::Program { name, source })?;
    }
    Ok(ebpf)
}

/// The program `name` of the object, as its type `T`.
pub fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, Error>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf.program_mut(name).ok_or(Error::Program {
        name,
        source: aya::programs::ProgramError::UnexpectedProgramType,
    })?;
    program
        .try_into()
        .map_err(|source| Error::Program { name, source })
}

/// The TC program `name` of the object.
pub fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut aya::programs::SchedClassifier, Error> {
    program(ebpf, name)
}

/// The `cgroup_skb` program `name` of the object.
pub fn cgroup_skb<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut CgroupSkb, Error> {
    program(ebpf, name)
}
