//! Pods' and containers' cgroups found where kubelet and the runtimes put them: both cgroup
//! drivers, containerd, CRI-O and docker, every QoS class, a custom `--cgroup-root`, and a
//! restarted container, on real cgroup v2 trees holding real processes.
mod support;

use std::path::{Path, PathBuf};

use chaos_daemon::targets::{container_cgroup, pod_cgroup, Error, Hierarchy, Layout};
use support::kubepods::{hex, new_uid, Dirs, Driver, Node, Runtime};
use support::procs::{spawn_in, Spawned};
use support::{cgroup2_mount, require_root, TestCgroup};

const QOS_CLASSES: [&str; 3] = ["Guaranteed", "Burstable", "BestEffort"];

/// A process's cgroup v2 directory, from its `/proc/PID/cgroup`.
fn cgroup_of(pid: u32) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no 0:: line in /proc/{pid}/cgroup: {text}"));
    cgroup2_mount().join(rel.trim_start_matches('/'))
}

/// `cgroup.procs` of one directory.
fn procs_of(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_else(|e| panic!("read {}/cgroup.procs: {e}", dir.display()))
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The hierarchy as the daemon sees it on a pure-v2 and on a hybrid node, rooted at `dir`.
fn hierarchies(dir: &Path) -> [Hierarchy; 2] {
    [Layout::Unified, Layout::Hybrid].map(|layout| Hierarchy {
        mount: dir.to_path_buf(),
        layout,
    })
}

fn sleeper(dir: &Path) -> Spawned {
    spawn_in(&[dir], "exec sleep 600")
}

/// A running container in `pod`: its cgroup and its process.
fn start_container(dirs: &mut Dirs, pod: &Path, name: &str) -> (PathBuf, Spawned) {
    let dir = dirs.make(pod, Path::new(name));
    let proc = sleeper(&dir);
    (dir, proc)
}

/// For each QoS class, lays out a pod of the node with a sandbox and a container (and
/// CRI-O's conmon beside it), each holding a process, and checks both lookups find them.
fn check_node(driver: Driver, runtime: Runtime, root: Option<&'static str>) {
    if !require_root() {
        return;
    }
    let node = Node {
        driver,
        runtime,
        root,
    };
    for qos in QOS_CLASSES {
        let cg = TestCgroup::new();
        let mut dirs = Dirs::default();
        let uid = new_uid();
        let (id, sandbox_id) = (hex(64), hex(64));
        let pod = dirs.make(cg.path(), &node.pod_rel(qos, &uid));
        let (sandbox, pause) = start_container(&mut dirs, &pod, &node.container_name(&sandbox_id));
        let mut conmon = None;
        if let Some(name) = node.conmon_name(&id) {
            conmon = Some(start_container(&mut dirs, &pod, &name));
        }
        let (container, app) = start_container(&mut dirs, &pod, &node.container_name(&id));
        let ctx = format!("{node:?} {qos} pod {}", pod.display());

        for hier in hierarchies(cg.path()) {
            let other = QOS_CLASSES.iter().find(|q| **q != qos).copied();
            for asked in [Some(qos), None, other] {
                let found = pod_cgroup(&hier, &uid, asked)
                    .unwrap_or_else(|e| panic!("{ctx}, {:?} asked {asked:?}: {e}", hier.layout));
                assert_eq!(found, pod, "{ctx}, asked {asked:?}");
            }
            assert!(cgroup_of(app.id()).starts_with(&pod), "{ctx}");
            assert!(cgroup_of(pause.id()).starts_with(&pod), "{ctx}");
        }
        for asked in [node.status_id(&id), id.clone(), id[..12].to_string()] {
            let found = container_cgroup(&pod, &asked).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(found, container, "{ctx}, {asked}");
        }
        assert_eq!(cgroup_of(app.id()), container, "{ctx}");
        assert_eq!(procs_of(&container), vec![app.id()], "{ctx}");
        assert_eq!(
            container_cgroup(&pod, &node.status_id(&sandbox_id)).ok(),
            Some(sandbox),
            "{ctx}"
        );
        if let Some((conmon_dir, conmon_proc)) = &conmon {
            assert_eq!(cgroup_of(conmon_proc.id()), *conmon_dir, "{ctx}");
            assert_ne!(container, *conmon_dir, "{ctx}");
        }
    }
}

#[test]
fn systemd_containerd() {
    check_node(Driver::Systemd, Runtime::Containerd, None);
}

#[test]
fn systemd_crio_beside_conmon() {
    check_node(Driver::Systemd, Runtime::Crio, None);
}

#[test]
fn cgroupfs_containerd() {
    check_node(Driver::Cgroupfs, Runtime::Containerd, None);
}

#[test]
fn cgroupfs_docker() {
    check_node(Driver::Cgroupfs, Runtime::Docker, None);
}

#[test]
fn cgroupfs_crio_beside_conmon() {
    check_node(Driver::Cgroupfs, Runtime::Crio, None);
}

/// `--cgroup-root=/kubelet.slice`: `kubelet.slice/kubelet-kubepods.slice/...`.
#[test]
fn custom_cgroup_root_systemd() {
    check_node(Driver::Systemd, Runtime::Containerd, Some("kubelet"));
}

/// `--cgroup-root=/kubelet`: `kubelet/kubepods/...`.
#[test]
fn custom_cgroup_root_cgroupfs() {
    check_node(Driver::Cgroupfs, Runtime::Docker, Some("kubelet"));
}

/// The runtime replaces a container (new id, new cgroup) in the same pod: the pod's cgroup
/// stays and covers the new process; the old id is gone, the new one found.
#[test]
fn restarted_container_keeps_the_pod_cgroup() {
    if !require_root() {
        return;
    }
    let docker = Node {
        runtime: Runtime::Docker,
        ..Node::containerd(Driver::Cgroupfs)
    };
    for node in [Node::containerd(Driver::Systemd), docker] {
        let cg = TestCgroup::new();
        let mut dirs = Dirs::default();
        let [hier, _] = &hierarchies(cg.path());
        let uid = new_uid();
        let pod = dirs.make(cg.path(), &node.pod_rel("Burstable", &uid));
        let (old_id, new_id) = (hex(64), hex(64));
        let (old_dir, mut old) = start_container(&mut dirs, &pod, &node.container_name(&old_id));
        assert_eq!(
            pod_cgroup(hier, &uid, Some("Burstable")).ok().as_ref(),
            Some(&pod)
        );
        assert!(cgroup_of(old.id()).starts_with(&pod));

        old.stop();
        dirs.remove(&old_dir);
        let (new_dir, new) = start_container(&mut dirs, &pod, &node.container_name(&new_id));

        let ctx = format!("{node:?}");
        assert_eq!(
            pod_cgroup(hier, &uid, Some("Burstable")).ok().as_ref(),
            Some(&pod),
            "{ctx}"
        );
        assert!(cgroup_of(new.id()).starts_with(&pod), "{ctx}");
        match container_cgroup(&pod, &node.status_id(&old_id)) {
            Err(Error::NotFound(msg)) => assert!(msg.contains(&old_id), "{ctx}: {msg}"),
            other => panic!("{ctx}: old container id gave {other:?}"),
        }
        assert_eq!(
            container_cgroup(&pod, &node.status_id(&new_id))
                .ok()
                .as_ref(),
            Some(&new_dir),
            "{ctx}"
        );
        assert_eq!(cgroup_of(new.id()), new_dir, "{ctx}");
    }
}

#[test]
fn malformed_names_are_invalid_and_unknown_ones_not_found() {
    if !require_root() {
        return;
    }
    let cg = TestCgroup::new();
    let mut dirs = Dirs::default();
    let node = Node::containerd(Driver::Systemd);
    let uid = new_uid();
    let pod = dirs.make(cg.path(), &node.pod_rel("Burstable", &uid));
    let [_, hier] = &hierarchies(cg.path());

    for bad in [
        "",
        "../../etc",
        "1f0e/2d3c-4b5a",
        "pod-x-y-z-w",
        "-1f0e2d3c",
    ] {
        match pod_cgroup(hier, bad, None) {
            Err(Error::Invalid(msg)) => assert!(msg.contains("uid"), "{bad:?}: {msg}"),
            other => panic!("uid {bad:?} gave {other:?}"),
        }
    }
    assert!(matches!(
        pod_cgroup(hier, &uid, Some("Premium")),
        Err(Error::Invalid(_))
    ));
    for bad in [
        "containerd://".to_string(),
        "containerd://0123456789a".to_string(),
        format!("containerd://{}g", hex(20)),
        format!("://{}", hex(64)),
        format!("containerd://../{}", hex(64)),
        hex(65),
    ] {
        match container_cgroup(&pod, &bad) {
            Err(Error::Invalid(msg)) => assert!(msg.contains("container id"), "{bad:?}: {msg}"),
            other => panic!("container id {bad:?} gave {other:?}"),
        }
    }

    let unknown = new_uid();
    let escaped = unknown.replace('-', "_");
    match pod_cgroup(hier, &unknown, Some("Burstable")) {
        Err(Error::NotFound(msg)) => {
            for part in [
                format!("pod {unknown}"),
                cg.path().display().to_string(),
                format!("kubepods-burstable-pod{escaped}.slice"),
                format!("pod{unknown}"),
            ] {
                assert!(msg.contains(&part), "{msg:?} lacks {part:?}");
            }
        }
        other => panic!("unknown uid gave {other:?}"),
    }
    match pod_cgroup(hier, &unknown, None) {
        Err(Error::NotFound(msg)) => {
            for part in [
                format!("kubepods-pod{escaped}.slice"),
                format!("kubepods-burstable-pod{escaped}.slice"),
                format!("kubepods-besteffort-pod{escaped}.slice"),
                format!("pod{unknown}"),
            ] {
                assert!(msg.contains(&part), "{msg:?} lacks {part:?}");
            }
        }
        other => panic!("unknown uid gave {other:?}"),
    }
    let id = hex(64);
    match container_cgroup(&pod, &format!("containerd://{id}")) {
        Err(Error::NotFound(msg)) => {
            for part in [
                pod.display().to_string(),
                format!("cri-containerd-{id}.scope"),
            ] {
                assert!(msg.contains(&part), "{msg:?} lacks {part:?}");
            }
        }
        other => panic!("unknown container gave {other:?}"),
    }
}
