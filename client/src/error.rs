//! The client's one error type: what went wrong, in the categories a caller acts on.
//!
//! A node's answer is classified by its typed `x-mcpd-error` category
//! ([`mcp_proto::contract::ErrorKind`], mapped in [`ErrorKind::from_wire`], the one place
//! that does); a status without one is a transport failure, classified by its code.

use std::fmt;

use mcp_proto::contract::{self, ErrorKind as WireKind};
use tonic::{Code, Status};

/// What went wrong, in the categories a caller acts on. The words ([`ErrorKind::as_str`])
/// are what the Python package maps to its exception classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A setting or a server spec is invalid.
    Config,
    /// No server of that name.
    ServerNotFound,
    /// A write, tool call or Raft RPC without (or with a wrong) admin token.
    Unauthorized,
    /// No node reachable, no leader elected in time, or a write not confirmed.
    ClusterUnavailable,
    /// Every instance's circuit breaker is open.
    CircuitOpen,
    /// No answer in time.
    Timeout,
    /// The connection to a server or a node failed.
    Connection,
    /// The server has no instance able to take requests.
    NoHealthyInstance,
    /// Every instance is at its in-flight limit.
    Saturated,
    /// The MCP server answered with a JSON-RPC error.
    ServerError,
    /// The request is not valid JSON-RPC.
    InvalidRequest,
    /// A compare-and-set deploy found another revision.
    RevisionMismatch,
    /// A membership change was refused.
    Membership,
    /// The client (or the manager owning it) was stopped or never started.
    Stopped,
    /// Anything else.
    Internal,
    /// A rate limit or concurrency quota refused the call ([`Error::retry_after`] says
    /// when to try again).
    RateLimited,
    /// The tool is withheld by pinning until an operator approves its definition.
    ToolWithheld,
}

impl ErrorKind {
    /// The category's word (`mcp_rust.errors._from_native` maps it to a class).
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
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::ToolWithheld => "tool_withheld",
        }
    }

    /// The caller's category for each category a node puts on a status (a new wire
    /// category fails to compile until it is mapped here).
    pub fn from_wire(wire: WireKind) -> Self {
        match wire {
            WireKind::InvalidSpec | WireKind::InvalidArgument | WireKind::Config => {
                ErrorKind::Config
            }
            WireKind::NotFound | WireKind::UnknownServer => ErrorKind::ServerNotFound,
            WireKind::Unauthorized | WireKind::Forbidden => ErrorKind::Unauthorized,
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
            WireKind::RateLimited => ErrorKind::RateLimited,
            WireKind::ToolWithheld => ErrorKind::ToolWithheld,
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
    /// The whole object as JSON text (so `data` reaches the caller unchanged).
    pub json: String,
}

/// Any failure of a client operation.
#[derive(Debug, Clone, thiserror::Error)]
pub struct Error {
    /// Its category.
    pub kind: ErrorKind,
    /// A sentence for people.
    pub message: String,
    /// The setting or spec field at fault, for `Config` errors.
    pub field: Option<String>,
    /// The server's JSON-RPC error, for `ServerError`.
    pub jsonrpc: Option<JsonRpcError>,
    /// When to try again, in milliseconds, for `RateLimited` (a `u32` keeps the error
    /// small: it travels in every `Result` of the client).
    pub retry_after_ms: Option<u32>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            field: None,
            jsonrpc: None,
            retry_after_ms: None,
        }
    }

    /// A configuration error about `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message).with_field(field)
    }

    /// The same error, naming `field` as the one at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Classifies a gRPC status from a node: by its `x-mcpd-error` category when the node
    /// set one, otherwise by the status code (a transport failure has no category).
    pub fn from_status(status: &Status) -> Self {
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
            message: status.message().to_owned(),
            field,
            jsonrpc,
            retry_after_ms: contract::retry_after_of(status)
                .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
        }
    }
}

fn jsonrpc_error(status: &Status) -> Option<JsonRpcError> {
    let bytes = status
        .metadata()
        .get_bin(mcp_proto::JSONRPC_ERROR)?
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

    #[test]
    fn categories_map_to_kinds() {
        let cases = [
            (WireKind::CircuitOpen, ErrorKind::CircuitOpen),
            (WireKind::Timeout, ErrorKind::Timeout),
            (WireKind::Connection, ErrorKind::Connection),
            (WireKind::UnknownServer, ErrorKind::ServerNotFound),
            (WireKind::NotFound, ErrorKind::ServerNotFound),
            (WireKind::Unauthorized, ErrorKind::Unauthorized),
            (WireKind::Unavailable, ErrorKind::ClusterUnavailable),
            (WireKind::Saturated, ErrorKind::Saturated),
            (WireKind::RateLimited, ErrorKind::RateLimited),
            (WireKind::ToolWithheld, ErrorKind::ToolWithheld),
        ];
        for (wire, kind) in cases {
            let err = Error::from_status(&wire.status("x"));
            assert_eq!(err.kind, kind, "{wire}");
        }
    }

    #[test]
    fn spec_errors_name_their_field() {
        // The field travels as metadata: the message is for people and may change.
        let status = contract::with_field(
            WireKind::InvalidSpec.status("invalid server spec: docker is not supported"),
            "type",
        );
        let err = Error::from_status(&status);
        assert_eq!(err.kind, ErrorKind::Config);
        assert_eq!(err.field.as_deref(), Some("type"));
    }

    #[test]
    fn server_errors_keep_the_jsonrpc_object() {
        let mut status = WireKind::ServerError.status("server error -32000: boom");
        status.metadata_mut().insert_bin(
            mcp_proto::JSONRPC_ERROR,
            tonic::metadata::MetadataValue::from_bytes(
                br#"{"code":-32000,"message":"boom","data":{"x":1}}"#,
            ),
        );
        let err = Error::from_status(&status);
        let rpc = err.jsonrpc.expect("jsonrpc error kept");
        assert_eq!(rpc.code, -32000);
        assert_eq!(rpc.message, "boom");
        assert!(rpc.json.contains("\"data\""));
    }

    #[test]
    fn transport_failures_are_connection_errors() {
        let err = Error::from_status(&Status::unavailable("tcp connect error"));
        assert_eq!(err.kind, ErrorKind::Connection);
    }
}
