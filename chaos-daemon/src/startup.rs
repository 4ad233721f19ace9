//! Builds the engine from the node: cgroup hierarchy, bpffs, journal, eBPF programs, probes.
use std::sync::Arc;

use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::{
    config::Config,
    engine::StorageKernel,
    engine::{Engine, Kernel, ShapeKernel, Shared},
    faults::shape,
    journal::Journal,
    kernel::{
        btf::KernelBtf,
        features,
        hooks::{Offer, StorageHooks},
        layout,
        links::NetLinks,
        loader,
        netmaps::NetMaps,
        pins::Pins,
        probe::Probe,
        shapemaps::ShapeMaps,
        shaper::{self, Shapers},
        storagemaps::StorageMaps,
    },
    pods::Cluster,
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
    /// `--node-name` was given but the API server client could not be set up.
    #[error("pod targets: {0}")]
    Cluster(String),
}

/// Loads the storage programs of the best route per operation, and takes their maps; `None`
/// when no operation can be failed here (the reasons go to `Capabilities`).
fn load_storage(
    ebpf: &mut aya::Ebpf,
    probe: &mut Probe,
    offer: &Offer<'_>,
) -> Option<StorageKernel> {
    let hooks = StorageHooks::load(ebpf, offer);
    probe.set_storage_routes(&hooks);
    if hooks.routes().all(|(_, route)| route.is_err()) {
        return None;
    }
    match StorageMaps::take(ebpf) {
        Ok(maps) => Some(StorageKernel { maps, hooks }),
        Err(err) => {
            warn!(error = %err, "storage maps unavailable");
            None
        }
    }
}

/// Loads the network impairment program and takes its maps, and probes `fq`; `None` when
/// no impairment can run here. The reasons go to `Capabilities`: without `fq`, corruption
/// and duplication still work, delay and bandwidth do not.
fn load_shape(ebpf: &mut aya::Ebpf, probe: &mut Probe) -> Option<ShapeKernel> {
    let fq = shaper::probe_fq();
    probe.add(
        "fq",
        fq.is_ok(),
        fq.clone().err().unwrap_or_else(|| {
            "the fq qdisc holds each packet until the departure time the impairment \
                program gives it"
                .to_string()
        }),
    );
    let program = loader::classifier(ebpf, loader::NET_SHAPE).and_then(|p| {
        p.load().map_err(|source| crate::kernel::Error::Program {
            name: loader::NET_SHAPE,
            source,
        })
    });
    let loaded = program.and_then(|()| ShapeMaps::take(ebpf, shape::tables()));
    probe.add(
        "tc_shape_program",
        loaded.is_ok(),
        match &loaded {
            Ok(_) => "TC egress program that sets departure times, corrupts and duplicates: \
                      loaded and verified"
                .to_string(),
            Err(err) => crate::error::chain(err),
        },
    );
    if let Err(err) = &loaded {
        probe.shape_refusal = Some(format!(
            "the impairment program cannot be loaded: {}",
            crate::error::chain(err)
        ));
    }
    probe.pacing_refusal = fq.err().map(|why| format!("fq: {why}"));
    let maps = loaded.ok()?;
    Some(ShapeKernel {
        maps,
        shapers: Shapers::default(),
        tags: Default::default(),
    })
}

/// The cluster this daemon serves pod targets for, when `--node-name` is given; names the
/// node on every fault and reports pod targets in `Capabilities` either way.
pub async fn cluster(config: &Config, engine: &Shared) -> Result<Option<Arc<Cluster>>, Error> {
    let mut engine = engine.lock().await;
    let Some(node) = config.node_name.clone().filter(|n| !n.trim().is_empty()) else {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        engine.set_node(host);
        engine.probe_mut().add(
            "pod_targets",
            false,
            "not in a cluster: start with --node-name (NODE_NAME) to accept pod targets",
        );
        return Ok(None);
    };
    engine.set_node(node.clone());
    let hier = Hierarchy::discover().map_err(|err| Error::Cluster(err.to_string()))?;
    let protected = config.protected();
    let cluster = Cluster::connect(node.clone(), protected.clone(), hier)
        .await
        .map_err(|err| Error::Cluster(crate::error::chain(&err)))?;
    engine.probe_mut().add(
        "pod_targets",
        true,
        format!(
            "pods of node {node} through the API server; protected namespaces: {}",
            protected.join(", ")
        ),
    );
    info!(node = %node, protected = ?protected, "pod targets enabled");
    Ok(Some(Arc::new(cluster)))
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
    // In a pod (POD_NAMESPACE set), the node's bpffs must be mounted in.
    pins.prepare_with(config.pod_namespace.is_none())?;
    probe.add(
        "bpffs",
        true,
        format!("pins under {}", pins.root().display()),
    );
    let btf = KernelBtf::from_sys_fs().map_err(|err| err.to_string());
    // aya's own parse of the same BTF, shared by the feature probes and the LSM programs.
    let aya_btf = aya::Btf::from_sys_fs().map_err(|err| crate::error::chain(&err));
    let layout = btf.as_ref().map_err(Clone::clone).and_then(layout::read);
    let kernel = match loader::load(&pins, &layout.clone().unwrap_or_default()) {
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
            for found in features::probe(&mut loaded.ebpf, aya_btf.as_ref()) {
                probe.add(found.name, found.available, found.detail);
            }
            let offer = Offer {
                btf: btf.as_ref().map_err(Clone::clone),
                aya_btf: aya_btf.as_ref().ok(),
                layout: layout.as_ref().map(drop).map_err(Clone::clone),
                lsm: probe
                    .feature("bpf_lsm_programs")
                    .and_then(|()| probe.feature("bpf_lsm_active")),
                trampoline: probe.feature("bpf_trampoline"),
                override_return: probe.feature("bpf_override_return"),
            };
            let storage = load_storage(&mut loaded.ebpf, &mut probe, &offer);
            let shape = load_shape(&mut loaded.ebpf, &mut probe);
            match NetMaps::take(&mut loaded.ebpf) {
                Ok(net) => Some(Kernel {
                    ebpf: loaded.ebpf,
                    net,
                    links: NetLinks::default(),
                    clock: loaded.clock,
                    storage,
                    shape,
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
    if kernel.is_none() && probe.shape_refusal.is_none() {
        probe.shape_refusal = probe.network_refusal.clone();
    }
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
