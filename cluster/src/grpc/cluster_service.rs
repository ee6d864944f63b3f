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
use mcp_proto::cluster::{
    CreateTokenReply, CreateTokenRequest, ListTokensReply, ListTokensRequest, RevokeTokenRequest,
};
use mcp_raft::types::Raft;
use mcp_raft::{NodeId, RegistryReader};
use tonic::{Request, Response, Status};

use super::backup_service::BackupHandlers;
use super::guard_service::GuardHandlers;
use super::leader_route::LeaderRoute;
use super::membership_service::MembershipHandlers;
use super::registry_service::RegistryHandlers;
use super::session_service::SessionHandlers;
use super::status_service::StatusHandlers;
use super::token_service::TokenHandlers;
use crate::audit::AuditSubject;
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
    tokens: TokenHandlers,
    backup: BackupHandlers,
    guards: GuardHandlers,
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
            backup: BackupHandlers::new(id, route.clone(), registry.clone()),
            guards: GuardHandlers::new(route.clone(), registry.clone(), None),
            // Off until `with_auth` says the node checks credentials.
            tokens: TokenHandlers::new(route.clone(), registry.clone(), false),
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

    /// Lets tokens be created: the node checks credentials (it has an admin token).
    pub fn with_auth(mut self, enabled: bool) -> Self {
        self.tokens = TokenHandlers::new(
            self.sessions.route().clone(),
            self.sessions.registry().clone(),
            enabled,
        );
        self
    }

    /// Seals secrets with `keyring` (set on every node: the one that proposes seals).
    pub fn with_secrets_keyring(
        mut self,
        keyring: Option<Arc<crate::guards::secrets::Keyring>>,
    ) -> Self {
        self.guards = GuardHandlers::new(
            self.sessions.route().clone(),
            self.sessions.registry().clone(),
            keyring,
        );
        self
    }

    /// The guard handlers, which the data plane's pin observer proposes through.
    pub fn guard_handlers(&self) -> GuardHandlers {
        self.guards.clone()
    }

    /// The scale-to-zero handlers, which the data plane wakes and idles servers through.
    pub fn demand_handlers(&self) -> super::demand_service::DemandHandlers {
        super::demand_service::DemandHandlers::new(self.sessions.route().clone())
    }

    /// The view handlers (issue 13); also where the data plane reports the list changes
    /// its servers announce.
    pub fn view_handlers(&self) -> super::view_service::ViewHandlers {
        super::view_service::ViewHandlers::new(
            self.sessions.route().clone(),
            self.sessions.registry().clone(),
        )
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
        // The server's name is in the spec: take it from the reply for the audit line.
        self.registry.deploy(r).await.map(|mut reply| {
            let subject = AuditSubject::server(reply.get_ref().name.clone());
            reply.extensions_mut().insert(subject);
            reply
        })
    }

    async fn undeploy(&self, r: Request<UndeployRequest>) -> Result<Response<WriteReply>, Status> {
        let subject = AuditSubject::server(r.get_ref().name.clone());
        subject.attach(self.registry.undeploy(r).await)
    }

    async fn scale(&self, r: Request<ScaleRequest>) -> Result<Response<WriteReply>, Status> {
        let subject = AuditSubject::server(r.get_ref().name.clone());
        subject.attach(self.registry.scale(r).await)
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

    async fn create_token(
        &self,
        r: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenReply>, Status> {
        let subject = AuditSubject::token(r.get_ref().name.clone());
        subject.attach(self.tokens.create_token(r).await)
    }

    async fn list_tokens(
        &self,
        r: Request<ListTokensRequest>,
    ) -> Result<Response<ListTokensReply>, Status> {
        self.tokens.list_tokens(r).await
    }

    async fn revoke_token(
        &self,
        r: Request<RevokeTokenRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let subject = AuditSubject::token(r.get_ref().name.clone());
        subject.attach(self.tokens.revoke_token(r).await)
    }

    async fn save_snapshot(
        &self,
        r: Request<mcp_proto::cluster::SaveSnapshotRequest>,
    ) -> Result<Response<mcp_proto::cluster::SaveSnapshotReply>, Status> {
        self.backup.save_snapshot(r).await
    }

    async fn list_tool_pins(
        &self,
        r: Request<mcp_proto::cluster::ListToolPinsRequest>,
    ) -> Result<Response<mcp_proto::cluster::ListToolPinsReply>, Status> {
        self.guards.list_tool_pins(r).await
    }

    async fn approve_tools(
        &self,
        r: Request<mcp_proto::cluster::ApproveToolsRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        self.guards.approve_tools(r).await
    }

    async fn observe_tools(
        &self,
        r: Request<mcp_proto::cluster::ObserveToolsRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        self.guards.observe_tools(r).await
    }

    async fn set_secret(
        &self,
        r: Request<mcp_proto::cluster::SetSecretRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        self.guards.set_secret(r).await
    }

    async fn list_secrets(
        &self,
        r: Request<mcp_proto::cluster::ListSecretsRequest>,
    ) -> Result<Response<mcp_proto::cluster::ListSecretsReply>, Status> {
        self.guards.list_secrets(r).await
    }

    async fn delete_secret(
        &self,
        r: Request<mcp_proto::cluster::DeleteSecretRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        self.guards.delete_secret(r).await
    }

    async fn rotate_secrets(
        &self,
        r: Request<mcp_proto::cluster::RotateSecretsRequest>,
    ) -> Result<Response<mcp_proto::cluster::RotateSecretsReply>, Status> {
        self.guards.rotate_secrets(r).await
    }

    async fn set_caller_limit(
        &self,
        r: Request<mcp_proto::cluster::SetCallerLimitRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        self.guards.set_caller_limit(r).await
    }

    async fn list_caller_limits(
        &self,
        r: Request<mcp_proto::cluster::ListCallerLimitsRequest>,
    ) -> Result<Response<mcp_proto::cluster::ListCallerLimitsReply>, Status> {
        self.guards.list_caller_limits(r).await
    }

    async fn set_server_awake(
        &self,
        r: Request<mcp_proto::cluster::SetServerAwakeRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        self.demand_handlers().set_server_awake(r).await
    }

    async fn put_view(
        &self,
        r: Request<mcp_proto::cluster::PutViewRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        self.view_handlers().put_view(r).await
    }

    async fn list_views(
        &self,
        r: Request<mcp_proto::cluster::ListViewsRequest>,
    ) -> Result<Response<mcp_proto::cluster::ListViewsReply>, Status> {
        self.view_handlers().list_views(r).await
    }

    async fn delete_view(
        &self,
        r: Request<mcp_proto::cluster::DeleteViewRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        self.view_handlers().delete_view(r).await
    }

    async fn announce_lists_changed(
        &self,
        r: Request<mcp_proto::cluster::AnnounceListsChangedRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        self.view_handlers().announce_lists_changed(r).await
    }
}
