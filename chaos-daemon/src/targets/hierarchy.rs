//! Where the cgroup v2 hierarchy is mounted, and paths and ids inside it.
use std::path::{Component, Path, PathBuf};

use super::{cgroup_id, Cgroup, Error};

/// How cgroups are mounted on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Only cgroup2 (`/sys/fs/cgroup` on current distributions).
    Unified,
    /// cgroup v1 controllers plus a cgroup2 mount (systemd's `/sys/fs/cgroup/unified`).
    Hybrid,
}

/// The cgroup v2 mount this node uses.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    pub mount: PathBuf,
    pub layout: Layout,
}

impl Hierarchy {
    /// Finds the cgroup2 mount in `/proc/self/mountinfo`.
    pub fn discover() -> Result<Self, Error> {
        let info = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|err| Error::Io(format!("read /proc/self/mountinfo: {err}")))?;
        Self::from_mountinfo(&info).ok_or_else(|| {
            Error::Io(
                "no cgroup2 mount in /proc/self/mountinfo: mount -t cgroup2 none /sys/fs/cgroup"
                    .into(),
            )
        })
    }

    /// Parses mountinfo text; the first `cgroup2` mount wins, v1 mounts make the layout hybrid.
    pub fn from_mountinfo(info: &str) -> Option<Self> {
        let mut mount = None;
        let mut v1 = false;
        for line in info.lines() {
            // Fields: ... mount-point (5th) ... " - " fstype source options.
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fstype = right.split_whitespace().next().unwrap_or_default();
            let point = left.split_whitespace().nth(4);
            match (fstype, point) {
                ("cgroup2", Some(point)) if mount.is_none() => {
                    mount = Some(PathBuf::from(unescape(point)));
                }
                ("cgroup", _) => v1 = true,
                _ => {}
            }
        }
        let layout = if v1 { Layout::Hybrid } else { Layout::Unified };
        mount.map(|mount| Self { mount, layout })
    }

    /// The directory a `cgroup:` target names: a path under the mount point as is, anything
    /// else relative to the mount point.
    pub fn cgroup_dir(&self, value: &str) -> PathBuf {
        let path = Path::new(value);
        if path.starts_with(&self.mount) {
            path.to_path_buf()
        } else {
            self.mount.join(value.trim_start_matches('/'))
        }
    }

    /// The v2 cgroup of a process, from the `0::` line of `/proc/PID/cgroup`.
    pub fn cgroup_of_pid(&self, pid: u32) -> Result<PathBuf, Error> {
        let file = format!("/proc/{pid}/cgroup");
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!(
                    "target: process {pid} does not exist"
                )))
            }
            Err(err) => return Err(Error::Io(format!("read {file}: {err}"))),
        };
        let rel = text
            .lines()
            .find_map(|line| line.strip_prefix("0::"))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "target: process {pid} has no cgroup v2 entry in {file}"
                ))
            })?;
        Ok(self.mount.join(rel.trim_start_matches('/')))
    }

    /// Id and path of a cgroup directory under the mount.
    pub fn describe(&self, dir: &Path) -> Result<Cgroup, Error> {
        let rel = dir.strip_prefix(&self.mount).map_err(|_| {
            Error::Invalid(format!(
                "target: {} is outside the cgroup v2 mount {}",
                dir.display(),
                self.mount.display()
            ))
        })?;
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(Error::Invalid(format!(
                "target: {} must not contain '..' or '.'",
                dir.display()
            )));
        }
        Ok(Cgroup {
            id: cgroup_id(dir)?,
            path: dir.to_path_buf(),
        })
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Ok(value) = u8::from_str_radix(&field[i + 1..i + 4], 8) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:22 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/memory rw,nosuid shared:11 - cgroup cgroup rw,memory
";
    const PURE: &str = "35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n";

    #[test]
    fn finds_hybrid_and_pure_mounts() {
        let h = Hierarchy::from_mountinfo(HYBRID).expect("hybrid");
        assert_eq!(h.mount, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(h.layout, Layout::Hybrid);
        let p = Hierarchy::from_mountinfo(PURE).expect("pure");
        assert_eq!(p.mount, Path::new("/sys/fs/cgroup"));
        assert_eq!(p.layout, Layout::Unified);
    }

    #[test]
    fn cgroup_paths_are_relative_to_the_mount_unless_under_it() {
        let h = Hierarchy::from_mountinfo(HYBRID).expect("hybrid");
        assert_eq!(
            h.cgroup_dir("/a/b"),
            Path::new("/sys/fs/cgroup/unified/a/b")
        );
        assert_eq!(h.cgroup_dir("a"), Path::new("/sys/fs/cgroup/unified/a"));
        assert_eq!(
            h.cgroup_dir("/sys/fs/cgroup/unified/x"),
            Path::new("/sys/fs/cgroup/unified/x")
        );
    }

    #[test]
    fn unescapes_spaces() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
    }
}
