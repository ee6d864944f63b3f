//! Errors of the sled stores, and their translation into openraft's storage errors.

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageIOError};

/// What went wrong while reading or writing the stores.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database could not be opened.
    #[error("cannot open sled database at {path}: {source}")]
    Open {
        /// Database path.
        path: String,
        /// sled's error.
        source: sled::Error,
    },
    /// A sled operation failed.
    #[error("sled error: {0}")]
    Sled(#[from] sled::Error),
    /// A batch failed inside a sled transaction.
    #[error("sled transaction failed: {0}")]
    Transaction(String),
    /// A value could not be encoded or decoded.
    #[error("serialization error: {0}")]
    Codec(#[from] serde_json::Error),
    /// The database was written in a storage format this build cannot read.
    #[error(
        "the data dir is in storage format {found}, but this mcpd (version {}) reads formats up to {supported}: run a newer mcpd on it",
        env!("CARGO_PKG_VERSION")
    )]
    NewerFormat {
        /// The format stamped in the database.
        found: u32,
        /// The newest format this build reads.
        supported: u32,
    },
    /// A stored value is not what it should be.
    #[error("corrupt data in tree {tree:?} at key {key:?}: {reason}")]
    Corrupt {
        /// sled tree name.
        tree: &'static str,
        /// Key (printable form).
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl StorageError {
    /// This error as openraft's storage error, naming what was being done.
    pub fn into_raft<NID: openraft::NodeId>(
        self,
        subject: ErrorSubject<NID>,
        verb: ErrorVerb,
    ) -> openraft::StorageError<NID> {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }
}
