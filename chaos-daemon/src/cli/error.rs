//! The errors `chaosctl` reports, and the exit code each one maps to.

use std::path::PathBuf;

use tonic::Code;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for any failure without a more specific code (daemon unreachable, output failed…).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a rejected argument, by `chaosctl` itself or by the daemon (INVALID_ARGUMENT).
pub const EXIT_INVALID_ARGUMENT: u8 = 2;
/// Exit code for an unknown fault id or target (NOT_FOUND).
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code for a fault this node's kernel cannot do (FAILED_PRECONDITION).
pub const EXIT_FAILED_PRECONDITION: u8 = 4;
/// Exit code for a request the daemon or the API server does not allow (PERMISSION_DENIED,
/// e.g. a protected namespace).
pub const EXIT_PERMISSION_DENIED: u8 = 5;

/// Everything that can go wrong in a `chaosctl` command after its flags were parsed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The daemon's socket could not be reached: missing, refused, or not a socket.
    #[error(
        "cannot reach the daemon at {}: {cause} (is chaos-daemon running? --socket sets the path)",
        socket.display()
    )]
    Connect {
        /// The socket path that was tried.
        socket: PathBuf,
        /// The innermost cause, e.g. "No such file or directory (os error 2)".
        cause: String,
    },
    /// The daemon could not be reached over TCP or a caller's stream: refused, TLS
    /// refused by either side, or no answer.
    #[error(
        "cannot reach the daemon at {server}: {cause} (--server sets the address; \
         --tls-ca, --tls-cert and --tls-key the TLS files)"
    )]
    ConnectServer {
        /// The daemon tried: the `--server` URL, or what the caller named it.
        server: String,
        /// The innermost cause, e.g. "received fatal alert: CertificateRequired".
        cause: String,
    },
    /// A TLS file or the server name for `--server` cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::client::Error),
    /// The daemon answered a call with a gRPC error status.
    #[error("{} ({})", status_line(.0), code_name(.0.code()))]
    Rpc(#[from] tonic::Status),
    /// A flag's value was well-formed but cannot be put into a request
    /// (e.g. `--start-at +5s` overflowing the clock).
    #[error("{flag}: {reason}")]
    Argument {
        /// The flag, e.g. "--start-at".
        flag: &'static str,
        /// Why it cannot be represented.
        reason: String,
    },
    /// Writing to standard output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// A response could not be encoded as JSON.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl CliError {
    /// The process exit code for this error, as documented in `chaosctl --help`.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Rpc(status) => match status.code() {
                Code::InvalidArgument => EXIT_INVALID_ARGUMENT,
                Code::NotFound => EXIT_NOT_FOUND,
                Code::FailedPrecondition => EXIT_FAILED_PRECONDITION,
                Code::PermissionDenied => EXIT_PERMISSION_DENIED,
                _ => EXIT_FAILURE,
            },
            Self::Argument { .. } => EXIT_INVALID_ARGUMENT,
            Self::Connect { .. }
            | Self::ConnectServer { .. }
            | Self::Tls(_)
            | Self::Output(_)
            | Self::Json(_) => EXIT_FAILURE,
        }
    }

    /// Whether this is a closed standard output (e.g. `chaosctl watch | head`), which
    /// is how a reader says it has seen enough rather than a failure worth reporting.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// The status message on one line; an empty message falls back to the code's description
/// so the user never sees a bare "error:  (UNKNOWN)".
fn status_line(status: &tonic::Status) -> String {
    let message = status.message().trim();
    if message.is_empty() {
        return status.code().description().to_owned();
    }
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical gRPC name of a status code (e.g. "INVALID_ARGUMENT"), as the daemon's
/// documentation and other gRPC tools spell it; `Code`'s `Debug` is CamelCase.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Turns a clap parse error into the single line `chaosctl` prints: the error's first
/// paragraph and its tip, if any, then where to read more. Clap's own rendering spans
/// several lines with the usage, which buries the one fact the user needs in logs.
/// `command` is the subcommand path typed, e.g. "chaosctl inject network" (see
/// [`command_path`](super::args::command_path)).
pub fn clap_error_line(err: &clap::Error, command: &str) -> String {
    let rendered = err.render().to_string();
    let mut paragraphs = rendered
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty());
    let mut line = paragraphs.next().unwrap_or_default();
    if let Some(tip) = paragraphs.find(|p| p.starts_with("tip:")) {
        line.push_str(&format!(" ({tip})"));
    }
    if !line.starts_with("error:") {
        line.insert_str(0, "error: ");
    }
    line.push_str(&format!("; see '{command} --help'"));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_error_is_one_line_with_code_name() {
        let err = CliError::from(tonic::Status::invalid_argument(
            "loss.percent: must be in (0, 100], got 150",
        ));
        assert_eq!(
            err.to_string(),
            "loss.percent: must be in (0, 100], got 150 (INVALID_ARGUMENT)"
        );
        assert_eq!(err.exit_code(), EXIT_INVALID_ARGUMENT);
    }

    #[test]
    fn multi_line_status_is_flattened() {
        let err = CliError::from(tonic::Status::internal("a\nb"));
        assert_eq!(err.to_string(), "a b (INTERNAL)");
        assert_eq!(err.exit_code(), EXIT_FAILURE);
    }

    #[test]
    fn exit_codes_follow_status_codes() {
        assert_eq!(
            CliError::from(tonic::Status::not_found("x")).exit_code(),
            EXIT_NOT_FOUND
        );
        assert_eq!(
            CliError::from(tonic::Status::failed_precondition("x")).exit_code(),
            EXIT_FAILED_PRECONDITION
        );
        assert_eq!(
            CliError::from(tonic::Status::unavailable("x")).exit_code(),
            EXIT_FAILURE
        );
        assert_eq!(
            CliError::from(tonic::Status::permission_denied("x")).exit_code(),
            EXIT_PERMISSION_DENIED
        );
    }

    #[test]
    fn connect_error_names_socket_and_hint() {
        let err = CliError::Connect {
            socket: PathBuf::from("/run/faultline/faultline.sock"),
            cause: "No such file or directory (os error 2)".into(),
        };
        assert_eq!(
            err.to_string(),
            "cannot reach the daemon at /run/faultline/faultline.sock: No such file or \
             directory (os error 2) (is chaos-daemon running? --socket sets the path)"
        );
    }
}
