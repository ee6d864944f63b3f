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

/// How long [`open_db`] waits for a database this process just closed to let go of its
/// file lock: sled's background flusher holds it until its next tick (every 500 ms).
const LOCK_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens (or creates) the sled database at `path`, refusing one written in a newer
/// storage format (see [`format`]).
///
/// A database closed a moment ago in this same process (a node stopped and started again,
/// an embedded manager restarted) is still locked by sled's flusher thread for up to one
/// tick; opening waits for it, up to [`LOCK_RELEASE_WAIT`], instead of failing. A lock held
/// by another process is reported after that wait.
pub fn open_db(path: &Path, cache_capacity_bytes: u64) -> Result<sled::Db, StorageError> {
    let deadline = std::time::Instant::now() + LOCK_RELEASE_WAIT;
    let db = loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(cache_capacity_bytes)
            .open();
        match opened {
            Ok(db) => break db,
            Err(e) if is_lock_held(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(source) => {
                return Err(StorageError::Open {
                    path: path.display().to_string(),
                    source,
                })
            }
        }
    };
    format::check_and_stamp(&db)?;
    Ok(db)
}

/// True for sled's "another holder has the file lock" error. sled reports it only as an
/// I/O error of kind `Other` whose text names the lock (its `WouldBlock` cause is inside
/// the text), so the text is what can be read.
fn is_lock_held(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(e) if e.to_string().contains("could not acquire lock"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn opening_waits_for_a_database_closed_a_moment_ago() {
        let dir = tempfile::tempdir().unwrap();
        let first = open_db(dir.path(), DEFAULT_CACHE_CAPACITY).unwrap();
        // Closed a little later, as a node that is still stopping.
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(first);
        });
        let again = open_db(dir.path(), DEFAULT_CACHE_CAPACITY);
        closer.join().unwrap();
        assert!(again.is_ok(), "{:?}", again.err());
    }
}
