//! Test cgroups: a fresh cgroup v2 directory under the unified hierarchy, emptied and removed on Drop.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use super::util::{unique_name, wait_until};

/// Mount point of the cgroup v2 (unified) hierarchy, from `/proc/self/mountinfo`:
/// `/sys/fs/cgroup/unified` on a hybrid host, `/sys/fs/cgroup` on a pure-v2 one.
/// Panics when there is none (every supported kernel config has one).
pub fn cgroup2_mount() -> &'static Path {
    static MOUNT: OnceLock<PathBuf> = OnceLock::new();
    MOUNT.get_or_init(|| {
        let info = fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
        find_cgroup2_mount(&info).expect("no cgroup2 filesystem in /proc/self/mountinfo")
    })
}

/// Parses `/proc/self/mountinfo` text for the first `cgroup2` mount of the hierarchy root.
pub fn find_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS"
        let (pre, post) = line.split_once(" - ")?;
        let fstype = post.split_whitespace().next()?;
        let fields: Vec<&str> = pre.split_whitespace().collect();
        // A bind mount of a sub-cgroup (root != "/") would give wrong relative paths.
        if fstype != "cgroup2" || fields.get(3) != Some(&"/") {
            return None;
        }
        Some(PathBuf::from(unescape_mountinfo(fields.get(4)?)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A cgroup v2 directory `<mount>/fl-XXXXXXXX` for one test.
///
/// Drop kills every process in it (`cgroup.kill`, or SIGKILL per pid on kernels without
/// it), waits until `cgroup.procs` is empty, and removes the directory; best effort,
/// warnings on stderr, never a panic.
#[derive(Debug)]
pub struct TestCgroup {
    path: PathBuf,
    rel_path: String,
}

impl TestCgroup {
    /// Creates a fresh cgroup directly under the v2 mount point. Panics on failure.
    pub fn new() -> TestCgroup {
        let name = unique_name("fl-");
        let path = cgroup2_mount().join(&name);
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TestCgroup {
            path,
            rel_path: format!("/{name}"),
        }
    }

    /// Creates a fresh cgroup inside `parent` (drop it before the parent). Panics on failure.
    pub fn child_of(parent: &TestCgroup) -> TestCgroup {
        let name = unique_name("fl-");
        let path = parent.path.join(&name);
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TestCgroup {
            path,
            rel_path: format!("{}/{name}", parent.rel_path),
        }
    }

    /// Absolute path of the directory, e.g. `/sys/fs/cgroup/unified/fl-ab12cd34`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path relative to the v2 mount, e.g. `/fl-ab12cd34`: what `/proc/PID/cgroup`'s `0::`
    /// line shows for a member process.
    pub fn rel_path(&self) -> &str {
        &self.rel_path
    }

    /// The cgroup id, i.e. the directory's inode number (what `bpf_get_current_cgroup_id`
    /// and `bpf_skb_cgroup_id` return for members).
    pub fn id(&self) -> u64 {
        fs::metadata(&self.path)
            .unwrap_or_else(|e| panic!("stat {}: {e}", self.path.display()))
            .ino()
    }

    /// The daemon's target string for this cgroup: `cgroup:/fl-ab12cd34`.
    pub fn target(&self) -> String {
        format!("cgroup:{}", self.rel_path)
    }

    /// Pids currently in the cgroup (its `cgroup.procs`).
    pub fn procs(&self) -> Vec<i32> {
        read_procs(&self.path).unwrap_or_default()
    }

    /// Moves process `pid` into the cgroup.
    pub fn add_pid(&self, pid: u32) -> io::Result<()> {
        fs::write(self.path.join("cgroup.procs"), pid.to_string())
    }
}

/// Enables the v2 `controllers` that the mount root offers for the cgroups under it (so a
/// test cgroup gets `memory.current`, `memory.max`, `cpu.max`); returns those now enabled.
/// On a hybrid host the root offers none of them: they are v1 there.
pub fn enable_v2_controllers(controllers: &[&str]) -> Vec<String> {
    let root = cgroup2_mount();
    let offered = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let mut enabled = Vec::new();
    for c in controllers {
        if offered.split_whitespace().any(|o| o == *c)
            && fs::write(root.join("cgroup.subtree_control"), format!("+{c}")).is_ok()
        {
            enabled.push(c.to_string());
        }
    }
    enabled
}

fn read_procs(dir: &Path) -> io::Result<Vec<i32>> {
    Ok(fs::read_to_string(dir.join("cgroup.procs"))?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let kill_file = self.path.join("cgroup.kill");
        // cgroup.kill (5.14+) kills atomically, including processes forking meanwhile.
        if !(kill_file.exists() && fs::write(&kill_file, "1").is_ok()) {
            for pid in self.procs() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if !wait_until(Duration::from_secs(10), || self.procs().is_empty()) {
            eprintln!(
                "warning: cgroup {} still has processes {:?}",
                self.path.display(),
                self.procs()
            );
        }
        // rmdir can briefly fail with EBUSY while killed tasks finish exiting.
        let mut last = None;
        let gone = wait_until(Duration::from_secs(10), || {
            match fs::remove_dir(&self.path) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => true,
                Err(e) => {
                    last = Some(e);
                    false
                }
            }
        });
        if !gone {
            eprintln!("warning: rmdir {}: {last:?}", self.path.display());
        }
    }
}

/// Moves this process into a cgroup for the duration of a scope, and back.
pub struct InCgroup {
    home: PathBuf,
}

impl InCgroup {
    pub fn enter(cgroup: &TestCgroup) -> io::Result<Self> {
        let own = std::fs::read_to_string("/proc/self/cgroup")?;
        let rel = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(|| io::Error::other("no cgroup v2 line in /proc/self/cgroup"))?;
        let home = cgroup2_mount().join(rel.trim_start_matches('/'));
        std::fs::write(cgroup.path().join("cgroup.procs"), "0")?;
        Ok(Self { home })
    }
}

impl Drop for InCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.home.join("cgroup.procs"), "0");
    }
}
