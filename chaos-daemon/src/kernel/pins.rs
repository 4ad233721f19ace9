//! Every bpffs path the daemon uses, under one directory per daemon instance.
//!
//! Pinned maps and links keep armed faults in the kernel when the daemon dies; the next daemon
//! started with the same directory adopts or removes them.
use std::path::{Path, PathBuf};

/// Default root of faultline's pins.
pub const DEFAULT_DIR: &str = "/sys/fs/bpf/faultline";

/// Where pins live.
#[derive(Clone, Debug)]
pub struct Pins {
    root: PathBuf,
}

/// Why the bpffs directory could not be prepared or cleaned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `mount -t bpf` failed, or the directory is not on a bpf filesystem.
    #[error("bpffs at {path}: {reason}")]
    Bpffs { path: PathBuf, reason: String },
    /// Creating or removing a pin directory failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Pins {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory of pinned maps (aya pins `pinned` maps here by name).
    pub fn maps_dir(&self) -> PathBuf {
        self.root.join("maps")
    }

    fn links_dir(&self) -> PathBuf {
        self.root.join("links")
    }

    /// Pin of the network program's link on one cgroup for one direction (`ingress` /
    /// `egress`).
    pub fn net_link(&self, cgroup_id: u64, direction: &str) -> PathBuf {
        self.links_dir()
            .join(format!("net_{cgroup_id}_{direction}"))
    }

    /// Pin of a storage program's link (one per program: they hook the whole node).
    pub fn storage_link(&self, program: &str) -> PathBuf {
        self.links_dir().join(format!("storage_{program}"))
    }

    /// Every storage link pinned here, with its program's name.
    pub fn storage_links(&self) -> Result<Vec<(String, PathBuf)>, Error> {
        Ok(self
            .links()?
            .into_iter()
            .filter_map(|(name, path)| Some((name.strip_prefix("storage_")?.to_string(), path)))
            .collect())
    }

    /// Every network link pinned here, with its cgroup id.
    pub fn net_links(&self) -> Result<Vec<(u64, PathBuf)>, Error> {
        Ok(self
            .links()?
            .into_iter()
            .filter_map(|(name, path)| {
                let (id, _direction) = name.strip_prefix("net_")?.split_once('_')?;
                Some((id.parse().ok()?, path))
            })
            .collect())
    }

    /// Every link pinned here, by file name.
    fn links(&self) -> Result<Vec<(String, PathBuf)>, Error> {
        let dir = self.links_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Io {
                    op: "read_dir",
                    path: dir,
                    source,
                })
            }
        };
        Ok(entries
            .flatten()
            .filter_map(|entry| Some((entry.file_name().into_string().ok()?, entry.path())))
            .collect())
    }

    /// Makes sure the parent is a bpf filesystem (mounting one at `/sys/fs/bpf` if needed) and
    /// creates the directories.
    pub fn prepare(&self) -> Result<(), Error> {
        self.prepare_with(true)
    }

    /// As [`Pins::prepare`]; without `may_mount`, a missing bpffs is an error instead of
    /// being mounted: a bpffs mounted inside a container dies with it, and the pins with it.
    pub fn prepare_with(&self, may_mount: bool) -> Result<(), Error> {
        let mount = self.root.parent().unwrap_or(Path::new("/sys/fs/bpf"));
        if !may_mount && !is_bpffs(mount) {
            return Err(Error::Bpffs {
                path: mount.to_path_buf(),
                reason: "not a bpf filesystem, and one mounted inside this container would \
                    die with it: mount bpffs on the node (systemd does at boot) and \
                    mount it into the pod"
                    .into(),
            });
        }
        ensure_bpffs(mount)?;
        for dir in [self.maps_dir(), self.links_dir()] {
            std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
                op: "mkdir",
                path: dir.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Removes every pin and directory below the root (unpinning drops the kernel objects once
    /// nothing else holds them).
    pub fn remove_all(&self) -> Result<(), Error> {
        remove_tree(&self.root)
    }
}

fn remove_tree(dir: &Path) -> Result<(), Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                op: "read_dir",
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&path)?;
        } else {
            std::fs::remove_file(&path).map_err(|source| Error::Io {
                op: "unlink",
                path: path.clone(),
                source,
            })?;
        }
    }
    std::fs::remove_dir(dir).map_err(|source| Error::Io {
        op: "rmdir",
        path: dir.to_path_buf(),
        source,
    })
}

/// BPF_FS_MAGIC from include/uapi/linux/magic.h.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|fs| fs.filesystem_type().0 == BPF_FS_MAGIC)
        .unwrap_or(false)
}

fn ensure_bpffs(mount: &Path) -> Result<(), Error> {
    if is_bpffs(mount) {
        return Ok(());
    }
    std::fs::create_dir_all(mount).map_err(|source| Error::Io {
        op: "mkdir",
        path: mount.to_path_buf(),
        source,
    })?;
    nix::mount::mount(
        Some("bpf"),
        mount,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|errno| Error::Bpffs {
        path: mount.to_path_buf(),
        reason: format!("mount -t bpf: {errno}"),
    })?;
    if is_bpffs(mount) {
        Ok(())
    } else {
        Err(Error::Bpffs {
            path: mount.to_path_buf(),
            reason: "still not a bpf filesystem after mount".into(),
        })
    }
}
