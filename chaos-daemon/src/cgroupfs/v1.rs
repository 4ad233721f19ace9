//! The v1 cgroups beside a v2 one on hybrid hosts, where the memory, cpu and freezer
//! controllers live: found through the target's processes (`/proc/PID/cgroup`).
use std::path::{Path, PathBuf};

use super::{procs, Error};

/// A mounted v1 hierarchy: its mount point and the controllers (or `name=`) bound to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub point: PathBuf,
    pub controllers: Vec<String>,
}

/// Every v1 hierarchy mounted on this node (none on a pure v2 node).
pub fn mounts() -> Vec<Mount> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|info| parse_mounts(&info))
        .unwrap_or_default()
}

fn parse_mounts(info: &str) -> Vec<Mount> {
    info.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut right = right.split_whitespace();
            if right.next()? != "cgroup" {
                return None;
            }
            let options = right.nth(1)?;
            let point = left.split_whitespace().nth(4)?;
            let controllers = options
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
                .map(str::to_string)
                .collect();
            Some(Mount {
                point: PathBuf::from(point),
                controllers,
            })
        })
        .collect()
}

/// The v1 cgroup directories of process `pid`, one per mounted hierarchy.
pub fn cgroups_of(pid: u32, mounts: &[Mount]) -> Vec<(Mount, PathBuf)> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
            if list.is_empty() {
                return None;
            }
            let names: Vec<&str> = list.split(',').collect();
            let mount = mounts
                .iter()
                .find(|m| names.iter().all(|n| m.controllers.iter().any(|c| c == n)))?;
            Some((
                mount.clone(),
                mount.point.join(path.trim_start_matches('/')),
            ))
        })
        .collect()
}

/// The oldest process of the v2 cgroup `dir`, whose v1 cgroups stand for the target's.
fn representative(dir: &Path) -> Result<Option<u32>, Error> {
    let pids = procs::pids(dir)?;
    Ok(pids
        .into_iter()
        .filter_map(|pid| Some((procs::start_time(pid)?, pid)))
        .min()
        .map(|(_, pid)| pid))
}

/// The v1 cgroup of `controller` that the target's processes are in; `None` when no v1
/// hierarchy has that controller or the target has no process.
pub fn companion(dir: &Path, controller: &str) -> Result<Option<PathBuf>, Error> {
    let mounts = mounts();
    if !mounts
        .iter()
        .any(|m| m.controllers.iter().any(|c| c == controller))
    {
        return Ok(None);
    }
    let Some(pid) = representative(dir)? else {
        return Ok(None);
    };
    Ok(cgroups_of(pid, &mounts)
        .into_iter()
        .find(|(m, _)| m.controllers.iter().any(|c| c == controller))
        .map(|(_, path)| path))
}

/// Where a process joining the target must go in every v1 hierarchy: the target's own v1
/// cgroups, or each hierarchy's root when the target has no process, so that a worker is
/// never left in the daemon's own v1 cgroups (and charged to them).
pub fn placement(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mounts = mounts();
    if mounts.is_empty() {
        return Ok(Vec::new());
    }
    let found = match representative(dir)? {
        Some(pid) => cgroups_of(pid, &mounts),
        None => Vec::new(),
    };
    Ok(mounts
        .iter()
        .map(|m| {
            found
                .iter()
                .find(|(fm, _)| fm == m)
                .map_or_else(|| m.point.clone(), |(_, path)| path.clone())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
25 30 0:22 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/memory rw,nosuid shared:11 - cgroup cgroup rw,memory
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/systemd rw,nosuid shared:13 - cgroup cgroup rw,xattr,name=systemd
";

    #[test]
    fn parses_v1_mounts_with_their_controllers() {
        let mounts = parse_mounts(INFO);
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0].point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(mounts[1].controllers, ["cpu", "cpuacct"]);
        assert!(mounts[2].controllers.iter().any(|c| c == "name=systemd"));
    }
}
