//! The node's typed errors and how each reaches a gRPC caller.
//!
//! Every error leaves as a `tonic::Status` whose code fits its category and whose
//! `x-mcpd-error` metadata names the category, so clients (the CLI, the Python package)
//! can map it to a type without parsing messages.

use mcp_proto::contract::{self, ErrorKind};
use mcp_raft::registry::SpecError;
use mcp_raft::{CommandError, NodeId};

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
    /// A request without a credential, or with one that is wrong, expired or revoked.
    #[error(
        "unauthorized: this cluster requires a valid token (missing, unknown, expired or revoked)"
    )]
    Unauthorized,
    /// A valid credential whose role or allow rules do not cover the request.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No leader is known, or the write could not be committed in time.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// No leader is known right now: an election is under way, or quorum is lost.
    #[error("cluster unavailable: no leader is elected right now (the cluster may have lost quorum); retry shortly")]
    NoLeader,
    /// The node believed to lead could not be reached.
    #[error("cluster unavailable: leader at {addr} is unreachable: {detail}")]
    LeaderUnreachable {
        /// The leader's address.
        addr: String,
        /// What the transport said.
        detail: String,
        /// False when the request provably never left this node (connection refused):
        /// it can then go to the next leader without any risk of running twice.
        sent: bool,
    },
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
    /// The category carried in `x-mcpd-error`; for a passed-through status, the category
    /// the leader put on it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClusterError::Config(_) | ClusterError::Identity { .. } => ErrorKind::Config,
            ClusterError::Storage(_) | ClusterError::Io { .. } | ClusterError::Fatal { .. } => {
                ErrorKind::Internal
            }
            ClusterError::InvalidSpec(_) => ErrorKind::InvalidSpec,
            ClusterError::InvalidArgument(_) => ErrorKind::InvalidArgument,
            ClusterError::Rejected(CommandError::ServerNotFound { .. })
            | ClusterError::Rejected(CommandError::NodeNotFound { .. }) => ErrorKind::NotFound,
            // A rotation that lost the race for its key id is a compare-and-set failure.
            ClusterError::Rejected(CommandError::RevisionMismatch { .. })
            | ClusterError::Rejected(CommandError::SessionKeyConflict { .. }) => {
                ErrorKind::RevisionMismatch
            }
            ClusterError::Rejected(CommandError::NestedBatch)
            | ClusterError::Rejected(CommandError::InvalidSession) => ErrorKind::InvalidArgument,
            ClusterError::Unauthorized => ErrorKind::Unauthorized,
            ClusterError::Forbidden(_) => ErrorKind::Forbidden,
            ClusterError::Rejected(CommandError::TokenNotFound { .. }) => ErrorKind::NotFound,
            ClusterError::Rejected(CommandError::TokenExists { .. })
            | ClusterError::Rejected(CommandError::InvalidToken { .. }) => {
                ErrorKind::InvalidArgument
            }
            // Guards (issue 16): a deploy naming a missing secret is a bad spec.
            ClusterError::Rejected(CommandError::MissingSecret { .. }) => ErrorKind::InvalidSpec,
            ClusterError::Rejected(CommandError::SecretNotFound { .. }) => ErrorKind::NotFound,
            ClusterError::Rejected(CommandError::SecretChanged { .. }) => {
                ErrorKind::RevisionMismatch
            }
            ClusterError::Rejected(CommandError::SecretInUse { .. })
            | ClusterError::Rejected(CommandError::InvalidSecret { .. })
            | ClusterError::Rejected(CommandError::InvalidToolObservation { .. })
            | ClusterError::Rejected(CommandError::NothingToApprove { .. })
            | ClusterError::Rejected(CommandError::InvalidLimit { .. }) => {
                ErrorKind::InvalidArgument
            }
            ClusterError::Unavailable(_)
            | ClusterError::NoLeader
            | ClusterError::LeaderUnreachable { .. } => ErrorKind::Unavailable,
            ClusterError::Membership(_) => ErrorKind::Membership,
            ClusterError::Forwarded(status) => ErrorKind::of(status).unwrap_or(ErrorKind::Internal),
        }
    }
}

impl ClusterError {
    /// True when the request failed only because no leader could take it (none elected,
    /// or the one known refused the connection): worth sending again once a new leader is
    /// known, since nothing was done.
    pub fn leader_gone(&self) -> bool {
        matches!(
            self,
            ClusterError::NoLeader | ClusterError::LeaderUnreachable { sent: false, .. }
        )
    }

    /// True when the leader vanished while it had the request: it may or may not have
    /// acted on it, so only a repeatable request may go to the next leader.
    pub fn leader_lost_mid_flight(&self) -> bool {
        matches!(self, ClusterError::LeaderUnreachable { sent: true, .. })
    }
}

impl From<ClusterError> for tonic::Status {
    fn from(err: ClusterError) -> Self {
        if let ClusterError::Forwarded(status) = err {
            return status;
        }
        let status = err.kind().status(err.to_string());
        match &err {
            ClusterError::InvalidSpec(spec) => match spec.field() {
                Some(field) => contract::with_field(status, field),
                None => status,
            },
            _ => status,
        }
    }
}
