//! Freezing and thawing a cgroup: `cgroup.freeze` on v2, the v1 freezer where v2 lacks it.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{keyed, read, v1, write, Error};

/// The file that freezes one target, as recorded in the journal so a restarted daemon thaws it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Freezer {
    /// `cgroup.freeze` of a v2 cgroup (Linux 5.2+).
    V2 { dir: PathBuf },
    /// `freezer.state` of a v1 freezer cgroup.
    V1 { dir: PathBuf },
}

impl Freezer {
    /// The freezer for the v2 cgroup `dir`: its own `cgroup.freeze`, else the v1 freezer
    /// cgroup its processes are in.
    pub fn for_cgroup(dir: &Path) -> Result<Self, Error> {
        if dir.join("cgroup.freeze").exists() {
            return Ok(Self::V2 {
                dir: dir.to_path_buf(),
            });
        }
        match v1::companion(dir, "freezer")? {
            Some(v1_dir) => Ok(Self::V1 { dir: v1_dir }),
            None => Err(Error::Unsupported(format!(
                "{} has no cgroup.freeze (Linux 5.2+) and no v1 freezer cgroup",
                dir.display()
            ))),
        }
    }

    pub fn dir(&self) -> &Path {
        match self {
            Self::V2 { dir } | Self::V1 { dir } => dir,
        }
    }

    /// Asks the kernel to freeze every process; it completes asynchronously (see [`Self::frozen`]).
    pub fn freeze(&self) -> Result<(), Error> {
        match self {
            Self::V2 { dir } => write(&dir.join("cgroup.freeze"), "1"),
            Self::V1 { dir } => write(&dir.join("freezer.state"), "FROZEN"),
        }
    }

    /// Thaws; thawing a cgroup that is not frozen, or is gone, is not an error.
    pub fn thaw(&self) -> Result<(), Error> {
        let result = match self {
            Self::V2 { dir } => write(&dir.join("cgroup.freeze"), "0"),
            Self::V1 { dir } => write(&dir.join("freezer.state"), "THAWED"),
        };
        match result {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(())
            }
            other => other,
        }
    }

    /// Whether the kernel reports every process of the cgroup frozen.
    pub fn frozen(&self) -> Result<bool, Error> {
        Ok(match self {
            Self::V2 { dir } => keyed(&read(&dir.join("cgroup.events"))?, "frozen") == Some(1),
            Self::V1 { dir } => read(&dir.join("freezer.state"))?.trim() == "FROZEN",
        })
    }
}
