//! Where kubelet puts a pod's cgroup and its containers' cgroups, for both cgroup drivers.
//!
//! systemd driver: `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice`
//! (uid with `-` as `_`, as systemd unit names need), containers inside as
//! `cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope`. cgroupfs driver:
//! `kubepods/burstable/pod<uid>`, containers inside as `<id>` or `crio-<id>`. Guaranteed pods
//! sit directly in `kubepods`. kubelet's `--cgroup-root` may move the whole tree down (e.g.
//! `kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable-pod<uid_>.slice`), so the
//! standard places are tried first and then a bounded walk looks for the pod's name anywhere.
use std::path::{Path, PathBuf};

use super::container::{display_paths, names_container, search};
use super::{Error, Hierarchy};

/// Deepest level the walk looks for a pod at (0 = the mount's entries). The standard places
/// are at level 2; a `--cgroup-root` inside a container's own cgroup adds three or four.
const MAX_POD_DEPTH: usize = 6;

/// Kubernetes' QoS classes (`status.qosClass`): each has its own parent cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    const ALL: [Qos; 3] = [Qos::Guaranteed, Qos::Burstable, Qos::BestEffort];

    /// Parses `status.qosClass`; kubelet spells the classes in CamelCase, any case is taken.
    fn parse(class: &str, uid: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|qos| qos.class().eq_ignore_ascii_case(class))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "target: QoS class {class:?} of pod {uid} is not Guaranteed, Burstable or BestEffort"
                ))
            })
    }

    fn class(self) -> &'static str {
        match self {
            Qos::Guaranteed => "Guaranteed",
            Qos::Burstable => "Burstable",
            Qos::BestEffort => "BestEffort",
        }
    }

    /// The QoS level's own cgroup name below `kubepods`; Guaranteed pods have none.
    fn segment(self) -> Option<&'static str> {
        match self {
            Qos::Guaranteed => None,
            Qos::Burstable => Some("burstable"),
            Qos::BestEffort => Some("besteffort"),
        }
    }
}

/// A pod's own cgroup (the parent of its containers' cgroups), found by its UID.
///
/// `qos` is the pod's `status.qosClass`; with it the two paths of that class are tried
/// first, then those of the other classes, then a walk of the hierarchy.
pub fn pod_cgroup(hier: &Hierarchy, uid: &str, qos: Option<&str>) -> Result<PathBuf, Error> {
    validate_uid(uid)?;
    let qos = qos.map(|class| Qos::parse(class, uid)).transpose()?;
    let order = match qos {
        Some(first) => std::iter::once(first)
            .chain(Qos::ALL.into_iter().filter(|q| *q != first))
            .collect(),
        None => Qos::ALL.to_vec(),
    };
    for class in order {
        for rel in [systemd_pod_path(class, uid), cgroupfs_pod_path(class, uid)] {
            let dir = hier.mount.join(rel);
            match std::fs::metadata(&dir) {
                Ok(meta) if meta.is_dir() => return Ok(dir),
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(Error::Io(format!("stat {}: {err}", dir.display()))),
            }
        }
    }
    tracing::debug!(
        uid,
        mount = %hier.mount.display(),
        "pod cgroup not at kubelet's standard paths; searching for a --cgroup-root"
    );
    let systemd_suffix = format!("-{}", systemd_pod_name(uid));
    let cgroupfs_name = cgroupfs_pod_name(uid);
    let mut found = search(&hier.mount, MAX_POD_DEPTH, &|name| {
        name == cgroupfs_name || name.ends_with(&systemd_suffix)
    })?;
    match found.len() {
        0 => {
            let classes = qos.map_or_else(|| Qos::ALL.to_vec(), |q| vec![q]);
            let mut names: Vec<String> = classes
                .iter()
                .map(|class| {
                    systemd_pod_path(*class, uid)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                })
                .collect();
            names.push(cgroupfs_name.clone());
            Err(Error::NotFound(format!(
                "target: no cgroup for pod {uid} under {} (looked for {}, then for \
                 *{systemd_suffix} and {cgroupfs_name} down to {} levels)",
                hier.mount.display(),
                join_names(&names),
                MAX_POD_DEPTH + 1,
            )))
        }
        1 => Ok(found.remove(0)),
        _ => Err(Error::Invalid(format!(
            "target: pod {uid} has several cgroups: {}",
            display_paths(&found)
        ))),
    }
}

/// The cgroup of one container of the pod, by the runtime's container id (from
/// `containerStatuses`, with its `runtime://` prefix or bare; a unique prefix of at least
/// 12 hex digits will do).
pub fn container_cgroup(pod_dir: &Path, container_id: &str) -> Result<PathBuf, Error> {
    let (runtime, id) = parse_container_id(container_id)?;
    let id = id.to_ascii_lowercase();
    // Runtimes put a pod's containers directly in its cgroup, beside the sandbox's.
    let mut found = search(pod_dir, 0, &|name| names_container(name, &id))?;
    match found.len() {
        0 => Err(Error::NotFound(format!(
            "target: no cgroup for container {id} in {} (looked for {})",
            pod_dir.display(),
            join_names(&container_dir_names(runtime, &id))
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(Error::Invalid(format!(
            "target: container id {id} is ambiguous in {}, it matches {}",
            pod_dir.display(),
            display_paths(&found)
        ))),
    }
}

/// Splits `containerd://<id>` into (runtime, id); a bare id gives an empty runtime. The id
/// must be 12 to 64 hex digits, the runtime lowercase letters, digits, `-` and `.`.
pub fn parse_container_id(s: &str) -> Result<(&str, &str), Error> {
    let invalid = || {
        Error::Invalid(format!(
            "target: container id {s:?} must be [<runtime>://]<12 to 64 hex digits>"
        ))
    };
    let (runtime, id) = s.split_once("://").unwrap_or(("", s));
    let runtime_ok = runtime
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    // `://<id>` names no runtime: a truncated string rather than a bare id.
    if !runtime_ok || (runtime.is_empty() && id.len() != s.len()) {
        return Err(invalid());
    }
    if !(12..=64).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    Ok((runtime, id))
}

/// Pod UIDs are UUIDs; static pods' are the 32 hex digits of their manifest's hash. Nothing
/// else may reach a path.
fn validate_uid(uid: &str) -> Result<(), Error> {
    let ok = (8..=64).contains(&uid.len())
        && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && !uid.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "target: pod uid {uid:?} must be 8 to 64 hex digits and dashes (a UUID)"
        )))
    }
}

/// `pod<uid with - as _>.slice`: the end of the systemd driver's name for the pod's slice
/// (systemd reads `-` in a slice name as nesting, so kubelet escapes it).
fn systemd_pod_name(uid: &str) -> String {
    format!("pod{}.slice", uid.replace('-', "_"))
}

/// `pod<uid>`: the cgroupfs driver's name for the pod's cgroup.
fn cgroupfs_pod_name(uid: &str) -> String {
    format!("pod{uid}")
}

/// The systemd driver's pod cgroup relative to the mount, without a `--cgroup-root`: each
/// slice repeats its parents' names joined by `-`.
fn systemd_pod_path(qos: Qos, uid: &str) -> PathBuf {
    let mut path = PathBuf::from("kubepods.slice");
    let mut prefix = String::from("kubepods");
    if let Some(segment) = qos.segment() {
        prefix = format!("{prefix}-{segment}");
        path.push(format!("{prefix}.slice"));
    }
    path.push(format!("{prefix}-{}", systemd_pod_name(uid)));
    path
}

/// The cgroupfs driver's pod cgroup relative to the mount, without a `--cgroup-root`.
fn cgroupfs_pod_path(qos: Qos, uid: &str) -> PathBuf {
    let mut path = PathBuf::from("kubepods");
    if let Some(segment) = qos.segment() {
        path.push(segment);
    }
    path.push(cgroupfs_pod_name(uid));
    path
}

/// The names a runtime gives a container's cgroup (systemd driver, then cgroupfs); all
/// runtimes' names for an unknown or absent runtime. A prefix id ends in `*`.
fn container_dir_names(runtime: &str, id: &str) -> Vec<String> {
    let id = if id.len() < 64 {
        format!("{id}*")
    } else {
        id.to_string()
    };
    match runtime {
        "containerd" => vec![format!("cri-containerd-{id}.scope"), id],
        "cri-o" => vec![format!("crio-{id}.scope"), format!("crio-{id}")],
        "docker" => vec![format!("docker-{id}.scope"), id],
        _ => vec![
            format!("cri-containerd-{id}.scope"),
            format!("crio-{id}.scope"),
            format!("docker-{id}.scope"),
            format!("crio-{id}"),
            id,
        ],
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_names(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    const UID_: &str = "1f0e2d3c_4b5a_6978_8796_a5b4c3d2e1f0";
    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn systemd_pod_paths_escape_the_uid_and_repeat_parents() {
        assert_eq!(
            systemd_pod_path(Qos::Guaranteed, UID),
            Path::new(&format!("kubepods.slice/kubepods-pod{UID_}.slice"))
        );
        assert_eq!(
            systemd_pod_path(Qos::Burstable, UID),
            Path::new(&format!(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"
            ))
        );
        assert_eq!(
            systemd_pod_path(Qos::BestEffort, UID),
            Path::new(&format!(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice"
            ))
        );
    }

    #[test]
    fn cgroupfs_pod_paths_keep_the_uid() {
        assert_eq!(
            cgroupfs_pod_path(Qos::Guaranteed, UID),
            Path::new(&format!("kubepods/pod{UID}"))
        );
        assert_eq!(
            cgroupfs_pod_path(Qos::Burstable, UID),
            Path::new(&format!("kubepods/burstable/pod{UID}"))
        );
        assert_eq!(
            cgroupfs_pod_path(Qos::BestEffort, UID),
            Path::new(&format!("kubepods/besteffort/pod{UID}"))
        );
    }

    #[test]
    fn qos_classes_parse_in_any_case() {
        assert_eq!(Qos::parse("Burstable", UID).ok(), Some(Qos::Burstable));
        assert_eq!(Qos::parse("besteffort", UID).ok(), Some(Qos::BestEffort));
        assert_eq!(Qos::parse("GUARANTEED", UID).ok(), Some(Qos::Guaranteed));
        assert!(matches!(Qos::parse("Premium", UID), Err(Error::Invalid(_))));
    }

    #[test]
    fn uids_are_uuids_or_hashes() {
        assert!(validate_uid(UID).is_ok());
        assert!(validate_uid("0123456789abcdef0123456789abcdef").is_ok());
        for bad in [
            "",
            "../etc",
            "1f0e/2d3c-4b5a",
            "-1f0e2d3c",
            "xyz12345",
            "1f0e_2d3c",
        ] {
            assert!(matches!(validate_uid(bad), Err(Error::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn container_ids_split_into_runtime_and_hex() {
        for (runtime, s) in [
            ("containerd", format!("containerd://{ID}")),
            ("cri-o", format!("cri-o://{ID}")),
            ("docker", format!("docker://{ID}")),
            ("", ID.to_string()),
        ] {
            assert_eq!(parse_container_id(&s).ok(), Some((runtime, ID)), "{s}");
        }
        assert_eq!(
            parse_container_id(&format!("containerd://{}", &ID[..12])).ok(),
            Some(("containerd", &ID[..12]))
        );
        for bad in [
            format!("://{ID}"),
            format!("Containerd://{ID}"),
            format!("containerd:/{ID}"),
            "containerd://0123456789a".to_string(),
            format!("containerd://{ID}0"),
            "containerd://0123456789abcdefg".to_string(),
            format!("containerd://../{ID}"),
            String::new(),
        ] {
            assert!(
                matches!(parse_container_id(&bad), Err(Error::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn container_names_follow_the_runtime() {
        assert_eq!(
            container_dir_names("containerd", ID),
            [format!("cri-containerd-{ID}.scope"), ID.to_string()]
        );
        assert_eq!(
            container_dir_names("cri-o", ID),
            [format!("crio-{ID}.scope"), format!("crio-{ID}")]
        );
        assert_eq!(
            container_dir_names("docker", &ID[..12]),
            [
                format!("docker-{}*.scope", &ID[..12]),
                format!("{}*", &ID[..12])
            ]
        );
        assert_eq!(container_dir_names("", ID).len(), 5);
        // Every name listed is one the search accepts.
        for runtime in ["containerd", "cri-o", "docker", ""] {
            for name in container_dir_names(runtime, ID) {
                assert!(names_container(&name, ID), "{name}");
            }
        }
    }

    #[test]
    fn lists_read_naturally() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(join_names(&names(&["a"])), "a");
        assert_eq!(join_names(&names(&["a", "b"])), "a and b");
        assert_eq!(join_names(&names(&["a", "b", "c"])), "a, b and c");
    }
}
