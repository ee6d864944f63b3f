//! Writing a node's data dir offline (the node is not running), so that it starts as a
//! member of a cluster that already holds a registry.
//!
//! Both operations leave the same shape: a Raft snapshot holding the registry and the
//! new membership, the log purged up to it, and the commit index at it. openraft starts
//! from that as from any snapshot, and the node needs no `initial_cluster` bootstrap.
//!
//! - [`restore`]: a founding member of a new cluster, from a snapshot file. Every founding
//!   member is restored from the same file with the same members, so their states are
//!   identical and any of them may be elected. The log id of the seeded snapshot has term
//!   0 (as openraft's own bootstrap entry does), below any term an election makes.
//! - [`recover`]: the one member of a new cluster, from a surviving node's own data dir
//!   when the other members are lost for good. Its registry is the snapshot with every
//!   entry of its log applied, the last ones included even if this node never learned
//!   they were committed: an entry acknowledged to a client was in the leader's log and a
//!   majority's, so recovering from the node with the highest last log index keeps every
//!   acknowledged write.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::net::SocketAddr;
use std::path::Path;

use mcp_raft::state_machine::AppliedState;
use mcp_raft::types::{LogId, TypeConfig};
use mcp_raft::{NodeId, Registry, RegistryStateMachine};
use mcp_storage::SledLogStore;
use openraft::storage::{RaftLogReader, RaftLogStorage, RaftStateMachine};
use openraft::{
    BasicNode, CommittedLeaderId, EntryPayload, Membership, SnapshotMeta, StoredMembership,
};

use super::file::SnapshotFile;
use super::BackupError;
use crate::config::NodeConfig;
use crate::identity::{self, NodeIdentity};

/// The node's database inside its data dir (as `ClusterNode::start` opens it).
const DB_DIR: &str = "raft.db";
/// sled cache for offline work: small, the node is not serving.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// What a data dir was seeded with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeded {
    /// The node.
    pub node_id: NodeId,
    /// Its members (id -> address).
    pub members: BTreeMap<NodeId, String>,
    /// Registry revision.
    pub revision: u64,
    /// Index of the seeded snapshot.
    pub log_index: u64,
    /// Number of servers.
    pub server_count: usize,
    /// Log entries applied on top of the last snapshot (`recover` only).
    pub replayed: usize,
}

fn raft_error(e: impl std::fmt::Display) -> BackupError {
    BackupError::Raft(e.to_string())
}

/// Founds node `id` of a new cluster whose members are `initial_cluster`, in the empty
/// `data_dir`, holding the registry of `snapshot` at its revision. `listen_addr` defaults
/// to the node's address in `initial_cluster`.
pub async fn restore(
    snapshot: &SnapshotFile,
    data_dir: &Path,
    id: NodeId,
    listen_addr: Option<SocketAddr>,
    initial_cluster: &BTreeMap<NodeId, String>,
) -> Result<Seeded, BackupError> {
    let Some(addr) = initial_cluster.get(&id) else {
        return Err(BackupError::Refused(format!(
            "--initial-cluster does not list node {id}"
        )));
    };
    if identity::stored(data_dir)?.is_some() || data_dir.join(DB_DIR).exists() {
        return Err(BackupError::Refused(format!(
            "data dir {} already holds a node: restore only into a new, empty data dir",
            data_dir.display()
        )));
    }
    let listen_addr = match listen_addr {
        Some(a) => a,
        None => addr.parse().map_err(|_| {
            BackupError::Refused(format!(
                "node {id}'s address {addr} is not IP:PORT: give --grpc-addr to listen on"
            ))
        })?,
    };
    NodeIdentity::load_or_create(&NodeConfig {
        id: Some(id),
        listen_addr: Some(listen_addr),
        advertise_addr: Some(addr.clone()),
        initial_cluster: initial_cluster.clone(),
        ..NodeConfig::new(data_dir)
    })?;
    let log_id = LogId::new(
        CommittedLeaderId::new(0, 0),
        snapshot.header.last_log_index.max(1),
    );
    let db = mcp_storage::open_db(&data_dir.join(DB_DIR), CACHE_BYTES)?;
    write_state(&db, log_id, initial_cluster, snapshot.registry.clone()).await?;
    Ok(Seeded {
        node_id: id,
        members: initial_cluster.clone(),
        revision: snapshot.registry.revision(),
        log_index: log_id.index,
        server_count: snapshot.registry.server_count(),
        replayed: 0,
    })
}

/// Turns the stopped node in `data_dir` into the one member of a new cluster, keeping its
/// registry as of the last entry in its log (see the module docs). Other members are
/// added back afterwards as new nodes (`mcpd members add`, then `promote`).
pub async fn recover(data_dir: &Path) -> Result<Seeded, BackupError> {
    let identity = identity::stored(data_dir)?.ok_or_else(|| {
        BackupError::Refused(format!(
            "{} holds no node (no node.json): give the data dir of a node that ran",
            data_dir.display()
        ))
    })?;
    let db_path = data_dir.join(DB_DIR);
    if !db_path.exists() {
        return Err(BackupError::Refused(format!(
            "{} holds no Raft state",
            data_dir.display()
        )));
    }
    let db = mcp_storage::open_db(&db_path, CACHE_BYTES)?;
    let (registry, last, replayed) = replay(&db).await?;
    let Some(last) = last else {
        return Err(BackupError::Refused(format!(
            "node {} never joined a cluster: there is nothing to recover",
            identity.id
        )));
    };
    let members = BTreeMap::from([(identity.id, identity.advertise_addr.clone())]);
    let (revision, server_count) = (registry.revision(), registry.server_count());
    write_state(&db, last, &members, registry).await?;
    Ok(Seeded {
        node_id: identity.id,
        members,
        revision,
        log_index: last.index,
        server_count,
        replayed,
    })
}

/// What [`recover`] would keep from the stopped node in `data_dir`, without changing
/// anything: compare the survivors' last log indexes and recover the highest.
pub async fn inspect(data_dir: &Path) -> Result<Seeded, BackupError> {
    let identity = identity::stored(data_dir)?.ok_or_else(|| {
        BackupError::Refused(format!(
            "{} holds no node (no node.json)",
            data_dir.display()
        ))
    })?;
    let db = mcp_storage::open_db(&data_dir.join(DB_DIR), CACHE_BYTES)?;
    let (registry, last, replayed) = replay(&db).await?;
    Ok(Seeded {
        node_id: identity.id,
        members: BTreeMap::from([(identity.id, identity.advertise_addr)]),
        revision: registry.revision(),
        log_index: last.map_or(0, |l| l.index),
        server_count: registry.server_count(),
        replayed,
    })
}

/// The registry of the node whose database is `db`: its last snapshot with every later
/// entry of its log applied; the id of the last entry; how many entries were applied.
async fn replay(db: &mcp_storage::Db) -> Result<(Registry, Option<LogId>, usize), BackupError> {
    let mut log = SledLogStore::<TypeConfig>::open(db)?;
    let machine = RegistryStateMachine::open(db)?;
    let state = machine.reader().read(Clone::clone);
    let mut registry = state.registry;
    let mut last = state.last_applied;
    let log_state = log.get_log_state().await.map_err(raft_error)?;
    let from = state.last_applied.map_or(0, |l| l.index + 1);
    let mut replayed = 0;
    if let Some(last_log) = log_state.last_log_id {
        if last_log.index >= from {
            let entries = log
                .try_get_log_entries(from..=last_log.index)
                .await
                .map_err(raft_error)?;
            for entry in entries {
                if let EntryPayload::Normal(command) = &entry.payload {
                    // Rejected commands change nothing, as when the state machine applies
                    // them.
                    let _ = registry.apply(command);
                }
                last = Some(entry.log_id);
                replayed += 1;
            }
        }
    }
    Ok((registry, last.max(log_state.last_purged_log_id), replayed))
}

/// Makes `db` hold `registry` as a snapshot at `log_id` with `members` as the voters, the
/// log purged up to it and committed at it.
async fn write_state(
    db: &mcp_storage::Db,
    log_id: LogId,
    members: &BTreeMap<NodeId, String>,
    registry: Registry,
) -> Result<(), BackupError> {
    let voters: BTreeSet<NodeId> = members.keys().copied().collect();
    let nodes: BTreeMap<NodeId, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr.clone())))
        .collect();
    let membership = StoredMembership::new(Some(log_id), Membership::new(vec![voters], nodes));
    let state = AppliedState {
        last_applied: Some(log_id),
        membership: membership.clone(),
        registry,
    };
    let data = serde_json::to_vec(&state).map_err(raft_error)?;
    let meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: membership,
        snapshot_id: format!(
            "{}-{}-{}-seeded",
            log_id.leader_id.term, log_id.leader_id.node_id, log_id.index
        ),
    };
    let mut machine = RegistryStateMachine::open(db)?;
    machine
        .install_snapshot(&meta, Box::new(Cursor::new(data)))
        .await
        .map_err(raft_error)?;
    let mut log = SledLogStore::<TypeConfig>::open(db)?;
    log.purge(log_id).await.map_err(raft_error)?;
    log.save_committed(Some(log_id)).await.map_err(raft_error)?;
    db.flush_async()
        .await
        .map_err(mcp_storage::StorageError::from)?;
    Ok(())
}
