//! The backup part of `ClusterService`: `SaveSnapshot`, a consistent copy of the registry
//! for `mcpd snapshot save`. It is read on the leader, after a quorum confirmed the
//! leadership and the state machine applied everything committed before the request
//! arrived (the same rule as every linearizable read), so a snapshot never misses a write
//! acknowledged before it was asked for.

use mcp_proto::cluster::{SaveSnapshotReply, SaveSnapshotRequest};
use mcp_raft::{NodeId, RegistryReader};
use tonic::{Request, Response, Status};

use super::leader_route::LeaderRoute;
use crate::error::ClusterError;

/// Handlers of the backup RPCs.
#[derive(Clone)]
pub struct BackupHandlers {
    id: NodeId,
    route: LeaderRoute,
    registry: RegistryReader,
}

impl BackupHandlers {
    /// Backup handlers of node `id` on `route`, reading `registry`.
    pub fn new(id: NodeId, route: LeaderRoute, registry: RegistryReader) -> Self {
        Self {
            id,
            route,
            registry,
        }
    }

    /// `SaveSnapshot`: the registry as JSON with its revision and last applied log id.
    pub async fn save_snapshot(
        &self,
        request: Request<SaveSnapshotRequest>,
    ) -> Result<Response<SaveSnapshotReply>, Status> {
        let read = || async {
            self.registry.read(|state| {
                let registry_json =
                    serde_json::to_vec(&state.registry).map_err(|e| ClusterError::Fatal {
                        node: self.id,
                        reason: format!("cannot serialize the registry: {e}"),
                    })?;
                let last = state.last_applied;
                Ok(SaveSnapshotReply {
                    registry_json,
                    revision: state.registry.revision(),
                    last_log_index: last.map_or(0, |l| l.index),
                    last_log_term: last.map_or(0, |l| l.leader_id.term),
                    node_id: self.id,
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    storage_format: mcp_storage::STORAGE_FORMAT,
                })
            })
        };
        self.route
            .read_or_forward(request, false, read, |mut c, r| async move {
                c.save_snapshot(r).await
            })
            .await
    }
}
