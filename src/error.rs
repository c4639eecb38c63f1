//! The one place errors become an exit code and one line on stderr (CLI.md: 1 rejected,
//! 2 usage, 3 conflict that survived retries, 4 backend unavailable, 5 not allowed).

use hoist_engine::service::ExecuteError;
use hoist_engine::store::StoreError;
use hoist_engine::ValidationError;
use hoist_projections::store::ProjectionError;

#[derive(Debug)]
pub enum CliError {
    /// Invalid input, unknown thing, locked env, policy: exit 1.
    Rejected(String),
    /// A conflict that survived retries: exit 3.
    Conflict(String),
    /// The backend could not be reached or held: exit 4.
    Unavailable(String),
    /// The principal lacks the permission: exit 5.
    Denied(String),
}

impl CliError {
    pub fn rejected(message: impl std::fmt::Display) -> Self {
        CliError::Rejected(message.to_string())
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Rejected(_) => 1,
            CliError::Conflict(_) => 3,
            CliError::Unavailable(_) => 4,
            CliError::Denied(_) => 5,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            CliError::Rejected(m)
            | CliError::Conflict(m)
            | CliError::Unavailable(m)
            | CliError::Denied(m) => m,
        }
    }
}

impl From<ValidationError> for CliError {
    fn from(e: ValidationError) -> Self {
        CliError::rejected(e)
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => CliError::Conflict(e.to_string()),
            // A corrupt store is not the user's input being wrong: like an unreachable one, it
            // is a backend that cannot serve the command.
            StoreError::Busy { .. } | StoreError::Unavailable(_) | StoreError::Corrupt(_) => {
                CliError::Unavailable(e.to_string())
            }
            StoreError::Refused(_) | StoreError::TooLarge(_) => CliError::rejected(e),
        }
    }
}

impl From<ExecuteError> for CliError {
    fn from(e: ExecuteError) -> Self {
        match e {
            ExecuteError::Store(e) => e.into(),
            ExecuteError::Conflict { .. } => CliError::Conflict(e.to_string()),
            ExecuteError::Denied(_) => CliError::Denied(e.to_string()),
            ExecuteError::Domain(_) | ExecuteError::Codec { .. } => CliError::rejected(e),
        }
    }
}

impl From<ProjectionError> for CliError {
    fn from(e: ProjectionError) -> Self {
        match e {
            ProjectionError::Store(e) => e.into(),
            ProjectionError::Codec { .. } => CliError::rejected(e),
            ProjectionError::Io { .. }
            | ProjectionError::Damaged { .. }
            | ProjectionError::DiskFull { .. } => CliError::Unavailable(e.to_string()),
        }
    }
}
