//! `kubectl chaos`, the kubectl plugin: pods as targets across the cluster, each node's
//! daemon reached by port-forward through the API server, answers merged per pod.

pub mod args;
pub mod census;
pub mod daemons;
pub mod error;
pub mod fanout;
pub mod forward;
pub mod guard;
mod help;
pub mod inject;
pub mod manage;
pub mod render;
pub mod rows;
pub mod run;
pub mod session;
pub mod target;

pub use args::{parse_from, PluginCli};
pub use error::PluginError;
pub use run::run;
