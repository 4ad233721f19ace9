//! The error every API operation returns; `api::status` maps it to a gRPC code.

/// Why a request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is wrong; `field` is its path in the request (e.g. `network.loss.percent`).
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// The target or fault named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// This node cannot do what was asked (a kernel feature is missing); the message names it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A fixed-size kernel table is full.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A guard rail refuses the target (a protected namespace the request did not allow).
    #[error("{0}")]
    PermissionDenied(String),
    /// A service the request depends on (the API server) could not be asked; try again.
    #[error("{0}")]
    Unavailable(String),
    /// The daemon failed while applying or undoing a fault; nothing was left half-applied.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<crate::targets::Error> for Error {
    fn from(err: crate::targets::Error) -> Self {
        use crate::targets::Error as E;
        match err {
            E::Invalid(msg) => match msg.split_once(": ") {
                Some((field, reason)) => Self::invalid(field, reason),
                None => Self::invalid("target", msg),
            },
            E::NotFound(msg) => Self::NotFound(msg),
            E::Io(msg) => Self::Internal(msg),
        }
    }
}

impl From<crate::kernel::Error> for Error {
    fn from(err: crate::kernel::Error) -> Self {
        match err {
            crate::kernel::Error::Full(msg) => Self::ResourceExhausted(msg),
            other => Self::Internal(chain(&other)),
        }
    }
}

/// An error and all its sources on one line: aya keeps the errno in the source.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl From<crate::kernel::shaper::Error> for Error {
    fn from(err: crate::kernel::shaper::Error) -> Self {
        if err.is_precondition() {
            Self::FailedPrecondition(err.to_string())
        } else {
            Self::Internal(chain(&err))
        }
    }
}

impl From<crate::journal::Error> for Error {
    fn from(err: crate::journal::Error) -> Self {
        Self::Internal(err.to_string())
    }
}

impl From<crate::cgroupfs::Error> for Error {
    fn from(err: crate::cgroupfs::Error) -> Self {
        use crate::cgroupfs::Error as E;
        match err {
            E::NoProcess(msg) | E::Unsupported(msg) => Self::FailedPrecondition(msg),
            E::Io { .. } => Self::Internal(err.to_string()),
        }
    }
}

impl From<crate::workers::Error> for Error {
    fn from(err: crate::workers::Error) -> Self {
        Self::Internal(err.to_string())
    }
}

impl From<crate::pods::Error> for Error {
    fn from(err: crate::pods::Error) -> Self {
        use crate::pods::Error as E;
        match err {
            E::Invalid(msg) => Self::invalid("target", msg.trim_start_matches("target: ")),
            E::NotFound(msg) => Self::NotFound(msg),
            E::Protected(msg) => Self::PermissionDenied(msg),
            E::Guard(msg) | E::NoCluster(msg) => Self::FailedPrecondition(msg),
            E::Api { .. } => Self::Unavailable(chain(&err)),
        }
    }
}
