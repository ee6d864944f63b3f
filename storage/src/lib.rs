//! sled-backed persistence for openraft: the Raft log and state-machine snapshots.
//!
//! This crate knows nothing about what is replicated. [`SledLogStore`] is generic over any
//! openraft type configuration whose entries serialize with serde, and [`SnapshotStore`]
//! keeps the latest snapshot as opaque bytes next to its metadata. Every write that openraft
//! relies on for safety (log append, truncate, purge, vote, snapshot) is flushed to disk
//! before it is acknowledged.

mod error;
pub mod format;
mod log_store;
mod snapshot_store;

use std::path::Path;

pub use error::StorageError;
pub use format::STORAGE_FORMAT;
pub use log_store::SledLogStore;
pub use snapshot_store::SnapshotStore;

/// The database type the stores live in, for callers that open one without naming sled.
pub use sled::Db;

/// Default sled page-cache size. sled's own default (1 GiB) is far more than a registry
/// needs, and every node of a test cluster would reserve it.
pub const DEFAULT_CACHE_CAPACITY: u64 = 64 * 1024 * 1024;

/// Opens (or creates) the sled database at `path`, refusing one written in a newer
/// storage format (see [`format`]).
pub fn open_db(path: &Path, cache_capacity_bytes: u64) -> Result<sled::Db, StorageError> {
    let db = sled::Config::new()
        .path(path)
        .cache_capacity(cache_capacity_bytes)
        .open()
        .map_err(|source| StorageError::Open {
            path: path.display().to_string(),
            source,
        })?;
    format::check_and_stamp(&db)?;
    Ok(db)
}
