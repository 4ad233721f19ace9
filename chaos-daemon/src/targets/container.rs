//! Finds a container's cgroup by its id, across runtimes and cgroup drivers.
//!
//! Names seen in the wild: systemd driver `docker-<id>.scope`, `cri-containerd-<id>.scope`,
//! `crio-<id>.scope`, `libpod-<id>.scope`; cgroupfs driver `.../<id>` (docker, kubepods).
//! CRI-O also makes `crio-conmon-<id>.scope` for its monitor, which is not the container.
use std::path::{Path, PathBuf};

use super::{Error, Hierarchy};

/// Deepest directory level searched; kubelet's deepest container cgroups sit at level 4–6.
const MAX_DEPTH: usize = 10;

/// The cgroup directory of container `id` (full id or a unique prefix of at least 12 hex digits).
pub fn find(hier: &Hierarchy, id: &str) -> Result<PathBuf, Error> {
    if id.len() < 12 || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Invalid(format!(
            "target: container id {id:?} must be 12 to 64 hex digits"
        )));
    }
    let id = id.to_ascii_lowercase();
    let mut found = search(&hier.mount, MAX_DEPTH, &|name| names_container(name, &id))?;
    match found.len() {
        0 => Err(Error::NotFound(format!(
            "target: no cgroup under {} names container {id}",
            hier.mount.display()
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(Error::Invalid(format!(
            "target: container id {id} is ambiguous, it matches {}",
            display_paths(&found)
        ))),
    }
}

/// `a, b, c`: the paths of an ambiguous match, for an error message.
pub(super) fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Directories below `root` (down to level `max_depth`, 0 being `root`'s entries) whose name
/// `matches`, sorted; the walk does not descend into a match, and a match nested in another
/// is dropped as the same object (e.g. a container's own `init.scope` child).
pub(super) fn search(
    root: &Path,
    max_depth: usize,
    matches: &dyn Fn(&str) -> bool,
) -> Result<Vec<PathBuf>, Error> {
    let mut found = Vec::new();
    walk(root, 0, max_depth, matches, &mut found)?;
    found.sort();
    found.dedup_by(|later, earlier| later.starts_with(earlier));
    Ok(found)
}

fn walk(
    dir: &Path,
    depth: usize,
    max_depth: usize,
    matches: &dyn Fn(&str) -> bool,
    found: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    if depth > max_depth {
        return Ok(());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // Cgroups come and go while we walk; a vanished one is simply not a match.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(Error::Io(format!("read_dir {}: {err}", dir.display()))),
    };
    for entry in entries.flatten() {
        if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let path = entry.path();
        let name = entry.file_name();
        if matches(&name.to_string_lossy()) {
            found.push(path);
        } else {
            walk(&path, depth + 1, max_depth, matches, found)?;
        }
    }
    Ok(())
}

/// True when a cgroup directory name is the container with this id (or id prefix).
pub(super) fn names_container(name: &str, id: &str) -> bool {
    if name.contains("conmon") {
        return false;
    }
    let stem = name.strip_suffix(".scope").unwrap_or(name);
    let bare = ["docker-", "cri-containerd-", "crio-", "libpod-"]
        .iter()
        .find_map(|prefix| stem.strip_prefix(prefix))
        .unwrap_or(stem);
    bare.len() >= id.len() && bare.starts_with(id) && bare.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::names_container;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn recognises_runtime_names() {
        for name in [
            format!("docker-{ID}.scope"),
            format!("cri-containerd-{ID}.scope"),
            format!("crio-{ID}.scope"),
            format!("libpod-{ID}.scope"),
            ID.to_string(),
        ] {
            assert!(names_container(&name, ID), "{name}");
            assert!(names_container(&name, &ID[..12]), "{name} by prefix");
        }
        assert!(!names_container(&format!("crio-conmon-{ID}.scope"), ID));
        assert!(!names_container("kubepods-burstable.slice", &ID[..12]));
    }
}
