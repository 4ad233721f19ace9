//! A thin fake Kubernetes API server on 127.0.0.1 for pods: get, list and watch with label and field selectors, port-forward over WebSocket, every request recorded.
//
// It answers what `kube` 5 asks, with the shapes a real API server returns: `Pod`,
// `PodList` (items without kind/apiVersion), watch lines, `Status` errors. It runs on its
// own thread and runtime, so a test blocking its own runtime never stalls the daemon's calls.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role, Message};
use tokio_tungstenite::WebSocketStream;

/// The recorded pod every [`pod`] starts from.
const FIXTURE: &str = include_str!("../fixtures/pod.json");
/// The WebSocket subprotocol the API server speaks for port-forward (one data and one error
/// channel per port, each frame prefixed by its channel byte).
const PORT_FORWARD_PROTOCOL: &str = "v4.channel.k8s.io";

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// One request as it reached the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLine {
    pub method: String,
    /// Path and query, as sent (`/api/v1/namespaces/db/pods?&labelSelector=app%3Dpg`).
    pub target: String,
}

impl RequestLine {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// A query parameter, decoded.
    pub fn query(&self, key: &str) -> Option<String> {
        let (_, query) = self.target.split_once('?')?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

/// One change to the pods, as a watch replays it.
struct Change {
    rv: u64,
    kind: &'static str,
    old: Option<Value>,
    new: Value,
}

#[derive(Default)]
struct Store {
    /// The last resourceVersion handed out.
    rv: u64,
    pods: BTreeMap<(String, String), Value>,
    /// Every change, oldest first: a watch from any earlier resourceVersion can be served.
    changes: Vec<Change>,
    forwards: BTreeMap<(String, String), SocketAddr>,
    requests: Vec<RequestLine>,
}

struct Shared {
    store: Mutex<Store>,
    /// The last resourceVersion: wakes the open watches.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        // A test that panicked while holding it left consistent data: the lock is short.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The server: serves until dropped.
pub struct ApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Listens on 127.0.0.1 (a port the OS picks) and serves from a thread of its own.
    pub fn start() -> ApiServer {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("bind the fake API server on 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("non-blocking API server listener");
        let addr = listener.local_addr().expect("API server address");
        let shared = Arc::new(Shared {
            store: Mutex::default(),
            changed: watch::Sender::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fake-apiserver".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("API server runtime");
                // Dropping the runtime at the end cancels every connection still open.
                runtime.block_on(serve(listener, serving, stopped));
            })
            .expect("spawn the API server thread");
        ApiServer {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds `pod` or replaces the one of that namespace and name; returns its new
    /// resourceVersion. Open watches see ADDED or MODIFIED.
    pub fn put_pod(&self, mut pod: Value) -> String {
        let meta = &mut pod["metadata"];
        let name = meta["name"]
            .as_str()
            .expect("the pod has metadata.name")
            .to_string();
        let ns = meta["namespace"].as_str().unwrap_or("default").to_string();
        meta["namespace"] = json!(ns);
        let rv = {
            let mut store = self.shared.store();
            store.rv += 1;
            let rv = store.rv;
            pod["metadata"]["resourceVersion"] = json!(rv.to_string());
            let old = store.pods.insert((ns, name), pod.clone());
            let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
            store.changes.push(Change {
                rv,
                kind,
                old,
                new: pod,
            });
            rv
        };
        self.shared.changed.send_replace(rv);
        rv.to_string()
    }

    /// Removes a pod; false if there was none. Open watches see DELETED.
    pub fn delete_pod(&self, ns: &str, name: &str) -> bool {
        let rv = {
            let mut store = self.shared.store();
            let Some(mut gone) = store.pods.remove(&(ns.to_string(), name.to_string())) else {
                return false;
            };
            store.rv += 1;
            let rv = store.rv;
            gone["metadata"]["resourceVersion"] = json!(rv.to_string());
            store.changes.push(Change {
                rv,
                kind: "DELETED",
                old: Some(gone.clone()),
                new: gone,
            });
            rv
        };
        self.shared.changed.send_replace(rv);
        true
    }

    /// Port-forwards to pod `ns/pod` (any port asked) reach `to`.
    pub fn forward(&self, ns: &str, pod: &str, to: SocketAddr) {
        let key = (ns.to_string(), pod.to_string());
        self.shared.store().forwards.insert(key, to);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RequestLine> {
        self.shared.store().requests.clone()
    }

    /// Writes `dir/kubeconfig`: this server as the cluster, a user with a token, a context
    /// with default namespace `default`, made current. Returns its path.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: fake\n  cluster:\n    server: {}\n\
             users:\n\
             - name: tester\n  user:\n    token: fake-token-0123456789\n\
             contexts:\n\
             - name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: default\n\
             current-context: fake\n\
             preferences: {{}}\n",
            self.url()
        );
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio API server listener");
    loop {
        let tcp = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let uri = req.uri().clone();
    let target = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string());
    shared.store().requests.push(RequestLine {
        method: req.method().to_string(),
        target,
    });
    let query: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    if req.method() != Method::GET {
        return Ok(not_found_path());
    }
    let response = match segments.as_slice() {
        ["api", "v1", "pods"] => collection(&shared, None, &param),
        ["api", "v1", "namespaces", ns, "pods"] => collection(&shared, Some(*ns), &param),
        ["api", "v1", "namespaces", ns, "pods", name] => {
            match shared.store().pods.get(&(ns.to_string(), name.to_string())) {
                Some(pod) => json_response(StatusCode::OK, pod),
                None => pod_not_found(name),
            }
        }
        ["api", "v1", "namespaces", ns, "pods", name, "portforward"] => {
            let ports = query
                .iter()
                .filter(|(k, _)| k == "ports")
                .flat_map(|(_, v)| v.split(','))
                .map(|p| p.trim().parse::<u16>())
                .collect();
            port_forward(&shared, ns, name, ports, req)
        }
        _ => not_found_path(),
    };
    Ok(response)
}

/// A list, or a watch with `watch=true`.
fn collection<'q>(
    shared: &Arc<Shared>,
    ns: Option<&str>,
    param: &impl Fn(&str) -> Option<&'q str>,
) -> Response<Body> {
    let filter = match Filter::parse(ns, param("labelSelector"), param("fieldSelector")) {
        Ok(filter) => filter,
        Err(why) => return bad_request(&why),
    };
    if matches!(param("watch"), Some("true" | "1")) {
        let since = param("resourceVersion").and_then(|v| v.parse().ok());
        let timeout = param("timeoutSeconds").and_then(|v| v.parse().ok());
        let bookmarks = param("allowWatchBookmarks") == Some("true");
        return watch_response(shared, filter, since, timeout, bookmarks);
    }
    let store = shared.store();
    let items: Vec<Value> = store
        .pods
        .values()
        .filter(|pod| filter.matches(pod))
        .map(|pod| {
            // A real list leaves kind and apiVersion out of its items.
            let mut item = pod.clone();
            if let Some(fields) = item.as_object_mut() {
                fields.remove("kind");
                fields.remove("apiVersion");
            }
            item
        })
        .collect();
    let list = json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": store.rv.to_string()},
        "items": items,
    });
    json_response(StatusCode::OK, &list)
}

/// Where a watch is: the last resourceVersion it has looked at and the lines to send.
struct Watching {
    shared: Arc<Shared>,
    filter: Filter,
    last: u64,
    pending: VecDeque<Bytes>,
    changed: watch::Receiver<u64>,
    deadline: Option<tokio::time::Instant>,
    bookmarks: bool,
    done: bool,
}

/// Events after `since` (without one: ADDED for every pod there is, then what follows),
/// one JSON object per line, until the client goes away or `timeout_s` passes.
fn watch_response(
    shared: &Arc<Shared>,
    filter: Filter,
    since: Option<u64>,
    timeout_s: Option<u64>,
    bookmarks: bool,
) -> Response<Body> {
    let mut changed = shared.changed.subscribe();
    changed.borrow_and_update();
    let (last, pending) = {
        let store = shared.store();
        match since.filter(|rv| *rv != 0) {
            Some(rv) => (rv, VecDeque::new()),
            None => {
                let added = store.pods.values().filter(|p| filter.matches(p));
                (store.rv, added.map(|p| event_line("ADDED", p)).collect())
            }
        }
    };
    let watching = Watching {
        shared: shared.clone(),
        filter,
        last,
        pending,
        changed,
        deadline: timeout_s.map(|s| tokio::time::Instant::now() + Duration::from_secs(s)),
        bookmarks,
        done: false,
    };
    let lines = futures::stream::unfold(watching, |mut w| async move {
        loop {
            if let Some(line) = w.pending.pop_front() {
                return Some((Ok::<_, Infallible>(Frame::data(line)), w));
            }
            if w.done {
                return None;
            }
            w.changed.borrow_and_update();
            w.catch_up();
            if !w.pending.is_empty() {
                continue;
            }
            let deadline = w.deadline;
            let expired = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                woke = w.changed.changed() => if woke.is_err() { return None },
                _ = expired => {
                    // Like a real server, a bookmark just before the watch times out.
                    if w.bookmarks {
                        let rv = w.shared.store().rv.to_string();
                        let mark = json!({"kind": "Pod", "apiVersion": "v1",
                            "metadata": {"resourceVersion": rv}});
                        w.pending.push_back(event_line("BOOKMARK", &mark));
                    }
                    w.done = true;
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(StreamBody::new(lines).boxed_unsync())
        .expect("watch response")
}

impl Watching {
    /// Queues the changes after `last` as this watch's filter sees them: a pod that starts
    /// or stops matching is ADDED or DELETED for it.
    fn catch_up(&mut self) {
        let store = self.shared.store();
        for change in store.changes.iter().filter(|c| c.rv > self.last) {
            let was = change.old.as_ref().is_some_and(|p| self.filter.matches(p));
            let is = self.filter.matches(&change.new);
            let kind = match (change.kind, was, is) {
                ("DELETED", true, _) => "DELETED",
                ("DELETED", false, _) => continue,
                (_, false, true) => "ADDED",
                (_, true, true) => "MODIFIED",
                (_, true, false) => "DELETED",
                (_, false, false) => continue,
            };
            self.pending.push_back(event_line(kind, &change.new));
        }
        self.last = store.rv;
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({"type": kind, "object": object})).expect("watch event JSON");
    line.push(b'\n');
    Bytes::from(line)
}

/// The pods a list or watch asks for: namespace, label selector, field selector.
struct Filter {
    namespace: Option<String>,
    labels: Vec<Requirement>,
    /// (JSON pointer, equal?, value)
    fields: Vec<(&'static str, bool, String)>,
}

/// One term of a label selector.
enum Requirement {
    /// `a`
    Exists(String),
    /// `!a`
    Absent(String),
    /// `a=b`, `a==b`, `a in (b,c)`
    In(String, Vec<String>),
    /// `a!=b`, `a notin (b,c)`: also true when the label is absent.
    NotIn(String, Vec<String>),
}

impl Filter {
    fn parse(ns: Option<&str>, labels: Option<&str>, fields: Option<&str>) -> Result<Self, String> {
        let labels = split_terms(labels.unwrap_or_default())
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<_, _>>()?;
        let fields = split_terms(fields.unwrap_or_default())
            .into_iter()
            .map(parse_field)
            .collect::<Result<_, _>>()?;
        Ok(Filter {
            namespace: ns.map(str::to_string),
            labels,
            fields,
        })
    }

    fn matches(&self, pod: &Value) -> bool {
        let meta = &pod["metadata"];
        if let Some(ns) = &self.namespace {
            if meta["namespace"].as_str() != Some(ns.as_str()) {
                return false;
            }
        }
        let label = |key: &str| meta["labels"][key].as_str();
        let labels_ok = self.labels.iter().all(|req| match req {
            Requirement::Exists(key) => label(key).is_some(),
            Requirement::Absent(key) => label(key).is_none(),
            Requirement::In(key, values) => {
                label(key).is_some_and(|v| values.iter().any(|x| x == v))
            }
            Requirement::NotIn(key, values) => {
                label(key).is_none_or(|v| values.iter().all(|x| x != v))
            }
        });
        labels_ok
            && self.fields.iter().all(|(pointer, equal, value)| {
                let actual = pod
                    .pointer(pointer)
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                (actual == value) == *equal
            })
    }
}

/// Splits a selector at the commas outside parentheses.
fn split_terms(selector: &str) -> Vec<&str> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_requirement(term: &str) -> Result<Requirement, String> {
    let bad = |why: &str| format!("unable to parse requirement: {term:?}: {why}");
    let key = |k: &str| {
        let k = k.trim();
        let ok = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
        ok.then(|| k.to_string())
            .ok_or_else(|| bad("invalid label key"))
    };
    let value = |v: &str| {
        let v = v.trim();
        let ok = v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        ok.then(|| v.to_string())
            .ok_or_else(|| bad("invalid label value"))
    };
    if let Some(k) = term.strip_prefix('!') {
        return Ok(Requirement::Absent(key(k)?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Requirement::NotIn(key(k)?, vec![value(v)?]));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::In(key(k)?, vec![value(v)?]));
    }
    let Some((k, rest)) = term.split_once(char::is_whitespace) else {
        return Ok(Requirement::Exists(key(term)?));
    };
    let rest = rest.trim();
    let (negated, set) = match (rest.strip_prefix("notin"), rest.strip_prefix("in")) {
        (Some(set), _) => (true, set),
        (None, Some(set)) => (false, set),
        (None, None) => return Err(bad("expected in or notin")),
    };
    let set = set
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| bad("expected a (set) of values"))?;
    let values = set.split(',').map(value).collect::<Result<Vec<_>, _>>()?;
    Ok(if negated {
        Requirement::NotIn(key(k)?, values)
    } else {
        Requirement::In(key(k)?, values)
    })
}

/// A pod field selector term: the fields the API server indexes for pods.
fn parse_field(term: &str) -> Result<(&'static str, bool, String), String> {
    let (field, equal, value) = match term.split_once("!=") {
        Some((f, v)) => (f, false, v),
        None => match term.split_once("==").or_else(|| term.split_once('=')) {
            Some((f, v)) => (f, true, v),
            None => return Err(format!("invalid selector: {term:?}; can't understand it")),
        },
    };
    let pointer = match field.trim() {
        "metadata.name" => "/metadata/name",
        "metadata.namespace" => "/metadata/namespace",
        "spec.nodeName" => "/spec/nodeName",
        "spec.restartPolicy" => "/spec/restartPolicy",
        "spec.schedulerName" => "/spec/schedulerName",
        "spec.serviceAccountName" => "/spec/serviceAccountName",
        "status.phase" => "/status/phase",
        "status.podIP" => "/status/podIP",
        other => return Err(format!("field label not supported: {other}")),
    };
    Ok((pointer, equal, value.trim().to_string()))
}

/// Upgrades to a WebSocket speaking [`PORT_FORWARD_PROTOCOL`] and relays each port to the
/// address [`ApiServer::forward`] registered for the pod.
fn port_forward(
    shared: &Arc<Shared>,
    ns: &str,
    name: &str,
    ports: Result<Vec<u16>, std::num::ParseIntError>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let key = (ns.to_string(), name.to_string());
    let (exists, to) = {
        let store = shared.store();
        (
            store.pods.contains_key(&key),
            store.forwards.get(&key).copied(),
        )
    };
    if !exists {
        return pod_not_found(name);
    }
    let ports = match ports {
        Ok(ports) if !ports.is_empty() => ports,
        _ => {
            let why = "query parameter \"ports\" is required: one or more port numbers";
            return bad_request(why);
        }
    };
    let headers = req.headers();
    let is_upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| is_upgrade)
    else {
        let why = "Upgrade request required";
        return bad_request(why);
    };
    let accept = derive_accept_key(key.as_bytes());
    let offered = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !offered
        .split(',')
        .any(|p| p.trim() == PORT_FORWARD_PROTOCOL)
    {
        let why = format!("unable to upgrade: none of the protocols {offered:?} is supported");
        return bad_request(&why);
    }
    let upgrade = hyper::upgrade::on(&mut req);
    let pod = format!("{ns}/{name}");
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrade.await {
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            relay(ws, ports, to, pod).await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .header(header::SEC_WEBSOCKET_PROTOCOL, PORT_FORWARD_PROTOCOL)
        .body(Full::new(Bytes::new()).boxed_unsync())
        .expect("upgrade response")
}

/// Port `i` uses channel `2i` for data and `2i+1` for errors; each channel first carries its
/// port number (2 bytes, little-endian). The stream closes once every upstream has.
async fn relay<S>(ws: WebSocketStream<S>, ports: Vec<u16>, to: Option<SocketAddr>, pod: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut incoming) = ws.split();
    let (frames, mut outgoing) = mpsc::channel::<Message>(64);
    let mut upstreams = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let data = 2 * i as u8;
        for channel in [data, data + 1] {
            let [lo, hi] = port.to_le_bytes();
            if sink
                .send(Message::binary(vec![channel, lo, hi]))
                .await
                .is_err()
            {
                return;
            }
        }
        let connected = match to {
            Some(addr) => TcpStream::connect(addr)
                .await
                .map_err(|e| format!("dial tcp {addr}: {e}")),
            None => Err("nothing listens there (no forward registered)".to_string()),
        };
        match connected {
            Ok(tcp) => {
                let (mut read, write) = tcp.into_split();
                upstreams.push(Some(write));
                let frames = frames.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        buf[0] = data;
                        match read.read(&mut buf[1..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                let frame = Message::binary(buf[..=n].to_vec());
                                if frames.send(frame).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
            Err(why) => {
                upstreams.push(None);
                let mut error = vec![data + 1];
                error.extend(format!("error forwarding port {port} to pod {pod}: {why}").bytes());
                let _ = sink.send(Message::binary(error)).await;
            }
        }
    }
    // Only the readers hold senders now: the channel ends when every upstream has.
    drop(frames);
    loop {
        tokio::select! {
            frame = outgoing.recv() => match frame {
                Some(frame) => if sink.send(frame).await.is_err() { break },
                None => break,
            },
            message = incoming.next() => match message {
                Some(Ok(Message::Binary(bytes))) if bytes.len() > 1 => {
                    let upstream = upstreams.get_mut(usize::from(bytes[0] / 2));
                    if let (0, Some(Some(write))) = (bytes[0] % 2, upstream) {
                        if write.write_all(&bytes[1..]).await.is_err() {
                            break;
                        }
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = sink.close().await;
}

fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    json_text(code, body.to_string())
}

fn json_text(code: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)).boxed_unsync())
        .expect("JSON response")
}

/// A `Status` failure. Written out by hand: a `serde_json` map would sort the fields, and a
/// real API server writes them in this order. `details` is JSON text, if any.
fn status(code: StatusCode, reason: &str, message: &str, details: Option<&str>) -> Response<Body> {
    let details = details.map_or_else(String::new, |d| format!(r#""details":{d},"#));
    let body = format!(
        r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":{},"reason":{},{details}"code":{}}}"#,
        json!(message),
        json!(reason),
        code.as_u16()
    );
    json_text(code, body)
}

fn pod_not_found(name: &str) -> Response<Body> {
    let message = format!("pods \"{name}\" not found");
    let details = format!(r#"{{"name":{},"kind":"pods"}}"#, json!(name));
    status(StatusCode::NOT_FOUND, "NotFound", &message, Some(&details))
}

fn bad_request(message: &str) -> Response<Body> {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, None)
}

fn not_found_path() -> Response<Body> {
    let message = "the server could not find the requested resource";
    status(StatusCode::NOT_FOUND, "NotFound", message, Some("{}"))
}

/// A pod as the API server returns it, from the recorded one in `tests/fixtures/pod.json`:
/// owned by a StatefulSet (`name` ends in `-<ordinal>`) or a ReplicaSet, scheduled to
/// `node` (empty: not scheduled), one container per `(name, container id)` (an id without
/// `runtime://` is containerd's), status consistent with `phase` and `qos`.
#[allow(clippy::too_many_arguments)] // One argument per field the pods of a test differ in.
pub fn pod(
    ns: &str,
    name: &str,
    uid: &str,
    node: &str,
    phase: &str,
    labels: &[(&str, &str)],
    containers: &[(&str, &str)],
    qos: &str,
) -> Value {
    let mut pod: Value = serde_json::from_str(FIXTURE).expect("tests/fixtures/pod.json is JSON");
    let running = phase == "Running";
    let meta = &mut pod["metadata"];
    meta["name"] = json!(name);
    meta["namespace"] = json!(ns);
    meta["uid"] = json!(uid);
    meta["labels"] = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let ordinal = name
        .rsplit_once('-')
        .filter(|(_, n)| n.bytes().all(|b| b.is_ascii_digit()));
    let owner = name.rsplit_once('-').map(|(owner, _)| owner);
    match (ordinal, owner) {
        (Some((set, _)), _) => meta["ownerReferences"][0]["name"] = json!(set),
        (None, Some(owner)) => {
            meta["ownerReferences"][0]["kind"] = json!("ReplicaSet");
            meta["ownerReferences"][0]["name"] = json!(owner);
        }
        (None, None) => {
            let fields = meta.as_object_mut().expect("metadata object");
            fields.remove("ownerReferences");
            fields.remove("generateName");
        }
    }
    if let Some(owner) = owner {
        meta["generateName"] = json!(format!("{owner}-"));
    }
    let spec = &mut pod["spec"];
    if ordinal.is_some() {
        spec["hostname"] = json!(name);
    } else if let Some(fields) = spec.as_object_mut() {
        fields.remove("hostname");
        fields.remove("subdomain");
    }
    spec["volumes"][0]["persistentVolumeClaim"]["claimName"] = json!(format!("data-{name}"));
    let resources = match qos {
        "Guaranteed" => json!({"limits": {"cpu": "500m", "memory": "1Gi"},
                               "requests": {"cpu": "500m", "memory": "1Gi"}}),
        "BestEffort" => json!({}),
        _ => spec["containers"][0]["resources"].clone(),
    };
    let spec_template = spec["containers"][0].clone();
    let status_template = pod["status"]["containerStatuses"][0].clone();
    let mut specs = Vec::new();
    let mut statuses = Vec::new();
    for (i, (container, id)) in containers.iter().enumerate() {
        let mut c = spec_template.clone();
        c["name"] = json!(container);
        c["resources"] = resources.clone();
        if i > 0 {
            // A sidecar: its own port, no database readiness check.
            c["ports"] = json!([{"containerPort": 9100 + i, "name": format!("port-{i}"),
                                 "protocol": "TCP"}]);
            if let Some(fields) = c.as_object_mut() {
                fields.remove("readinessProbe");
            }
        }
        specs.push(c);
        let mut s = status_template.clone();
        s["name"] = json!(container);
        s["resources"] = resources.clone();
        if running && !id.is_empty() {
            let id = if id.contains("://") {
                id.to_string()
            } else {
                format!("containerd://{id}")
            };
            s["containerID"] = json!(id);
        } else {
            let fields = s.as_object_mut().expect("container status object");
            fields.remove("containerID");
            fields.remove("user");
            fields.insert("imageID".into(), json!(""));
            fields.insert("ready".into(), json!(false));
            fields.insert("started".into(), json!(false));
            fields.insert(
                "state".into(),
                json!({"waiting": {"reason": "ContainerCreating"}}),
            );
        }
        statuses.push(s);
    }
    pod["spec"]["containers"] = json!(specs);
    if node.is_empty() {
        if let Some(spec) = pod["spec"].as_object_mut() {
            spec.remove("nodeName");
        }
    } else {
        pod["spec"]["nodeName"] = json!(node);
    }
    let status = pod["status"].as_object_mut().expect("status object");
    status.insert("phase".into(), json!(phase));
    status.insert("qosClass".into(), json!(qos));
    status.insert("containerStatuses".into(), json!(statuses));
    if node.is_empty() {
        for gone in [
            "hostIP",
            "hostIPs",
            "podIP",
            "podIPs",
            "startTime",
            "containerStatuses",
        ] {
            status.remove(gone);
        }
        status.insert(
            "conditions".into(),
            json!([{
                "lastProbeTime": null,
                "lastTransitionTime": "2025-05-12T08:41:17Z",
                "message": "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 \
                            nodes are available: 3 No preemption victims found for incoming pod.",
                "reason": "Unschedulable",
                "status": "False",
                "type": "PodScheduled"
            }]),
        );
        return pod;
    }
    let host_ip = format!("10.0.1.{}", octet(node));
    status.insert("hostIP".into(), json!(host_ip));
    status.insert("hostIPs".into(), json!([{ "ip": host_ip }]));
    if running {
        let pod_ip = format!("10.244.{}.{}", octet(node), octet(name));
        status.insert("podIP".into(), json!(pod_ip));
        status.insert("podIPs".into(), json!([{ "ip": pod_ip }]));
    } else {
        status.remove("podIP");
        status.remove("podIPs");
        let conditions = status.get_mut("conditions").and_then(Value::as_array_mut);
        for condition in conditions.into_iter().flatten() {
            if matches!(
                condition["type"].as_str(),
                Some("Ready" | "ContainersReady")
            ) {
                condition["status"] = json!("False");
                condition["reason"] = json!("ContainersNotReady");
            }
        }
    }
    pod
}

/// A stable address byte (2..=251) for a name.
fn octet(name: &str) -> u32 {
    name.bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 250
        + 2
}
