//! The on-disk journal of armed faults: written (and fsync'd) before a fault touches the
//! kernel, removed after it is undone, replayed by the next daemon after a crash.
//!
//! One file per fault, `<id>.json`, replaced atomically (write, fsync, rename, fsync dir), so
//! a crash leaves either the old record or the new one, never half of one.
use std::{
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tracing::warn;

/// A journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, writing, syncing or removing a record file failed.
    #[error("journal {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("journal record {id}: {source}")]
    Encode {
        id: String,
        source: serde_json::Error,
    },
}

/// What a fault changed and how to undo it: enough to re-arm it or take it back out.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    /// The `InjectRequest` as received, protobuf-encoded, hex.
    pub request_hex: String,
    /// The cgroups the target resolved to when the fault was armed.
    pub cgroups: Vec<CgroupRef>,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    /// The side effects to undo.
    pub undo: Undo,
}

/// A resolved cgroup, as recorded.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupRef {
    pub id: u64,
    pub path: PathBuf,
}

/// Side effects of one fault.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Undo {
    /// A network fault slot: its parameters and peers in the pinned maps, and its place in the
    /// slot lists of its cgroups' attachments (detached with the last fault of a cgroup).
    NetworkSlot {
        slot: u32,
        /// Interfaces given `fq` and the impairment filter (none for loss and partition).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ifaces: Vec<crate::kernel::ifaces::Iface>,
    },
    /// A storage errno fault slot: its parameters and path entries in the pinned maps, and
    /// its place in its cgroups' slot lists (the programs are detached with the last fault).
    ErrnoSlot {
        slot: u32,
        inodes: Vec<crate::faults::errno::Inode>,
    },
    /// Cgroups frozen by a pause: thawed at the end, or by the next daemon.
    Freeze {
        freezers: Vec<crate::cgroupfs::freeze::Freezer>,
    },
    /// The cgroup of a stress fault's workers: everything in it is killed, then it is removed.
    Workers { cgroup: PathBuf },
    /// A disk fill: the file, as a path in the target's mount namespace (reached again
    /// through a process of the target's cgroups).
    FillFile { file: PathBuf },
    /// Cgroup file values to write back (an I/O limit's previous values).
    Writes {
        restore: Vec<crate::faults::iolimit::FileWrite>,
    },
    /// Signals only: nothing to undo.
    Nothing,
}

/// The journal directory.
#[derive(Clone, Debug)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// Opens (creating) the journal under `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self, Error> {
        let dir = state_dir.join("journal");
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            op: "mkdir",
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Durably writes a record before its side effects are made.
    pub fn write(&self, record: &Record) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| Error::Encode {
            id: record.id.clone(),
            source,
        })?;
        let path = self.path(&record.id);
        let tmp = self.dir.join(format!(".{}.tmp", record.id));
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { op, path, source }
        };
        let mut file = File::create(&tmp).map_err(io("create", &tmp))?;
        file.write_all(&bytes).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("fsync", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("rename", &path))?;
        self.sync()
    }

    /// Removes a record once its side effects are undone.
    pub fn remove(&self, id: &str) -> Result<(), Error> {
        self.remove_unsynced(id)?;
        self.sync()
    }

    /// Removes a record without syncing the directory: for many removals followed by one
    /// [`Journal::sync`].
    pub fn remove_unsynced(&self, id: &str) -> Result<(), Error> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Io {
                op: "unlink",
                path,
                source,
            }),
        }
    }

    /// Every record left by a previous daemon; unreadable files are logged and skipped.
    pub fn load_all(&self) -> Result<Vec<Record>, Error> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| Error::Io {
            op: "read_dir",
            path: self.dir.clone(),
            source,
        })?;
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let parsed = std::fs::read(&path)
                .map_err(|err| err.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<Record>(&bytes).map_err(|err| err.to_string())
                });
            match parsed {
                Ok(record) => records.push(record),
                Err(err) => {
                    warn!(path = %path.display(), error = %err, "skipping unreadable journal record")
                }
            }
        }
        records.sort_by_key(|r| (r.start_unix_ns, r.id.clone()));
        Ok(records)
    }

    /// Makes every write and removal so far durable (fsync of the directory).
    pub fn sync(&self) -> Result<(), Error> {
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| Error::Io {
                op: "fsync",
                path: self.dir.clone(),
                source,
            })
    }
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lower- or upper-case hex; `None` if malformed.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(dir.path()).expect("open");
        let record = Record {
            id: "f1".into(),
            request_hex: to_hex(&[1, 2, 0xff]),
            cgroups: vec![CgroupRef {
                id: 7,
                path: "/sys/fs/cgroup/x".into(),
            }],
            start_unix_ns: 1,
            end_unix_ns: 2,
            undo: Undo::NetworkSlot {
                slot: 3,
                ifaces: Vec::new(),
            },
        };
        journal.write(&record).expect("write");
        assert_eq!(journal.load_all().expect("load"), vec![record.clone()]);
        assert_eq!(from_hex(&record.request_hex), Some(vec![1, 2, 0xff]));
        journal.remove("f1").expect("remove");
        assert!(journal.load_all().expect("load").is_empty());
    }
}
