//! The pods a target matches across the cluster, which of them a daemon would act on, and
//! on which nodes: what the cluster-wide guard rails count and the fan-out addresses.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::error::PluginError;
use super::target::PodTarget;
use crate::cli::podview::TargetView;
use crate::pods::not_running;

/// Namespaces the daemons protect by default besides their own: a fault there must name
/// the namespace in `--allow-protected` (the daemons enforce it; counting it here keeps
/// the cluster-wide guard rails honest).
const PROTECTED_BY_DEFAULT: &str = "kube-system";

/// Where one matched pod stands, seen from the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Running on this node: its daemon would act on it.
    Eligible {
        /// The pod's node.
        node: String,
    },
    /// Not scheduled, not running, or being deleted.
    NotRunning(String),
    /// Running, but in a protected namespace the request does not allow.
    Protected {
        /// The pod's node.
        node: String,
    },
}

/// One matched pod and its standing.
#[derive(Debug, Clone)]
pub struct Matched {
    /// The pod, as the target reports name it.
    pub view: TargetView,
    /// Whether and where a daemon would act on it.
    pub standing: Standing,
}

/// Every pod the target matches, each with its standing.
#[derive(Debug, Clone, Default)]
pub struct Census {
    /// The pods, in the API server's order.
    pub pods: Vec<Matched>,
}

impl Census {
    /// Classifies `pods`; `protected` lists the namespaces not allowed to the request.
    pub fn new(pods: &[Pod], protected: &[String]) -> Self {
        let pods = pods
            .iter()
            .map(|pod| {
                let standing = standing(pod, protected);
                let view = view(pod, &standing);
                Matched { view, standing }
            })
            .collect();
        Self { pods }
    }

    /// How many pods a daemon would act on.
    pub fn eligible(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| matches!(p.standing, Standing::Eligible { .. }))
            .count()
    }

    /// How many matched pods run (the base of `--max-percent`, as the daemons count it).
    pub fn running(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| !matches!(p.standing, Standing::NotRunning(_)))
            .count()
    }

    /// The nodes with eligible pods, each with how many.
    pub fn nodes(&self) -> BTreeMap<String, usize> {
        let mut nodes = BTreeMap::new();
        for pod in &self.pods {
            if let Standing::Eligible { node } = &pod.standing {
                *nodes.entry(node.clone()).or_insert(0) += 1;
            }
        }
        nodes
    }

    /// Every pod as a report row of the plugin's own, for pods no daemon reports on.
    pub fn views(&self) -> Vec<TargetView> {
        self.pods.iter().map(|p| p.view.clone()).collect()
    }
}

/// The namespaces a request may not touch: kube-system and the daemons' own, unless
/// `allowed` names them.
pub fn protected_namespaces(daemon_namespace: &str, allowed: &[String]) -> Vec<String> {
    [PROTECTED_BY_DEFAULT, daemon_namespace]
        .into_iter()
        .filter(|ns| !allowed.iter().any(|a| a == ns))
        .map(str::to_owned)
        .collect()
}

/// The pods `target` matches now: the one named (NOT_FOUND if it does not exist), or
/// every pod of the selector, on every node.
pub async fn fetch(client: &kube::Client, target: &PodTarget) -> Result<Vec<Pod>, PluginError> {
    match target {
        PodTarget::Pod { namespace, name } => {
            let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let pod = api.get_opt(name).await.map_err(|source| PluginError::Api {
                what: format!("get pod {namespace}/{name}"),
                source,
            })?;
            pod.map(|p| vec![p])
                .ok_or_else(|| PluginError::PodNotFound {
                    namespace: namespace.clone(),
                    name: name.clone(),
                })
        }
        PodTarget::Selector {
            namespace,
            selector,
        } => {
            let api: Api<Pod> = match namespace {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            let params = ListParams::default().labels(selector);
            let list = api.list(&params).await.map_err(|source| PluginError::Api {
                what: format!("list {}", target.describe()),
                source,
            })?;
            Ok(list.items)
        }
    }
}

/// Where `pod` stands: the same order of checks as a daemon's, short of its cgroup.
fn standing(pod: &Pod, protected: &[String]) -> Standing {
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    if let Some(reason) = not_running(pod) {
        Standing::NotRunning(reason)
    } else if protected.iter().any(|p| p == namespace) {
        Standing::Protected { node }
    } else {
        Standing::Eligible { node }
    }
}

/// The row the plugin shows for a pod before (or without) a daemon's report.
fn view(pod: &Pod, standing: &Standing) -> TargetView {
    let meta = &pod.metadata;
    let namespace = meta.namespace.clone().unwrap_or_default();
    let (status, node, reason) = match standing {
        Standing::Eligible { node } => (
            "unknown",
            node.clone(),
            format!("not reported by the daemon of node {node}"),
        ),
        Standing::NotRunning(reason) => (
            "not-running",
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
            reason.clone(),
        ),
        Standing::Protected { node } => (
            "protected",
            node.clone(),
            format!("namespace {namespace} is protected; allow it explicitly to target it"),
        ),
    };
    TargetView {
        namespace,
        pod: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        container: String::new(),
        node,
        status,
        cgroup_path: String::new(),
        reason,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    /// A pod `ns/name` on `node` (empty: unscheduled) in `phase`.
    pub(crate) fn pod(ns: &str, name: &str, node: &str, phase: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.into()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn counts_and_groups_by_node() {
        let pods = [
            pod("db", "a", "node-a", "Running"),
            pod("db", "b", "node-a", "Running"),
            pod("db", "c", "node-b", "Running"),
            pod("db", "d", "", "Pending"),
            pod("db", "e", "node-b", "Succeeded"),
            pod("kube-system", "f", "node-c", "Running"),
        ];
        let census = Census::new(&pods, &protected_namespaces("faultline", &[]));
        assert_eq!(census.eligible(), 3);
        assert_eq!(census.running(), 4);
        let nodes: Vec<(String, usize)> = census.nodes().into_iter().collect();
        assert_eq!(nodes, [("node-a".into(), 2), ("node-b".into(), 1)]);
        let statuses: Vec<&str> = census.views().iter().map(|v| v.status).collect();
        assert_eq!(
            statuses,
            [
                "unknown",
                "unknown",
                "unknown",
                "not-running",
                "not-running",
                "protected"
            ]
        );
        let allowed = Census::new(
            &pods,
            &protected_namespaces("faultline", &["kube-system".into()]),
        );
        assert_eq!(allowed.eligible(), 4);
    }
}
