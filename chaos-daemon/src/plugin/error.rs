//! The errors `kubectl chaos` reports, and the exit code each one maps to (chaosctl's codes).

use crate::cli::error::{
    CliError, EXIT_FAILED_PRECONDITION, EXIT_FAILURE, EXIT_INVALID_ARGUMENT, EXIT_NOT_FOUND,
    EXIT_PERMISSION_DENIED,
};
use crate::cli::exit::Failure;

/// Everything that can go wrong in a `kubectl chaos` command after its flags were parsed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// A daemon call, a TLS file or the output failed, as chaosctl reports it (boxed: a
    /// gRPC status is large, and every result here carries this type).
    #[error(transparent)]
    Cli(Box<CliError>),
    /// The kubeconfig file or context could not be loaded.
    #[error("load the kubeconfig {what}: {source}")]
    Kubeconfig {
        /// Which file or context, e.g. "--kubeconfig /tmp/k (context staging)".
        what: String,
        /// kube's reason.
        source: kube::config::KubeconfigError,
    },
    /// Neither a kubeconfig nor an in-cluster service account was found.
    #[error("find a cluster: {0} (set KUBECONFIG, or pass --kubeconfig or --context)")]
    NoConfig(kube::config::InferConfigError),
    /// The API server client could not be built from the configuration.
    #[error("build the API server client: {0}")]
    Client(kube::Error),
    /// A request to the API server failed.
    #[error("{what}: {}", api_reason(.source))]
    Api {
        /// The request, e.g. "list pods in db with labels app=postgres".
        what: String,
        /// kube's error; an API status carries the HTTP code.
        source: kube::Error,
    },
    /// A flag's value cannot be used.
    #[error("{flag}: {reason}")]
    Argument {
        /// The flag, e.g. "POD".
        flag: &'static str,
        /// Why, and what is expected.
        reason: String,
    },
    /// The pod named does not exist.
    #[error("pod {namespace}/{name} not found (get pods/{name} in namespace {namespace})")]
    PodNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The pods matched include none a daemon could act on.
    #[error("{0}")]
    NothingToTarget(String),
    /// The target's namespace is protected and the request does not allow it.
    #[error(
        "namespace {namespace} is protected (kube-system and the daemons' own); \
         --allow-protected {namespace} targets it anyway"
    )]
    Protected {
        /// The protected namespace.
        namespace: String,
    },
    /// A guard rail (--max-targets, --max-percent) refuses the fault cluster-wide; nothing
    /// was sent.
    #[error("{0}; nothing was sent")]
    Guard(String),
    /// Pods run on nodes without a daemon pod; nothing was sent.
    #[error(
        "no faultline daemon on node {}: no pod in namespace {namespace} with labels {selector} \
         runs there (see --daemon-namespace, --daemon-selector); nothing was sent",
        .nodes.join(", node ")
    )]
    NoDaemon {
        /// The nodes without one.
        nodes: Vec<String>,
        /// The daemons' namespace searched.
        namespace: String,
        /// The daemons' label selector.
        selector: String,
    },
    /// No daemon pod runs anywhere.
    #[error(
        "no running faultline daemon pod in namespace {namespace} with labels {selector} \
         (is the DaemonSet installed? see --daemon-namespace, --daemon-selector)"
    )]
    NoDaemons {
        /// The daemons' namespace searched.
        namespace: String,
        /// The daemons' label selector.
        selector: String,
    },
    /// A node's daemon could not be reached through its pod.
    #[error(
        "cannot reach the faultline daemon of node {node} (pod {pod}, port {port}, by \
         port-forward): {cause} (--daemon-port sets the port; --tls-ca, --tls-cert and \
         --tls-key the TLS files)"
    )]
    Unreachable {
        /// The daemon's node.
        node: String,
        /// The daemon pod, namespace/name.
        pod: String,
        /// The port forwarded.
        port: u16,
        /// The innermost cause, with the port-forward's own error when it sent one.
        cause: String,
    },
    /// A node's daemon refused the fault; what other nodes had armed was cancelled.
    #[error("node {node} refused: {source}{}", undo_note(.undone))]
    Refused {
        /// The refusing node.
        node: String,
        /// The daemon's answer.
        source: Box<CliError>,
        /// What became of each fault other nodes had armed, one line each.
        undone: Vec<String>,
    },
    /// No daemon holds the fault id.
    #[error("fault {id} not found on any of the {daemons} faultline daemons")]
    FaultNotFound {
        /// The id asked for.
        id: String,
        /// How many daemons answered.
        daemons: usize,
    },
    /// Some daemons failed; what the others answered was printed.
    #[error("{} daemon(s) failed: {}", .0.len(), .0.join("; "))]
    Partial(Vec<String>),
    /// An answer could not be encoded as YAML.
    #[error("cannot encode YAML: {0}")]
    Yaml(String),
}

impl PluginError {
    /// The process exit code, as documented in `kubectl chaos --help`.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Cli(err) | Self::Refused { source: err, .. } => err.exit_code(),
            Self::Api { source, .. } => match api_code(source) {
                Some(404) => EXIT_NOT_FOUND,
                Some(401 | 403) => EXIT_PERMISSION_DENIED,
                _ => EXIT_FAILURE,
            },
            Self::Argument { .. } => EXIT_INVALID_ARGUMENT,
            Self::PodNotFound { .. } | Self::NothingToTarget(_) | Self::FaultNotFound { .. } => {
                EXIT_NOT_FOUND
            }
            Self::Protected { .. } => EXIT_PERMISSION_DENIED,
            Self::Guard(_) | Self::NoDaemon { .. } | Self::NoDaemons { .. } => {
                EXIT_FAILED_PRECONDITION
            }
            Self::Kubeconfig { .. }
            | Self::NoConfig(_)
            | Self::Client(_)
            | Self::Unreachable { .. }
            | Self::Partial(_)
            | Self::Yaml(_) => EXIT_FAILURE,
        }
    }

    /// Whether this is a closed standard output (`kubectl chaos list | head`): the reader
    /// has what it wanted, which is no failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Cli(err) if err.is_broken_pipe())
    }
}

impl Failure for PluginError {
    fn exit_code(&self) -> u8 {
        PluginError::exit_code(self)
    }

    fn is_broken_pipe(&self) -> bool {
        PluginError::is_broken_pipe(self)
    }
}

impl From<CliError> for PluginError {
    fn from(err: CliError) -> Self {
        Self::Cli(Box::new(err))
    }
}

impl From<std::io::Error> for PluginError {
    fn from(err: std::io::Error) -> Self {
        Self::from(CliError::Output(err))
    }
}

/// The HTTP code of an API server status, if the error is one.
fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// An API server error as a person reads it: the status message and code, not the debug
/// dump kube's `Display` appends.
fn api_reason(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if !status.message.is_empty() => {
            format!("{} (HTTP {})", status.message, status.code)
        }
        other => {
            let mut message = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                message = format!("{message}: {cause}");
                source = cause.source();
            }
            message
        }
    }
}

/// The undo report of a refusal: nothing, or each other node's fault and its fate.
fn undo_note(undone: &[String]) -> String {
    if undone.is_empty() {
        String::new()
    } else {
        format!("; {}", undone.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let api = |code: u16| PluginError::Api {
            what: "list pods".into(),
            source: kube::Error::Api(Box::new(
                kube::core::Status::failure("no", "Forbidden").with_code(code),
            )),
        };
        assert_eq!(api(403).exit_code(), EXIT_PERMISSION_DENIED);
        assert_eq!(api(404).exit_code(), EXIT_NOT_FOUND);
        assert_eq!(api(500).exit_code(), EXIT_FAILURE);
        assert_eq!(api(403).to_string(), "list pods: no (HTTP 403)");
        let refused = PluginError::Refused {
            node: "node-b".into(),
            source: Box::new(CliError::from(tonic::Status::failed_precondition("cannot"))),
            undone: vec!["node-a: cancelled f-1".into()],
        };
        assert_eq!(refused.exit_code(), EXIT_FAILED_PRECONDITION);
        assert_eq!(
            refused.to_string(),
            "node node-b refused: cannot (FAILED_PRECONDITION); node-a: cancelled f-1"
        );
        assert_eq!(
            PluginError::Guard("too many".into()).exit_code(),
            EXIT_FAILED_PRECONDITION
        );
        let none = PluginError::NoDaemon {
            nodes: vec!["a".into(), "b".into()],
            namespace: "faultline".into(),
            selector: "x=y".into(),
        };
        assert!(none
            .to_string()
            .starts_with("no faultline daemon on node a, node b:"));
    }
}
