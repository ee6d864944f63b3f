//! Backups of the registry and what is built from them offline.
//!
//! - [`file`]: the snapshot file `mcpd snapshot save` writes: one JSON header line (format,
//!   versions, revision, last log id, SHA-256 of the payload) and the registry as JSON.
//! - [`seed`]: writes a node's data dir from a registry, for `mcpd snapshot restore` (a
//!   new cluster founded from a backup) and `mcpd recover` (a new one-member cluster from
//!   a surviving node's own state, when the other members are lost for good).

pub mod file;
pub mod seed;

/// Why a backup could not be written, read, restored or recovered.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The file or data dir could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an mcpd snapshot, or it is damaged.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The file was written by a newer mcpd in a format this one cannot read.
    #[error("{path}: snapshot file format {found}; this mcpd (version {}) reads formats up to {supported}: use a newer mcpd", env!("CARGO_PKG_VERSION"))]
    NewerFormat {
        /// The file.
        path: String,
        /// Its format.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// The target is not in a state the operation may start from.
    #[error("{0}")]
    Refused(String),
    /// The node's storage failed.
    #[error("storage: {0}")]
    Storage(#[from] mcp_storage::StorageError),
    /// openraft's storage layer failed.
    #[error("raft storage: {0}")]
    Raft(String),
    /// The node identity could not be written.
    #[error("{0}")]
    Identity(#[from] crate::error::ClusterError),
}
