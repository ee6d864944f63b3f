//! Why a method the gateway relays failed, and the JSON-RPC error the client gets.

use serde_json::{json, Value};

use super::cursor::CursorError;
use super::protocol;
use crate::dataplane::ExecuteError;

/// The 2025-11-25 spec's "resource not found" error code.
pub const RESOURCE_NOT_FOUND: i64 = -32002;

/// Why a relayed method failed.
#[derive(Debug, thiserror::Error)]
pub enum MethodError {
    /// A required parameter is absent or of the wrong type.
    #[error("params.{0} is required")]
    MissingParam(&'static str),
    /// Parameters that make no sense.
    #[error("{0}")]
    InvalidParams(String),
    /// A cursor this gateway did not hand out for this list.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// No server serves this exposed name.
    #[error("unknown {kind} {name:?}")]
    UnknownName {
        /// What was named (tool, prompt).
        kind: &'static str,
        /// The exposed name.
        name: String,
    },
    /// No server serves this exposed URI.
    #[error("resource not found: {0}")]
    ResourceNotFound(String),
    /// The server answered with this JSON-RPC error object, passed on as it is.
    #[error("the server answered with an error: {0}")]
    Upstream(Value),
    /// The cluster could not run the request on `target`.
    #[error("{target}: {error}")]
    Execute {
        /// The server (or exposed name) asked.
        target: String,
        /// Why.
        error: ExecuteError,
    },
}

impl MethodError {
    /// The JSON-RPC error response to request `id`.
    pub fn response(&self, id: Value) -> Value {
        match self {
            MethodError::MissingParam(_)
            | MethodError::InvalidParams(_)
            | MethodError::Cursor(_) => {
                protocol::error(id, protocol::INVALID_PARAMS, self.to_string(), None)
            }
            MethodError::UnknownName { kind, name } => protocol::error(
                id,
                protocol::INVALID_PARAMS,
                self.to_string(),
                Some(json!({ *kind: name })),
            ),
            MethodError::ResourceNotFound(uri) => protocol::error(
                id,
                RESOURCE_NOT_FOUND,
                self.to_string(),
                Some(json!({"uri": uri})),
            ),
            MethodError::Upstream(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
            MethodError::Execute { target, error } => execute_error(id, target, error),
        }
    }
}

/// The JSON-RPC error for a request the cluster could not run on `target`.
pub fn execute_error(id: Value, target: &str, error: &ExecuteError) -> Value {
    match error {
        ExecuteError::ServerError { error, .. } => {
            json!({"jsonrpc": "2.0", "id": id, "error": error})
        }
        // Guards (issue 16): typed, with the retry-after of a limit.
        ExecuteError::Refused(refusal) => protocol::error(
            id,
            crate::guards::jsonrpc_code(refusal),
            format!("{target:?}: {refusal}"),
            Some(crate::guards::jsonrpc_data(refusal)),
        ),
        ExecuteError::UnknownServer(_) => protocol::error(
            id,
            protocol::INVALID_PARAMS,
            format!("unknown {target:?} (its server is no longer registered)"),
            None,
        ),
        ExecuteError::InvalidRequest(why) => protocol::error(
            id,
            protocol::INVALID_PARAMS,
            format!("{target:?}: {why}"),
            None,
        ),
        other => protocol::error(
            id,
            protocol::INTERNAL_ERROR,
            format!("{target:?}: {other}"),
            Some(json!({"kind": other.kind().as_str()})),
        ),
    }
}
