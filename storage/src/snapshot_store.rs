//! The snapshot store: [`SnapshotStore`], the latest state-machine snapshot in sled.
//!
//! Tree [`SNAPSHOT_TREE`] holds two keys, `meta` (the [`SnapshotMeta`] as JSON) and `data`
//! (the snapshot bytes, opaque to this crate). Both are written in one batch, so a crash
//! never leaves the metadata of one snapshot next to the data of another.

use std::fmt;
use std::marker::PhantomData;

use openraft::{RaftTypeConfig, SnapshotMeta};

use crate::StorageError;

/// Name of the sled tree holding the current snapshot.
pub const SNAPSHOT_TREE: &str = "raft_snapshot";

const KEY_META: &str = "meta";
const KEY_DATA: &str = "data";

/// The persisted current snapshot: its metadata and its serialized state.
///
/// Cloning is cheap and every clone sees the same data.
pub struct SnapshotStore<C>
where
    C: RaftTypeConfig,
{
    tree: sled::Tree,
    _config: PhantomData<C>,
}

impl<C> Clone for SnapshotStore<C>
where
    C: RaftTypeConfig,
{
    fn clone(&self) -> Self {
        Self {
            tree: self.tree.clone(),
            _config: PhantomData,
        }
    }
}

impl<C> fmt::Debug for SnapshotStore<C>
where
    C: RaftTypeConfig,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotStore")
            .field("tree", &SNAPSHOT_TREE)
            .finish()
    }
}

impl<C> SnapshotStore<C>
where
    C: RaftTypeConfig,
{
    /// Opens the snapshot store in `db`, creating its tree if it does not exist.
    pub fn open(db: &sled::Db) -> Result<Self, StorageError> {
        Ok(Self {
            tree: db.open_tree(SNAPSHOT_TREE)?,
            _config: PhantomData,
        })
    }

    /// Replaces the current snapshot with `meta` and `data`, and flushes it to disk before
    /// returning.
    pub async fn save(
        &self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        data: &[u8],
    ) -> Result<(), StorageError> {
        let meta_bytes = serde_json::to_vec(meta)?;
        let mut batch = sled::Batch::default();
        batch.insert(KEY_META, meta_bytes);
        batch.insert(KEY_DATA, data);
        self.tree.apply_batch(batch)?;
        self.tree.flush_async().await?;
        tracing::debug!(
            snapshot_id = %meta.snapshot_id,
            last_log_id = ?meta.last_log_id,
            bytes = data.len(),
            "saved snapshot"
        );
        Ok(())
    }

    /// Returns the current snapshot, or `None` if none was ever saved.
    // Spelled out rather than behind an alias so the rustdoc shows what is returned.
    #[allow(clippy::type_complexity)]
    pub fn load(
        &self,
    ) -> Result<Option<(SnapshotMeta<C::NodeId, C::Node>, Vec<u8>)>, StorageError> {
        let meta = self.tree.get(KEY_META)?;
        let data = self.tree.get(KEY_DATA)?;
        match (meta, data) {
            (None, None) => Ok(None),
            (Some(meta), Some(data)) => {
                let meta = serde_json::from_slice(&meta).map_err(|e| StorageError::Corrupt {
                    tree: SNAPSHOT_TREE,
                    key: KEY_META.to_string(),
                    reason: format!("undecodable JSON: {e}"),
                })?;
                Ok(Some((meta, data.to_vec())))
            }
            (Some(_), None) => Err(StorageError::Corrupt {
                tree: SNAPSHOT_TREE,
                key: KEY_DATA.to_string(),
                reason: "snapshot metadata present without data".to_string(),
            }),
            (None, Some(_)) => Err(StorageError::Corrupt {
                tree: SNAPSHOT_TREE,
                key: KEY_META.to_string(),
                reason: "snapshot data present without metadata".to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::io::Cursor;

    use openraft::testing::log_id;
    use openraft::{Membership, StoredMembership};

    use super::*;
    use crate::{open_db, DEFAULT_CACHE_CAPACITY};

    openraft::declare_raft_types!(TC: D = String, R = String);

    fn meta(index: u64, id: &str) -> SnapshotMeta<u64, openraft::BasicNode> {
        let membership = Membership::new(vec![BTreeSet::from([1, 2, 3])], None);
        SnapshotMeta {
            last_log_id: Some(log_id(2, 1, index)),
            last_membership: StoredMembership::new(Some(log_id(1, 1, 1)), membership),
            snapshot_id: id.to_string(),
        }
    }

    #[tokio::test]
    async fn empty_store_loads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path(), DEFAULT_CACHE_CAPACITY).unwrap();
        let store = SnapshotStore::<TC>::open(&db).unwrap();
        assert!(store.load().unwrap().is_none());
    }

    #[tokio::test]
    async fn save_load_round_trip_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open_db(dir.path(), DEFAULT_CACHE_CAPACITY).unwrap();
            let store = SnapshotStore::<TC>::open(&db).unwrap();
            store.save(&meta(10, "s-10"), b"first").await.unwrap();
            // A newer snapshot replaces the old one entirely.
            store.save(&meta(20, "s-20"), b"second").await.unwrap();
            let (m, data) = store.load().unwrap().unwrap();
            assert_eq!(m, meta(20, "s-20"));
            assert_eq!(data, b"second");
        }

        let db = open_db(dir.path(), DEFAULT_CACHE_CAPACITY).unwrap();
        let store = SnapshotStore::<TC>::open(&db).unwrap();
        let (m, data) = store.load().unwrap().unwrap();
        assert_eq!(m, meta(20, "s-20"));
        assert_eq!(data, b"second");
    }

    #[tokio::test]
    async fn empty_data_is_a_valid_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path(), DEFAULT_CACHE_CAPACITY).unwrap();
        let store = SnapshotStore::<TC>::open(&db).unwrap();
        store.save(&meta(1, "s-1"), b"").await.unwrap();
        let (m, data) = store.load().unwrap().unwrap();
        assert_eq!(m, meta(1, "s-1"));
        assert!(data.is_empty());
    }

    #[tokio::test]
    async fn meta_without_data_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path(), DEFAULT_CACHE_CAPACITY).unwrap();
        let store = SnapshotStore::<TC>::open(&db).unwrap();
        store.save(&meta(1, "s-1"), b"x").await.unwrap();
        db.open_tree(SNAPSHOT_TREE)
            .unwrap()
            .remove(KEY_DATA)
            .unwrap();
        let err = store.load().unwrap_err();
        assert!(
            matches!(&err, StorageError::Corrupt { tree, key, .. } if *tree == SNAPSHOT_TREE && key == KEY_DATA),
            "{err}"
        );
    }
}
