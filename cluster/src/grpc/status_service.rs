//! The status part of `ClusterService`: `Status` (this node's Raft state, members and
//! instances: leader discovery and the fleet heartbeat), `Metrics` and `GetMetrics`. All
//! answer from this node alone; nothing is forwarded.

use std::sync::Arc;

use mcp_proto::cluster::{
    GetMetricsReply, GetMetricsRequest, InstanceInfo, MetricsReply, MetricsRequest, ServerStats,
    StatusReply, StatusRequest,
};
use mcp_proto::contract::NodeRole;
use mcp_raft::types::Raft;
use mcp_raft::{NodeId, RegistryReader};
use openraft::ServerState;
use tonic::{Request, Response, Status};

use super::membership_service::MembershipHandlers;
use crate::dataplane::metrics::RequestStats;
use crate::dataplane::DataPlane;
use crate::membership::MembershipView;
use crate::metrics::NodeMetrics;

/// The role word of `StatusReply.role` for Raft's state.
fn node_role(state: ServerState) -> NodeRole {
    match state {
        ServerState::Leader => NodeRole::Leader,
        ServerState::Follower => NodeRole::Follower,
        ServerState::Candidate => NodeRole::Candidate,
        ServerState::Learner => NodeRole::Learner,
        ServerState::Shutdown => NodeRole::Shutdown,
    }
}

/// Handlers of the status RPCs.
#[derive(Clone)]
pub struct StatusHandlers {
    id: NodeId,
    raft: Raft,
    registry: RegistryReader,
    /// For the member list in status replies.
    membership: MembershipHandlers,
    dataplane: Option<(Arc<DataPlane>, Arc<NodeMetrics>)>,
    node_tags: Vec<String>,
}

impl StatusHandlers {
    /// Status handlers of node `id`.
    pub fn new(
        id: NodeId,
        raft: Raft,
        registry: RegistryReader,
        membership: MembershipHandlers,
    ) -> Self {
        Self {
            id,
            raft,
            registry,
            membership,
            dataplane: None,
            node_tags: Vec::new(),
        }
    }

    /// Announces `tags` as this node's tags.
    pub fn with_node_tags(mut self, tags: Vec<String>) -> Self {
        self.node_tags = tags;
        self
    }

    /// Lists this data plane's instances and serves its metrics.
    pub fn with_dataplane(mut self, dataplane: Arc<DataPlane>, metrics: Arc<NodeMetrics>) -> Self {
        self.dataplane = Some((dataplane, metrics));
        self
    }

    /// `Status`: this node's view of itself and the cluster.
    pub async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let metrics = self.raft.metrics().borrow().clone();
        let view = MembershipView::from_metrics(&metrics);
        let (revision, server_count) = self
            .registry
            .read(|s| (s.registry.revision(), s.registry.server_count()));
        Ok(Response::new(StatusReply {
            node_id: self.id,
            grpc_addr: view.addr(self.id).unwrap_or_default().to_owned(),
            leader_id: view.leader,
            term: view.term,
            role: node_role(metrics.state).as_str().to_owned(),
            last_log_index: metrics.last_log_index,
            last_applied_index: metrics.last_applied.map(|l| l.index),
            snapshot_index: metrics.snapshot.map(|l| l.index),
            purged_index: metrics.purged.map(|l| l.index),
            revision,
            server_count: u32::try_from(server_count).unwrap_or(u32::MAX),
            members: self.membership.members_reply().members,
            instances: self.instances(),
            node_tags: self.node_tags.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            storage_format: mcp_storage::STORAGE_FORMAT,
        }))
    }

    /// `Metrics`: this node's Prometheus exposition.
    pub async fn metrics(
        &self,
        _request: Request<MetricsRequest>,
    ) -> Result<Response<MetricsReply>, Status> {
        let Some((plane, metrics)) = &self.dataplane else {
            return Err(Status::unavailable("this node has no metrics"));
        };
        let text = metrics
            .render(&self.raft, &self.registry, plane)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(MetricsReply { text }))
    }

    /// `GetMetrics`: request totals and latency, overall and per server.
    pub async fn get_metrics(
        &self,
        _request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsReply>, Status> {
        let Some((_, metrics)) = &self.dataplane else {
            return Err(Status::unavailable("this node has no metrics"));
        };
        let (total, servers) = metrics.request_stats();
        Ok(Response::new(GetMetricsReply {
            node_id: self.id,
            total: Some(server_stats(&total)),
            servers: servers.iter().map(server_stats).collect(),
        }))
    }

    /// The instances this node's data plane runs.
    fn instances(&self) -> Vec<InstanceInfo> {
        let Some((plane, _)) = &self.dataplane else {
            return Vec::new();
        };
        plane
            .instances()
            .into_iter()
            .map(|i| InstanceInfo {
                id: i.id,
                server: i.server,
                state: i.state.as_str().to_owned(),
                breaker: i.breaker.as_str().to_owned(),
                in_flight: i.in_flight as u64,
                restarts: i.restarts,
                protocol_version: i.protocol_version.unwrap_or_default(),
            })
            .collect()
    }
}

fn server_stats(stats: &RequestStats) -> ServerStats {
    ServerStats {
        server: stats.server.clone(),
        total_requests: stats.total,
        successful_requests: stats.successful,
        success_rate: stats.success_rate(),
        avg_latency_ms: stats.avg_latency_ms(),
        p99_latency_ms: stats.quantile_ms(0.99),
    }
}
