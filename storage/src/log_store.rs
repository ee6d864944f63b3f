//! The Raft log store: [`SledLogStore`], openraft's [`RaftLogStorage`] over sled.
//!
//! Layout, in the database passed to [`SledLogStore::open`]:
//!
//! - tree [`LOGS_TREE`]: one entry per log index; the key is the index as a big-endian `u64`
//!   (so sled's byte order is index order), the value is the entry as JSON.
//! - tree [`META_TREE`]: keys `vote`, `committed` and `last_purged`, each a JSON value.
//!
//! Every write openraft relies on for safety (append, truncate, purge, vote) is flushed to disk
//! before it is acknowledged.

use std::fmt;
use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogReader, RaftLogStorage};
use openraft::{
    ErrorSubject, ErrorVerb, LogId, LogState, NodeId, OptionalSend, RaftLogId, RaftTypeConfig,
    StorageError as RaftStorageError, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::StorageError;

/// Name of the sled tree holding log entries.
pub const LOGS_TREE: &str = "raft_logs";
/// Name of the sled tree holding the vote, committed and last purged log ids.
pub const META_TREE: &str = "raft_meta";

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";

/// openraft's log storage over two sled trees.
///
/// Cloning is cheap (sled trees are reference counted) and every clone sees the same data,
/// which is how [`RaftLogStorage::get_log_reader`] hands out readers.
pub struct SledLogStore<C>
where
    C: RaftTypeConfig,
{
    logs: sled::Tree,
    meta: sled::Tree,
    _config: PhantomData<C>,
}

impl<C> Clone for SledLogStore<C>
where
    C: RaftTypeConfig,
{
    fn clone(&self) -> Self {
        Self {
            logs: self.logs.clone(),
            meta: self.meta.clone(),
            _config: PhantomData,
        }
    }
}

impl<C> Debug for SledLogStore<C>
where
    C: RaftTypeConfig,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledLogStore")
            .field("logs", &LOGS_TREE)
            .field("meta", &META_TREE)
            .finish()
    }
}

impl<C> SledLogStore<C>
where
    C: RaftTypeConfig,
{
    /// Opens the log store in `db`, creating its trees if they do not exist.
    ///
    /// Entries at or below the persisted `last_purged` log id are removed here: a purge
    /// records `last_purged` before deleting the entries, so a crash in between leaves them
    /// behind.
    pub fn open(db: &sled::Db) -> Result<Self, StorageError> {
        let store = Self {
            logs: db.open_tree(LOGS_TREE)?,
            meta: db.open_tree(META_TREE)?,
            _config: PhantomData,
        };
        if let Some(purged) = store.last_purged()? {
            let batch = store.removal_batch(..=purged.index)?;
            if let Some((batch, removed)) = batch {
                tracing::warn!(
                    last_purged = %purged,
                    removed,
                    "finishing an interrupted log purge"
                );
                store.logs.apply_batch(batch)?;
                store.logs.flush()?;
            }
        }
        Ok(store)
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &'static str) -> Result<Option<T>, StorageError> {
        match self.meta.get(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| undecodable(META_TREE, key, &e)),
        }
    }

    fn write_meta<T: Serialize>(&self, key: &'static str, value: &T) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value)?;
        self.meta.insert(key, bytes)?;
        Ok(())
    }

    fn last_purged(&self) -> Result<Option<LogId<C::NodeId>>, StorageError> {
        self.read_meta(KEY_LAST_PURGED)
    }

    /// Flushes the whole database; sled flushes its shared page cache, so this also makes
    /// writes to the other trees durable.
    async fn flush(&self) -> Result<(), StorageError> {
        self.logs.flush_async().await?;
        Ok(())
    }

    fn decode_entry(key: &[u8], value: &[u8]) -> Result<C::Entry, StorageError> {
        let index = decode_index(key)?;
        let entry: C::Entry =
            serde_json::from_slice(value).map_err(|e| undecodable(LOGS_TREE, index, &e))?;
        let stored = entry.get_log_id().index;
        if stored != index {
            return Err(StorageError::Corrupt {
                tree: LOGS_TREE,
                key: index.to_string(),
                reason: format!("entry holds log index {stored}"),
            });
        }
        Ok(entry)
    }

    fn read_entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<C::Entry>, StorageError> {
        let Some((lo, hi)) = key_range(range) else {
            return Ok(Vec::new());
        };
        self.logs
            .range((lo, hi))
            .map(|kv| {
                let (k, v) = kv?;
                Self::decode_entry(&k, &v)
            })
            .collect()
    }

    fn last_log_id(&self) -> Result<Option<LogId<C::NodeId>>, StorageError> {
        match self.logs.last()? {
            None => Ok(None),
            Some((k, v)) => Ok(Some(Self::decode_entry(&k, &v)?.get_log_id().clone())),
        }
    }

    /// A batch removing every entry in `range`, with the number of entries it removes, or
    /// `None` if there is nothing to remove.
    fn removal_batch(
        &self,
        range: impl RangeBounds<u64>,
    ) -> Result<Option<(sled::Batch, usize)>, StorageError> {
        let Some((lo, hi)) = key_range(range) else {
            return Ok(None);
        };
        let mut batch = sled::Batch::default();
        let mut removed = 0usize;
        for key in self.logs.range((lo, hi)).keys() {
            batch.remove(key?);
            removed += 1;
        }
        Ok((removed > 0).then_some((batch, removed)))
    }

    async fn append_entries<I>(&self, entries: I) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = C::Entry>,
    {
        let mut batch = sled::Batch::default();
        let mut last = None;
        let mut count = 0usize;
        for entry in entries {
            let log_id = entry.get_log_id().clone();
            let value = serde_json::to_vec(&entry)?;
            batch.insert(&log_id.index.to_be_bytes(), value);
            last = Some(log_id);
            count += 1;
        }
        self.logs.apply_batch(batch)?;
        self.flush().await?;
        if let Some(last) = last {
            tracing::trace!(count, last = %last, "appended log entries");
        }
        Ok(())
    }

    async fn truncate_from(&self, log_id: &LogId<C::NodeId>) -> Result<(), StorageError> {
        if let Some((batch, removed)) = self.removal_batch(log_id.index..)? {
            self.logs.apply_batch(batch)?;
            tracing::debug!(since = %log_id, removed, "truncated log");
        }
        self.flush().await
    }

    async fn purge_upto(&self, log_id: &LogId<C::NodeId>) -> Result<(), StorageError> {
        // last_purged goes first: after a crash between the two writes, `open` finds it and
        // removes the leftovers, whereas entries deleted without it would leave a hole
        // between last_purged and the first entry.
        self.write_meta(KEY_LAST_PURGED, log_id)?;
        if let Some((batch, removed)) = self.removal_batch(..=log_id.index)? {
            self.logs.apply_batch(batch)?;
            tracing::debug!(upto = %log_id, removed, "purged log");
        }
        self.flush().await
    }
}

/// Lower and upper bounds of a range of `raft_logs` keys.
type KeyBounds = (Bound<[u8; 8]>, Bound<[u8; 8]>);

/// Big-endian key bounds for a range of log indexes, or `None` if the range is empty.
fn key_range(range: impl RangeBounds<u64>) -> Option<KeyBounds> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    // `None` means unbounded above.
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    match end {
        Some(end) if end <= start => None,
        Some(end) => Some((
            Bound::Included(start.to_be_bytes()),
            Bound::Excluded(end.to_be_bytes()),
        )),
        None => Some((Bound::Included(start.to_be_bytes()), Bound::Unbounded)),
    }
}

fn decode_index(key: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| StorageError::Corrupt {
        tree: LOGS_TREE,
        key: format!("{key:?}"),
        reason: format!("key is {} bytes, expected 8", key.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

fn undecodable(tree: &'static str, key: impl fmt::Display, e: &serde_json::Error) -> StorageError {
    StorageError::Corrupt {
        tree,
        key: key.to_string(),
        reason: format!("undecodable JSON: {e}"),
    }
}

/// Maps this crate's error to openraft's, naming what was being done.
fn raft_err<NID: NodeId>(
    subject: ErrorSubject<NID>,
    verb: ErrorVerb,
) -> impl FnOnce(StorageError) -> RaftStorageError<NID> {
    move |e| e.into_raft(subject, verb)
}

impl<C> RaftLogReader<C> for SledLogStore<C>
where
    C: RaftTypeConfig,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, RaftStorageError<C::NodeId>> {
        self.read_entries(range)
            .map_err(raft_err(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

impl<C> RaftLogStorage<C> for SledLogStore<C>
where
    C: RaftTypeConfig,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, RaftStorageError<C::NodeId>> {
        let last_purged_log_id = self
            .last_purged()
            .map_err(raft_err(ErrorSubject::Logs, ErrorVerb::Read))?;
        let last_entry = self
            .last_log_id()
            .map_err(raft_err(ErrorSubject::Logs, ErrorVerb::Read))?;
        Ok(LogState {
            last_log_id: last_entry.or_else(|| last_purged_log_id.clone()),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(
        &mut self,
        vote: &Vote<C::NodeId>,
    ) -> Result<(), RaftStorageError<C::NodeId>> {
        self.write_meta(KEY_VOTE, vote)
            .map_err(raft_err(ErrorSubject::Vote, ErrorVerb::Write))?;
        self.flush()
            .await
            .map_err(raft_err(ErrorSubject::Vote, ErrorVerb::Write))?;
        tracing::debug!(%vote, "saved vote");
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, RaftStorageError<C::NodeId>> {
        self.read_meta(KEY_VOTE)
            .map_err(raft_err(ErrorSubject::Vote, ErrorVerb::Read))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), RaftStorageError<C::NodeId>> {
        // Flushed, because openraft 0.9 lets a restarted leader resume its term without a
        // fresh no-op entry: its linearizable-read index is then max(persisted committed,
        // old no-op). openraft saves the committed id before it applies (and answers the
        // client), so a durable committed id keeps every acknowledged write visible to
        // linearizable reads after a crash of the whole cluster.
        let result = match committed {
            Some(log_id) => self.write_meta(KEY_COMMITTED, &log_id),
            None => self
                .meta
                .remove(KEY_COMMITTED)
                .map(drop)
                .map_err(Into::into),
        };
        result.map_err(raft_err(ErrorSubject::Store, ErrorVerb::Write))?;
        self.flush()
            .await
            .map_err(raft_err(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, RaftStorageError<C::NodeId>> {
        self.read_meta(KEY_COMMITTED)
            .map_err(raft_err(ErrorSubject::Store, ErrorVerb::Read))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), RaftStorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        match self.append_entries(entries).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "appending log entries failed");
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(e.into_raft(ErrorSubject::Logs, ErrorVerb::Write))
            }
        }
    }

    async fn truncate(
        &mut self,
        log_id: LogId<C::NodeId>,
    ) -> Result<(), RaftStorageError<C::NodeId>> {
        self.truncate_from(&log_id)
            .await
            .map_err(raft_err(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), RaftStorageError<C::NodeId>> {
        self.purge_upto(&log_id)
            .await
            .map_err(raft_err(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::path::Path;

    use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
    use openraft::testing::{blank_ent, log_id};
    use openraft::{Entry, EntryPayload, LogId, Vote};

    use super::*;
    use crate::{open_db, DEFAULT_CACHE_CAPACITY};

    openraft::declare_raft_types!(TC: D = String, R = String);

    fn open(dir: &Path) -> (sled::Db, SledLogStore<TC>) {
        let db = open_db(dir, DEFAULT_CACHE_CAPACITY).unwrap();
        let store = SledLogStore::open(&db).unwrap();
        (db, store)
    }

    fn normal(term: u64, index: u64) -> Entry<TC> {
        Entry {
            log_id: log_id(term, 1, index),
            payload: EntryPayload::Normal(format!("cmd-{index}")),
        }
    }

    /// Entries `from..=to`, all of term 1, alternating blank and normal payloads.
    fn entries(from: u64, to: u64) -> Vec<Entry<TC>> {
        (from..=to)
            .map(|i| {
                if i % 2 == 0 {
                    blank_ent::<TC>(1, 1, i)
                } else {
                    normal(1, i)
                }
            })
            .collect()
    }

    fn indexes(entries: &[Entry<TC>]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn empty_store_has_no_state() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, mut store) = open(dir.path());
        let st = store.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, None);
        assert_eq!(st.last_log_id, None);
        assert_eq!(store.read_vote().await.unwrap(), None);
        assert_eq!(store.read_committed().await.unwrap(), None);
        assert!(store.try_get_log_entries(..).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn append_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let vote = Vote::new_committed(3, 2);
        {
            let (_db, mut store) = open(dir.path());
            store.blocking_append(entries(1, 5)).await.unwrap();
            store.save_vote(&vote).await.unwrap();
            store.save_committed(Some(log_id(1, 1, 4))).await.unwrap();

            // Readers are clones and see the writes at once.
            let mut reader = store.get_log_reader().await;
            assert_eq!(reader.try_get_log_entries(..).await.unwrap(), entries(1, 5));
        }

        let (_db, mut store) = open(dir.path());
        assert_eq!(
            store.try_get_log_entries(1..6).await.unwrap(),
            entries(1, 5)
        );
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 1, 4)));
        let st = store.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, None);
        assert_eq!(st.last_log_id, Some(log_id(1, 1, 5)));
    }

    #[tokio::test]
    async fn save_committed_none_clears_it() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, mut store) = open(dir.path());
        store.save_committed(Some(log_id(1, 1, 2))).await.unwrap();
        store.save_committed(None).await.unwrap();
        assert_eq!(store.read_committed().await.unwrap(), None);
    }

    #[tokio::test]
    async fn vote_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, mut store) = open(dir.path());
        store.save_vote(&Vote::new(1, 1)).await.unwrap();
        store.save_vote(&Vote::new(2, 3)).await.unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 3)));
    }

    #[tokio::test]
    async fn try_get_log_entries_honours_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, mut store) = open(dir.path());
        store.blocking_append(entries(1, 5)).await.unwrap();

        assert_eq!(
            indexes(&store.try_get_log_entries(2..4).await.unwrap()),
            [2, 3]
        );
        assert_eq!(
            indexes(&store.try_get_log_entries(2..=4).await.unwrap()),
            [2, 3, 4]
        );
        assert_eq!(
            indexes(&store.try_get_log_entries(..3).await.unwrap()),
            [1, 2]
        );
        assert_eq!(
            indexes(&store.try_get_log_entries(4..).await.unwrap()),
            [4, 5]
        );
        // Missing entries are skipped, not an error.
        assert_eq!(
            indexes(&store.try_get_log_entries(0..100).await.unwrap()),
            [1, 2, 3, 4, 5]
        );
        let excluded_start = (Bound::Excluded(3), Bound::Unbounded);
        assert_eq!(
            indexes(&store.try_get_log_entries(excluded_start).await.unwrap()),
            [4, 5]
        );
        // Empty and inverted ranges, and bounds at u64::MAX, do not panic.
        assert!(store.try_get_log_entries(3..3).await.unwrap().is_empty());
        #[allow(clippy::reversed_empty_ranges)]
        let inverted = 4..2;
        assert!(store
            .try_get_log_entries(inverted)
            .await
            .unwrap()
            .is_empty());
        assert!(store
            .try_get_log_entries(u64::MAX..)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            indexes(&store.try_get_log_entries(3..=u64::MAX).await.unwrap()),
            [3, 4, 5]
        );
        let past_max = (Bound::Excluded(u64::MAX), Bound::Unbounded);
        assert!(store
            .try_get_log_entries(past_max)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn truncate_removes_suffix() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_db, mut store) = open(dir.path());
            store.blocking_append(entries(1, 5)).await.unwrap();
            store.truncate(log_id(1, 1, 3)).await.unwrap();

            assert_eq!(store.try_get_log_entries(..).await.unwrap(), entries(1, 2));
            let st = store.get_log_state().await.unwrap();
            assert_eq!(st.last_log_id, Some(log_id(1, 1, 2)));

            // The log continues from the truncation point with the new leader's entries.
            store.blocking_append([normal(2, 3)]).await.unwrap();
        }

        let (_db, mut store) = open(dir.path());
        let got = store.try_get_log_entries(..).await.unwrap();
        assert_eq!(indexes(&got), [1, 2, 3]);
        assert_eq!(got[2], normal(2, 3));
        let st = store.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(log_id(2, 1, 3)));
    }

    #[tokio::test]
    async fn purge_removes_prefix_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_db, mut store) = open(dir.path());
            store.blocking_append(entries(1, 5)).await.unwrap();
            store.purge(log_id(1, 1, 3)).await.unwrap();

            assert_eq!(
                indexes(&store.try_get_log_entries(..).await.unwrap()),
                [4, 5]
            );
            let st = store.get_log_state().await.unwrap();
            assert_eq!(st.last_purged_log_id, Some(log_id(1, 1, 3)));
            assert_eq!(st.last_log_id, Some(log_id(1, 1, 5)));
        }

        let (_db, mut store) = open(dir.path());
        assert_eq!(
            indexes(&store.try_get_log_entries(..).await.unwrap()),
            [4, 5]
        );
        let st = store.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log_id(1, 1, 3)));
        assert_eq!(st.last_log_id, Some(log_id(1, 1, 5)));
    }

    #[tokio::test]
    async fn purging_everything_leaves_last_purged_as_last_log_id() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_db, mut store) = open(dir.path());
            store.blocking_append(entries(1, 3)).await.unwrap();
            // Beyond the last entry, as after installing a snapshot newer than the log.
            store.purge(log_id(2, 1, 7)).await.unwrap();
            let st = store.get_log_state().await.unwrap();
            assert_eq!(st.last_purged_log_id, Some(log_id(2, 1, 7)));
            assert_eq!(st.last_log_id, Some(log_id(2, 1, 7)));
        }

        let (_db, mut store) = open(dir.path());
        assert!(store.try_get_log_entries(..).await.unwrap().is_empty());
        let st = store.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log_id(2, 1, 7)));
        assert_eq!(st.last_log_id, Some(log_id(2, 1, 7)));

        store.blocking_append([normal(2, 8)]).await.unwrap();
        let st = store.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(log_id(2, 1, 8)));
    }

    #[tokio::test]
    async fn open_finishes_an_interrupted_purge() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (db, mut store) = open(dir.path());
            store.blocking_append(entries(1, 5)).await.unwrap();
            // What a crash between the two writes of `purge` leaves behind.
            let purged: LogId<u64> = log_id(1, 1, 2);
            let meta = db.open_tree(META_TREE).unwrap();
            meta.insert(KEY_LAST_PURGED, serde_json::to_vec(&purged).unwrap())
                .unwrap();
            db.flush().unwrap();
        }

        let (_db, mut store) = open(dir.path());
        assert_eq!(
            indexes(&store.try_get_log_entries(..).await.unwrap()),
            [3, 4, 5]
        );
        let st = store.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log_id(1, 1, 2)));
        assert_eq!(st.last_log_id, Some(log_id(1, 1, 5)));
    }

    #[tokio::test]
    async fn corrupt_entry_is_reported_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let (db, mut store) = open(dir.path());
        store.blocking_append(entries(1, 2)).await.unwrap();
        // An entry stored under the wrong index.
        let logs = db.open_tree(LOGS_TREE).unwrap();
        logs.insert(
            7u64.to_be_bytes(),
            serde_json::to_vec(&normal(1, 3)).unwrap(),
        )
        .unwrap();

        let err = store.read_entries(..).unwrap_err();
        assert!(
            matches!(&err, StorageError::Corrupt { tree, key, .. } if *tree == LOGS_TREE && key == "7"),
            "{err}"
        );
        assert!(store.try_get_log_entries(..).await.is_err());
    }

    #[test]
    fn key_range_is_big_endian_and_rejects_empty_ranges() {
        assert_eq!(
            key_range(1..3),
            Some((
                Bound::Included(1u64.to_be_bytes()),
                Bound::Excluded(3u64.to_be_bytes())
            ))
        );
        assert_eq!(key_range(5..5), None);
        assert_eq!(
            key_range(..=u64::MAX),
            Some((Bound::Included(0u64.to_be_bytes()), Bound::Unbounded))
        );
    }
}
