//! The cluster as this node's daemon sees it: the API server client, this node's name, and
//! the namespaces no request may touch unless it says so.
use chaos_proto::v1::InjectRequest;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tracing::debug;

use super::{classify, not_running, Error, Policy, Query, Selected};
use crate::targets::Hierarchy;

/// This node's view of the cluster.
pub struct Cluster {
    pub(super) client: kube::Client,
    pub(super) node: String,
    pub(super) protected: Vec<String>,
    pub(super) hier: Hierarchy,
}

impl Cluster {
    /// A client from the in-cluster service account, or from `KUBECONFIG`/`~/.kube/config`.
    pub async fn connect(
        node: String,
        protected: Vec<String>,
        hier: Hierarchy,
    ) -> Result<Self, Error> {
        let client = kube::Client::try_default()
            .await
            .map_err(|source| Error::Api {
                what: "configure the API server client (in-cluster or KUBECONFIG)".into(),
                source,
            })?;
        Ok(Self {
            client,
            node,
            protected,
            hier,
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn protected(&self) -> &[String] {
        &self.protected
    }

    /// The pods `req.target` names, each with its report, and the cgroups of those on this
    /// node; refuses protected namespaces named outright and a share over `max_percent`.
    pub async fn select(&self, req: &InjectRequest) -> Result<Selected, Error> {
        let query = Query::parse(&req.target)?;
        let policy = self.policy(req);
        if let Some(ns) = query.namespace.as_deref().filter(|ns| policy.forbids(ns)) {
            return Err(Error::Protected(format!(
                "target: namespace {ns} is protected; name it in allow_protected_namespaces \
                 (--allow-protected {ns}) to target it"
            )));
        }
        let pods = self.fetch(&query).await?;
        debug!(target = %req.target, pods = pods.len(), "pods matched");
        let mut selected = Selected::default();
        for pod in &pods {
            let (report, cgroup) = classify(pod, &policy, &self.hier);
            selected.reports.push(report);
            selected.cgroups.extend(cgroup);
        }
        if req.max_percent > 0.0 && query.name.is_none() {
            let running = pods.iter().filter(|p| not_running(p).is_none()).count();
            let share = selected.cgroups.len() as f64 * 100.0 / running.max(1) as f64;
            if share > req.max_percent {
                return Err(Error::Guard(format!(
                    "target: would act on {} of the {running} running pods the selector \
                     matches ({share:.1} %), more than max_percent {}",
                    selected.cgroups.len(),
                    req.max_percent
                )));
            }
        }
        Ok(selected)
    }

    /// What a request allows on this node.
    pub(super) fn policy<'a>(&'a self, req: &'a InjectRequest) -> Policy<'a> {
        Policy {
            node: &self.node,
            protected: &self.protected,
            allowed: &req.allow_protected_namespaces,
            container: req.container.trim(),
        }
    }

    /// The pods of the query's namespace, or of every namespace.
    pub(super) fn pods(&self, query: &Query) -> Api<Pod> {
        match query.namespace.as_deref() {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// The pod named, or every pod the selector matches (on every node: the others are
    /// reported, and count for max_percent).
    async fn fetch(&self, query: &Query) -> Result<Vec<Pod>, Error> {
        let api = self.pods(query);
        let ns = query.namespace.as_deref().unwrap_or("every namespace");
        if let Some(name) = &query.name {
            let pod = api.get_opt(name).await.map_err(|source| Error::Api {
                what: format!("get pod {ns}/{name}"),
                source,
            })?;
            return pod
                .map(|p| vec![p])
                .ok_or_else(|| Error::NotFound(format!("target: pod {ns}/{name} does not exist")));
        }
        let params = ListParams::default().labels(&query.selector);
        let list = api.list(&params).await.map_err(|source| Error::Api {
            what: format!("list pods in {ns} with labelSelector {:?}", query.selector),
            source,
        })?;
        Ok(list.items)
    }
}
