//! Follows a pod target through its window: watches the pods it names on the API server and
//! hands the engine each pod that starts running on this node (a replacement, same target,
//! new UID) and each targeted pod that goes away.
use std::{sync::Weak, time::Duration};

use chaos_proto::v1::{InjectRequest, TargetStatus};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use tokio::sync::Mutex;
use tracing::{debug, warn};

use super::{classify, Cluster, Policy, Query};
use crate::{
    clock,
    engine::{Engine, PodChange},
};

/// Wait before asking the API server again after it failed.
const RETRY: Duration = Duration::from_secs(2);
/// Longest single watch: the API server ends watches itself after a few minutes anyway.
const MAX_WATCH: Duration = Duration::from_secs(290);
/// How often an idle follower checks that its fault is still armed (it may be cancelled).
const CHECK: Duration = Duration::from_secs(2);

impl Cluster {
    /// Follows fault `id`'s target until the fault ends or its window closes.
    pub async fn follow(&self, engine: Weak<Mutex<Engine>>, id: String, req: InjectRequest) {
        let Ok(query) = Query::parse(&req.target) else {
            return;
        };
        let api = self.pods(&query);
        let mut list = ListParams::default().labels(&query.selector);
        let mut watch = WatchParams::default().labels(&query.selector);
        if let Some(name) = &query.name {
            let by_name = format!("metadata.name={name}");
            list = list.fields(&by_name);
            watch = watch.fields(&by_name);
        }
        let policy = self.policy(&req);
        let follower = Follower {
            cluster: self,
            engine,
            id,
            policy,
        };
        follower.run(&api, &list, watch).await;
    }
}

struct Follower<'a> {
    cluster: &'a Cluster,
    engine: Weak<Mutex<Engine>>,
    id: String,
    policy: Policy<'a>,
}

impl Follower<'_> {
    /// List, then watch from the list's version; again after any break, until the end.
    async fn run(&self, api: &Api<Pod>, list: &ListParams, watch: WatchParams) {
        let Some(end) = self.end().await else { return };
        loop {
            let left = Duration::from_nanos(end.saturating_sub(clock::unix_now_ns()));
            if left.is_zero() {
                return;
            }
            let version = match api.list(list).await {
                Ok(pods) => {
                    for pod in &pods.items {
                        if !self.seen(pod).await {
                            return;
                        }
                    }
                    pods.metadata.resource_version.unwrap_or_default()
                }
                Err(err) => {
                    warn!(fault.id = %self.id, error = %err, "listing the target's pods");
                    tokio::time::sleep(RETRY.min(left)).await;
                    continue;
                }
            };
            let seconds = left.min(MAX_WATCH).as_secs().max(1) as u32;
            let params = watch.clone().timeout(seconds);
            let stream = match api.watch(&params, &version).await {
                Ok(stream) => stream,
                Err(err) => {
                    warn!(fault.id = %self.id, error = %err, "watching the target's pods");
                    tokio::time::sleep(RETRY.min(left)).await;
                    continue;
                }
            };
            let mut stream = stream.boxed();
            let deadline = tokio::time::Instant::now() + left;
            loop {
                let event = tokio::select! {
                    event = stream.try_next() => event,
                    () = tokio::time::sleep_until(deadline) => return,
                    () = tokio::time::sleep(CHECK) => {
                        if self.end().await.is_none() {
                            return;
                        }
                        continue;
                    }
                };
                let keep = match event {
                    Ok(Some(WatchEvent::Added(pod) | WatchEvent::Modified(pod))) => {
                        self.seen(&pod).await
                    }
                    Ok(Some(WatchEvent::Deleted(pod))) => self.deleted(&pod).await,
                    Ok(Some(WatchEvent::Bookmark(_))) => true,
                    Ok(Some(WatchEvent::Error(status))) => {
                        debug!(fault.id = %self.id, error = %status.message, "watch ended");
                        break;
                    }
                    Ok(None) => break,
                    Err(err) => {
                        debug!(fault.id = %self.id, error = %err, "watch broke");
                        break;
                    }
                };
                if !keep {
                    return;
                }
            }
        }
    }

    /// The fault's end, Unix ns, while it is armed.
    async fn end(&self) -> Option<u64> {
        let engine = self.engine.upgrade()?;
        let engine = engine.lock().await;
        engine.armed_until(&self.id)
    }

    /// A pod as it is now: taken in when it runs here, marked gone when a targeted pod
    /// stopped running. False once the fault has ended.
    async fn seen(&self, pod: &Pod) -> bool {
        let (report, cgroup) = classify(pod, &self.policy, &self.cluster.hier);
        let Some(engine) = self.engine.upgrade() else {
            return false;
        };
        let mut engine = engine.lock().await;
        let change = match cgroup {
            Some(cgroup) => {
                tokio::task::block_in_place(|| engine.add_pod(&self.id, cgroup, report))
            }
            None if report.status == TargetStatus::NotRunning as i32 => {
                engine.pod_gone(&self.id, &report.uid, &report.reason)
            }
            None => PodChange::Refused,
        };
        !matches!(change, PodChange::Ended)
    }

    async fn deleted(&self, pod: &Pod) -> bool {
        let Some(engine) = self.engine.upgrade() else {
            return false;
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let change = engine.lock().await.pod_gone(&self.id, &uid, "deleted");
        !matches!(change, PodChange::Ended)
    }
}
