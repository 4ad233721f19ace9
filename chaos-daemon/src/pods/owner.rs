//! Which pod a cgroup belongs to, from kubelet's names on its path: guard rails apply to
//! `cgroup:`, `pid:` and `container:` targets inside a pod as they do to pod targets.
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::{Cluster, Error};

/// The UID of the pod whose cgroup `path` is in, or None outside every pod: the component
/// kubelet names `…-pod<uid with _>.slice` (systemd driver) or `pod<uid>` (cgroupfs).
pub fn pod_uid(path: &Path) -> Option<String> {
    path.components().rev().find_map(|c| {
        let name = c.as_os_str().to_str()?;
        let stem = name.strip_suffix(".slice").unwrap_or(name);
        let raw = stem
            .strip_prefix("pod")
            .or_else(|| stem.rsplit_once("-pod").map(|(_, uid)| uid))?;
        let uid = raw.replace('_', "-");
        let uuid_like = uid.len() >= 32 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        uuid_like.then_some(uid)
    })
}

impl Cluster {
    /// Refuses a cgroup inside a pod of a protected namespace the request did not allow.
    pub async fn check_protected(&self, dirs: &[&Path], allowed: &[String]) -> Result<(), Error> {
        let uids: Vec<String> = dirs.iter().filter_map(|d| pod_uid(d)).collect();
        if uids.is_empty() {
            return Ok(());
        }
        let on_node = ListParams::default().fields(&format!("spec.nodeName={}", self.node));
        let pods = Api::<Pod>::all(self.client.clone())
            .list(&on_node)
            .await
            .map_err(|source| Error::Api {
                what: format!("list the pods of node {}", self.node),
                source,
            })?;
        for pod in pods.items {
            let meta = &pod.metadata;
            let (Some(uid), Some(ns)) = (meta.uid.as_deref(), meta.namespace.as_deref()) else {
                continue;
            };
            let protected = self.protected.iter().any(|p| p == ns);
            if protected && uids.iter().any(|u| u == uid) && !allowed.iter().any(|a| a == ns) {
                return Err(Error::Protected(format!(
                    "target: it is in pod {ns}/{}, and namespace {ns} is protected; name it in \
                     allow_protected_namespaces (--allow-protected {ns}) to target it",
                    meta.name.as_deref().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::pod_uid;

    #[test]
    fn finds_the_pod_in_kubelet_paths() {
        let uid = "1f0e6a1c-2b3d-4e5f-8a9b-0c1d2e3f4a5b";
        for path in [
            "/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1f0e6a1c_2b3d_4e5f_8a9b_0c1d2e3f4a5b.slice/cri-containerd-0123.scope",
            "/sys/fs/cgroup/kubepods.slice/kubepods-pod1f0e6a1c_2b3d_4e5f_8a9b_0c1d2e3f4a5b.slice",
            "/sys/fs/cgroup/kubepods/besteffort/pod1f0e6a1c-2b3d-4e5f-8a9b-0c1d2e3f4a5b/0123abcd",
        ] {
            assert_eq!(pod_uid(Path::new(path)).as_deref(), Some(uid), "{path}");
        }
        assert_eq!(
            pod_uid(Path::new("/sys/fs/cgroup/system.slice/postgresql.service")),
            None
        );
        assert_eq!(
            pod_uid(Path::new(
                "/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice"
            )),
            None
        );
    }
}
