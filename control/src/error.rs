//! The one error every front end receives: a sentence, and a [`ErrorKind`] that the CLI maps to
//! its exit code and the server to an HTTP status. Rendered once, by the front end.

use hoist_adapters::target::TargetError;
use hoist_engine::decide::DomainError;
use hoist_engine::service::ExecuteError;
use hoist_engine::store::StoreError;
use hoist_engine::ValidationError;
use hoist_projections::store::ProjectionError;

/// What kind of failure, for the front end to answer with (CLI.md's exit codes in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Invalid input, unknown thing, locked env, policy [1].
    Rejected,
    /// The app named does not exist [1, like any rejection; HTTP 404].
    NotFound,
    /// A conflict that survived retries [3].
    Conflict,
    /// The backend could not be reached or held [4].
    Unavailable,
    /// The principal lacks the permission [5].
    Denied,
    /// No identity: a missing, malformed, unknown, revoked or expired token [5; HTTP 401].
    Unauthenticated,
    /// The store holds what it cannot use (a log damaged in the middle) [4]: not the input's
    /// fault, and not something a retry fixes.
    Corrupt,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl std::fmt::Display) -> Self {
        Error {
            kind,
            message: message.to_string(),
        }
    }

    pub fn rejected(message: impl std::fmt::Display) -> Self {
        Error::new(ErrorKind::Rejected, message)
    }

    pub fn unavailable(message: impl std::fmt::Display) -> Self {
        Error::new(ErrorKind::Unavailable, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<ValidationError> for Error {
    fn from(e: ValidationError) -> Self {
        Error::rejected(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        let kind = match e {
            StoreError::Conflict { .. } => ErrorKind::Conflict,
            StoreError::Busy { .. } | StoreError::Unavailable(_) => ErrorKind::Unavailable,
            StoreError::Corrupt(_) => ErrorKind::Corrupt,
            StoreError::Denied(_) => ErrorKind::Denied,
            StoreError::Refused(_) | StoreError::TooLarge(_) => ErrorKind::Rejected,
        };
        Error::new(kind, e)
    }
}

impl From<ExecuteError> for Error {
    fn from(e: ExecuteError) -> Self {
        match e {
            ExecuteError::Store(e) => e.into(),
            ExecuteError::Conflict { .. } => Error::new(ErrorKind::Conflict, e),
            ExecuteError::Denied(_) => Error::new(ErrorKind::Denied, e),
            ExecuteError::Domain(DomainError::UnknownApp(_)) => Error::new(ErrorKind::NotFound, e),
            ExecuteError::Domain(_) | ExecuteError::Codec { .. } => Error::rejected(e),
        }
    }
}

impl From<ProjectionError> for Error {
    fn from(e: ProjectionError) -> Self {
        match e {
            ProjectionError::Store(e) => e.into(),
            ProjectionError::Codec { .. } => Error::rejected(e),
            ProjectionError::Io { .. }
            | ProjectionError::Damaged { .. }
            | ProjectionError::DiskFull { .. } => Error::unavailable(e),
        }
    }
}

impl From<TargetError> for Error {
    fn from(e: TargetError) -> Self {
        match e {
            TargetError::Rejected(_) => Error::rejected(e),
            TargetError::Unreachable(_) => Error::unavailable(e),
        }
    }
}

impl From<hoist_engine::Denied> for Error {
    fn from(e: hoist_engine::Denied) -> Self {
        Error::new(ErrorKind::Denied, e)
    }
}
