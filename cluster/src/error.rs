//! The node's typed errors and how each reaches a gRPC caller.
//!
//! Every error leaves as a `tonic::Status` whose code fits its category and whose
//! `x-mcpd-error` metadata names the category, so clients (the CLI, the Python package)
//! can map it to a type without parsing messages.

use mcp_raft::registry::SpecError;
use mcp_raft::{CommandError, NodeId};
use tonic::metadata::MetadataValue;

/// Everything that can go wrong in a node or a request to it.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The node's configuration is unusable.
    #[error("configuration error: {0}")]
    Config(String),
    /// The data dir belongs to another node, or holds an unreadable identity.
    #[error("data dir {dir}: {reason}")]
    Identity {
        /// The data dir.
        dir: String,
        /// What is wrong.
        reason: String,
    },
    /// Local persistence failed.
    #[error("storage error: {0}")]
    Storage(#[from] mcp_storage::StorageError),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A submitted server spec is invalid; the message names the field.
    #[error("invalid server spec: {0}")]
    InvalidSpec(#[from] SpecError),
    /// A request argument is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A precondition failed when the command was applied; nothing changed.
    #[error("{0}")]
    Rejected(#[from] CommandError),
    /// A write, tool call or Raft RPC without the admin token (or with a wrong one).
    #[error("unauthorized: this cluster requires the admin token for writes and tool calls")]
    Unauthorized,
    /// No leader is known, or the write could not be committed in time.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// Membership changes that cannot be done (unknown node, removing the last voter, ...).
    #[error("membership change refused: {0}")]
    Membership(String),
    /// Raft stopped on this node.
    #[error("raft stopped on node {node}: {reason}")]
    Fatal {
        /// This node.
        node: NodeId,
        /// Why.
        reason: String,
    },
    /// The leader answered a forwarded request with this error; passed through intact.
    #[error("{}", .0.message())]
    Forwarded(tonic::Status),
}

impl ClusterError {
    /// The category name carried in `x-mcpd-error`.
    pub fn kind(&self) -> &'static str {
        match self {
            ClusterError::Config(_) | ClusterError::Identity { .. } => "config",
            ClusterError::Storage(_) | ClusterError::Io { .. } | ClusterError::Fatal { .. } => {
                "internal"
            }
            ClusterError::InvalidSpec(_) => "invalid_spec",
            ClusterError::InvalidArgument(_) => "invalid_argument",
            ClusterError::Rejected(CommandError::ServerNotFound { .. }) => "not_found",
            ClusterError::Rejected(CommandError::NodeNotFound { .. }) => "not_found",
            ClusterError::Rejected(CommandError::RevisionMismatch { .. }) => "revision_mismatch",
            ClusterError::Rejected(CommandError::NestedBatch) => "invalid_argument",
            ClusterError::Unauthorized => "unauthorized",
            ClusterError::Unavailable(_) => "unavailable",
            ClusterError::Membership(_) => "membership",
            ClusterError::Forwarded(_) => "forwarded",
        }
    }
}

impl From<ClusterError> for tonic::Status {
    fn from(err: ClusterError) -> Self {
        use tonic::Code;
        if let ClusterError::Forwarded(status) = err {
            return status;
        }
        let code = match &err {
            ClusterError::InvalidSpec(_) | ClusterError::InvalidArgument(_) => {
                Code::InvalidArgument
            }
            ClusterError::Rejected(CommandError::RevisionMismatch { .. }) => Code::Aborted,
            ClusterError::Rejected(CommandError::NestedBatch) => Code::InvalidArgument,
            ClusterError::Rejected(_) => Code::NotFound,
            ClusterError::Unauthorized => Code::Unauthenticated,
            ClusterError::Unavailable(_) => Code::Unavailable,
            ClusterError::Membership(_) => Code::FailedPrecondition,
            _ => Code::Internal,
        };
        let mut status = tonic::Status::new(code, err.to_string());
        status.metadata_mut().insert(
            mcp_proto::ERROR_KIND,
            MetadataValue::from_static(err.kind()),
        );
        status
    }
}
