//! Stress workers: processes the daemon starts inside a target's cgroup to load its CPU or
//! memory, supervises, and stops. They also stop on their own at the window's end and when
//! the daemon dies, so none outlives its fault.

pub mod pool;
pub mod run;
mod spawner;
pub mod spec;

pub use pool::Pool;
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
