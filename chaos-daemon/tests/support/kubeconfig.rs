//! A kubeconfig for the fake API server in a temporary directory of its own, and a daemon that reads the cluster through it.

use std::path::{Path, PathBuf};

use super::apiserver::ApiServer;
use super::daemon::Daemon;

/// `kubeconfig` for one [`ApiServer`] (see [`ApiServer::kubeconfig`]); its directory is
/// removed on drop.
pub struct KubeconfigFile {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl KubeconfigFile {
    /// Writes the kubeconfig of `api` into a fresh temporary directory.
    pub fn new(api: &ApiServer) -> KubeconfigFile {
        let dir = tempfile::Builder::new()
            .prefix("fl-kube-")
            .tempdir()
            .expect("kubeconfig dir");
        KubeconfigFile {
            path: api.kubeconfig(dir.path()),
            _dir: dir,
        }
    }

    /// The kubeconfig file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A daemon with `args` whose `KUBECONFIG` is this file; `None` (the test skipped)
    /// when the kernel lacks one of `features` (see [`Daemon::start_requiring`]).
    pub async fn start_daemon(&self, args: &[&str], features: &[&str]) -> Option<Daemon> {
        let kubeconfig = self.path.to_str().expect("UTF-8 temp path");
        // An empty NODE_NAME keeps one inherited from the test's environment out.
        let env = [("KUBECONFIG", kubeconfig), ("NODE_NAME", "")];
        Daemon::start_requiring_with_env(args, &env, features).await
    }
}
