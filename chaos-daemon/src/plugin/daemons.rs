//! Finds the faultline daemon pod of a node, or of every node, through the API server.

use std::collections::BTreeMap;

use futures::future::try_join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::error::PluginError;
use super::session::DaemonLocation;

/// One node's daemon pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonPod {
    /// The node it serves.
    pub node: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl DaemonPod {
    /// `namespace/name`, for messages.
    pub fn path(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The daemon pod of each of `nodes`, `None` for a node without a running one. One list per
/// node, by field selector, so only those pods cross the wire.
pub async fn on_nodes<'a>(
    client: &kube::Client,
    location: &DaemonLocation,
    nodes: impl IntoIterator<Item = &'a String>,
) -> Result<BTreeMap<String, Option<DaemonPod>>, PluginError> {
    let lookups = nodes.into_iter().map(|node| async move {
        let params = ListParams::default()
            .labels(&location.selector)
            .fields(&format!("spec.nodeName={node}"));
        let pods = list(client, location, &params, &format!(" on node {node}")).await?;
        Ok::<_, PluginError>((node.clone(), pick(&pods).into_iter().next()))
    });
    Ok(try_join_all(lookups).await?.into_iter().collect())
}

/// The daemon pod of every node that runs one; refuses when none runs anywhere.
pub async fn everywhere(
    client: &kube::Client,
    location: &DaemonLocation,
) -> Result<Vec<DaemonPod>, PluginError> {
    let params = ListParams::default().labels(&location.selector);
    let pods = list(client, location, &params, "").await?;
    let daemons = pick(&pods);
    if daemons.is_empty() {
        return Err(PluginError::NoDaemons {
            namespace: location.namespace.clone(),
            selector: location.selector.clone(),
        });
    }
    Ok(daemons)
}

async fn list(
    client: &kube::Client,
    location: &DaemonLocation,
    params: &ListParams,
    where_: &str,
) -> Result<Vec<Pod>, PluginError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &location.namespace);
    let list = api.list(params).await.map_err(|source| PluginError::Api {
        what: format!(
            "list the faultline daemon pods in {} with labels {}{where_}",
            location.namespace, location.selector
        ),
        source,
    })?;
    Ok(list.items)
}

/// One daemon per node among `pods`: a running one, ready ones first, then by name, so a
/// rollout's old and new pods on one node give a stable choice.
fn pick(pods: &[Pod]) -> Vec<DaemonPod> {
    let mut best: BTreeMap<String, (bool, DaemonPod)> = BTreeMap::new();
    for pod in pods {
        let running = pod.metadata.deletion_timestamp.is_none()
            && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let (Some(node), Some(name), true) = (node, pod.metadata.name.clone(), running) else {
            continue;
        };
        let daemon = DaemonPod {
            node: node.clone(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name,
        };
        let ready = is_ready(pod);
        // Smaller is better: ready first, then by name.
        let better = best
            .get(&node)
            .is_none_or(|(r, b)| (!ready, &daemon.name) < (!*r, &b.name));
        if better {
            best.insert(node, (ready, daemon));
        }
    }
    best.into_values().map(|(_, daemon)| daemon).collect()
}

/// Whether the pod's Ready condition is true.
fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodCondition;

    use super::*;
    use crate::plugin::census::tests::pod;

    fn ready(mut pod: Pod) -> Pod {
        if let Some(status) = pod.status.as_mut() {
            status.conditions = Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..PodCondition::default()
            }]);
        }
        pod
    }

    #[test]
    fn one_running_daemon_per_node_ready_first() {
        let pods = [
            pod("faultline", "chaos-daemon-a1", "node-a", "Running"),
            ready(pod("faultline", "chaos-daemon-a2", "node-a", "Running")),
            pod("faultline", "chaos-daemon-b2", "node-b", "Running"),
            pod("faultline", "chaos-daemon-b1", "node-b", "Running"),
            pod("faultline", "chaos-daemon-c1", "node-c", "Pending"),
            pod("faultline", "chaos-daemon-x", "", "Pending"),
        ];
        let picked: Vec<(String, String)> =
            pick(&pods).into_iter().map(|d| (d.node, d.name)).collect();
        assert_eq!(
            picked,
            [
                ("node-a".into(), "chaos-daemon-a2".into()),
                ("node-b".into(), "chaos-daemon-b1".into()),
            ]
        );
    }
}
