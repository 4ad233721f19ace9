//! Pods as targets: the pods of this node that a `pod:`/`pods:` target names, each resolved
//! to its pod-level cgroup (or one container's), with a report per pod.
mod classify;
mod cluster;
mod follow;
mod owner;
mod query;

pub use classify::{classify, not_running, Policy};
pub use cluster::Cluster;
pub use query::Query;

use chaos_proto::v1::TargetReport;

use crate::targets::Cgroup;

/// Why a pod target could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target or a guard-rail field is malformed; the message says what is expected.
    #[error("{0}")]
    Invalid(String),
    /// The pod named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The target is in a protected namespace the request did not allow.
    #[error("{0}")]
    Protected(String),
    /// A guard rail (max_percent) refuses the request.
    #[error("{0}")]
    Guard(String),
    /// The API server could not be asked.
    #[error("{what}: {source}")]
    Api {
        /// The request, e.g. "list pods in namespace db".
        what: String,
        source: kube::Error,
    },
    /// The daemon runs without a cluster.
    #[error("{0}")]
    NoCluster(String),
}

/// What a pod target selected on this node.
#[derive(Clone, Debug, Default)]
pub struct Selected {
    /// The cgroups to act on: one per targeted pod (or container).
    pub cgroups: Vec<Cgroup>,
    /// One report per pod the target matched, targeted or not.
    pub reports: Vec<TargetReport>,
}
