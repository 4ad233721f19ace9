//! Running code inside another network namespace on a thread of its own, leaving the daemon's threads where they are.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

/// Entering or identifying a network namespace failed; each variant names the path and the call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The namespace file could not be opened (the namespace or process is gone).
    #[error("open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    /// `setns` refused the file: not a network namespace, or not allowed.
    #[error("setns(CLONE_NEWNET) {path}: {source}")]
    Setns { path: PathBuf, source: nix::Error },
    /// `stat` on the namespace file failed.
    #[error("stat {path}: {source}")]
    Stat { path: PathBuf, source: io::Error },
    /// The thread to enter the namespace with could not be started.
    #[error("spawn a thread for {path}: {source}")]
    Spawn { path: PathBuf, source: io::Error },
    /// The code run inside the namespace panicked.
    #[error("thread inside {path} panicked: {message}")]
    Panicked { path: PathBuf, message: String },
}

impl Error {
    /// The errno behind the error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Open { source, .. }
            | Error::Stat { source, .. }
            | Error::Spawn { source, .. } => source.raw_os_error(),
            Error::Setns { source, .. } => Some(*source as i32),
            Error::Panicked { .. } => None,
        }
    }
}

/// Runs `f` on a new thread that has entered the network namespace behind `netns`
/// (`/proc/PID/ns/net`, `/run/netns/NAME`) and returns its result.
///
/// The namespace is a per-thread attribute, so only that thread moves, and it ends with
/// `f`. Sockets `f` creates stay in the namespace and can be returned and used anywhere.
pub fn run_in<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    let file = File::open(netns).map_err(|source| Error::Open {
        path: netns.to_owned(),
        source,
    })?;
    let path = netns.to_owned();
    let handle = std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET)?;
            drop(file);
            Ok(f())
        })
        .map_err(|source| Error::Spawn {
            path: path.clone(),
            source,
        })?;
    match handle.join() {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(Error::Setns { path, source }),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            Err(Error::Panicked { path, message })
        }
    }
}

/// The namespace's identity: the inode number of its nsfs file (`stat` follows the
/// `/proc/PID/ns/net` link to it). Two paths name the same namespace iff the numbers match.
pub fn inode(netns: &Path) -> Result<u64, Error> {
    std::fs::metadata(netns)
        .map(|m| m.ino())
        .map_err(|source| Error::Stat {
            path: netns.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_round_trip() {
        let own = Path::new("/proc/self/ns/net");
        let ino = inode(own).unwrap();
        // Entering the namespace we are already in needs CAP_SYS_ADMIN; without it the
        // error must name setns.
        match run_in(own, || inode(Path::new("/proc/thread-self/ns/net"))) {
            Ok(inner) => assert_eq!(inner.unwrap(), ino),
            Err(e) => assert!(matches!(e, Error::Setns { .. }), "{e}"),
        }
    }

    #[test]
    fn errors_name_path_and_call() {
        let e = inode(Path::new("/nonexistent/ns")).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert!(e.to_string().starts_with("stat /nonexistent/ns: "), "{e}");
        let e = run_in(Path::new("/nonexistent/ns"), || ()).unwrap_err();
        assert!(e.to_string().starts_with("open /nonexistent/ns: "), "{e}");
        // /dev/null is not a namespace file.
        let e = run_in(Path::new("/dev/null"), || ()).unwrap_err();
        assert!(
            e.to_string().starts_with("setns(CLONE_NEWNET) /dev/null: "),
            "{e}"
        );
    }

    #[test]
    fn a_panic_comes_back_as_an_error() {
        let own = Path::new("/proc/self/ns/net");
        if let Err(Error::Panicked { message, .. }) = run_in(own, || panic!("boom")) {
            assert_eq!(message, "boom");
        }
    }
}
