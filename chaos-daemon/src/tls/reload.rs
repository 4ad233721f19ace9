//! Keeps the daemon's TLS server config current: polls the certificate, key and client-CA paths and swaps in a new config when they change, keeping the old one when the new files are bad.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio_rustls::rustls::ServerConfig;
use tracing::{info, warn};

use super::server::{self, ServerFiles};

/// How often the files are checked. A Kubernetes Secret update reaches the volume within
/// about a minute anyway, so a few seconds adds nothing noticeable to it.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// What identifies one version of a file without reading it. Taken from the path, not an
/// open descriptor: a Secret volume swaps its `..data` symlink, so the same path then
/// leads to another inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

/// The stamps of the three files; `None` for a file that cannot be stat'ed right now.
type Stamps = [Option<Stamp>; 3];

fn stamps(files: &ServerFiles) -> Stamps {
    files.paths().map(stamp)
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    })
}

/// What one check of the files did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// Nothing changed since the last check.
    Unchanged,
    /// The files changed and the new config is in use for new connections.
    Reloaded,
    /// The files changed but cannot be used; the previous config stays in use.
    Kept,
}

/// The server config in use, and the files it comes from.
#[derive(Debug)]
pub struct ReloadingConfig {
    files: ServerFiles,
    current: RwLock<Arc<ServerConfig>>,
    // Stamps of the last files tried, good or bad: a bad version is reported once, and
    // the next change of any file is tried again.
    seen: Mutex<Stamps>,
}

impl ReloadingConfig {
    /// Loads the files; fails if they cannot be used, naming the file and the problem.
    pub fn load(files: ServerFiles) -> Result<Arc<Self>, server::Error> {
        // Stamped before reading, so a change during the read is seen by the next check.
        let seen = stamps(&files);
        let config = server::load(&files)?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(Arc::new(config)),
            seen: Mutex::new(seen),
        }))
    }

    /// The files this config comes from.
    pub fn files(&self) -> &ServerFiles {
        &self.files
    }

    /// The config for the next handshake.
    pub fn current(&self) -> Arc<ServerConfig> {
        // A poisoned lock still holds a complete Arc: a writer only ever swaps it whole.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Checks the files once and swaps in a new config if they changed and can be used;
    /// logs the outcome of a change (a warning naming the file when it cannot be used).
    pub fn reload_if_changed(&self) -> Reload {
        let now = stamps(&self.files);
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == now {
                return Reload::Unchanged;
            }
            *seen = now;
        }
        match server::load(&self.files) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
                info!(
                    cert = %self.files.cert.display(),
                    key = %self.files.key.display(),
                    client_ca = %self.files.client_ca.display(),
                    "reloaded the TLS files"
                );
                Reload::Reloaded
            }
            Err(error) => {
                warn!(%error, "the TLS files changed but cannot be used; keeping the previous ones");
                Reload::Kept
            }
        }
    }

    /// Checks the files every `every` until `shutdown` flips to true.
    pub async fn watch(self: Arc<Self>, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                _ = ticks.tick() => {}
            }
            let this = Arc::clone(&self);
            // Stat and read on the blocking pool: a slow volume must not stall the runtime.
            if let Err(error) = tokio::task::spawn_blocking(move || this.reload_if_changed()).await
            {
                warn!(%error, "the TLS reload check failed");
            }
        }
    }
}
