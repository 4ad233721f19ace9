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

    fn available(&self, name: &str) -> bool {
        self.features.iter().any(|f| f.name == name && f.available)
    }

    /// The storage errno backends this kernel would use, best first, each with the
    /// operations it reaches.
    pub fn storage_backends(&self) -> Vec<&'static str> {
        let mut backends = Vec::new();
        if self.available("bpf_lsm_programs") && self.available("bpf_lsm_active") {
            backends.push("bpf_lsm (open, read, write, create, unlink, rename, mkdir, truncate)");
        } else if self.available("bpf_trampoline") {
            backends.push("fmod_ret on security_* (open, read, write, create, unlink, rename, mkdir, truncate)");
        }
        if self.available("bpf_override_return") {
            backends.push("kprobe + bpf_override_return on syscalls (fsync, fdatasync, sync_file_range and the rest)");
        }
        backends
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
        let backends = self.storage_backends();
        faults.push(FaultSupport {
            kind: "storage.errno".to_string(),
            supported: false,
            detail: if backends.is_empty() {
                "not in this version; and this kernel has no BPF route to fail a syscall: \
                 needs bpf_lsm_programs with bpf_lsm_active, bpf_trampoline, or \
                 bpf_override_return"
                    .to_string()
            } else {
                format!(
                    "not in this version; this kernel would use: {}",
                    backends.join("; ")
                )
            },
        });
        faults
    }
}
