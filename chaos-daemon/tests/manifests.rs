//! The Kubernetes manifests under `deploy/`, rendered by the real `kubectl kustomize`, parsed into `k8s-openapi` types and checked against what the daemon needs and accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use anyhow::{bail, Context as _, Result};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, Namespace, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const BASE: &str = "deploy/daemonset/base";
const TLS_OVERLAY: &str = "deploy/daemonset/overlays/tls";

/// What the DaemonSet adds after dropping every capability. The same set is documented, with
/// the reason for each, in `deploy/daemonset/README.md` and next to each item of the manifest.
const CAPABILITIES: [&str; 9] = [
    "BPF",
    "PERFMON",
    "NET_ADMIN",
    "SYS_ADMIN",
    "SYS_RESOURCE",
    "KILL",
    "SYS_PTRACE",
    "DAC_OVERRIDE",
    "SYS_NICE",
];

/// Every node path the daemon mounts: mount path, node path, read-only, propagation.
const HOST_MOUNTS: [(&str, &str, bool, Option<&str>); 5] = [
    ("/sys/fs/bpf", "/sys/fs/bpf", false, Some("HostToContainer")),
    ("/sys/fs/cgroup", "/sys/fs/cgroup", false, None),
    ("/run/faultline", "/run/faultline", false, None),
    ("/var/lib/faultline", "/var/lib/faultline", false, None),
    ("/sys/kernel/security", "/sys/kernel/security", true, None),
];

const TLS_DIR: &str = "/etc/faultline/tls";
const TLS_SECRET: &str = "faultline-tls";

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// One Kubernetes object of a manifest, typed by its `kind`. A few dozen exist at most, so
/// their sizes do not matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Object {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
    DaemonSet(DaemonSet),
    Service(Service),
}

/// The two fields every object has, read first to choose its type.
#[derive(Deserialize)]
struct TypeMeta {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
}

/// Parses one YAML document into its `k8s-openapi` type; an unknown kind is an error.
fn parse_object(doc: &str) -> Result<Object> {
    let meta: TypeMeta = serde_saphyr::from_str(doc).context("apiVersion and kind")?;
    Ok(match meta.kind.as_str() {
        "Namespace" => Object::Namespace(typed(doc, &meta)?),
        "ServiceAccount" => Object::ServiceAccount(typed(doc, &meta)?),
        "ClusterRole" => Object::ClusterRole(typed(doc, &meta)?),
        "ClusterRoleBinding" => Object::ClusterRoleBinding(typed(doc, &meta)?),
        "Role" => Object::Role(typed(doc, &meta)?),
        "RoleBinding" => Object::RoleBinding(typed(doc, &meta)?),
        "DaemonSet" => Object::DaemonSet(typed(doc, &meta)?),
        "Service" => Object::Service(typed(doc, &meta)?),
        other => bail!("unknown kind {other} ({})", meta.api_version),
    })
}

/// Parses `doc` as `T`, and fails where `T` does not hold what the document says:
/// `k8s-openapi` skips fields it does not know, so a misspelled or misplaced field would
/// otherwise vanish without a word (and the API server would drop it too).
fn typed<T: Resource + DeserializeOwned + Serialize>(doc: &str, meta: &TypeMeta) -> Result<T> {
    if meta.api_version != T::API_VERSION {
        bail!(
            "{} has apiVersion {}, expected {}",
            T::KIND,
            meta.api_version,
            T::API_VERSION
        );
    }
    let object: T = serde_saphyr::from_str(doc).with_context(|| format!("parse {}", T::KIND))?;
    let raw: Value = serde_saphyr::from_str(doc).context("parse as plain YAML")?;
    let understood = serde_json::to_value(&object).context("serialize back")?;
    if let Some(difference) = first_difference(&raw, &understood, T::KIND) {
        bail!("{difference}");
    }
    Ok(object)
}

/// The first place where `typed` (the object as its type holds it) differs from `raw` (the
/// document as written), if any. An absent field and a null one are the same.
fn first_difference(raw: &Value, typed: &Value, path: &str) -> Option<String> {
    match (raw, typed) {
        (Value::Object(raw), Value::Object(typed)) => {
            for (key, raw_value) in raw {
                let path = format!("{path}.{key}");
                match typed.get(key) {
                    None if raw_value.is_null() => {}
                    None => return Some(format!("{path}: not a field of this type")),
                    Some(typed_value) => {
                        if let Some(found) = first_difference(raw_value, typed_value, &path) {
                            return Some(found);
                        }
                    }
                }
            }
            typed
                .iter()
                .find(|(key, value)| !value.is_null() && !raw.contains_key(*key))
                .map(|(key, _)| format!("{path}.{key}: added by the type"))
        }
        (Value::Array(raw), Value::Array(typed)) if raw.len() == typed.len() => raw
            .iter()
            .zip(typed)
            .enumerate()
            .find_map(|(i, (raw, typed))| first_difference(raw, typed, &format!("{path}[{i}]"))),
        _ if raw == typed => None,
        _ => Some(format!("{path}: {raw} was read as {typed}")),
    }
}

/// The documents of a YAML stream: split at `---` lines, without the empty ones (comments
/// only, or nothing).
fn documents(stream: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in stream.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.retain(|doc| {
        doc.lines()
            .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
    });
    docs
}

/// Parses every document of `stream`, naming `origin` and the document's index on failure.
fn parse_stream(stream: &str, origin: &str) -> Result<Vec<Object>> {
    documents(stream)
        .iter()
        .enumerate()
        .map(|(i, doc)| parse_object(doc).with_context(|| format!("{origin}, document {i}")))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Rendering and files
// ---------------------------------------------------------------------------------------

/// The repository root (the parent of this crate).
fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("chaos-daemon lives inside the repository")
}

/// Runs a command, failing with its stderr when it does not succeed.
fn run(command: &mut Command, what: &str) -> Result<Output> {
    let output = command.output().with_context(|| format!("run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

/// `kubectl kustomize DIR`, parsed. kubectl is required: without it this fails, it does not
/// skip, because the manifests are only checked as kubectl renders them.
fn render(dir: &str) -> Vec<Object> {
    let path = repo_root().join(dir);
    let output = match Command::new("kubectl").arg("kustomize").arg(&path).output() {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
            "kubectl is not installed (not on PATH): these tests render {dir} with \
             `kubectl kustomize`; install kubectl to run them"
        ),
        result => result.unwrap_or_else(|err| panic!("run kubectl kustomize {dir}: {err}")),
    };
    assert!(
        output.status.success(),
        "kubectl kustomize {dir} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let stream = String::from_utf8(output.stdout).expect("kubectl prints UTF-8");
    parse_stream(&stream, &format!("kubectl kustomize {dir}")).unwrap_or_else(|e| panic!("{e:#}"))
}

fn base() -> &'static [Object] {
    static RENDERED: OnceLock<Vec<Object>> = OnceLock::new();
    RENDERED.get_or_init(|| render(BASE))
}

fn tls_overlay() -> &'static [Object] {
    static RENDERED: OnceLock<Vec<Object>> = OnceLock::new();
    RENDERED.get_or_init(|| render(TLS_OVERLAY))
}

/// Every `*.yaml`/`*.yml` file under `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {dir:?}: {e}")) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// What these tests read of a `kustomization.yaml`: the files it names.
#[derive(Deserialize)]
struct Kustomization {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    patches: Vec<KustomizePatch>,
}

#[derive(Deserialize)]
struct KustomizePatch {
    path: Option<String>,
}

/// One operation of a JSON patch (RFC 6902) file.
#[derive(Deserialize)]
struct JsonPatchOp {
    op: String,
    path: String,
}

// ---------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------

/// The one object of `objects` that `pick` takes, a `kind`.
fn only<'a, T>(
    objects: &'a [Object],
    kind: &str,
    pick: impl Fn(&'a Object) -> Option<&'a T>,
) -> &'a T {
    let found: Vec<&T> = objects.iter().filter_map(pick).collect();
    assert_eq!(found.len(), 1, "exactly one {kind}");
    found[0]
}

fn daemonset(objects: &[Object]) -> &DaemonSet {
    only(objects, "DaemonSet", |o| match o {
        Object::DaemonSet(ds) => Some(ds),
        _ => None,
    })
}

fn pod_spec(ds: &DaemonSet) -> &PodSpec {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("DaemonSet has a pod spec")
}

/// The daemon's container (the only one).
fn daemon_container(ds: &DaemonSet) -> &Container {
    let containers = &pod_spec(ds).containers;
    assert_eq!(containers.len(), 1, "one container");
    assert_eq!(containers[0].name, "chaos-daemon");
    &containers[0]
}

fn args(container: &Container) -> &[String] {
    container.args.as_deref().unwrap_or_default()
}

/// The command of the container's preStop exec hook; fails if it has none.
fn pre_stop(container: &Container) -> &[String] {
    container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.exec.as_ref())
        .and_then(|e| e.command.as_deref())
        .expect("preStop exec")
}

/// The value after `--flag` (or in `--flag=value`); fails if the flag is absent or repeated.
fn flag_value<'a>(args: &'a [String], flag: &str) -> &'a str {
    let values: Vec<&str> = args
        .iter()
        .enumerate()
        .filter_map(|(i, arg)| {
            if arg == flag {
                Some(args.get(i + 1).map_or("", String::as_str))
            } else {
                arg.strip_prefix(flag)
                    .and_then(|rest| rest.strip_prefix('='))
            }
        })
        .collect();
    assert_eq!(values.len(), 1, "{flag} given once in {args:?}");
    values[0]
}

/// The `--flag` names in `args` (without any `=value`).
fn flags(args: &[String]) -> BTreeSet<&str> {
    args.iter()
        .filter(|arg| arg.starts_with("--"))
        .map(|arg| arg.split('=').next().unwrap_or(arg))
        .collect()
}

fn socket_addr(args: &[String], flag: &str) -> SocketAddr {
    let value = flag_value(args, flag);
    value
        .parse()
        .unwrap_or_else(|e| panic!("{flag} {value}: not an address: {e}"))
}

/// The node path behind each `hostPath` mount: mount path → (node path, read-only,
/// propagation).
fn host_mounts(ds: &DaemonSet) -> BTreeMap<String, (String, bool, Option<String>)> {
    let volumes = pod_spec(ds).volumes.as_deref().unwrap_or_default();
    daemon_container(ds)
        .volume_mounts
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter_map(|mount| {
            let volume = volumes
                .iter()
                .find(|v| v.name == mount.name)
                .unwrap_or_else(|| panic!("volume {} is mounted but not defined", mount.name));
            let host = volume.host_path.as_ref()?;
            Some((
                mount.mount_path.clone(),
                (
                    host.path.clone(),
                    mount.read_only.unwrap_or(false),
                    mount.mount_propagation.clone(),
                ),
            ))
        })
        .collect()
}

/// Whether `path` is `dir` or below it.
fn is_under(path: &str, dir: &str) -> bool {
    Path::new(path).starts_with(dir)
}

fn template_labels(ds: &DaemonSet) -> &BTreeMap<String, String> {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .expect("pod template has labels")
}

/// `--help` of one of this crate's binaries.
fn help(exe: &str, args: &[&str]) -> String {
    let output = run(
        Command::new(exe).args(args).env_remove("FAULTLINE_SOCKET"),
        &format!("{exe} {}", args.join(" ")),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `--flags` a `--help` text mentions.
fn help_flags(help: &str) -> BTreeSet<String> {
    help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn base_and_tls_overlay_render_into_known_objects() {
    let kinds = |objects: &[Object]| -> BTreeMap<&'static str, usize> {
        let mut kinds = BTreeMap::new();
        for object in objects {
            let kind = match object {
                Object::Namespace(_) => "Namespace",
                Object::ServiceAccount(_) => "ServiceAccount",
                Object::ClusterRole(_) => "ClusterRole",
                Object::ClusterRoleBinding(_) => "ClusterRoleBinding",
                Object::Role(_) => "Role",
                Object::RoleBinding(_) => "RoleBinding",
                Object::DaemonSet(_) => "DaemonSet",
                Object::Service(_) => "Service",
            };
            *kinds.entry(kind).or_insert(0) += 1;
        }
        kinds
    };
    let base_kinds = kinds(base());
    assert_eq!(
        base_kinds,
        BTreeMap::from([
            ("ClusterRole", 2),
            ("ClusterRoleBinding", 1),
            ("DaemonSet", 1),
            ("Namespace", 1),
            ("Role", 1),
            ("ServiceAccount", 1),
        ])
    );
    let mut tls_kinds = base_kinds;
    tls_kinds.insert("Service", 1);
    assert_eq!(kinds(tls_overlay()), tls_kinds);

    // Every namespaced object is in the daemon's namespace.
    for object in base().iter().chain(tls_overlay()) {
        let namespace = match object {
            Object::ServiceAccount(o) => &o.metadata.namespace,
            Object::Role(o) => &o.metadata.namespace,
            Object::RoleBinding(o) => &o.metadata.namespace,
            Object::DaemonSet(o) => &o.metadata.namespace,
            Object::Service(o) => &o.metadata.namespace,
            _ => continue,
        };
        assert_eq!(namespace.as_deref(), Some("faultline"), "{object:?}");
    }
    let namespace = base()
        .iter()
        .find_map(|o| match o {
            Object::Namespace(ns) => ns.metadata.name.as_deref(),
            _ => None,
        })
        .expect("a Namespace");
    assert_eq!(namespace, "faultline");
}

/// Every YAML file under `deploy/` is a kustomization, a patch one names, or Kubernetes
/// objects one lists; each parses, and each file a kustomization names exists.
#[test]
fn every_manifest_file_parses_and_is_referenced() {
    let deploy = repo_root().join("deploy");
    let files = yaml_files(&deploy);
    let mut resources = BTreeSet::new();
    let mut patches = BTreeSet::new();
    for file in files.iter().filter(|f| f.ends_with("kustomization.yaml")) {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file:?}: {e}"));
        let kustomization: Kustomization =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {file:?}: {e}"));
        let dir = file.parent().expect("a file has a directory");
        for resource in &kustomization.resources {
            let path = dir.join(resource);
            if path.is_dir() {
                assert!(
                    path.join("kustomization.yaml").is_file(),
                    "{file:?} names {resource}, a directory without kustomization.yaml"
                );
            } else {
                assert!(
                    path.is_file(),
                    "{file:?} names {resource}, which is missing"
                );
                resources.insert(path.canonicalize().expect("canonical path"));
            }
        }
        for patch in kustomization.patches.iter().filter_map(|p| p.path.as_ref()) {
            let path = dir.join(patch);
            assert!(
                path.is_file(),
                "{file:?} names patch {patch}, which is missing"
            );
            patches.insert(path.canonicalize().expect("canonical path"));
        }
    }
    assert!(!resources.is_empty(), "no kustomization under {deploy:?}");

    let mut objects = 0;
    for file in files.iter().filter(|f| !f.ends_with("kustomization.yaml")) {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file:?}: {e}"));
        let canonical = file.canonicalize().expect("canonical path");
        if patches.contains(&canonical) {
            let ops: Vec<JsonPatchOp> =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {file:?}: {e}"));
            for op in &ops {
                assert!(
                    ["add", "remove", "replace", "move", "copy", "test"].contains(&op.op.as_str())
                        && op.path.starts_with('/'),
                    "{file:?}: {} {} is not a JSON patch operation",
                    op.op,
                    op.path
                );
            }
            continue;
        }
        assert!(
            resources.contains(&canonical),
            "{file:?} is neither a resource nor a patch of any kustomization"
        );
        objects += parse_stream(&text, &file.display().to_string())
            .unwrap_or_else(|e| panic!("{e:#}"))
            .len();
    }
    assert!(objects >= 7, "only {objects} objects under {deploy:?}");
}

#[test]
fn daemon_runs_unprivileged_with_the_documented_capabilities() {
    let readme_path = repo_root().join("deploy/daemonset/README.md");
    let readme = std::fs::read_to_string(&readme_path)
        .unwrap_or_else(|e| panic!("read {readme_path:?}: {e}"));
    // The first cell of the README's privilege table rows: `NAME` for a capability.
    let documented: BTreeSet<&str> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split_once("` |"))
        .map(|(name, _)| name)
        .filter(|name| name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .collect();
    assert_eq!(documented, BTreeSet::from(CAPABILITIES), "{readme_path:?}");

    for objects in [base(), tls_overlay()] {
        let ds = daemonset(objects);
        let spec = pod_spec(ds);
        assert_eq!(spec.host_pid, Some(true));
        assert_eq!(spec.host_network, Some(true));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));

        let container = daemon_container(ds);
        assert_eq!(
            container.image.as_deref(),
            Some("ghcr.io/faultline/chaos-daemon:0.1.0")
        );
        let security = container
            .security_context
            .as_ref()
            .expect("securityContext");
        assert_ne!(security.privileged, Some(true), "privileged");
        // The API server refuses allowPrivilegeEscalation: false beside CAP_SYS_ADMIN.
        assert_eq!(security.allow_privilege_escalation, Some(true));
        assert_eq!(security.run_as_user, Some(0));
        assert_eq!(security.read_only_root_filesystem, Some(true));
        let capabilities = security.capabilities.as_ref().expect("capabilities");
        assert_eq!(capabilities.drop.as_deref(), Some(&["ALL".to_owned()][..]));
        let added: Vec<&str> = capabilities
            .add
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let added_set: BTreeSet<&str> = added.iter().copied().collect();
        assert_eq!(added.len(), added_set.len(), "a capability added twice");
        assert_eq!(added_set, BTreeSet::from(CAPABILITIES));
        assert_eq!(
            security.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            Some("Unconfined")
        );
        assert_eq!(
            security
                .app_armor_profile
                .as_ref()
                .map(|p| p.type_.as_str()),
            Some("Unconfined")
        );

        // The API server's own rule: Bidirectional propagation only in privileged containers.
        for mount in container.volume_mounts.iter().flatten() {
            assert_ne!(
                mount.mount_propagation.as_deref(),
                Some("Bidirectional"),
                "{}: Bidirectional propagation needs a privileged container",
                mount.mount_path
            );
        }
    }
}

#[test]
fn daemon_mounts_what_it_needs_from_the_node() {
    for objects in [base(), tls_overlay()] {
        let ds = daemonset(objects);
        let expected: BTreeMap<String, (String, bool, Option<String>)> = HOST_MOUNTS
            .iter()
            .map(|(mount, node, read_only, propagation)| {
                (
                    mount.to_string(),
                    (node.to_string(), *read_only, propagation.map(str::to_owned)),
                )
            })
            .collect();
        assert_eq!(host_mounts(ds), expected);

        // What the daemon is told to use lies on those mounts, not in the container.
        let args = args(daemon_container(ds));
        assert!(is_under(flag_value(args, "--socket"), "/run/faultline"));
        assert!(is_under(
            flag_value(args, "--state-dir"),
            "/var/lib/faultline"
        ));
        assert!(is_under(flag_value(args, "--bpffs-dir"), "/sys/fs/bpf"));
    }
}

#[test]
fn daemon_env_probes_and_lifecycle() {
    for objects in [base(), tls_overlay()] {
        let ds = daemonset(objects);
        let spec = pod_spec(ds);
        let container = daemon_container(ds);
        let args = args(container);

        let field_refs: BTreeMap<&str, &str> = container
            .env
            .iter()
            .flatten()
            .filter_map(|var| {
                let field = var.value_from.as_ref()?.field_ref.as_ref()?;
                Some((var.name.as_str(), field.field_path.as_str()))
            })
            .collect();
        assert_eq!(field_refs.get("NODE_NAME"), Some(&"spec.nodeName"));
        assert_eq!(field_refs.get("POD_NAMESPACE"), Some(&"metadata.namespace"));

        // kubelet probes the pod's IP, the node's (hostNetwork): every address.
        let health = socket_addr(args, "--health-listen");
        assert!(health.ip().is_unspecified(), "--health-listen {health}");
        let probes = [
            ("startupProbe", &container.startup_probe),
            ("readinessProbe", &container.readiness_probe),
            ("livenessProbe", &container.liveness_probe),
        ];
        for (name, probe) in probes {
            let probe = probe.as_ref().unwrap_or_else(|| panic!("{name} missing"));
            let grpc = probe
                .grpc
                .as_ref()
                .unwrap_or_else(|| panic!("{name} is not grpc"));
            assert_eq!(i32::from(health.port()), grpc.port, "{name} port");
            assert!(grpc.service.is_none(), "{name} asks for the whole server");
            assert!(probe.http_get.is_none() && probe.tcp_socket.is_none() && probe.exec.is_none());
        }
        let declared: BTreeMap<&str, i32> = container
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Some((p.name.as_deref()?, p.container_port)))
            .collect();
        assert_eq!(declared.get("health"), Some(&i32::from(health.port())));
        assert_eq!(
            declared.get("grpc"),
            Some(&i32::from(socket_addr(args, "--listen").port()))
        );

        let resources = container.resources.as_ref().expect("resources");
        for (what, amounts) in [
            ("requests", &resources.requests),
            ("limits", &resources.limits),
        ] {
            let amounts = amounts.as_ref().unwrap_or_else(|| panic!("no {what}"));
            assert!(
                amounts.contains_key("cpu") && amounts.contains_key("memory"),
                "{what}: {amounts:?}"
            );
        }

        let tolerations = spec.tolerations.as_deref().unwrap_or_default();
        assert!(
            tolerations
                .iter()
                .any(|t| t.operator.as_deref() == Some("Exists") && t.key.is_none()),
            "no toleration of every taint: {tolerations:?}"
        );
        let grace = spec.termination_grace_period_seconds.unwrap_or(30);
        assert!(grace >= 30, "terminationGracePeriodSeconds {grace}");

        assert_eq!(
            pre_stop(container),
            [
                "/usr/local/bin/chaosctl",
                "--socket",
                flag_value(args, "--socket"),
                "abort-all"
            ]
        );

        // Rolling updates; the selector matches the pods' labels.
        let ds_spec = ds.spec.as_ref().expect("spec");
        let strategy = ds_spec.update_strategy.as_ref().expect("updateStrategy");
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        assert!(strategy
            .rolling_update
            .as_ref()
            .and_then(|r| r.max_unavailable.as_ref())
            .is_some());
        let labels = template_labels(ds);
        assert_eq!(
            labels.get("app.kubernetes.io/name").map(String::as_str),
            Some("faultline")
        );
        assert_eq!(
            labels
                .get("app.kubernetes.io/component")
                .map(String::as_str),
            Some("daemon")
        );
        let selector = ds_spec.selector.match_labels.as_ref().expect("matchLabels");
        assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
    }
}

#[test]
fn daemon_service_account_may_only_read_pods() {
    let objects = base();
    let ds = daemonset(objects);
    let namespace = ds.metadata.namespace.as_deref().expect("namespace");
    let account = pod_spec(ds)
        .service_account_name
        .as_deref()
        .expect("serviceAccountName");
    assert!(objects.iter().any(|o| matches!(o,
        Object::ServiceAccount(sa)
            if sa.metadata.name.as_deref() == Some(account)
                && sa.metadata.namespace.as_deref() == Some(namespace))));

    // Every binding of the daemon's account: exactly one, to one ClusterRole.
    let is_daemon = |s: &k8s_openapi::api::rbac::v1::Subject| {
        s.kind == "ServiceAccount" && s.name == account && s.namespace.as_deref() == Some(namespace)
    };
    let mut roles = Vec::new();
    for object in objects {
        match object {
            Object::ClusterRoleBinding(b) if b.subjects.iter().flatten().any(is_daemon) => {
                assert_eq!(b.role_ref.kind, "ClusterRole");
                assert_eq!(b.role_ref.api_group, "rbac.authorization.k8s.io");
                roles.push(b.role_ref.name.as_str());
            }
            Object::RoleBinding(b) => {
                assert!(
                    !b.subjects.iter().flatten().any(is_daemon),
                    "the daemon's account has a RoleBinding"
                );
            }
            _ => {}
        }
    }
    assert_eq!(roles.len(), 1, "bindings of {account}: {roles:?}");
    let role = objects
        .iter()
        .find_map(|o| match o {
            Object::ClusterRole(r) if r.metadata.name.as_deref() == Some(roles[0]) => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| panic!("ClusterRole {} is bound but missing", roles[0]));
    assert!(role.aggregation_rule.is_none());
    let rules = role.rules.as_deref().unwrap_or_default();
    assert_eq!(rules.len(), 1, "{rules:?}");
    let rule = &rules[0];
    assert_eq!(rule.api_groups.as_deref(), Some(&[String::new()][..]));
    assert_eq!(rule.resources.as_deref(), Some(&["pods".to_owned()][..]));
    assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
    let verbs: BTreeSet<&str> = rule.verbs.iter().map(String::as_str).collect();
    assert_eq!(verbs, BTreeSet::from(["get", "list", "watch"]));
    assert_eq!(rule.verbs.len(), 3);
}

/// The example roles for people and CI: read pods anywhere, port-forward only to the
/// daemon's namespace, and change nothing.
#[test]
fn user_roles_read_pods_and_port_forward_to_daemons_only() {
    let rules_of = |kind: &str| {
        base()
            .iter()
            .find_map(|o| match o {
                Object::ClusterRole(r)
                    if kind == "ClusterRole"
                        && r.metadata.name.as_deref() == Some("faultline-user") =>
                {
                    Some((None, r.rules.clone().unwrap_or_default()))
                }
                Object::Role(r)
                    if kind == "Role" && r.metadata.name.as_deref() == Some("faultline-user") =>
                {
                    Some((
                        r.metadata.namespace.clone(),
                        r.rules.clone().unwrap_or_default(),
                    ))
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{kind} faultline-user missing"))
    };
    let grants = |rules: &[k8s_openapi::api::rbac::v1::PolicyRule]| -> BTreeSet<(String, String)> {
        rules
            .iter()
            .flat_map(|rule| {
                assert_eq!(rule.api_groups.as_deref(), Some(&[String::new()][..]));
                assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
                let resources = rule.resources.clone().unwrap_or_default();
                resources.into_iter().flat_map(move |resource| {
                    rule.verbs
                        .iter()
                        .map(move |verb| (resource.clone(), verb.clone()))
                })
            })
            .collect()
    };
    let pair = |resource: &str, verb: &str| (resource.to_owned(), verb.to_owned());

    let (_, cluster_rules) = rules_of("ClusterRole");
    assert_eq!(
        grants(&cluster_rules),
        BTreeSet::from([pair("pods", "get"), pair("pods", "list")])
    );
    let (namespace, rules) = rules_of("Role");
    assert_eq!(
        namespace.as_deref(),
        daemonset(base()).metadata.namespace.as_deref()
    );
    assert_eq!(
        grants(&rules),
        BTreeSet::from([
            pair("pods", "get"),
            pair("pods", "list"),
            pair("pods/portforward", "create"),
        ])
    );
    // Examples only: nothing binds them.
    for object in base() {
        let role_ref = match object {
            Object::ClusterRoleBinding(b) => &b.role_ref,
            Object::RoleBinding(b) => &b.role_ref,
            _ => continue,
        };
        assert_ne!(role_ref.name, "faultline-user", "faultline-user is bound");
    }
}

#[test]
fn tls_overlay_requires_client_certificates() {
    let base_args = args(daemon_container(daemonset(base())));
    let listen = socket_addr(base_args, "--listen");
    assert!(listen.ip().is_loopback(), "base --listen {listen}");
    for flag in ["--tls-cert", "--tls-key", "--tls-client-ca"] {
        assert!(!flags(base_args).contains(flag), "base has {flag}");
    }

    let objects = tls_overlay();
    let ds = daemonset(objects);
    let container = daemon_container(ds);
    let args = args(container);
    let listen = socket_addr(args, "--listen");
    assert!(
        !listen.ip().is_loopback(),
        "the overlay's --listen {listen} is loopback"
    );

    // The Secret's whole directory, read-only, and each file named by a key of it.
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == TLS_DIR)
        .unwrap_or_else(|| panic!("nothing mounted at {TLS_DIR}"));
    assert_eq!(mount.read_only, Some(true));
    assert!(
        mount.sub_path.is_none(),
        "subPath mounts never see a renewed Secret"
    );
    let volume = pod_spec(ds)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .expect("the TLS volume");
    let secret = volume.secret.as_ref().expect("a secret volume");
    assert_eq!(secret.secret_name.as_deref(), Some(TLS_SECRET));
    assert!(secret.items.is_none(), "every key of the Secret is a file");
    assert_eq!(secret.default_mode, Some(0o400));
    for (flag, key) in [
        ("--tls-cert", "tls.crt"),
        ("--tls-key", "tls.key"),
        ("--tls-client-ca", "ca.crt"),
    ] {
        assert_eq!(flag_value(args, flag), format!("{TLS_DIR}/{key}"));
    }

    // The headless Service selects the daemon's pods on the API port.
    let service = only(objects, "Service", |o| match o {
        Object::Service(s) => Some(s),
        _ => None,
    });
    assert_eq!(service.metadata.name.as_deref(), Some("chaos-daemon"));
    let spec = service.spec.as_ref().expect("Service spec");
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    let selector = spec.selector.as_ref().expect("a selector");
    let labels = template_labels(ds);
    assert!(
        !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "selector {selector:?} does not select pods labelled {labels:?}"
    );
    let ports = spec.ports.as_deref().unwrap_or_default();
    assert_eq!(ports.len(), 1);
    let port = &ports[0];
    assert_eq!(port.port, 7465);
    assert_eq!(port.port, i32::from(listen.port()));
    assert_eq!(port.name.as_deref(), Some("grpc"));
    assert_eq!(port.app_protocol.as_deref(), Some("grpc"));
    let target = match port.target_port.as_ref() {
        Some(IntOrString::Int(number)) => *number,
        Some(IntOrString::String(name)) => {
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("no container port named {name}"))
                .container_port
        }
        None => port.port,
    };
    assert_eq!(target, i32::from(listen.port()));
}

/// Every flag the manifests pass is one the binaries accept; `--insecure-listen` never.
#[test]
fn manifest_flags_are_accepted_by_the_binaries() {
    let daemon_help = help(env!("CARGO_BIN_EXE_chaos-daemon"), &["--help"]);
    let known = help_flags(&daemon_help);
    let mut unknown = BTreeSet::new();
    for (dir, objects) in [(BASE, base()), (TLS_OVERLAY, tls_overlay())] {
        let container = daemon_container(daemonset(objects));
        let args = args(container);
        let used = flags(args);
        assert!(
            !used.contains("--insecure-listen"),
            "{dir} uses --insecure-listen"
        );
        unknown.extend(used.into_iter().filter(|flag| !known.contains(*flag)));
    }
    assert!(
        unknown.is_empty(),
        "chaos-daemon --help does not know {unknown:?}; it knows {known:?}"
    );

    // The environment the DaemonSet sets is what the daemon reads (clap shows `[env: NAME=]`).
    let env = daemon_container(daemonset(base())).env.iter().flatten();
    let unread: Vec<&str> = env
        .map(|var| var.name.as_str())
        .filter(|name| !daemon_help.contains(&format!("[env: {name}=")))
        .collect();
    assert!(unread.is_empty(), "chaos-daemon reads none of {unread:?}");

    // The preStop hook's command line parses (its --help exits 0 only if it does).
    let hook = pre_stop(daemon_container(daemonset(base())));
    let mut hook_args: Vec<&str> = hook[1..].iter().map(String::as_str).collect();
    hook_args.push("--help");
    help(env!("CARGO_BIN_EXE_chaosctl"), &hook_args);
}

/// The parsing itself: a misspelled field, an unknown kind and a wrong apiVersion fail.
#[test]
fn parsing_refuses_what_kubernetes_would_not_read() {
    let misspelled =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  clusterIp: None\n";
    let err = parse_object(misspelled).expect_err("clusterIp is not a field");
    assert!(
        format!("{err:#}").contains("Service.spec.clusterIp"),
        "{err:#}"
    );

    let unknown = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n";
    let err = parse_object(unknown).expect_err("Pod is not expected here");
    assert!(format!("{err:#}").contains("unknown kind Pod"), "{err:#}");

    let wrong_version = "apiVersion: apps/v1beta2\nkind: DaemonSet\nmetadata:\n  name: x\n";
    let err = parse_object(wrong_version).expect_err("apps/v1beta2");
    assert!(format!("{err:#}").contains("apps/v1beta2"), "{err:#}");

    let stream = "# a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n";
    assert_eq!(
        parse_stream(stream, "inline").map(|o| o.len()).ok(),
        Some(2)
    );
}
