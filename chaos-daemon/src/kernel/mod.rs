//! Everything that talks to the kernel's BPF subsystem: loading, maps, links, pins, probes.

pub mod btf;
pub mod features;
pub mod hooks;
pub mod ifaces;
pub mod layout;
pub mod links;
pub mod loader;
pub mod modret;
pub mod netmaps;
pub mod netns;
pub mod pins;
pub mod probe;
pub mod rtnl;
pub mod shapemaps;
pub mod shaper;
pub mod storagemaps;
mod sys;
pub mod targetmaps;

/// A BPF operation failed; each variant names the object and the call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The embedded object could not be parsed or its maps created.
    #[error("loading the eBPF object: {0}")]
    Object(#[from] aya::EbpfError),
    /// A program is missing from the object, or the verifier refused it.
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        source: aya::programs::ProgramError,
    },
    /// A map is missing from the object, or a map syscall failed.
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        source: aya::maps::MapError,
    },
    /// Pinning, unpinning or opening a pinned link failed.
    #[error("link {path}: {reason}")]
    Link { path: String, reason: String },
    /// Opening a cgroup directory to attach to failed.
    #[error("open {path}: {source}")]
    Cgroup {
        path: String,
        source: std::io::Error,
    },
    /// Preparing or cleaning the bpffs directory failed.
    #[error(transparent)]
    Pins(#[from] pins::Error),
    /// A fault needs more room than a map has.
    #[error("{0}")]
    Full(String),
}
