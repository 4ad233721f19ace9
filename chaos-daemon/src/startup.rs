//! Builds the engine from the node: cgroup hierarchy, bpffs, journal, eBPF programs, probes.
use std::sync::Arc;

use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::{
    config::Config,
    engine::{Engine, Kernel, Shared},
    journal::Journal,
    kernel::{features, links::NetLinks, loader, netmaps::NetMaps, pins::Pins, probe::Probe},
    targets::Hierarchy,
};

/// Why the daemon could not start at all (a missing kernel feature does not stop it: it is
/// reported by `Capabilities` instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state directory or journal is unusable.
    #[error(transparent)]
    Journal(#[from] crate::journal::Error),
    /// The bpffs directory is unusable.
    #[error(transparent)]
    Pins(#[from] crate::kernel::pins::Error),
    /// Replaying the journal failed.
    #[error("recovering faults: {0}")]
    Recover(#[from] crate::error::Error),
}

/// Probes the node, loads the programs, replays the journal.
pub fn start(config: &Config) -> Result<Shared, Error> {
    let hier = Hierarchy::discover();
    let mut probe = Probe::new(hier.as_ref().map_err(|err| err.to_string()));
    let hier = hier.ok();
    probe.probe_cgroup_files(hier.as_ref());
    let pins = Pins::new(&config.bpffs_dir);
    let journal = Journal::open(&config.state_dir)?;
    if journal.load_all()?.is_empty() {
        // Nothing armed survives: start from empty maps, and take down any stray links.
        pins.remove_all()?;
    }
    pins.prepare()?;
    probe.add(
        "bpffs",
        true,
        format!("pins under {}", pins.root().display()),
    );
    let kernel = match loader::load(&pins) {
        Ok(mut loaded) => {
            probe.add(
                "cgroup_skb",
                true,
                "ingress and egress programs loaded and verified",
            );
            probe.add(
                "ktime_get_tai",
                loaded.tai_refused.is_none(),
                loaded.tai_refused.clone().map_or_else(
                    || "windows in CLOCK_TAI: immune to wall-clock steps".to_string(),
                    |why| format!("windows in CLOCK_MONOTONIC; the TAI helper was refused: {why}"),
                ),
            );
            for found in features::probe(&mut loaded.ebpf) {
                probe.add(found.name, found.available, found.detail);
            }
            match NetMaps::take(&mut loaded.ebpf) {
                Ok(net) => Some(Kernel {
                    ebpf: loaded.ebpf,
                    net,
                    links: NetLinks::default(),
                    clock: loaded.clock,
                }),
                Err(err) => {
                    probe.refuse_network(crate::error::chain(&err));
                    None
                }
            }
        }
        Err(err) => {
            warn!(error = %err, "network programs unavailable");
            probe.refuse_network(crate::error::chain(&err));
            None
        }
    };
    let limits = config.limits();
    let engine = Engine::new(hier, kernel, pins, journal, probe, limits);
    let shared: Shared = Arc::new(Mutex::new(engine));
    {
        let mut engine = shared
            .try_lock()
            .map_err(|_| crate::error::Error::Internal("engine locked during start-up".into()))?;
        engine.recover(&shared)?;
    }
    info!("engine ready");
    Ok(shared)
}
