//! `kubectl chaos` through the real kubectl: found on PATH as a plugin, its help, and, as
//! root, faults on pods of a fake cluster whose node's daemon (a real one on loopback) is
//! reached by port-forward through a fake API server.
mod support;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::{symlink, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use chaos_proto::v1::fault_service_server::{FaultService, FaultServiceServer};
use chaos_proto::v1::{
    AbortAllRequest, AbortAllResponse, CancelRequest, CapabilitiesRequest, CapabilitiesResponse,
    Fault, FaultEvent, FaultState, GetRequest, InjectRequest, ListRequest, ListResponse,
    RenewRequest, TargetReport, TargetStatus, WatchRequest,
};
use serde_json::Value;
use support::apiserver::{self, ApiServer};
use support::certs::{Ca, ClientFiles, SecretVolume};
use support::kubeconfig::KubeconfigFile;
use support::kubepods::{Dirs, Driver, Node};
use support::{require_root, Daemon, TestCgroup};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// The node the daemon under test serves.
const NODE: &str = "node-a";
/// The daemon pod of [`NODE`], as the DaemonSet would name it.
const DAEMON_POD: &str = "chaos-daemon-x7k2p";
/// What network faults need from the kernel (as the daemon probes it).
const NETWORK: &[&str] = &["cgroup_v2", "cgroup_skb"];

/// A directory holding `kubectl-chaos` (a link to this build's binary), first on the PATH
/// given to kubectl.
struct PluginDir {
    dir: tempfile::TempDir,
}

impl PluginDir {
    fn new() -> PluginDir {
        let dir = tempfile::Builder::new()
            .prefix("fl-plugin-")
            .tempdir()
            .expect("plugin temp dir");
        let link = dir.path().join("kubectl-chaos");
        symlink(env!("CARGO_BIN_EXE_kubectl-chaos"), &link)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
        PluginDir { dir }
    }

    fn plugin(&self) -> PathBuf {
        self.dir.path().join("kubectl-chaos")
    }

    /// This directory, then the test's own PATH.
    fn path_var(&self) -> String {
        let inherited = std::env::var("PATH").unwrap_or_default();
        format!("{}:{inherited}", self.dir.path().display())
    }

    /// Runs the real `kubectl ARGS` with the plugin on its PATH and `KUBECONFIG` set to
    /// `kubeconfig` (a path that does not exist when the command needs no cluster).
    fn kubectl(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        let mut command = Command::new(kubectl());
        command
            .args(args)
            .env("PATH", self.path_var())
            .env("KUBECONFIG", kubeconfig)
            .env("NO_COLOR", "1");
        for var in [
            "FAULTLINE_TLS_CA",
            "FAULTLINE_TLS_CERT",
            "FAULTLINE_TLS_KEY",
            "FAULTLINE_SERVER",
            "RUST_LOG",
        ] {
            command.env_remove(var);
        }
        command
            .output()
            .unwrap_or_else(|e| panic!("run kubectl {args:?}: {e}"))
    }
}

/// The real kubectl: on PATH, or /usr/bin/kubectl. Panics, saying how to get it, if absent.
fn kubectl() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kubectl"))
            .find(|candidate| candidate.is_file())
    });
    let found = on_path.or_else(|| {
        let usual = PathBuf::from("/usr/bin/kubectl");
        usual.is_file().then_some(usual)
    });
    found.unwrap_or_else(|| {
        panic!(
            "kubectl is not installed (neither on PATH nor at /usr/bin/kubectl): these tests \
             run kubectl chaos through the real kubectl; install it, e.g. from \
             https://kubernetes.io/docs/tasks/tools/"
        )
    })
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the stderr of `output` says `part`.
#[track_caller]
fn assert_stderr(output: &Output, part: &str) {
    assert!(stderr(output).contains(part), "{}", stderr(output));
}

/// Asserts `output` exited with `code`, showing both streams otherwise.
#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

#[test]
fn kubectl_finds_the_plugin_on_path() {
    let plugins = PluginDir::new();
    let out = plugins.kubectl(Path::new("/nonexistent/kubeconfig"), &["plugin", "list"]);
    assert_exit(&out, 0);
    let listed = stdout(&out);
    let ours = plugins.plugin().display().to_string();
    assert!(
        listed.lines().any(|line| line.trim() == ours),
        "{ours} not listed:\n{listed}{}",
        stderr(&out)
    );
}

#[test]
fn kubectl_chaos_help_teaches() {
    let plugins = PluginDir::new();
    let nowhere = Path::new("/nonexistent/kubeconfig");
    let out = plugins.kubectl(nowhere, &["chaos", "--help"]);
    assert_exit(&out, 0);
    let help = stdout(&out);
    for line in [
        "Usage: kubectl chaos [OPTIONS] <COMMAND>",
        "  network    Drop (--loss, --partition), delay, rate-limit, corrupt or duplicate pods' packets",
        "  list       List the faults of every node's daemon: pending, active and recently finished",
        "  abort-all  End every fault of every node's daemon now",
        "  -n, --namespace <NAMESPACE>",
        "      --daemon-namespace <NAMESPACE>",
        "  -o, --output <FORMAT>",
        "  kubectl chaos network -n db -l app=postgres,role=replica --partition --cidr 10.0.0.0/8 \\",
        "      --duration 60s",
        "  kubectl chaos process -n db postgres-0 --kill --duration 1s",
        "  kubectl chaos abort-all",
        "EXIT CODES:",
        "  4  refused by a guard rail, no faultline daemon on a node, or a node cannot do the fault",
    ] {
        assert!(help.lines().any(|l| l == line), "missing {line:?}:\n{help}");
    }
    // chaosctl's ways to reach a daemon do not apply here.
    assert!(!help.contains("--socket"), "{help}");
    assert!(!help.contains("--server"), "{help}");

    let out = plugins.kubectl(nowhere, &["chaos", "network", "--help"]);
    assert_exit(&out, 0);
    let help = stdout(&out);
    for wanted in [
        "Usage: kubectl chaos network [OPTIONS] --duration <DURATION> <POD|--selector <SELECTOR>>",
        "POD is NAME or pod/NAME in --namespace",
        "-l, --selector <SELECTOR>",
        "-A, --all-namespaces",
        "--max-percent <PERCENT>",
        "--loss <PERCENT>",
        "kubectl chaos renew ID",
    ] {
        assert!(help.contains(wanted), "missing {wanted:?}:\n{help}");
    }
    assert!(!help.contains("--target"), "{help}");
}

#[test]
fn usage_errors_are_one_line_with_exit_code_2() {
    let plugins = PluginDir::new();
    let nowhere = Path::new("/nonexistent/kubeconfig");
    let out = plugins.kubectl(
        nowhere,
        &[
            "chaos",
            "network",
            "-n",
            "db",
            "--loss",
            "30",
            "--duration",
            "30s",
        ],
    );
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("see 'kubectl chaos network --help'"), "{err}");

    // Parsed fine, then the kubeconfig named is missing: a failure naming the file.
    let out = plugins.kubectl(nowhere, &["chaos", "list"]);
    assert_exit(&out, 1);
    assert_stderr(&out, "/nonexistent/kubeconfig");
}

/// A one-node cluster: the fake API server with the daemon pod of [`NODE`] forwarded to a
/// real daemon on a loopback port, and application pods in namespace `db`.
///
/// Fields drop in order: the daemon ends its faults before the pod cgroups go.
struct Cluster {
    daemon: Daemon,
    api: ApiServer,
    dirs: Dirs,
    // Dropped after the pod cgroups inside it are gone.
    root: TestCgroup,
    plugins: PluginDir,
    kubeconfig: KubeconfigFile,
}

impl Cluster {
    /// `None` (the test skipped) without network faults on this kernel.
    async fn start() -> Option<Cluster> {
        Cluster::start_with(&[]).await
    }

    /// [`Cluster::start`] with the daemon's flags `extra` besides (e.g. its TLS files).
    async fn start_with(extra: &[&str]) -> Option<Cluster> {
        // A loopback port free right now: the OS picks it, the probe socket closes at once.
        let listen: SocketAddr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free loopback port");
        let api = ApiServer::start();
        let kubeconfig = KubeconfigFile::new(&api);
        let listen_arg = listen.to_string();
        let mut args = vec!["--node-name", NODE, "--listen", &listen_arg];
        args.extend(extra);
        let daemon = kubeconfig.start_daemon(&args, NETWORK).await?;
        let uid = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6";
        put_daemon_pod(&api, DAEMON_POD, uid, NODE, listen);
        Some(Cluster {
            daemon,
            api,
            dirs: Dirs::default(),
            root: TestCgroup::new(),
            plugins: PluginDir::new(),
            kubeconfig,
        })
    }

    /// Puts pod `db/name` in the API server; one running on [`NODE`] gets its cgroup (as
    /// kubelet's cgroupfs driver names a Burstable pod's), whose inode it returns.
    fn add_pod(&mut self, name: &str, uid: &str, node: &str, phase: &str, app: &str) -> u64 {
        let containers = [(name, &"c".repeat(64)[..])];
        let labels = [("app", app)];
        let json = apiserver::pod(
            "db",
            name,
            uid,
            node,
            phase,
            &labels,
            &containers,
            "Burstable",
        );
        self.api.put_pod(json);
        if node == NODE && phase == "Running" {
            let rel = Node::containerd(Driver::Cgroupfs).pod_rel("Burstable", uid);
            let dir = self.dirs.make(self.root.path(), &rel);
            return fs::metadata(&dir)
                .unwrap_or_else(|e| panic!("stat {}: {e}", dir.display()))
                .ino();
        }
        0
    }

    /// `kubectl chaos ARGS` against this cluster.
    fn chaos(&self, args: &[&str]) -> Output {
        let args: Vec<&str> = std::iter::once("chaos")
            .chain(args.iter().copied())
            .collect();
        self.plugins.kubectl(self.kubeconfig.path(), &args)
    }

    /// The faults the daemon lists, asked directly over its socket.
    async fn listed(&self) -> Vec<Fault> {
        let mut client = self.daemon.client().await;
        let list = client.list(ListRequest {}).await.expect("list");
        list.into_inner().faults
    }

    /// Whether the plugin port-forwarded to the daemon pod.
    fn forwarded(&self) -> bool {
        let path = format!("/api/v1/namespaces/faultline/pods/{DAEMON_POD}/portforward");
        self.api.requests().iter().any(|r| r.path() == path)
    }
}

/// Puts the faultline daemon pod `name` of `node` in the API server, its port forwarded
/// to `addr`.
fn put_daemon_pod(api: &ApiServer, name: &str, uid: &str, node: &str, addr: SocketAddr) {
    let labels = [
        ("app.kubernetes.io/name", "faultline"),
        ("app.kubernetes.io/component", "daemon"),
    ];
    let containers = [("chaos-daemon", &"d".repeat(64)[..])];
    api.put_pod(apiserver::pod(
        "faultline",
        name,
        uid,
        node,
        "Running",
        &labels,
        &containers,
        "Burstable",
    ));
    api.forward("faultline", name, addr);
}

/// 30% loss for 30 s on the pods labelled `app=postgres` in namespace `db`.
const POSTGRES_LOSS: &[&str] = &[
    "network",
    "-n",
    "db",
    "-l",
    "app=postgres",
    "--loss",
    "30",
    "--duration",
    "30s",
];

/// The rows of a pod table whose first column is `db/<name>`, split into columns.
fn row<'a>(table: &'a str, pod: &str) -> Vec<&'a str> {
    let name = format!("db/{pod}");
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(output), stderr(output)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_pods_through_kubectl_and_a_port_forward() {
    if !require_root() {
        return;
    }
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let uid0 = "1a2b3c4d-0000-4000-8000-000000000000";
    let uid1 = "1a2b3c4d-0000-4000-8000-000000000001";
    let pg0 = cluster.add_pod("postgres-0", uid0, NODE, "Running", "postgres");
    let pg1 = cluster.add_pod("postgres-1", uid1, NODE, "Running", "postgres");
    cluster.add_pod(
        "postgres-2",
        "1a2b3c4d-0000-4000-8000-000000000002",
        "",
        "Pending",
        "postgres",
    );
    cluster.add_pod(
        "redis-0",
        "1a2b3c4d-0000-4000-8000-000000000003",
        "node-b",
        "Running",
        "redis",
    );

    // A dry run: every pod with what would become of it, nothing armed.
    let with = |extra: &[&'static str]| -> Vec<&str> { [POSTGRES_LOSS, extra].concat() };
    let out = cluster.chaos(&with(&["--dry-run"]));
    assert_exit(&out, 0);
    let table = stdout(&out);
    assert!(
        table.starts_with("POD  ") && table.lines().next().is_some_and(|l| l.contains("FAULT ID")),
        "{table}"
    );
    assert_eq!(
        row(&table, "postgres-0")[..4],
        ["db/postgres-0", NODE, "targeted", "-"]
    );
    assert_eq!(
        row(&table, "postgres-1")[..4],
        ["db/postgres-1", NODE, "targeted", "-"]
    );
    assert_eq!(
        row(&table, "postgres-2")[..2],
        ["db/postgres-2", "not-running"]
    );
    assert!(!table.contains("redis"), "{table}");
    assert_stderr(&out, "node-a: dry run: 2 pod(s) would be targeted");
    assert!(cluster.forwarded(), "no port-forward to {DAEMON_POD}");
    assert!(
        cluster.listed().await.is_empty(),
        "a dry run armed something"
    );

    // A guard rail over the cluster: refused before any daemon hears of it.
    let out = cluster.chaos(&with(&["--max-targets", "1"]));
    assert_exit(&out, 4);
    assert_stderr(
        &out,
        "would target 2 pods across the cluster, more than --max-targets 1",
    );
    assert!(cluster.listed().await.is_empty());

    // The real thing: one fault on node-a holding both running pods.
    let out = cluster.chaos(&with(&[]));
    assert_exit(&out, 0);
    let listed = cluster.listed().await;
    let [fault] = listed.as_slice() else {
        panic!("one fault expected: {listed:?}");
    };
    let id = fault.id.clone();
    assert_eq!(fault.target, "pods:db?labelSelector=app=postgres");
    let mut cgroups = fault.cgroup_ids.clone();
    cgroups.sort_unstable();
    let mut expected = vec![pg0, pg1];
    expected.sort_unstable();
    assert_eq!(cgroups, expected);
    let table = stdout(&out);
    assert_eq!(
        row(&table, "postgres-0")[..4],
        ["db/postgres-0", NODE, "targeted", &id]
    );
    assert_eq!(
        row(&table, "postgres-1")[..4],
        ["db/postgres-1", NODE, "targeted", &id]
    );
    assert_stderr(&out, &format!("node-a: armed {id} (2 pod(s))"));

    // list: every node's faults, with the node.
    let out = cluster.chaos(&["list"]);
    assert_exit(&out, 0);
    let table = stdout(&out);
    let line = table
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{table}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        columns[..5],
        [
            NODE,
            &id,
            "pods:db?labelSelector=app=postgres",
            "network.loss",
            "active"
        ]
    );
    let listed = json(&cluster.chaos(&["list", "-o", "json"]));
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["node"], NODE);

    // get, as YAML.
    let out = cluster.chaos(&["get", &id, "-o", "yaml"]);
    assert_exit(&out, 0);
    let yaml = stdout(&out);
    assert!(yaml.contains(&format!("id: {id}")), "{yaml}");
    assert!(yaml.contains("kind: network.loss"), "{yaml}");

    // cancel: the daemon that holds it ends it; an unknown id is NOT_FOUND everywhere.
    let out = cluster.chaos(&["cancel", &id]);
    assert_exit(&out, 0);
    let mut client = cluster.daemon.client().await;
    let got = client
        .get(GetRequest { id: id.clone() })
        .await
        .expect("get");
    assert_eq!(got.into_inner().state, FaultState::Cancelled as i32);
    let unknown = "00000000-0000-4000-8000-000000000000";
    let out = cluster.chaos(&["cancel", unknown]);
    assert_exit(&out, 3);
    assert_stderr(
        &out,
        &format!("fault {unknown} not found on any of the 1 faultline daemons"),
    );

    // One pod by name, printed as the daemons' answers in JSON.
    let out = cluster.chaos(&[
        "network",
        "-n",
        "db",
        "pod/postgres-0",
        "--loss",
        "10",
        "--duration",
        "30s",
        "-o",
        "json",
    ]);
    assert_exit(&out, 0);
    let answers = json(&out);
    assert_eq!(answers[0]["target"], "pod:db/postgres-0");
    assert_eq!(answers[0]["cgroup_ids"][0], pg0);
    let single = answers[0]["id"].as_str().unwrap_or_default().to_owned();

    // abort-all ends it on every node.
    let out = cluster.chaos(&["abort-all"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains(&single), "{}", stdout(&out));
    let states: Vec<(String, i32)> = cluster
        .listed()
        .await
        .into_iter()
        .map(|f| (f.id, f.state))
        .collect();
    assert!(
        states
            .iter()
            .all(|(_, s)| *s == FaultState::Cancelled as i32),
        "{states:?}"
    );

    // A pod on a node without a daemon: refused, with the pod's row saying why.
    let out = cluster.chaos(&[
        "network",
        "-n",
        "db",
        "redis-0",
        "--loss",
        "30",
        "--duration",
        "30s",
    ]);
    assert_exit(&out, 4);
    assert_eq!(
        row(&stdout(&out), "redis-0"),
        [
            "db/redis-0",
            "node-b",
            "no-daemon",
            "-",
            "no",
            "faultline",
            "daemon",
            "on",
            "node",
            "node-b"
        ]
    );
    assert_stderr(&out, "no faultline daemon on node node-b");

    // A protected namespace: refused as PERMISSION_DENIED.
    let out = cluster.chaos(&[
        "network",
        "-n",
        "kube-system",
        "-l",
        "k8s-app=kube-dns",
        "--loss",
        "30",
        "--duration",
        "30s",
    ]);
    assert_exit(&out, 5);
    assert_stderr(&out, "--allow-protected kube-system");
    assert_eq!(cluster.listed().await.len(), 2, "a refused fault was armed");
}

/// The daemon's name in the certificate the plugin checks by default (the TLS overlay's
/// Service in the daemons' namespace).
const DAEMON_SERVICE_NAME: &str = "chaos-daemon.faultline.svc";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_end_to_end_through_the_port_forward() {
    if !require_root() {
        return;
    }
    // Declared first, dropped last: the daemon reads its files until it stops.
    let certs = tempfile::Builder::new()
        .prefix("fl-certs-")
        .tempdir()
        .expect("certificates dir");
    let (ca, other_ca) = (Ca::new("faultline test CA"), Ca::new("another CA"));
    let server = ca.server_for(&[DAEMON_SERVICE_NAME, "localhost"]);
    let volume = SecretVolume::new(certs.path().join("secret"), &server, &ca.pem());
    let good = ClientFiles::new(certs.path(), "good", &ca.pem(), &ca.client("alice"));
    // Trusts the daemon's CA, so only its own certificate can be the problem.
    let stranger = ClientFiles::new(
        certs.path(),
        "stranger",
        &ca.pem(),
        &other_ca.client("mallory"),
    );
    let tls = volume.daemon_args();
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let Some(mut cluster) = Cluster::start_with(&tls).await else {
        return;
    };
    // A UID of its own: the daemon finds a pod's cgroup by UID anywhere under the cgroup
    // mount, where the other test's pods may be at the same time.
    cluster.add_pod(
        "postgres-0",
        "5e6f7a8b-0000-4000-8000-000000000000",
        NODE,
        "Running",
        "postgres",
    );
    let chaos = |client: &ClientFiles, with_cert: bool, command: &[&str]| {
        let flags = client.flags(with_cert);
        let args: Vec<&str> = command
            .iter()
            .copied()
            .chain(flags.iter().map(String::as_str))
            .collect();
        cluster.chaos(&args)
    };

    let dry_run = [POSTGRES_LOSS, &["--dry-run"]].concat();
    let out = chaos(&good, true, &dry_run);
    assert_exit(&out, 0);
    assert_eq!(
        row(&stdout(&out), "postgres-0")[..4],
        ["db/postgres-0", NODE, "targeted", "-"]
    );
    assert_stderr(&out, "node-a: dry run: 1 pod(s) would be targeted");
    assert!(cluster.forwarded(), "no port-forward to {DAEMON_POD}");
    let out = chaos(&good, true, &["list", "-o", "json"]);
    assert_exit(&out, 0);
    assert_eq!(json(&out), serde_json::json!([]));
    assert!(
        cluster.listed().await.is_empty(),
        "a dry run armed something"
    );

    // Refused: exit code 1 and one line naming the node's daemon, the port-forward and,
    // as chaosctl does, the daemon's TLS alert; nothing printed but list's empty table.
    let unreachable = format!(
        "cannot reach the faultline daemon of node {NODE} (pod faultline/{DAEMON_POD}, port "
    );
    let refusals: [(&str, &ClientFiles, bool, &[&str], &str); 3] = [
        (
            "no client certificate",
            &good,
            false,
            &dry_run,
            "CertificateRequired",
        ),
        (
            "no client certificate, list",
            &good,
            false,
            &["list"],
            "CertificateRequired",
        ),
        (
            "a certificate of another CA",
            &stranger,
            true,
            &dry_run,
            "UnknownCA",
        ),
    ];
    for (what, client, with_cert, command, alert) in refusals {
        let out = chaos(client, with_cert, command);
        let said = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {said}");
        assert_eq!(said.lines().count(), 1, "{what}: {said}");
        assert!(said.contains(&unreachable), "{what}: {said}");
        let printed = stdout(&out);
        assert!(printed.lines().count() <= 1, "{what}: {printed}");
        // The cause is the daemon's alert, or an end of stream where it was lost: the daemon
        // sends its alert and closes, the API server closes the port-forward, and kube's
        // forwarder drops what it still holds for the client once the client's own bytes
        // can no longer go out (the daemon's log below says why it refused, either way).
        let alerted = said.contains(&format!("received fatal alert: {alert} ("));
        assert!(
            alerted || said.contains("peer closed connection"),
            "{what}: neither the alert {alert} nor a closed connection: {said}"
        );
    }
    // The daemon, for its part, said why it refused each.
    let logs = cluster.daemon.logs();
    for reason in ["peer sent no certificates", "UnknownIssuer"] {
        let said = logs
            .lines()
            .any(|l| l.contains("TLS handshake refused") && l.contains(reason));
        assert!(
            said,
            "no refusal for {reason:?} in the daemon's log:\n{logs}"
        );
    }
    assert!(
        cluster.listed().await.is_empty(),
        "a refused client armed something"
    );
}

/// A made-up daemon of one node: answers dry runs and arms faults (or refuses to arm, when
/// told to), reporting the cluster's pods as a real daemon would from its node, and keeps
/// every call it got.
#[derive(Clone)]
struct FakeNode {
    node: &'static str,
    /// Every pod of the selector in the test, with its node.
    pods: &'static [(&'static str, &'static str)],
    refuse_arming: bool,
    faults: Arc<Mutex<Vec<Fault>>>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl FakeNode {
    fn record(&self, call: String) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn faults(&self) -> Vec<Fault> {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets the state of fault `id`; NOT_FOUND if this node has none.
    fn end(&self, id: &str, state: FaultState) -> Result<Fault, Status> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let fault = faults
            .iter_mut()
            .find(|f| f.id == id)
            .ok_or_else(|| Status::not_found(format!("fault {id}: no such fault")))?;
        fault.state = state as i32;
        Ok(fault.clone())
    }
}

#[tonic::async_trait]
impl FaultService for FakeNode {
    async fn inject(&self, request: Request<InjectRequest>) -> Result<Response<Fault>, Status> {
        let request = request.into_inner();
        self.record(format!(
            "inject dry_run={} {}",
            request.dry_run, request.target
        ));
        if self.refuse_arming && !request.dry_run {
            return Err(Status::failed_precondition(format!(
                "network.loss: all 16 network fault slots are in use on node {}",
                self.node
            )));
        }
        let targets = self
            .pods
            .iter()
            .enumerate()
            .map(|(i, (pod, node))| {
                let here = *node == self.node;
                TargetReport {
                    namespace: "db".into(),
                    pod: (*pod).into(),
                    uid: app_uid(i),
                    node: (*node).into(),
                    status: if here {
                        TargetStatus::Targeted
                    } else {
                        TargetStatus::OtherNode
                    } as i32,
                    reason: if here {
                        String::new()
                    } else {
                        format!("runs on node {node}")
                    },
                    ..TargetReport::default()
                }
            })
            .collect();
        let fault = Fault {
            id: if request.dry_run {
                String::new()
            } else {
                format!("fault-{}", self.node)
            },
            target: request.target,
            state: FaultState::Active as i32,
            node: self.node.into(),
            dry_run: request.dry_run,
            targets,
            ..Fault::default()
        };
        if !request.dry_run {
            self.faults
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(fault.clone());
        }
        Ok(Response::new(fault))
    }

    async fn list(&self, _: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        self.record("list".into());
        Ok(Response::new(ListResponse {
            faults: self.faults(),
        }))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<Fault>, Status> {
        let id = request.into_inner().id;
        self.record(format!("get {id}"));
        let found = self.faults().into_iter().find(|f| f.id == id);
        found
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("fault {id}: no such fault")))
    }

    async fn cancel(&self, request: Request<CancelRequest>) -> Result<Response<Fault>, Status> {
        let id = request.into_inner().id;
        self.record(format!("cancel {id}"));
        self.end(&id, FaultState::Cancelled).map(Response::new)
    }

    type WatchStream = tokio_stream::Iter<std::vec::IntoIter<Result<FaultEvent, Status>>>;

    async fn watch(&self, _: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn capabilities(
        &self,
        _: Request<CapabilitiesRequest>,
    ) -> Result<Response<CapabilitiesResponse>, Status> {
        Ok(Response::new(CapabilitiesResponse::default()))
    }

    async fn renew(&self, request: Request<RenewRequest>) -> Result<Response<Fault>, Status> {
        let id = request.into_inner().id;
        self.record(format!("renew {id}"));
        self.end(&id, FaultState::Active).map(Response::new)
    }

    async fn abort_all(
        &self,
        _: Request<AbortAllRequest>,
    ) -> Result<Response<AbortAllResponse>, Status> {
        self.record("abort-all".into());
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        for fault in faults.iter_mut() {
            fault.state = FaultState::Cancelled as i32;
        }
        Ok(Response::new(AbortAllResponse {
            faults: faults.clone(),
        }))
    }
}

/// The UID of the `i`th application pod of [`fan_out_over_two_nodes_and_undo_on_refusal`].
fn app_uid(i: usize) -> String {
    format!("1a2b3c4d-0000-4000-8000-{i:012}")
}

/// Serves `fake` on a loopback port of the test's runtime; returns the address. The
/// server stops with the runtime, at the end of the test.
async fn serve(fake: FakeNode) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind a fake daemon on 127.0.0.1");
    let addr = listener.local_addr().expect("fake daemon address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(FaultServiceServer::new(fake))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

/// Runs a blocking `kubectl chaos` off the runtime, which keeps serving the fakes.
fn chaos_off_runtime(
    plugins: &Arc<PluginDir>,
    kubeconfig: &Path,
    args: &[&str],
) -> impl std::future::Future<Output = Output> {
    let (plugins, kubeconfig) = (Arc::clone(plugins), kubeconfig.to_path_buf());
    let args: Vec<String> = std::iter::once("chaos")
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    // kubectl starts at once, on copies of the arguments: the future borrows nothing.
    let task = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        plugins.kubectl(&kubeconfig, &args)
    });
    async { task.await.expect("kubectl task") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_over_two_nodes_and_undo_on_refusal() {
    const PODS: &[(&str, &str)] = &[("pg-0", "node-a"), ("pg-1", "node-b")];
    let fake = |node: &'static str, refuse_arming: bool| FakeNode {
        node,
        pods: PODS,
        refuse_arming,
        faults: Arc::default(),
        calls: Arc::default(),
    };
    let (a, b) = (fake("node-a", false), fake("node-b", true));
    let api = ApiServer::start();
    let kubeconfig = KubeconfigFile::new(&api);
    for (i, fake) in [&a, &b].into_iter().enumerate() {
        let pod = format!("chaos-daemon-{}", fake.node);
        let uid = format!("0d1e2f3a-4b5c-4d6e-8f70-00000000000{i}");
        put_daemon_pod(&api, &pod, &uid, fake.node, serve(fake.clone()).await);
    }
    for (i, (pod, node)) in PODS.iter().enumerate() {
        let uid = app_uid(i);
        let containers = [("postgres", &"c".repeat(64)[..])];
        api.put_pod(apiserver::pod(
            "db",
            pod,
            &uid,
            node,
            "Running",
            &[("app", "pg")],
            &containers,
            "Burstable",
        ));
    }
    let plugins = Arc::new(PluginDir::new());
    let chaos = |args: &[&str]| chaos_off_runtime(&plugins, kubeconfig.path(), args);
    let inject = &[
        "network",
        "-n",
        "db",
        "-l",
        "app=pg",
        "--loss",
        "5",
        "--duration",
        "30s",
    ];

    // Each node alone holds half the pods; together they are all of them.
    let out = chaos(&[&inject[..], &["--max-percent", "50"]].concat()).await;
    assert_exit(&out, 4);
    assert_stderr(
        &out,
        "would target 2 of the 2 running pods it matches across the cluster",
    );
    assert!(
        a.calls().is_empty() && b.calls().is_empty(),
        "{:?} {:?}",
        a.calls(),
        b.calls()
    );

    // A dry run asks both nodes; each pod's row comes from its own node.
    let out = chaos(&[&inject[..], &["--dry-run"]].concat()).await;
    assert_exit(&out, 0);
    let table = stdout(&out);
    assert_eq!(
        row(&table, "pg-0")[..4],
        ["db/pg-0", "node-a", "targeted", "-"]
    );
    assert_eq!(
        row(&table, "pg-1")[..4],
        ["db/pg-1", "node-b", "targeted", "-"]
    );
    let dry = "inject dry_run=true pods:db?labelSelector=app=pg".to_owned();
    assert_eq!(a.calls(), [dry.as_str()]);
    assert_eq!(b.calls(), [dry.as_str()]);

    // node-b refuses to arm after node-a armed: node-a's fault is cancelled.
    let out = chaos(inject).await;
    assert_exit(&out, 4);
    let err = stderr(&out);
    for line in [
        "node-b: refused: network.loss: all 16 network fault slots are in use on node node-b \
         (FAILED_PRECONDITION)",
        "node-a: cancelled fault-node-a because node node-b refused",
    ] {
        assert!(err.lines().any(|l| l == line), "missing {line:?}:\n{err}");
    }
    let armed = "inject dry_run=false pods:db?labelSelector=app=pg".to_owned();
    assert_eq!(
        a.calls()[1..],
        [dry.as_str(), armed.as_str(), "cancel fault-node-a"]
    );
    assert_eq!(b.calls()[1..], [dry.as_str(), armed.as_str()]);
    let states: Vec<i32> = a.faults().iter().map(|f| f.state).collect();
    assert_eq!(states, [FaultState::Cancelled as i32]);

    // list asks every node; get and renew find the node holding the id.
    let out = chaos(&["list", "-o", "wide"]).await;
    assert_exit(&out, 0);
    let table = stdout(&out);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("node-a  fault-node-a  ")),
        "{table}"
    );
    let out = chaos(&["renew", "fault-node-a", "-o", "json"]).await;
    assert_exit(&out, 0);
    assert_eq!(json(&out)[0]["state"], "active");
    assert!(
        b.calls().contains(&"renew fault-node-a".to_owned()),
        "{:?}",
        b.calls()
    );

    // A node whose daemon cannot be reached: the others' answers, then a failure naming it.
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port");
    let uid = "0d1e2f3a-4b5c-4d6e-8f70-000000000009";
    put_daemon_pod(&api, "chaos-daemon-node-c", uid, "node-c", closed);
    let out = chaos(&["list"]).await;
    assert_exit(&out, 1);
    assert!(stdout(&out).contains("fault-node-a"), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "cannot reach the faultline daemon of node node-c (pod faultline/chaos-daemon-node-c"
        ),
        "{err}"
    );
}
