//! The openraft state machine: applies committed commands to the [`Registry`].
//!
//! The registry lives in memory; durability comes from the Raft log plus persisted
//! snapshots (openraft's "persistent snapshot" model). On start the state machine loads
//! the last snapshot, and openraft re-applies the committed log entries after it. Readers
//! (gRPC handlers, the reconciler) get a [`RegistryReader`] and never touch Raft.

use std::io::Cursor;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use mcp_storage::SnapshotStore;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, RaftLogId, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::registry::{CommandOutcome, CommandResult, Registry};
use crate::types::{Entry, LogId, NodeId, TypeConfig};

/// Everything the state machine holds; a snapshot is this, serialized.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppliedState {
    /// Last log id applied to the registry.
    pub last_applied: Option<LogId>,
    /// The membership as of `last_applied`.
    pub membership: StoredMembership<NodeId, openraft::BasicNode>,
    /// The registry.
    pub registry: Registry,
}

/// A cheap, cloneable read handle on the applied registry state.
#[derive(Debug, Clone)]
pub struct RegistryReader {
    state: Arc<RwLock<AppliedState>>,
    /// The applied revision, for those who react to changes (the reconciler).
    revision: Arc<tokio::sync::watch::Sender<u64>>,
}

impl RegistryReader {
    fn new(state: AppliedState) -> Self {
        let (revision, _) = tokio::sync::watch::channel(state.registry.revision());
        Self {
            state: Arc::new(RwLock::new(state)),
            revision: Arc::new(revision),
        }
    }

    /// A reader on `registry` alone, attached to no state machine (for tests of what
    /// reads the registry).
    pub fn detached(registry: Registry) -> Self {
        Self::new(AppliedState {
            registry,
            ..AppliedState::default()
        })
    }

    /// A receiver that wakes up whenever the applied registry changes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revision.subscribe()
    }

    fn publish(&self) {
        let revision = self.read(|s| s.registry.revision());
        self.revision.send_if_modified(|current| {
            let changed = *current != revision;
            *current = revision;
            changed
        });
    }

    /// Runs `f` on the current applied state.
    pub fn read<R>(&self, f: impl FnOnce(&AppliedState) -> R) -> R {
        f(&self.lock_read())
    }

    fn lock_read(&self) -> RwLockReadGuard<'_, AppliedState> {
        // A panic while holding the lock cannot leave the state half-applied: apply
        // computes on the registry in place only through `Registry::apply`, which checks
        // every precondition before it mutates. So a poisoned lock still guards valid data.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_write(&self) -> RwLockWriteGuard<'_, AppliedState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Told, after each batch of committed entries is applied, how long applying took and how
/// many entries the batch held (the node turns it into a latency metric).
pub type ApplyObserver = Box<dyn Fn(std::time::Duration, usize) + Send + Sync>;

/// The registry state machine handed to openraft.
pub struct RegistryStateMachine {
    reader: RegistryReader,
    snapshots: SnapshotStore<TypeConfig>,
    observer: Option<ApplyObserver>,
}

impl RegistryStateMachine {
    /// Opens the state machine, restoring the last persisted snapshot if there is one.
    pub fn open(db: &sled::Db) -> Result<Self, mcp_storage::StorageError> {
        let snapshots = SnapshotStore::open(db)?;
        let state = match snapshots.load()? {
            Some((meta, data)) => {
                let state: AppliedState = serde_json::from_slice(&data)?;
                tracing::info!(
                    snapshot = %meta.snapshot_id,
                    revision = state.registry.revision(),
                    "restored registry from snapshot"
                );
                state
            }
            None => AppliedState::default(),
        };
        Ok(Self {
            reader: RegistryReader::new(state),
            snapshots,
            observer: None,
        })
    }

    /// Reports the duration of every applied batch to `observer`.
    pub fn with_apply_observer(mut self, observer: ApplyObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// A read handle on the applied state.
    pub fn reader(&self) -> RegistryReader {
        self.reader.clone()
    }
}

/// Builds a snapshot from a copy of the state taken when the builder was created.
pub struct RegistrySnapshotBuilder {
    state: AppliedState,
    snapshots: SnapshotStore<TypeConfig>,
}

fn snapshot_id(last: &Option<LogId>) -> String {
    match last {
        Some(id) => format!(
            "{}-{}-{}",
            id.leader_id.term, id.leader_id.node_id, id.index
        ),
        None => "empty".to_owned(),
    }
}

fn snapshot_read_error(e: &(impl std::error::Error + 'static)) -> StorageError<NodeId> {
    StorageIOError::read_snapshot(None, AnyError::new(e)).into()
}

fn snapshot_error(
    meta: Option<&SnapshotMeta<NodeId, openraft::BasicNode>>,
    e: &(impl std::error::Error + 'static),
) -> StorageError<NodeId> {
    let signature = meta.map(|m| m.signature());
    StorageIOError::write_snapshot(signature, AnyError::new(e)).into()
}

impl RaftSnapshotBuilder<TypeConfig> for RegistrySnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let data = serde_json::to_vec(&self.state).map_err(|e| snapshot_error(None, &e))?;
        let meta = SnapshotMeta {
            last_log_id: self.state.last_applied,
            last_membership: self.state.membership.clone(),
            snapshot_id: snapshot_id(&self.state.last_applied),
        };
        self.snapshots
            .save(&meta, &data)
            .await
            .map_err(|e| snapshot_error(Some(&meta), &e))?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for RegistryStateMachine {
    type SnapshotBuilder = RegistrySnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, openraft::BasicNode>), StorageError<NodeId>>
    {
        Ok(self.reader.read(|s| (s.last_applied, s.membership.clone())))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let started = std::time::Instant::now();
        let mut state = self.reader.lock_write();
        let mut results = Vec::new();
        for entry in entries {
            let log_id = *entry.get_log_id();
            state.last_applied = Some(log_id);
            let result = match entry.payload {
                EntryPayload::Blank => Ok(CommandOutcome {
                    revision: state.registry.revision(),
                    created: false,
                    batch: Vec::new(),
                }),
                EntryPayload::Normal(command) => {
                    let result = state.registry.apply(&command);
                    match &result {
                        Ok(outcome) => tracing::debug!(
                            op = command.op(),
                            revision = outcome.revision,
                            "applied"
                        ),
                        Err(e) => {
                            tracing::debug!(op = command.op(), error = %e, "rejected at apply")
                        }
                    }
                    result
                }
                EntryPayload::Membership(membership) => {
                    state.membership = StoredMembership::new(Some(log_id), membership);
                    Ok(CommandOutcome {
                        revision: state.registry.revision(),
                        created: false,
                        batch: Vec::new(),
                    })
                }
            };
            results.push(result);
        }
        drop(state);
        self.reader.publish();
        if let Some(observer) = &self.observer {
            observer(started.elapsed(), results.len());
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        RegistrySnapshotBuilder {
            state: self.reader.read(Clone::clone),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let new_state: AppliedState =
            serde_json::from_slice(&data).map_err(|e| snapshot_error(Some(meta), &e))?;
        // Persist first: if we crash after replacing the in-memory state but before the
        // snapshot is durable, the restart would come back with neither.
        self.snapshots
            .save(meta, &data)
            .await
            .map_err(|e| snapshot_error(Some(meta), &e))?;
        tracing::info!(
            snapshot = %meta.snapshot_id,
            revision = new_state.registry.revision(),
            "installed snapshot from leader"
        );
        *self.reader.lock_write() = new_state;
        self.reader.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let loaded = self.snapshots.load().map_err(|e| snapshot_read_error(&e))?;
        Ok(loaded.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
