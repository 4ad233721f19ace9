//! Worker processes the daemon starts from its own binary: stress workers inside a target's
//! cgroup, which load its CPU or memory and stop at the window's end, on cancel and when the
//! daemon dies; and a pause's thaw guard, which outlives the daemon so a pause still ends on
//! time.

pub mod pool;
pub mod run;
mod spawner;
pub mod spec;

pub use pool::{Guard, Pool};
pub use spec::{Load, Spec};

/// Starting, watching or stopping workers failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating or removing the workers' cgroup, or moving a worker into it, failed.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroupfs::Error),
    /// `fork`/`exec` of a worker failed.
    #[error("starting a stress worker ({exe}): {source}")]
    Spawn { exe: String, source: std::io::Error },
    /// A worker reported an error, or no readiness, instead of starting its load.
    #[error("stress worker {pid}: {reason}")]
    NotReady { pid: u32, reason: String },
}
