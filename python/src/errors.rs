//! The package's one Rust error type, [`ClientError`], and how it becomes a Python exception.
//!
//! Every failure (a gRPC status from a node, a transport failure, a bad setting) is
//! classified into an [`ErrorKind`]; the Python classes themselves live in
//! `mcp_rust/errors.py`, whose `_from_native` picks the subclass for a kind. Keeping the
//! class hierarchy in Python lets the exceptions subclass both `MCPError` and the matching
//! builtin (`TimeoutError`, `ConnectionError`, `ValueError`, ...).

use std::fmt;

use mcp_proto::contract::{self, ErrorKind as WireKind};
use pyo3::prelude::*;
use pyo3::types::PyAnyMethods;
use tonic::{Code, Status};

/// What went wrong, in the categories a caller acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A setting or a server spec is invalid (Python `ConfigError`).
    Config,
    /// No server of that name (`ServerNotFoundError`).
    ServerNotFound,
    /// A write without (or with a wrong) admin token (`UnauthorizedError`).
    Unauthorized,
    /// No node reachable, no leader elected in time, or a write not confirmed
    /// (`ClusterUnavailableError`).
    ClusterUnavailable,
    /// Every instance's circuit breaker is open (`CircuitBreakerOpenError`).
    CircuitOpen,
    /// No answer in time (`MCPTimeoutError`).
    Timeout,
    /// The connection to a server or a node failed (`MCPConnectionError`).
    Connection,
    /// The server has no instance able to take requests (`NoHealthyInstanceError`).
    NoHealthyInstance,
    /// Every instance is at its in-flight limit (`SaturatedError`).
    Saturated,
    /// The MCP server answered with a JSON-RPC error (`MCPServerError`).
    ServerError,
    /// The request is not valid JSON-RPC (`InvalidRequestError`).
    InvalidRequest,
    /// A compare-and-set deploy found another revision (`RevisionMismatchError`).
    RevisionMismatch,
    /// A membership change was refused (`MembershipError`).
    Membership,
    /// The manager was stopped or never started (`ManagerStoppedError`).
    Stopped,
    /// Anything else (`MCPError`).
    Internal,
}

impl ErrorKind {
    /// The name `mcp_rust.errors._from_native` maps to a class.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::ServerNotFound => "server_not_found",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::ClusterUnavailable => "cluster_unavailable",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::NoHealthyInstance => "no_healthy_instance",
            ErrorKind::Saturated => "saturated",
            ErrorKind::ServerError => "server_error",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::RevisionMismatch => "revision_mismatch",
            ErrorKind::Membership => "membership",
            ErrorKind::Stopped => "stopped",
            ErrorKind::Internal => "internal",
        }
    }
}

impl ErrorKind {
    /// The exception for each category a node puts on a status: the one place that maps
    /// the wire contract to Python (a new category fails to compile until it is mapped).
    pub fn from_wire(wire: WireKind) -> Self {
        match wire {
            WireKind::InvalidSpec | WireKind::InvalidArgument | WireKind::Config => {
                ErrorKind::Config
            }
            WireKind::NotFound | WireKind::UnknownServer => ErrorKind::ServerNotFound,
            WireKind::Unauthorized => ErrorKind::Unauthorized,
            WireKind::Unavailable => ErrorKind::ClusterUnavailable,
            WireKind::Membership => ErrorKind::Membership,
            WireKind::RevisionMismatch => ErrorKind::RevisionMismatch,
            WireKind::CircuitOpen => ErrorKind::CircuitOpen,
            WireKind::Timeout => ErrorKind::Timeout,
            WireKind::Connection => ErrorKind::Connection,
            WireKind::NoHealthyInstance => ErrorKind::NoHealthyInstance,
            WireKind::Saturated => ErrorKind::Saturated,
            WireKind::ServerError => ErrorKind::ServerError,
            WireKind::InvalidRequest => ErrorKind::InvalidRequest,
            WireKind::Internal => ErrorKind::Internal,
        }
    }
}

/// A JSON-RPC `error` object from an MCP server, kept intact.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonRpcError {
    /// `error.code`.
    pub code: i64,
    /// `error.message`.
    pub message: String,
    /// The whole object as JSON text (so `data` reaches Python unchanged).
    pub json: String,
}

/// Any failure of the package.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ClientError {
    /// Its category.
    pub kind: ErrorKind,
    /// A sentence for people.
    pub message: String,
    /// The setting or spec field at fault, for `Config` errors.
    pub field: Option<String>,
    /// The server's JSON-RPC error, for `ServerError`.
    pub jsonrpc: Option<JsonRpcError>,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ClientError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            field: None,
            jsonrpc: None,
        }
    }

    /// A configuration error about `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        Self {
            kind: ErrorKind::Config,
            message: message.into(),
            field: Some(field),
            jsonrpc: None,
        }
    }

    /// Classifies a gRPC status from a node: by the `x-mcpd-error` category when the node
    /// set one, otherwise by the status code (a transport failure has no category).
    pub fn from_status(status: &Status) -> Self {
        let message = status.message().to_owned();
        let kind = match WireKind::of(status) {
            Some(wire) => ErrorKind::from_wire(wire),
            None => match status.code() {
                Code::Unauthenticated | Code::PermissionDenied => ErrorKind::Unauthorized,
                Code::DeadlineExceeded => ErrorKind::Timeout,
                Code::NotFound => ErrorKind::ServerNotFound,
                Code::InvalidArgument => ErrorKind::Config,
                Code::Unavailable | Code::Cancelled | Code::Unknown => ErrorKind::Connection,
                _ => ErrorKind::Internal,
            },
        };
        let field = (kind == ErrorKind::Config)
            .then(|| contract::field_of(status))
            .flatten();
        let jsonrpc = (kind == ErrorKind::ServerError)
            .then(|| jsonrpc_error(status))
            .flatten();
        Self {
            kind,
            message,
            field,
            jsonrpc,
        }
    }

    /// The Python exception for this error (`mcp_rust.errors._from_native`).
    pub fn to_pyerr(&self, py: Python<'_>) -> PyErr {
        match self.build_exception(py) {
            Ok(err) => err,
            // The package's Python half is missing (the native module imported alone):
            // still raise something that says what happened.
            Err(import_error) => {
                let err = pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "[{}] {}",
                    self.kind.as_str(),
                    self.message
                ));
                err.set_cause(py, Some(import_error));
                err
            }
        }
    }

    fn build_exception(&self, py: Python<'_>) -> PyResult<PyErr> {
        let factory = py.import("mcp_rust.errors")?.getattr("_from_native")?;
        let (code, rpc_message, rpc_json) = match &self.jsonrpc {
            Some(e) => (Some(e.code), Some(e.message.clone()), Some(e.json.clone())),
            None => (None, None, None),
        };
        let exception = factory.call1((
            self.kind.as_str(),
            self.message.as_str(),
            self.field.as_deref(),
            code,
            rpc_message,
            rpc_json,
        ))?;
        Ok(PyErr::from_value(exception))
    }

    /// Converts with the GIL taken for the moment it needs (futures finish without it).
    pub fn into_pyerr(self) -> PyErr {
        Python::attach(|py| self.to_pyerr(py))
    }
}

impl From<ClientError> for PyErr {
    fn from(err: ClientError) -> Self {
        err.into_pyerr()
    }
}

fn jsonrpc_error(status: &Status) -> Option<JsonRpcError> {
    let bytes = status
        .metadata()
        .get_bin(mcp_cluster::dataplane::error::JSONRPC_ERROR_METADATA)?
        .to_bytes()
        .ok()?;
    let json = String::from_utf8(bytes.to_vec()).ok()?;
    let value: serde_json::Value = serde_json::from_str(&json).ok()?;
    Some(JsonRpcError {
        code: value.get("code").and_then(serde_json::Value::as_i64)?,
        message: value
            .get("message")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn status_with(code: Code, category: &'static str, message: &str) -> Status {
        let mut status = Status::new(code, message);
        status
            .metadata_mut()
            .insert(mcp_proto::ERROR_KIND, MetadataValue::from_static(category));
        status
    }

    #[test]
    fn categories_map_to_kinds() {
        let cases = [
            ("circuit_open", ErrorKind::CircuitOpen),
            ("timeout", ErrorKind::Timeout),
            ("connection", ErrorKind::Connection),
            ("unknown_server", ErrorKind::ServerNotFound),
            ("not_found", ErrorKind::ServerNotFound),
            ("unauthorized", ErrorKind::Unauthorized),
            ("unavailable", ErrorKind::ClusterUnavailable),
            ("saturated", ErrorKind::Saturated),
        ];
        for (category, kind) in cases {
            let err = ClientError::from_status(&status_with(Code::Unavailable, category, "x"));
            assert_eq!(err.kind, kind, "{category}");
        }
    }

    #[test]
    fn spec_errors_name_their_field() {
        // The field travels as metadata: the message is for people and may change.
        let status = contract::with_field(
            WireKind::InvalidSpec.status("invalid server spec: docker is not supported"),
            "type",
        );
        let err = ClientError::from_status(&status);
        assert_eq!(err.kind, ErrorKind::Config);
        assert_eq!(err.field.as_deref(), Some("type"));
    }

    #[test]
    fn server_errors_keep_the_jsonrpc_object() {
        let mut status = status_with(Code::Aborted, "server_error", "server error -32000: boom");
        status.metadata_mut().insert_bin(
            mcp_cluster::dataplane::error::JSONRPC_ERROR_METADATA,
            tonic::metadata::MetadataValue::from_bytes(
                br#"{"code":-32000,"message":"boom","data":{"x":1}}"#,
            ),
        );
        let err = ClientError::from_status(&status);
        let rpc = err.jsonrpc.expect("jsonrpc error kept");
        assert_eq!(rpc.code, -32000);
        assert_eq!(rpc.message, "boom");
        assert!(rpc.json.contains("\"data\""));
    }

    #[test]
    fn transport_failures_are_connection_errors() {
        let err = ClientError::from_status(&Status::unavailable("tcp connect error"));
        assert_eq!(err.kind, ErrorKind::Connection);
    }
}
