//! The daemon's command line.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;

use crate::faults::window::Limits;

/// faultline's node daemon: injects network faults into targeted cgroups with eBPF.
///
/// Serves the faultline.v1 gRPC API on a Unix socket (root only, mode 0600) and optionally on
/// TCP. Faults are enforced by the kernel inside their [start, end) window, so they start and
/// stop on time even if this daemon is busy or killed; a restarted daemon adopts or removes
/// what a killed one left. SIGTERM ends every fault and removes every attachment and pin.
///
/// Example: chaos-daemon --socket /run/faultline/faultline.sock
#[derive(Debug, Parser)]
#[command(name = "chaos-daemon", version)]
pub struct Config {
    /// Unix socket to serve the API on (created mode 0600).
    #[arg(
        long,
        env = "FAULTLINE_SOCKET",
        default_value = "/run/faultline/faultline.sock"
    )]
    pub socket: PathBuf,

    /// Also serve the API on this TCP address, e.g. 127.0.0.1:7465 (no TLS: keep it local).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Directory of the journal of armed faults (survives restarts).
    #[arg(long, default_value = "/var/lib/faultline")]
    pub state_dir: PathBuf,

    /// bpffs directory for pinned maps and links (mounts bpffs at /sys/fs/bpf if needed).
    #[arg(long, default_value = crate::kernel::pins::DEFAULT_DIR)]
    pub bpffs_dir: PathBuf,

    /// Longest fault accepted, e.g. 1h, 30m.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub max_duration: Duration,

    /// How far in the past a requested start may be (client clock skew), e.g. 1s, 500ms.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub start_tolerance: Duration,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    pub fn limits(&self) -> Limits {
        Limits {
            max_duration: self.max_duration,
            start_tolerance: self.start_tolerance,
        }
    }
}
