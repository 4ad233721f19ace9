//! What this kernel lets faultline do, probed by doing it, reported by `Capabilities`.
use chaos_proto::v1::{FaultSupport, Feature};

use crate::targets::{Hierarchy, Layout};

/// Results gathered at start-up; the same values answer `Capabilities` and gate `Inject`.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    pub kernel_release: String,
    pub features: Vec<Feature>,
    /// Why network faults cannot run here, if they cannot.
    pub network_refusal: Option<String>,
    /// Why network impairments (delay, bandwidth, corrupt, duplicate) cannot run here.
    pub shape_refusal: Option<String>,
    /// Why departure times (delay, bandwidth) cannot be honoured here: no `fq`.
    pub pacing_refusal: Option<String>,
    /// How process and stress faults act here (cgroup interfaces found at start).
    pub cgroup_files: CgroupFiles,
    /// Per storage operation: the route that fails it here, or why none can.
    pub storage_routes: Vec<(&'static str, Result<&'static str, String>)>,
}

/// Which cgroup interfaces process and stress faults can use on this node.
#[derive(Clone, Debug, Default)]
pub struct CgroupFiles {
    /// `cgroup.kill` (Linux 5.14+).
    pub kill: bool,
    /// `cgroup.freeze` (Linux 5.2+).
    pub freeze: bool,
    /// A v1 freezer hierarchy is mounted.
    pub v1_freezer: bool,
    /// The v1 memory controller is mounted (hybrid).
    pub v1_memory: bool,
    /// No cgroup v2 hierarchy: nothing to act on.
    pub missing: bool,
}

impl Probe {
    /// Starts a report with the kernel release and the cgroup v2 hierarchy.
    pub fn new(hier: Result<&Hierarchy, String>) -> Self {
        let kernel_release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_else(|err| format!("unknown (uname: {err})"));
        let mut probe = Self {
            kernel_release,
            ..Self::default()
        };
        match hier {
            Ok(hier) => probe.add(
                "cgroup_v2",
                true,
                format!(
                    "mounted at {} ({})",
                    hier.mount.display(),
                    match hier.layout {
                        Layout::Unified => "pure v2",
                        Layout::Hybrid => "hybrid: v1 controllers beside it",
                    }
                ),
            ),
            Err(reason) => {
                probe.add("cgroup_v2", false, reason.clone());
                probe.network_refusal = Some(format!("no cgroup v2 hierarchy: {reason}"));
            }
        }
        probe
    }

    /// Looks for the cgroup v2 core files in a scratch child cgroup (the root has neither
    /// `cgroup.kill` nor `cgroup.freeze`), and for v1 freezer and memory hierarchies.
    pub fn probe_cgroup_files(&mut self, hier: Option<&Hierarchy>) {
        let Some(hier) = hier else {
            self.cgroup_files.missing = true;
            return;
        };
        let scratch = hier
            .mount
            .join(format!("faultline-probe-{}", std::process::id()));
        let made = std::fs::create_dir(&scratch);
        let files = &mut self.cgroup_files;
        files.kill = scratch.join("cgroup.kill").exists();
        files.freeze = scratch.join("cgroup.freeze").exists();
        if made.is_ok() {
            let _ = std::fs::remove_dir(&scratch);
        }
        let v1 = crate::cgroupfs::v1::mounts();
        let has = |name: &str| v1.iter().any(|m| m.controllers.iter().any(|c| c == name));
        files.v1_freezer = has("freezer");
        files.v1_memory = has("memory");
        let (kill, freeze) = (files.kill, files.freeze);
        self.add(
            "cgroup_kill",
            kill,
            if kill {
                "cgroup.kill kills a whole cgroup tree in one write (Linux 5.14+)"
            } else {
                "no cgroup.kill (Linux 5.14+): processes are signalled one by one, re-reading \
                 the tree until no new process appears"
            },
        );
        self.add(
            "cgroup_freeze",
            freeze,
            if freeze {
                "cgroup.freeze freezes a v2 cgroup tree (Linux 5.2+)"
            } else {
                "no cgroup.freeze (Linux 5.2+)"
            },
        );
    }

    pub fn add(&mut self, name: &str, available: bool, detail: impl Into<String>) {
        self.features.push(Feature {
            name: name.to_string(),
            available,
            detail: detail.into(),
        });
    }

    /// Records that the network programs could not be loaded.
    pub fn refuse_network(&mut self, reason: String) {
        self.add("cgroup_skb", false, reason.clone());
        self.network_refusal
            .get_or_insert_with(|| format!("the cgroup_skb programs cannot be loaded: {reason}"));
    }

    /// A probed feature: `Ok` if available, else why not.
    pub fn feature(&self, name: &str) -> Result<(), String> {
        match self.features.iter().find(|f| f.name == name) {
            Some(f) if f.available => Ok(()),
            Some(f) => Err(format!("{name}: {}", f.detail)),
            None => Err(format!("{name} was not probed")),
        }
    }

    /// Records how each storage operation is failed here.
    pub fn set_storage_routes(&mut self, hooks: &super::hooks::StorageHooks) {
        self.storage_routes = hooks
            .routes()
            .map(|(op, route)| {
                let name = crate::faults::errno::op_names(op)
                    .first()
                    .copied()
                    .unwrap_or("?");
                (name, route.as_ref().map(|r| r.name()).map_err(Clone::clone))
            })
            .collect();
    }

    /// Why no storage errno fault can run here (when none can).
    pub fn storage_refusal(&self) -> String {
        let mut reasons: Vec<&str> = Vec::new();
        for (_, route) in &self.storage_routes {
            if let Err(why) = route {
                if !reasons.contains(&why.as_str()) {
                    reasons.push(why);
                }
            }
        }
        if reasons.is_empty() {
            return "the storage programs could not be loaded (see the cgroup_skb feature)".into();
        }
        reasons.join("; ")
    }

    /// `storage.errno` and one `storage.errno.<operation>` entry per operation.
    fn storage_faults(&self) -> Vec<FaultSupport> {
        let mut by_route: Vec<(&str, Vec<&str>)> = Vec::new();
        for (op, route) in &self.storage_routes {
            if let Ok(route) = route {
                match by_route.iter_mut().find(|(r, _)| r == route) {
                    Some((_, ops)) => ops.push(op),
                    None => by_route.push((route, vec![op])),
                }
            }
        }
        let mut faults = vec![FaultSupport {
            kind: "storage.errno".to_string(),
            supported: !by_route.is_empty(),
            detail: if by_route.is_empty() {
                format!(
                    "no BPF route to fail a file system call: {}",
                    self.storage_refusal()
                )
            } else {
                by_route
                    .iter()
                    .map(|(route, ops)| format!("{} by {route}", ops.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        }];
        faults.extend(self.storage_routes.iter().map(|(op, route)| FaultSupport {
            kind: format!("storage.errno.{op}"),
            supported: route.is_ok(),
            detail: match route {
                Ok(route) => format!("{op} calls of the target fail by {route}"),
                Err(why) => why.clone(),
            },
        }));
        faults
    }

    /// Why an impairment cannot run here: the program's reason, or for delay and bandwidth
    /// (`paced`) the missing `fq`.
    pub fn impairment_refusal(&self, paced: bool) -> Option<String> {
        self.shape_refusal.clone().or_else(|| {
            if paced {
                self.pacing_refusal.clone()
            } else {
                None
            }
        })
    }

    /// What `Inject` accepts on this node, per fault kind.
    pub fn faults(&self) -> Vec<FaultSupport> {
        let mut faults: Vec<FaultSupport> = ["network.loss", "network.partition"]
            .into_iter()
            .map(|kind| FaultSupport {
                kind: kind.to_string(),
                supported: self.network_refusal.is_none(),
                detail: self.network_refusal.clone().unwrap_or_else(|| {
                    "cgroup_skb ingress/egress programs attached to each targeted cgroup"
                        .to_string()
                }),
            })
            .collect();
        for (kind, paced) in [
            ("network.delay", true),
            ("network.bandwidth", true),
            ("network.corrupt", false),
            ("network.duplicate", false),
        ] {
            let refusal = self.impairment_refusal(paced);
            faults.push(FaultSupport {
                kind: kind.to_string(),
                supported: refusal.is_none(),
                detail: refusal.unwrap_or_else(|| {
                    if paced {
                        "TC egress program on the target's interfaces sets departure times; \
                         the fq qdisc holds packets until then"
                    } else {
                        "TC egress program on the target's interfaces"
                    }
                    .to_string()
                }),
            });
        }
        faults.extend(self.storage_faults());
        faults.extend(self.process_faults());
        faults
    }

    fn process_faults(&self) -> Vec<FaultSupport> {
        let files = &self.cgroup_files;
        let support = |kind: &str, supported: bool, detail: &str| FaultSupport {
            kind: kind.to_string(),
            supported,
            detail: detail.to_string(),
        };
        let kill = if files.kill {
            "SIGKILL of every process by cgroup.kill; other signals and --main-only by kill(2)"
        } else {
            "kill(2) of each process, re-reading the tree until no new process appears"
        };
        let pause = match (files.freeze, files.v1_freezer) {
            (true, _) => (true, "cgroup.freeze of the target's v2 cgroup"),
            (false, true) => (true, "the v1 freezer cgroup of the target's processes"),
            (false, false) => (
                false,
                "needs cgroup.freeze (Linux 5.2+) or a v1 freezer hierarchy",
            ),
        };
        let memory = if files.v1_memory {
            "a worker in a child cgroup of the target and in the v1 memory cgroup of its \
             processes (hybrid layout), touching anonymous memory"
        } else {
            "a worker in a child cgroup of the target, touching anonymous memory charged to \
             its v2 memory controller"
        };
        let mut faults = vec![
            support("process.kill", true, kill),
            support("process.pause", pause.0, pause.1),
            support(
                "process.restart",
                true,
                "kill(2) of the main process; a new process in the target is watched for",
            ),
            support(
                "stress.cpu",
                true,
                "duty-cycled workers in a child cgroup of the target (and its v1 cgroups)",
            ),
            support("stress.memory", true, memory),
            support(
                "storage.io_limit",
                true,
                "io.max of the target's cgroup (io controller enabled), else the v1 blkio \
                 throttle of its processes; the disk must be a block device",
            ),
            support(
                "storage.disk_fill",
                true,
                "one fallocate'd file in the file system the target sees at the path \
                 (its mount namespace), removed at the end",
            ),
        ];
        if files.missing {
            for fault in &mut faults {
                fault.supported = false;
                fault.detail = "no cgroup v2 hierarchy to find the target's processes in".into();
            }
        }
        faults
    }
}
