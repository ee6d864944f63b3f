//! Server side of the cluster API: one `ClusterService` implementation that hands each RPC
//! to the handlers of its concern: registry writes and reads ([`RegistryHandlers`]),
//! membership ([`MembershipHandlers`]) and this node's status and metrics
//! ([`StatusHandlers`]), and the MCP gateway's shared sessions ([`SessionHandlers`]). Requests that need the leader go through one [`LeaderRoute`].
//! Who may call which method is settled before a handler runs, by [`crate::auth`].

use std::sync::Arc;
use std::time::Duration;

use mcp_proto::cluster::cluster_service_server::ClusterService;
use mcp_proto::cluster::{
    AddLearnerRequest, DeployRequest, DrainRequest, EndGatewaySessionRequest, GetMetricsReply,
    GetMetricsRequest, GetServerRequest, ListServersReply, ListServersRequest, MembersReply,
    MembersRequest, MetricsReply, MetricsRequest, PromoteVoterRequest, RemoveNodeRequest,
    RotateSessionKeyReply, RotateSessionKeyRequest, ScaleRequest, ServerInfo, StatusReply,
    StatusRequest, UndeployRequest, WriteReply,
};
use mcp_raft::types::Raft;
use mcp_raft::{NodeId, RegistryReader};
use tonic::{Request, Response, Status};

use super::leader_route::LeaderRoute;
use super::membership_service::MembershipHandlers;
use super::registry_service::RegistryHandlers;
use super::session_service::SessionHandlers;
use super::status_service::StatusHandlers;
use crate::batcher::ProposalBatcher;
use crate::dataplane::DataPlane;
use crate::forward::PeerChannels;
use crate::metrics::NodeMetrics;

/// The `ClusterService` implementation of a node.
#[derive(Clone)]
pub struct ClusterApi {
    registry: RegistryHandlers,
    membership: MembershipHandlers,
    status: StatusHandlers,
    sessions: SessionHandlers,
}

impl ClusterApi {
    /// The cluster API of node `id`; its writes go through `batcher`.
    pub fn new(
        id: NodeId,
        raft: Raft,
        registry: RegistryReader,
        peers: PeerChannels,
        write_timeout: Duration,
        batcher: ProposalBatcher,
    ) -> Self {
        let route = LeaderRoute::new(id, raft.clone(), peers, batcher, write_timeout);
        let membership = MembershipHandlers::new(route.clone(), registry.clone());
        Self {
            sessions: SessionHandlers::new(route.clone(), registry.clone()),
            registry: RegistryHandlers::new(route, registry.clone(), membership.clone()),
            status: StatusHandlers::new(id, raft, registry, membership.clone()),
            membership,
        }
    }

    /// Announces `tags` as this node's tags in status replies (the leader copies them into
    /// the registry for placement constraints).
    pub fn with_node_tags(mut self, tags: Vec<String>) -> Self {
        self.status = self.status.with_node_tags(tags);
        self
    }

    /// The handlers of the gateway-session RPCs, which the node's MCP gateway calls
    /// in-process to end a session on every node.
    pub fn session_handlers(&self) -> SessionHandlers {
        self.sessions.clone()
    }

    /// Lists this data plane's instances in status replies and serves its metrics.
    pub fn with_dataplane(mut self, dataplane: Arc<DataPlane>, metrics: Arc<NodeMetrics>) -> Self {
        self.status = self.status.with_dataplane(dataplane, metrics);
        self
    }
}

#[tonic::async_trait]
impl ClusterService for ClusterApi {
    async fn deploy(&self, r: Request<DeployRequest>) -> Result<Response<WriteReply>, Status> {
        self.registry.deploy(r).await
    }

    async fn undeploy(&self, r: Request<UndeployRequest>) -> Result<Response<WriteReply>, Status> {
        self.registry.undeploy(r).await
    }

    async fn scale(&self, r: Request<ScaleRequest>) -> Result<Response<WriteReply>, Status> {
        self.registry.scale(r).await
    }

    async fn drain(&self, r: Request<DrainRequest>) -> Result<Response<WriteReply>, Status> {
        self.registry.drain(r).await
    }

    async fn get_server(
        &self,
        r: Request<GetServerRequest>,
    ) -> Result<Response<ServerInfo>, Status> {
        self.registry.get_server(r).await
    }

    async fn list_servers(
        &self,
        r: Request<ListServersRequest>,
    ) -> Result<Response<ListServersReply>, Status> {
        self.registry.list_servers(r).await
    }

    async fn members(&self, r: Request<MembersRequest>) -> Result<Response<MembersReply>, Status> {
        self.membership.members(r).await
    }

    async fn add_learner(
        &self,
        r: Request<AddLearnerRequest>,
    ) -> Result<Response<MembersReply>, Status> {
        self.membership.add_learner(r).await
    }

    async fn promote_voter(
        &self,
        r: Request<PromoteVoterRequest>,
    ) -> Result<Response<MembersReply>, Status> {
        self.membership.promote_voter(r).await
    }

    async fn remove_node(
        &self,
        r: Request<RemoveNodeRequest>,
    ) -> Result<Response<MembersReply>, Status> {
        self.membership.remove_node(r).await
    }

    async fn status(&self, r: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        self.status.status(r).await
    }

    async fn metrics(&self, r: Request<MetricsRequest>) -> Result<Response<MetricsReply>, Status> {
        self.status.metrics(r).await
    }

    async fn get_metrics(
        &self,
        r: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsReply>, Status> {
        self.status.get_metrics(r).await
    }

    async fn rotate_session_key(
        &self,
        r: Request<RotateSessionKeyRequest>,
    ) -> Result<Response<RotateSessionKeyReply>, Status> {
        self.sessions.rotate_session_key(r).await
    }

    async fn end_gateway_session(
        &self,
        r: Request<EndGatewaySessionRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        self.sessions.end_gateway_session(r).await
    }
}
