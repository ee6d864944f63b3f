//! Errors of an execute request, by the category a caller acts on.

use std::time::Duration;

use mcp_proto::contract::ErrorKind;
use serde_json::Value;

use super::upstream::UpstreamError;

/// Why an execute request failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// No server of that name in the registry.
    #[error("unknown server {0:?}")]
    UnknownServer(String),
    /// The request is not valid JSON-RPC, or the arguments are not a JSON object.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The server has no instance that can take requests (none placed, all unhealthy,
    /// starting, or in a crash loop).
    #[error("no healthy instance of {server:?}: {detail}")]
    NoHealthyInstance {
        /// Server name.
        server: String,
        /// What the instances are doing.
        detail: String,
    },
    /// Every candidate instance's circuit breaker is open.
    #[error("circuit breaker open for every instance of {server:?}")]
    CircuitOpen {
        /// Server name.
        server: String,
    },
    /// Every candidate instance is at its in-flight limit.
    #[error("all instances of {server:?} are saturated ({limit} requests in flight each)")]
    Saturated {
        /// Server name.
        server: String,
        /// The per-instance limit.
        limit: usize,
    },
    /// No answer in time.
    #[error("no answer from {server:?} within {} ms", .after.as_millis())]
    Timeout {
        /// Server name.
        server: String,
        /// The timeout.
        after: Duration,
    },
    /// The connection to the server failed or broke (includes crashes and protocol
    /// violations such as garbage output or oversized messages).
    #[error("connection to {server:?} failed: {source}")]
    Connection {
        /// Server name.
        server: String,
        /// What happened.
        source: UpstreamError,
    },
    /// The server answered with a JSON-RPC error (kept intact).
    #[error("server error {code}: {message}")]
    ServerError {
        /// JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
        /// The whole `error` object as the server sent it.
        error: Value,
    },
    /// The request was forwarded and the peer answered with this status.
    #[error("{}", .0.message())]
    Forwarded(tonic::Status),
    /// A guard refused the call before it reached a server (rate limit, concurrency quota,
    /// withheld tool); see [`crate::guards`].
    #[error(transparent)]
    Refused(crate::guards::Refusal),
}

impl ExecuteError {
    /// When a refused call may be tried again (rate limits and quotas).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ExecuteError::Refused(refusal) => refusal.retry_after(),
            ExecuteError::Forwarded(status) => mcp_proto::contract::retry_after_of(status),
            _ => None,
        }
    }

    /// The category carried in `x-mcpd-error`; for a peer's answer, the category the peer
    /// put on it (a peer that answered without one failed as a connection would).
    pub fn kind(&self) -> ErrorKind {
        match self {
            ExecuteError::UnknownServer(_) => ErrorKind::UnknownServer,
            ExecuteError::InvalidRequest(_) => ErrorKind::InvalidRequest,
            ExecuteError::NoHealthyInstance { .. } => ErrorKind::NoHealthyInstance,
            ExecuteError::CircuitOpen { .. } => ErrorKind::CircuitOpen,
            ExecuteError::Saturated { .. } => ErrorKind::Saturated,
            ExecuteError::Timeout { .. } => ErrorKind::Timeout,
            ExecuteError::Connection { .. } => ErrorKind::Connection,
            ExecuteError::ServerError { .. } => ErrorKind::ServerError,
            ExecuteError::Forwarded(status) => {
                ErrorKind::of(status).unwrap_or(ErrorKind::Connection)
            }
            ExecuteError::Refused(refusal) => refusal.kind(),
        }
    }
}

/// Binary metadata key carrying a server's JSON-RPC `error` object on `server_error`.
pub const JSONRPC_ERROR_METADATA: &str = mcp_proto::JSONRPC_ERROR;

impl From<ExecuteError> for tonic::Status {
    fn from(err: ExecuteError) -> Self {
        if let ExecuteError::Forwarded(status) = err {
            return status;
        }
        let mut status = err.kind().status(err.to_string());
        if let Some(after) = err.retry_after() {
            mcp_proto::contract::with_retry_after(&mut status, after);
        }
        if let ExecuteError::ServerError { error, .. } = &err {
            status.metadata_mut().insert_bin(
                JSONRPC_ERROR_METADATA,
                tonic::metadata::MetadataValue::from_bytes(error.to_string().as_bytes()),
            );
        }
        status
    }
}

/// For callers in the same process (the Python package's embedded and member modes): the
/// error as the client library classifies it, without going through a gRPC status.
impl From<ExecuteError> for mcp_client::Error {
    fn from(err: ExecuteError) -> Self {
        if let ExecuteError::Forwarded(status) = &err {
            return mcp_client::Error::from_status(status);
        }
        let jsonrpc = match &err {
            ExecuteError::ServerError {
                code,
                message,
                error,
            } => Some(mcp_client::JsonRpcError {
                code: *code,
                message: message.clone(),
                json: error.to_string(),
            }),
            _ => None,
        };
        let mut converted = mcp_client::Error::new(
            mcp_client::ErrorKind::from_wire(err.kind()),
            err.to_string(),
        );
        converted.jsonrpc = jsonrpc;
        converted.retry_after_ms = err
            .retry_after()
            .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX));
        converted
    }
}
