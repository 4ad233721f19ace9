//! What one worker does, passed to it as JSON on its command line.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The first argument that turns the daemon binary into a worker.
pub const WORKER_ARG: &str = "__worker";

/// One worker's instructions.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Spec {
    /// The daemon's pid: the worker exits as soon as its parent is another process.
    pub parent: u32,
    /// Unix ns at which the worker exits on its own.
    pub until_unix_ns: u64,
    /// `cgroup.procs` files the worker writes itself into before any load.
    pub join: Vec<PathBuf>,
    /// CPU to pin to.
    pub cpu: Option<u32>,
    pub load: Load,
}

/// The load a worker generates.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Load {
    /// Busy for `busy_ns` of every `period_ns`, asleep for the rest.
    Cpu { busy_ns: u64, period_ns: u64 },
    /// Allocate and touch `bytes` (at `grow_bytes_per_second`, or at once when 0), then hold.
    Memory {
        bytes: u64,
        grow_bytes_per_second: u64,
    },
    /// Thaw these cgroups at the deadline: a pause's guard, which outlives a killed daemon
    /// so that the pause still ends on time.
    Thaw {
        freezers: Vec<crate::cgroupfs::freeze::Freezer>,
    },
}
