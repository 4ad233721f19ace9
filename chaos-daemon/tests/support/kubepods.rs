//! Kubelet-style cgroup trees: pod and container cgroups named as kubelet and the container runtimes name them, made for one test and killed and removed on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::util::{random_u32, wait_until};

/// kubelet's `--cgroup-driver`, which decides how pod and container cgroups are named.
#[derive(Clone, Copy, Debug)]
pub enum Driver {
    Systemd,
    Cgroupfs,
}

/// The container runtime, as the scheme of `containerStatuses[].containerID` names it.
#[derive(Clone, Copy, Debug)]
pub enum Runtime {
    Containerd,
    Crio,
    Docker,
}

/// One node's setup: driver, runtime and the `--cgroup-root` (its first name, if any).
#[derive(Clone, Copy, Debug)]
pub struct Node {
    pub driver: Driver,
    pub runtime: Runtime,
    pub root: Option<&'static str>,
}

impl Node {
    /// A node of `driver` running containerd, at the default cgroup root.
    pub fn containerd(driver: Driver) -> Node {
        Node {
            driver,
            runtime: Runtime::Containerd,
            root: None,
        }
    }

    /// The pod's cgroup relative to the (test's) root, spelled as kubelet spells it: the
    /// systemd driver names each slice after all its ancestors joined by `-` (the uid's own
    /// `-` escaped as `_`); cgroupfs nests the plain names.
    pub fn pod_rel(&self, qos: &str, uid: &str) -> PathBuf {
        let qos = match qos {
            "Guaranteed" => None,
            "Burstable" => Some("burstable"),
            "BestEffort" => Some("besteffort"),
            other => panic!("no QoS class {other}"),
        };
        let names: Vec<String> = self
            .root
            .into_iter()
            .chain(Some("kubepods"))
            .chain(qos)
            .map(str::to_string)
            .chain([match self.driver {
                Driver::Systemd => format!("pod{}", uid.replace('-', "_")),
                Driver::Cgroupfs => format!("pod{uid}"),
            }])
            .collect();
        match self.driver {
            Driver::Systemd => (1..=names.len())
                .map(|n| format!("{}.slice", names[..n].join("-")))
                .collect(),
            Driver::Cgroupfs => names.iter().collect(),
        }
    }

    /// A container's cgroup name inside the pod's.
    pub fn container_name(&self, id: &str) -> String {
        match (self.driver, self.runtime) {
            (Driver::Systemd, Runtime::Containerd) => format!("cri-containerd-{id}.scope"),
            (Driver::Systemd, Runtime::Crio) => format!("crio-{id}.scope"),
            (Driver::Systemd, Runtime::Docker) => format!("docker-{id}.scope"),
            (Driver::Cgroupfs, Runtime::Crio) => format!("crio-{id}"),
            (Driver::Cgroupfs, _) => id.to_string(),
        }
    }

    /// CRI-O's monitor beside each container: not the container.
    pub fn conmon_name(&self, id: &str) -> Option<String> {
        match (self.driver, self.runtime) {
            (Driver::Systemd, Runtime::Crio) => Some(format!("crio-conmon-{id}.scope")),
            (Driver::Cgroupfs, Runtime::Crio) => Some(format!("crio-conmon-{id}")),
            _ => None,
        }
    }

    /// `containerStatuses[].containerID`.
    pub fn status_id(&self, id: &str) -> String {
        let scheme = match self.runtime {
            Runtime::Containerd => "containerd",
            Runtime::Crio => "cri-o",
            Runtime::Docker => "docker",
        };
        format!("{scheme}://{id}")
    }
}

/// Cgroup directories a test made; on drop each is emptied (`cgroup.kill`) and removed,
/// deepest first.
#[derive(Default)]
pub struct Dirs(Vec<PathBuf>);

impl Dirs {
    /// Makes `rel` and its missing parents under `root`; returns the deepest.
    pub fn make(&mut self, root: &Path, rel: &Path) -> PathBuf {
        let mut dir = root.to_path_buf();
        for part in rel.components() {
            dir.push(part);
            if !dir.is_dir() {
                fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                self.0.push(dir.clone());
            }
        }
        dir
    }

    /// Removes `dir` now, as a runtime does when its container is gone.
    pub fn remove(&mut self, dir: &Path) {
        if let Err(e) = remove_cgroup(dir) {
            panic!("{e}");
        }
        self.0.retain(|d| d != dir);
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            if let Err(e) = remove_cgroup(dir) {
                eprintln!("warning: {e}");
            }
        }
    }
}

/// Kills what runs in `dir` and removes it, retrying while the kernel still counts exited
/// members (EBUSY).
pub fn remove_cgroup(dir: &Path) -> Result<(), String> {
    let _ = fs::write(dir.join("cgroup.kill"), "1");
    let mut last = None;
    let gone = wait_until(Duration::from_secs(10), || match fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            last = Some(e);
            false
        }
    });
    gone.then_some(())
        .ok_or_else(|| format!("rmdir {}: {last:?}", dir.display()))
}

/// `n` random lowercase hex digits (container ids, uid parts).
pub fn hex(n: usize) -> String {
    let digits: String = (0..n.div_ceil(8))
        .map(|_| format!("{:08x}", random_u32()))
        .collect();
    digits[..n].to_string()
}

/// A fresh pod UID (a version 4 UUID, as the API server assigns).
pub fn new_uid() -> String {
    format!("{}-{}-4{}-8{}-{}", hex(8), hex(4), hex(3), hex(3), hex(12))
}
