//! faultline's node daemon and its command-line client, as a library the binaries share.

pub mod api;
pub mod cgroupfs;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
pub mod faults;
pub mod hostns;
pub mod journal;
pub mod kernel;
pub mod plugin;
pub mod pods;
pub mod serve;
pub mod startup;
pub mod targets;
pub mod tls;
pub mod workers;
