//! Pods as targets on a real daemon: kubelet's cgroup trees for pods holding real processes, a
//! fake API server whose pods carry the same UIDs and container ids, and the packets those
//! processes lose; and the fake API server itself, as `kube` reads it.
mod support;
probe_entry!();

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chaos_proto::v1::{
    fault_service_client::FaultServiceClient, inject_request::Spec, network_fault::Action,
    CapabilitiesRequest, Fault, InjectRequest, ListRequest, Loss, NetworkFault, TargetReport,
    TargetStatus,
};
use futures::TryStreamExt as _;
use k8s_openapi::api::core::v1::Pod as KubePod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{json, Value};
use support::apiserver::{self, ApiServer};
use support::kubeconfig::KubeconfigFile;
use support::kubepods::{hex, new_uid, Dirs, Driver, Node};
use support::{
    api::{self, inject},
    cgroup2_mount, require_root, spawn_probe_in, Daemon, Netns, ProbeJob, TestCgroup,
    UdpEchoServer,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::Code;

/// The node the daemon under test runs on.
const NODE: &str = "node-a";
/// What network faults need from the kernel (as the daemon probes it).
const NETWORK: &[&str] = &["cgroup_v2", "cgroup_skb"];
/// Round trips per measurement: with 100 % loss one would do, a couple of hundred rule out
/// chance.
const ROUND_TRIPS: u64 = 200;

fn inode(dir: &Path) -> u64 {
    fs::metadata(dir)
        .unwrap_or_else(|e| panic!("stat {}: {e}", dir.display()))
        .ino()
}

/// A pod to create: in the API server, and, when it runs on [`NODE`], as cgroups.
#[derive(Clone, Copy)]
struct PodDef<'a> {
    namespace: &'a str,
    name: &'a str,
    node: &'a str,
    phase: &'a str,
    labels: &'a [(&'a str, &'a str)],
    containers: &'a [&'a str],
    qos: &'a str,
    driver: Driver,
}

impl Default for PodDef<'_> {
    fn default() -> Self {
        PodDef {
            namespace: "db",
            name: "postgres-0",
            node: NODE,
            phase: "Running",
            labels: &[],
            containers: &["postgres"],
            qos: "Burstable",
            driver: Driver::Systemd,
        }
    }
}

/// One container of a [`Pod`]: its id, and its cgroup when it runs here.
struct Container {
    name: String,
    id: String,
    dir: Option<PathBuf>,
}

/// A pod as created: what the API server holds, and its cgroups on this node.
struct Pod {
    namespace: String,
    name: String,
    uid: String,
    driver: Driver,
    dir: Option<PathBuf>,
    containers: Vec<Container>,
    json: Value,
}

impl Pod {
    fn target(&self) -> String {
        format!("pod:{}/{}", self.namespace, self.name)
    }

    /// The pod-level cgroup.
    #[track_caller]
    fn dir(&self) -> &Path {
        self.dir.as_deref().expect("the pod runs on this node")
    }

    /// The cgroup of container `name`.
    #[track_caller]
    fn container(&self, name: &str) -> &Path {
        self.containers
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.dir.as_deref())
            .unwrap_or_else(|| panic!("pod {} runs no container {name} here", self.name))
    }
}

/// One node of a fake cluster: the daemon of [`NODE`] reading the fake API server through a
/// kubeconfig, a test cgroup holding kubelet-style pod trees, and a network namespace where a
/// UDP echo server listens on loopback for the pods' processes to measure their packets.
///
/// Fields drop in order: the daemon ends its faults before their cgroups go, the processes
/// in the pod cgroups are killed before the test cgroup and namespace are removed.
struct Cluster {
    daemon: Daemon,
    api: ApiServer,
    echo: UdpEchoServer,
    dirs: Dirs,
    root: TestCgroup,
    net: Netns,
    _kubeconfig: KubeconfigFile,
}

impl Cluster {
    /// A daemon with `--node-name node-a`; `None` (the test skipped) when not root or
    /// without cgroup_skb.
    async fn start() -> Option<Cluster> {
        Cluster::start_with(&["--node-name", NODE]).await
    }

    async fn start_with(args: &[&str]) -> Option<Cluster> {
        if !require_root() {
            return None;
        }
        let net = Netns::new();
        let root = TestCgroup::new();
        let echo = UdpEchoServer::start(&net, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let api = ApiServer::start();
        let kubeconfig = KubeconfigFile::new(&api);
        let daemon = kubeconfig.start_daemon(args, NETWORK).await?;
        Some(Cluster {
            daemon,
            api,
            echo,
            dirs: Dirs::default(),
            root,
            net,
            _kubeconfig: kubeconfig,
        })
    }

    /// Puts the pod in the API server and, when it runs on this node, lays out its cgroups
    /// (the pod's, and one per container with a fresh containerd id) under the test cgroup.
    fn add_pod(&mut self, def: PodDef) -> Pod {
        let uid = new_uid();
        let node = Node::containerd(def.driver);
        let here = def.node == NODE && def.phase == "Running";
        let dir = here.then(|| {
            self.dirs
                .make(self.root.path(), &node.pod_rel(def.qos, &uid))
        });
        let containers: Vec<Container> = def
            .containers
            .iter()
            .map(|name| {
                let id = hex(64);
                let dir = dir
                    .as_ref()
                    .map(|pod| self.dirs.make(pod, Path::new(&node.container_name(&id))));
                Container {
                    name: name.to_string(),
                    id,
                    dir,
                }
            })
            .collect();
        let ids: Vec<(&str, &str)> = containers
            .iter()
            .map(|c| (c.name.as_str(), c.id.as_str()))
            .collect();
        let json = apiserver::pod(
            def.namespace,
            def.name,
            &uid,
            def.node,
            def.phase,
            def.labels,
            &ids,
            def.qos,
        );
        self.api.put_pod(json.clone());
        Pod {
            namespace: def.namespace.to_string(),
            name: def.name.to_string(),
            uid,
            driver: def.driver,
            dir,
            containers,
            json,
        }
    }

    /// The runtime replaces container `name` of `pod`: its cgroup goes, one with a new id
    /// appears in the same pod cgroup, and the API server shows the new id, restarted once.
    fn restart_container(&mut self, pod: &mut Pod, name: &str) -> PathBuf {
        let node = Node::containerd(pod.driver);
        let pod_dir = pod.dir().to_path_buf();
        let index = pod
            .containers
            .iter()
            .position(|c| c.name == name)
            .expect("the container");
        let container = &mut pod.containers[index];
        let old = container.dir.take().expect("the container runs");
        self.dirs.remove(&old);
        let old_id = std::mem::replace(&mut container.id, hex(64));
        let dir = self
            .dirs
            .make(&pod_dir, Path::new(&node.container_name(&container.id)));
        container.dir = Some(dir.clone());
        let status = &mut pod.json["status"]["containerStatuses"][index];
        status["containerID"] = json!(node.status_id(&container.id));
        status["restartCount"] = json!(1);
        status["lastState"] = json!({"terminated": {
            "containerID": node.status_id(&old_id),
            "exitCode": 137,
            "reason": "Error",
            "startedAt": "2025-05-12T08:41:20Z",
            "finishedAt": "2025-05-12T09:02:44Z"
        }});
        self.api.put_pod(pod.json.clone());
        dir
    }

    /// UDP round trips to the echo server from a new process in cgroup `dir`: the probe's
    /// result (`sent`, `received`, `errors`, `cgroup`).
    fn round_trips(&self, dir: &Path) -> Value {
        let job = ProbeJob::UdpEcho {
            peer: self.echo.addr(),
            count: ROUND_TRIPS,
            batch: 50,
            batch_timeout_ms: 150,
        };
        let deadline = job.default_deadline();
        let result = spawn_probe_in(job, &self.net, dir)
            .try_wait_timeout(deadline)
            .unwrap_or_else(|e| panic!("probe in {}: {e}", dir.display()));
        let rel = dir.strip_prefix(cgroup2_mount()).expect("under the mount");
        assert_eq!(
            result["cgroup"],
            json!(format!("/{}", rel.display())),
            "the probe ran elsewhere"
        );
        result
    }

    /// Asserts every round trip from a process in `dir` is lost (sends refused or replies
    /// dropped).
    #[track_caller]
    fn assert_cut(&self, dir: &Path) {
        let r = self.round_trips(dir);
        let refused: u64 = r["errors"]
            .as_object()
            .map_or(0, |e| e.values().filter_map(Value::as_u64).sum());
        assert_eq!(
            r["received"],
            0,
            "{} still gets replies: {r}",
            dir.display()
        );
        assert_eq!(
            r["sent"].as_u64().unwrap_or(0) + refused,
            ROUND_TRIPS,
            "{r}"
        );
    }

    /// Asserts no round trip from a process in `dir` is lost.
    #[track_caller]
    fn assert_untouched(&self, dir: &Path) {
        let r = self.round_trips(dir);
        assert_eq!(
            r["received"],
            ROUND_TRIPS,
            "{} lost packets: {r}",
            dir.display()
        );
    }

    /// Asserts the daemon refuses `request` with `code`, in a message naming `part`.
    async fn assert_refused(&self, request: InjectRequest, code: Code, part: &str) {
        let message = self.daemon.refused(request, code).await;
        assert!(message.contains(part), "{message}");
    }

    /// The faults the daemon lists.
    async fn listed(&self) -> Vec<Fault> {
        let mut client = self.daemon.client().await;
        client
            .list(ListRequest {})
            .await
            .expect("list")
            .into_inner()
            .faults
    }

    /// Whether the daemon asked the API server for `path`, with `labelSelector` `selector`
    /// when one is given.
    fn asked(&self, path: &str, selector: Option<&str>) -> bool {
        self.api.requests().iter().any(|r| {
            r.method == "GET"
                && r.path() == path
                && selector.is_none_or(|s| r.query("labelSelector").as_deref() == Some(s))
        })
    }
}

/// Replica `name` of the postgres StatefulSet in `db`, labelled `app=postgres`, on [`NODE`].
fn replica(name: &str) -> PodDef<'_> {
    PodDef {
        name,
        labels: &[("app", "postgres")],
        ..PodDef::default()
    }
}

/// Every packet of the target dropped, both ways, for two minutes.
fn blackout(target: &str) -> InjectRequest {
    let spec = NetworkFault {
        action: Some(Action::Loss(Loss { percent: 100.0 })),
        ..NetworkFault::default()
    };
    api::request(target, 0, Duration::from_secs(120), Spec::Network(spec))
}

fn status(report: &TargetReport) -> TargetStatus {
    TargetStatus::try_from(report.status).expect("a known target status")
}

/// The report of pod `name`.
#[track_caller]
fn report<'a>(fault: &'a Fault, name: &str) -> &'a TargetReport {
    fault
        .targets
        .iter()
        .find(|r| r.pod == name)
        .unwrap_or_else(|| panic!("no report for pod {name}: {:?}", fault.targets))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_target_cuts_that_pod_and_no_other() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let postgres = cluster.add_pod(replica("postgres-0"));
    let frontend = cluster.add_pod(PodDef {
        namespace: "web",
        name: "frontend-7c9d8b6f5-x2q4z",
        labels: &[("app", "frontend")],
        containers: &["nginx"],
        qos: "BestEffort",
        driver: Driver::Cgroupfs,
        ..PodDef::default()
    });
    let mut client = cluster.daemon.client().await;

    let fault = inject(&mut client, blackout(&postgres.target())).await;
    assert_eq!(fault.node, NODE);
    assert_eq!(fault.cgroup_ids, vec![inode(postgres.dir())]);
    let [only] = fault.targets.as_slice() else {
        panic!("one report expected: {:?}", fault.targets);
    };
    assert_eq!(status(only), TargetStatus::Targeted, "{only:?}");
    assert_eq!(
        (
            only.namespace.as_str(),
            only.pod.as_str(),
            only.uid.as_str(),
            only.node.as_str()
        ),
        ("db", "postgres-0", postgres.uid.as_str(), NODE)
    );
    assert_eq!(Path::new(&only.cgroup_path), postgres.dir());
    assert_eq!(only.cgroup_id, inode(postgres.dir()));
    assert!(cluster.asked("/api/v1/namespaces/db/pods/postgres-0", None));

    cluster.assert_cut(postgres.container("postgres"));
    cluster.assert_untouched(frontend.container("nginx"));

    // The cgroupfs driver's layout (BestEffort, bare container ids) resolves too.
    let fault = inject(&mut client, blackout(&frontend.target())).await;
    assert_eq!(fault.cgroup_ids, vec![inode(frontend.dir())]);
    cluster.assert_cut(frontend.container("nginx"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_targets_this_nodes_running_pods_and_reports_the_others() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let pg0 = cluster.add_pod(replica("postgres-0"));
    let pg1 = cluster.add_pod(PodDef {
        qos: "Guaranteed",
        driver: Driver::Cgroupfs,
        ..replica("postgres-1")
    });
    cluster.add_pod(PodDef {
        node: "node-b",
        ..replica("postgres-2")
    });
    cluster.add_pod(PodDef {
        phase: "Pending",
        ..replica("postgres-3")
    });
    let bouncer = cluster.add_pod(PodDef {
        name: "pgbouncer-5d8f7c9b4-q7m2x",
        labels: &[("app", "pgbouncer")],
        containers: &["pgbouncer"],
        ..PodDef::default()
    });
    let mut client = cluster.daemon.client().await;

    let target = "pods:db?labelSelector=app=postgres";
    let fault = inject(&mut client, blackout(target)).await;
    assert!(cluster.asked("/api/v1/namespaces/db/pods", Some("app=postgres")));
    assert_eq!(fault.targets.len(), 4, "{:?}", fault.targets);
    let mut counts = BTreeMap::new();
    for r in &fault.targets {
        *counts.entry(status(r).as_str_name()).or_insert(0) += 1;
    }
    assert_eq!(
        counts,
        BTreeMap::from([
            ("TARGET_STATUS_TARGETED", 2),
            ("TARGET_STATUS_OTHER_NODE", 1),
            ("TARGET_STATUS_NOT_RUNNING", 1),
        ])
    );
    for (pod, dir) in [("postgres-0", pg0.dir()), ("postgres-1", pg1.dir())] {
        let r = report(&fault, pod);
        assert_eq!(status(r), TargetStatus::Targeted, "{r:?}");
        assert_eq!(Path::new(&r.cgroup_path), dir);
    }
    let elsewhere = report(&fault, "postgres-2");
    assert_eq!(status(elsewhere), TargetStatus::OtherNode);
    assert!(
        elsewhere.reason.contains("runs on node node-b"),
        "{elsewhere:?}"
    );
    assert_eq!(elsewhere.cgroup_path, "");
    let pending = report(&fault, "postgres-3");
    assert_eq!(status(pending), TargetStatus::NotRunning, "{pending:?}");
    let mut ids = fault.cgroup_ids.clone();
    ids.sort();
    let mut want = vec![inode(pg0.dir()), inode(pg1.dir())];
    want.sort();
    assert_eq!(ids, want);

    cluster.assert_cut(pg0.container("postgres"));
    cluster.assert_cut(pg1.container("postgres"));
    cluster.assert_untouched(bouncer.container("pgbouncer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_container_stays_in_the_pods_fault() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let mut postgres = cluster.add_pod(PodDef::default());
    let mut client = cluster.daemon.client().await;
    let fault = inject(&mut client, blackout(&postgres.target())).await;
    cluster.assert_cut(postgres.container("postgres"));

    let new = cluster.restart_container(&mut postgres, "postgres");
    assert!(new.starts_with(postgres.dir()));
    cluster.assert_cut(&new);
    // Still the one pod-level attachment.
    let now = api::get(&mut client, &fault.id).await;
    assert_eq!(now.cgroup_ids, vec![inode(postgres.dir())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_field_targets_that_container_only() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let postgres = cluster.add_pod(PodDef {
        containers: &["postgres", "metrics"],
        ..PodDef::default()
    });
    let mut client = cluster.daemon.client().await;
    let fault = inject(
        &mut client,
        InjectRequest {
            container: "postgres".into(),
            ..blackout(&postgres.target())
        },
    )
    .await;
    let r = report(&fault, "postgres-0");
    assert_eq!(status(r), TargetStatus::Targeted, "{r:?}");
    assert_eq!(r.container, "postgres");
    assert_eq!(Path::new(&r.cgroup_path), postgres.container("postgres"));
    assert_eq!(
        fault.cgroup_ids,
        vec![inode(postgres.container("postgres"))]
    );

    cluster.assert_cut(postgres.container("postgres"));
    cluster.assert_untouched(postgres.container("metrics"));

    // A container the pod does not have is refused, naming the ones it has.
    cluster
        .assert_refused(
            InjectRequest {
                container: "backup".into(),
                ..blackout(&postgres.target())
            },
            Code::NotFound,
            "postgres, metrics",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_namespaces_must_be_allowed_by_name() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let coredns = cluster.add_pod(PodDef {
        namespace: "kube-system",
        name: "coredns-x",
        labels: &[("k8s-app", "kube-dns")],
        containers: &["coredns"],
        ..PodDef::default()
    });
    let tier = &[("tier", "db")];
    let snapshot = cluster.add_pod(PodDef {
        namespace: "kube-system",
        name: "etcd-snapshot-0",
        labels: tier,
        containers: &["snapshot"],
        ..PodDef::default()
    });
    let postgres = cluster.add_pod(PodDef {
        labels: tier,
        ..PodDef::default()
    });
    let mysql = cluster.add_pod(PodDef {
        name: "mysql-0",
        labels: tier,
        containers: &["mysql"],
        driver: Driver::Cgroupfs,
        ..PodDef::default()
    });

    cluster
        .assert_refused(
            blackout(&coredns.target()),
            Code::PermissionDenied,
            "kube-system",
        )
        .await;
    assert!(cluster.listed().await.is_empty());
    cluster.assert_untouched(coredns.container("coredns"));

    let mut client = cluster.daemon.client().await;
    let allowed = InjectRequest {
        allow_protected_namespaces: vec!["kube-system".into()],
        ..blackout(&coredns.target())
    };
    let fault = inject(&mut client, allowed).await;
    assert_eq!(fault.cgroup_ids, vec![inode(coredns.dir())]);
    cluster.assert_cut(coredns.container("coredns"));
    api::cancel(&mut client, &fault.id).await;

    let fault = inject(&mut client, blackout("pods:*?labelSelector=tier=db")).await;
    assert!(cluster.asked("/api/v1/pods", Some("tier=db")));
    assert_eq!(fault.targets.len(), 3, "{:?}", fault.targets);
    let protected = report(&fault, "etcd-snapshot-0");
    assert_eq!(status(protected), TargetStatus::Protected, "{protected:?}");
    assert!(protected.reason.contains("kube-system"), "{protected:?}");
    for pod in ["postgres-0", "mysql-0"] {
        assert_eq!(status(report(&fault, pod)), TargetStatus::Targeted);
    }
    cluster.assert_cut(postgres.container("postgres"));
    cluster.assert_cut(mysql.container("mysql"));
    cluster.assert_untouched(snapshot.container("snapshot"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_rails_refuse_before_anything_is_armed() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let pg0 = cluster.add_pod(replica("postgres-0"));
    let pg1 = cluster.add_pod(replica("postgres-1"));
    cluster.add_pod(PodDef {
        node: "node-b",
        ..replica("postgres-2")
    });
    let target = "pods:db?labelSelector=app=postgres";

    cluster
        .assert_refused(
            InjectRequest {
                max_targets: 1,
                ..blackout(target)
            },
            Code::FailedPrecondition,
            "max_targets 1",
        )
        .await;
    // Two of the three running pods are here: 66.7 %.
    cluster
        .assert_refused(
            InjectRequest {
                max_percent: 50.0,
                ..blackout(target)
            },
            Code::FailedPrecondition,
            "max_percent 50",
        )
        .await;
    assert!(cluster.listed().await.is_empty());
    cluster.assert_untouched(pg0.container("postgres"));
    cluster.assert_untouched(pg1.container("postgres"));

    // Limits the request fits in let it through.
    let mut client = cluster.daemon.client().await;
    let fitting = InjectRequest {
        max_targets: 2,
        max_percent: 70.0,
        ..blackout(target)
    };
    let fault = inject(&mut client, fitting).await;
    assert_eq!(fault.cgroup_ids.len(), 2);
    cluster.assert_cut(pg0.container("postgres"));
    cluster.assert_cut(pg1.container("postgres"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_the_pods_and_arms_nothing() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let pg0 = cluster.add_pod(replica("postgres-0"));
    cluster.add_pod(PodDef {
        node: "node-b",
        ..replica("postgres-1")
    });
    let mut client = cluster.daemon.client().await;
    let dry = InjectRequest {
        dry_run: true,
        ..blackout("pods:db?labelSelector=app=postgres")
    };
    let fault = inject(&mut client, dry).await;
    assert!(fault.dry_run);
    assert_eq!(fault.id, "");
    assert_eq!(fault.cgroup_ids, vec![inode(pg0.dir())]);
    let here = report(&fault, "postgres-0");
    assert_eq!(status(here), TargetStatus::Targeted);
    assert_eq!(Path::new(&here.cgroup_path), pg0.dir());
    assert_eq!(
        status(report(&fault, "postgres-1")),
        TargetStatus::OtherNode
    );

    assert!(cluster.listed().await.is_empty());
    cluster.assert_untouched(pg0.container("postgres"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_pods_and_a_daemon_outside_a_cluster_are_refused() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let postgres = cluster.add_pod(PodDef::default());
    cluster
        .assert_refused(blackout("pod:db/ghost-0"), Code::NotFound, "db/ghost-0")
        .await;
    cluster
        .assert_refused(
            blackout("pods:db?labelSelector=app=ghost"),
            Code::NotFound,
            "app=ghost",
        )
        .await;

    // The same machine, pods and API server, but no --node-name.
    let Some(outside) = Cluster::start_with(&[]).await else {
        return;
    };
    outside
        .assert_refused(
            blackout(&postgres.target()),
            Code::FailedPrecondition,
            "--node-name",
        )
        .await;
    let caps = outside.daemon.capabilities().await;
    let pods = caps.features.iter().find(|f| f.name == "pod_targets");
    assert!(pods.is_some_and(|f| !f.available), "{caps:?}");
    assert!(
        outside.api.requests().is_empty(),
        "{:?}",
        outside.api.requests()
    );
}

/// A `kube` client for `api`, through the kubeconfig it writes.
async fn kube_client(api: &ApiServer, dir: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(api.kubeconfig(dir)).expect("read the kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a config from the kubeconfig");
    assert_eq!(config.default_namespace, "default");
    kube::Client::try_from(config).expect("a client")
}

fn names(pods: &[KubePod]) -> Vec<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect()
}

/// Three pods of two namespaces on two nodes, as the API tests use them.
fn seed(api: &ApiServer) {
    let id = "d7d80abecce8ff31d248d1330e53c4ea22f69a0993bfc0561e7ba7f12af6b2a0";
    for (ns, name, node, labels) in [
        (
            "db",
            "postgres-0",
            NODE,
            &[("app", "postgres"), ("role", "primary")][..],
        ),
        (
            "db",
            "postgres-1",
            "node-b",
            &[("app", "postgres"), ("role", "replica")][..],
        ),
        (
            "web",
            "frontend-7c9d8b6f5-x2q4z",
            NODE,
            &[("app", "frontend")][..],
        ),
    ] {
        let uid = new_uid();
        let pod = apiserver::pod(
            ns,
            name,
            &uid,
            node,
            "Running",
            labels,
            &[("main", id)],
            "Burstable",
        );
        api.put_pod(pod);
    }
}

#[tokio::test]
async fn apiserver_serves_pods_as_kube_reads_them() {
    let api = ApiServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    seed(&api);
    let client = kube_client(&api, dir.path()).await;
    let db: Api<KubePod> = Api::namespaced(client.clone(), "db");
    let all: Api<KubePod> = Api::all(client.clone());

    let pod = db.get("postgres-0").await.expect("get postgres-0");
    let spec = pod.spec.as_ref().expect("spec");
    let status = pod.status.as_ref().expect("status");
    assert_eq!(spec.node_name.as_deref(), Some(NODE));
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.qos_class.as_deref(), Some("Burstable"));
    let container = &status
        .container_statuses
        .as_ref()
        .expect("container statuses")[0];
    assert_eq!(container.name, "main");
    assert!(container
        .container_id
        .as_deref()
        .is_some_and(|id| id.starts_with("containerd://")));
    let owner = &pod.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("StatefulSet", "postgres")
    );

    assert!(db.get_opt("ghost").await.expect("get_opt").is_none());
    match db.get("ghost").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
            assert_eq!(status.message, "pods \"ghost\" not found");
        }
        other => panic!("a 404 Status expected, got {other:?}"),
    }

    for (selector, want) in [
        ("app=postgres", vec!["postgres-0", "postgres-1"]),
        ("app==postgres,role=replica", vec!["postgres-1"]),
        ("app!=postgres", vec!["frontend-7c9d8b6f5-x2q4z"]),
        (
            "role in (primary, replica)",
            vec!["postgres-0", "postgres-1"],
        ),
        (
            "role notin (primary)",
            vec!["postgres-1", "frontend-7c9d8b6f5-x2q4z"],
        ),
        ("role", vec!["postgres-0", "postgres-1"]),
        ("!role", vec!["frontend-7c9d8b6f5-x2q4z"]),
        (
            "",
            vec!["postgres-0", "postgres-1", "frontend-7c9d8b6f5-x2q4z"],
        ),
    ] {
        let list = all.list(&ListParams::default().labels(selector)).await;
        let list = list.unwrap_or_else(|e| panic!("list {selector:?}: {e}"));
        assert_eq!(names(&list.items), want, "{selector:?}");
    }
    let on_a = db
        .list(&ListParams::default().fields(&format!("spec.nodeName={NODE}")))
        .await
        .expect("list by node");
    assert_eq!(names(&on_a.items), ["postgres-0"]);
    match all
        .list(&ListParams::default().labels("role in primary"))
        .await
    {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 400, "{status:?}"),
        other => panic!("a malformed selector must be refused: {other:?}"),
    }
    // Lists come back in the store's order, namespace then name, as from etcd.
    let logged = api.requests();
    assert!(logged.iter().any(|r| r.path() == "/api/v1/pods"
        && r.query("labelSelector").as_deref() == Some("role in (primary, replica)")));

    // The exact 404 body, as a real API server writes it.
    let mut tcp = tokio::net::TcpStream::connect(api.addr())
        .await
        .expect("connect");
    let request =
        "GET /api/v1/namespaces/db/pods/x HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n";
    tcp.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let body: Value = serde_json::from_str(body).expect("JSON body");
    assert_eq!(
        body,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
               "message":"pods \"x\" not found","reason":"NotFound",
               "details":{"name":"x","kind":"pods"},"code":404})
    );
}

#[tokio::test]
async fn apiserver_watch_streams_changes_from_a_resource_version() {
    let api = ApiServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    seed(&api);
    let client = kube_client(&api, dir.path()).await;
    let db: Api<KubePod> = Api::namespaced(client, "db");
    let list = db
        .list(&ListParams::default().labels("app=postgres"))
        .await
        .expect("list");
    let since = list
        .metadata
        .resource_version
        .expect("list resourceVersion");

    let params = WatchParams::default().labels("app=postgres").timeout(3);
    let events = db.watch(&params, &since).await.expect("watch");
    let mut changed = list.items[0].clone();
    changed
        .metadata
        .labels
        .get_or_insert_default()
        .insert("role".into(), "old".into());
    let mut changed = serde_json::to_value(&changed).expect("pod JSON");
    changed["kind"] = json!("Pod");
    changed["apiVersion"] = json!("v1");
    api.put_pod(changed.clone());
    // postgres-1 leaves the selector: DELETED for this watch.
    let mut relabeled = changed.clone();
    relabeled["metadata"]["name"] = json!("postgres-1");
    relabeled["metadata"]["labels"] = json!({"app": "mysql"});
    api.put_pod(relabeled);
    let uid = new_uid();
    let id = "fa54fe438d1427aea706566935d879ff578ebb047eef364e62a5b6acf253f563";
    let labels = [("app", "postgres")];
    let new = apiserver::pod(
        "db",
        "postgres-2",
        &uid,
        NODE,
        "Pending",
        &labels,
        &[("main", id)],
        "Burstable",
    );
    api.put_pod(new);
    assert!(api.delete_pod("db", "postgres-2"));
    // Another namespace: not this watch's business.
    api.delete_pod("web", "frontend-7c9d8b6f5-x2q4z");

    let seen: Vec<String> = events
        .map_ok(|event| match event {
            WatchEvent::Added(p) => format!("ADDED {}", p.metadata.name.unwrap_or_default()),
            WatchEvent::Modified(p) => format!("MODIFIED {}", p.metadata.name.unwrap_or_default()),
            WatchEvent::Deleted(p) => format!("DELETED {}", p.metadata.name.unwrap_or_default()),
            WatchEvent::Bookmark(_) => "BOOKMARK".into(),
            WatchEvent::Error(e) => format!("ERROR {e:?}"),
        })
        .try_collect()
        .await
        .expect("watch events until the timeout");
    assert_eq!(
        seen,
        [
            "MODIFIED postgres-0",
            "DELETED postgres-1",
            "ADDED postgres-2",
            "DELETED postgres-2",
            "BOOKMARK"
        ]
    );
    let watched = api
        .requests()
        .into_iter()
        .find(|r| r.query("watch").is_some());
    let watched = watched.expect("the watch request");
    assert_eq!(watched.query("resourceVersion"), Some(since));
    assert_eq!(watched.query("timeoutSeconds").as_deref(), Some("3"));
}

#[tokio::test]
async fn apiserver_port_forward_relays_to_the_registered_address() {
    let api = ApiServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    seed(&api);
    let client = kube_client(&api, dir.path()).await;
    let db: Api<KubePod> = Api::namespaced(client, "db");

    // A TCP echo server on loopback stands for the pod's port.
    let echo = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind echo");
    let echo_addr = echo.local_addr().expect("echo address");
    let echoing = tokio::spawn(async move {
        let (mut tcp, _) = echo.accept().await.expect("accept");
        let (mut read, mut write) = tcp.split();
        tokio::io::copy(&mut read, &mut write).await.expect("echo");
    });
    api.forward("db", "postgres-0", echo_addr);

    let mut forwarder = db
        .portforward("postgres-0", &[5432])
        .await
        .expect("portforward");
    let mut stream = forwarder.take_stream(5432).expect("port 5432's stream");
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let (mut read, mut write) = tokio::io::split(&mut stream);
    let ((), echoed) = tokio::join!(
        async {
            write.write_all(&payload).await.expect("write");
        },
        async {
            let mut back = vec![0u8; payload.len()];
            read.read_exact(&mut back).await.expect("read back");
            back
        }
    );
    assert!(echoed == payload, "the bytes came back changed");
    drop(stream);
    tokio::time::timeout(Duration::from_secs(10), forwarder.join())
        .await
        .expect("the forward ends once its stream is closed")
        .expect("a clean end");
    echoing.abort();
    let logged = api.requests();
    let asked = logged
        .iter()
        .find(|r| r.path().ends_with("/portforward"))
        .expect("logged");
    assert_eq!(
        asked.path(),
        "/api/v1/namespaces/db/pods/postgres-0/portforward"
    );
    assert_eq!(asked.query("ports").as_deref(), Some("5432"));

    // A pod with nothing behind it: the port's error channel says so.
    let mut forwarder = db
        .portforward("postgres-1", &[5432])
        .await
        .expect("portforward");
    let error = forwarder.take_error(5432).expect("port 5432's errors");
    let message = tokio::time::timeout(Duration::from_secs(10), error)
        .await
        .expect("an error message in time");
    assert!(message.is_some_and(|m| m.contains("error forwarding port 5432")));
    forwarder.abort();
    // No such pod: the API's 404 before any upgrade.
    match db.portforward("ghost", &[5432]).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        Err(other) => panic!("a 404 Status expected, got {other}"),
        Ok(_) => panic!("a 404 Status expected, got a forward"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_through_the_apiserver_reaches_a_daemon() {
    if !require_root() {
        return;
    }
    // A loopback port free right now: the OS picks it, the probe socket is closed at once.
    let listen = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let listen_arg = listen.to_string();
    let _daemon = Daemon::start(&["--listen", &listen_arg]).await;
    let api = ApiServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    seed(&api);
    api.forward("db", "postgres-0", listen);
    let pods: Api<KubePod> = Api::namespaced(kube_client(&api, dir.path()).await, "db");

    // Each connection tonic opens is a new port-forward to the daemon's pod.
    let connector = tower::service_fn(move |_: hyper::Uri| {
        let pods = pods.clone();
        async move {
            let mut forwarder = pods.portforward("postgres-0", &[listen.port()]).await?;
            let stream = forwarder
                .take_stream(listen.port())
                .ok_or_else(|| std::io::Error::other("no stream for the port"))?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    let channel = tonic::transport::Endpoint::from_static("http://postgres-0.db")
        .connect_with_connector(connector)
        .await
        .expect("a channel through the port-forward");
    let caps = FaultServiceClient::new(channel)
        .capabilities(CapabilitiesRequest {})
        .await
        .expect("Capabilities through the port-forward")
        .into_inner();
    assert_eq!(caps.kernel_release, support::kernel_release());
    assert!(api
        .requests()
        .iter()
        .any(|r| r.path() == "/api/v1/namespaces/db/pods/postgres-0/portforward"));
}

/// Reads `events` until a fault satisfies `done`, within 60 s.
async fn until_event(
    events: &mut tonic::Streaming<chaos_proto::v1::FaultEvent>,
    what: &str,
    done: impl Fn(&Fault) -> bool,
) -> Fault {
    let wait = async {
        while let Some(event) = events.message().await.expect("watch stream") {
            let fault = event.fault.expect("event carries the fault");
            if done(&fault) {
                return fault;
            }
        }
        panic!("watch ended before {what}");
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("no watch event with {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_pod_is_taken_in_and_watch_says_so() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let old = cluster.add_pod(PodDef::default());
    let mut client = cluster.daemon.client().await;
    let fault = inject(&mut client, blackout(&old.target())).await;
    let mut events = client
        .watch(chaos_proto::v1::WatchRequest {
            id: fault.id.clone(),
        })
        .await
        .expect("watch")
        .into_inner();
    cluster.assert_cut(old.container("postgres"));

    // The StatefulSet's pod is deleted, then recreated under the same name with a new UID
    // (its cgroups laid out afresh, as kubelet does).
    assert!(cluster.api.delete_pod("db", "postgres-0"));
    let gone = until_event(&mut events, "the old pod gone", |f| {
        f.targets
            .iter()
            .any(|r| r.uid == old.uid && r.status == TargetStatus::Gone as i32)
    })
    .await;
    assert_eq!(
        gone.ended_at_unix_ns, 0,
        "the fault ended with its pod: {gone:?}"
    );
    let new = cluster.add_pod(PodDef::default());
    assert_ne!(new.uid, old.uid);
    let taken = until_event(&mut events, "the new pod taken in", |f| {
        f.targets
            .iter()
            .any(|r| r.uid == new.uid && r.status == TargetStatus::Targeted as i32)
    })
    .await;
    let report = taken
        .targets
        .iter()
        .find(|r| r.uid == new.uid)
        .expect("report");
    assert_eq!(report.cgroup_id, inode(new.dir()), "{report:?}");
    assert!(report.reason.contains("picked up"), "{report:?}");
    assert!(taken.cgroup_ids.contains(&inode(new.dir())), "{taken:?}");
    cluster.assert_cut(new.container("postgres"));

    // A pod of another name the target does not match is left alone.
    let other = cluster.add_pod(PodDef {
        name: "postgres-1",
        ..PodDef::default()
    });
    cluster.assert_untouched(other.container("postgres"));
}
