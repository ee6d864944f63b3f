//! Runs openraft's storage test suite against `SledLogStore`, paired with a minimal in-memory
//! state machine that persists its snapshots through `SnapshotStore`.

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use mcp_storage::{open_db, SledLogStore, SnapshotStore, DEFAULT_CACHE_CAPACITY};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(TC: D = String, R = String);

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct State {
    last_applied: Option<LogId<u64>>,
    last_membership: StoredMembership<u64, openraft::BasicNode>,
}

#[derive(Clone)]
struct TestStateMachine {
    state: Arc<Mutex<State>>,
    snapshots: SnapshotStore<TC>,
}

fn snapshot_err(e: mcp_storage::StorageError) -> StorageError<u64> {
    e.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Write)
}

impl RaftSnapshotBuilder<TC> for TestStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TC>, StorageError<u64>> {
        let state = self.state.lock().unwrap().clone();
        let data = serde_json::to_vec(&state).unwrap();
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.last_membership.clone(),
            snapshot_id: format!("{:?}", state.last_applied),
        };
        self.snapshots
            .save(&meta, &data)
            .await
            .map_err(snapshot_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TC> for TestStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<u64>>,
            StoredMembership<u64, openraft::BasicNode>,
        ),
        StorageError<u64>,
    > {
        let state = self.state.lock().unwrap();
        Ok((state.last_applied, state.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<String>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TC>> + Send,
        I::IntoIter: Send,
    {
        let mut state = self.state.lock().unwrap();
        let mut replies = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            if let EntryPayload::Membership(m) = entry.payload {
                state.last_membership = StoredMembership::new(Some(entry.log_id), m);
            }
            replies.push(String::new());
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let new_state: State = serde_json::from_slice(&data).unwrap();
        self.snapshots
            .save(meta, &data)
            .await
            .map_err(snapshot_err)?;
        *self.state.lock().unwrap() = new_state;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TC>>, StorageError<u64>> {
        let loaded = self.snapshots.load().map_err(snapshot_err)?;
        Ok(loaded.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

struct Builder;

impl StoreBuilder<TC, SledLogStore<TC>, TestStateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, SledLogStore<TC>, TestStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path(), DEFAULT_CACHE_CAPACITY).unwrap();
        let log_store = SledLogStore::open(&db).unwrap();
        let sm = TestStateMachine {
            state: Arc::default(),
            snapshots: SnapshotStore::open(&db).unwrap(),
        };
        Ok((dir, log_store, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}
