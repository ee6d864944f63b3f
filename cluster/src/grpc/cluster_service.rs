//! Server side of the cluster API: registry writes and reads, status and membership.
//!
//! Writes are validated here, on whichever node receives them, so nothing invalid is ever
//! proposed. A node that is not the leader forwards the request once to the leader it
//! knows. Reads are linearizable unless the caller asks for a stale read: the node
//! confirms leadership with a quorum (`ensure_linearizable`) or forwards to the leader.
//! Who may call which method is settled before a handler runs, by [`crate::auth`].

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
use mcp_proto::cluster::cluster_service_server::ClusterService;
use mcp_proto::cluster::{
    AddLearnerRequest, DeployRequest, DrainRequest, GetMetricsReply, GetMetricsRequest,
    GetServerRequest, InstanceInfo, InstancePlacement, ListServersReply, ListServersRequest,
    Member, MembersReply, MembersRequest, MetricsReply, MetricsRequest, PromoteVoterRequest,
    RemoveNodeRequest, ScaleRequest, ServerInfo, ServerStats, StatusReply, StatusRequest,
    UndeployRequest, WriteReply,
};
use mcp_proto::contract::InstanceState;
use mcp_raft::registry::spec::{self, MAX_REPLICAS};
use mcp_raft::registry::ServerRecord;
use mcp_raft::types::Raft;
use mcp_raft::{Command, CommandOutcome, NodeId, RegistryReader, TypeConfig};
use openraft::error::{
    ChangeMembershipError, CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError,
};
use openraft::raft::ClientWriteResponse;
use openraft::{BasicNode, ChangeMembers, ServerState};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::batcher::{ProposalBatcher, Proposed};
use crate::dataplane::placement;
use crate::dataplane::DataPlane;
use crate::error::ClusterError;
use crate::fleet::{self, FleetReport};
use crate::forward::{self, PeerChannels};
use crate::metrics::{Metrics, RequestStats};

/// How long adding a learner may take, including its catch-up by log or snapshot.
const ADD_LEARNER_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between attempts of a membership change that found another one in progress.
const MEMBERSHIP_RETRY: Duration = Duration::from_millis(50);
/// How long a listing waits for each member's report of the instances it runs.
const FLEET_REPORT_TIMEOUT: Duration = Duration::from_millis(500);

/// The `ClusterService` implementation of a node.
#[derive(Clone)]
pub struct ClusterApi {
    id: NodeId,
    raft: Raft,
    registry: RegistryReader,
    peers: PeerChannels,
    write_timeout: Duration,
    batcher: ProposalBatcher,
    dataplane: Option<(Arc<DataPlane>, Arc<Metrics>)>,
    node_tags: Vec<String>,
}

/// Where a request that needs the leader ends up.
enum Route<T> {
    /// This node is the leader and did the work.
    Done(T),
    /// Another node is the leader; the request must go there.
    Leader(String),
}

type ForwardError = ForwardToLeader<NodeId, BasicNode>;

fn leader_addr(forward: ForwardError) -> Result<String, ClusterError> {
    forward.leader_node.map(|n| n.addr).ok_or_else(|| {
        ClusterError::Unavailable(
            "no leader is elected right now (the cluster may have lost quorum); retry shortly"
                .to_owned(),
        )
    })
}

fn fatal(node: NodeId, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Fatal {
        node,
        reason: e.to_string(),
    }
}

impl ClusterApi {
    /// The cluster API of node `id`.
    pub fn new(
        id: NodeId,
        raft: Raft,
        registry: RegistryReader,
        peers: PeerChannels,
        write_timeout: Duration,
        batcher: ProposalBatcher,
    ) -> Self {
        Self {
            id,
            raft,
            registry,
            peers,
            write_timeout,
            batcher,
            dataplane: None,
            node_tags: Vec::new(),
        }
    }

    /// Announces `tags` as this node's tags in status replies (the leader copies them into
    /// the registry for placement constraints).
    pub fn with_node_tags(mut self, tags: Vec<String>) -> Self {
        self.node_tags = tags;
        self
    }

    /// Lists this data plane's instances in status replies and serves its metrics.
    pub fn with_dataplane(mut self, dataplane: Arc<DataPlane>, metrics: Arc<Metrics>) -> Self {
        self.dataplane = Some((dataplane, metrics));
        self
    }

    /// Proposes `command` and waits until it is committed and applied. Concurrent
    /// proposals share Raft entries (see [`ProposalBatcher`]).
    async fn propose(
        &self,
        command: Command,
    ) -> Result<Route<(CommandOutcome, u64)>, ClusterError> {
        let op = command.op();
        match self.batcher.propose(command).await {
            Proposed::Applied { result, index } => {
                let outcome = result?;
                tracing::info!(op, revision = outcome.revision, index, "committed");
                Ok(Route::Done((outcome, index)))
            }
            Proposed::NotLeader(Some(addr)) => Ok(Route::Leader(addr)),
            Proposed::NotLeader(None) => Err(ClusterError::Unavailable(
                "no leader is elected right now (the cluster may have lost quorum); retry shortly"
                    .to_owned(),
            )),
            Proposed::TimedOut => Err(self.write_timed_out()),
            Proposed::Failed(reason) => Err(fatal(self.id, reason)),
        }
    }

    fn write_timed_out(&self) -> ClusterError {
        ClusterError::Unavailable(format!(
            "write not committed within {} ms (no quorum?); it may still be applied later",
            self.write_timeout.as_millis()
        ))
    }

    /// Confirms with a quorum that this node is still the leader and has applied everything
    /// committed before now, so a local read is linearizable.
    async fn confirm_leader(&self) -> Result<Route<()>, ClusterError> {
        let confirmed = tokio::time::timeout(self.write_timeout, self.raft.ensure_linearizable())
            .await
            .map_err(|_| {
                ClusterError::Unavailable(
                    "could not confirm leadership with a quorum in time; use a stale read to read this node's state"
                        .to_owned(),
                )
            })?;
        match confirmed {
            Ok(_) => Ok(Route::Done(())),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Ok(Route::Leader(leader_addr(f)?))
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
                Err(ClusterError::Unavailable(e.to_string()))
            }
            Err(RaftError::Fatal(e)) => Err(fatal(self.id, e)),
        }
    }

    /// Runs a membership change on the leader, or says where the leader is.
    ///
    /// openraft refuses a change while the previous one (its joint-consensus second step)
    /// is still being committed; that window is short, so the change is retried until
    /// `timeout` instead of bouncing a transient error to the user.
    async fn change_membership<F, Fut>(
        &self,
        change: F,
        timeout: Duration,
    ) -> Result<Route<()>, ClusterError>
    where
        F: Fn() -> Fut,
        Fut: Future<
            Output = Result<
                ClientWriteResponse<TypeConfig>,
                RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
            >,
        >,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = tokio::time::timeout_at(deadline, change())
                .await
                .map_err(|_| self.write_timed_out())?;
            match changed {
                Ok(_) => return Ok(Route::Done(())),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    return Ok(Route::Leader(leader_addr(f)?))
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(_),
                ))) if tokio::time::Instant::now() + MEMBERSHIP_RETRY < deadline => {
                    tokio::time::sleep(MEMBERSHIP_RETRY).await;
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                    return Err(ClusterError::Membership(e.to_string()))
                }
                Err(RaftError::Fatal(e)) => return Err(fatal(self.id, e)),
            }
        }
    }

    /// Sends `request` to the leader at `addr`, unless it was already forwarded once.
    async fn forward<T, R, F, Fut>(
        &self,
        addr: String,
        request: Request<T>,
        call: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(ClusterServiceClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        if forward::was_forwarded(&request) {
            return Err(ClusterError::Unavailable(
                "leadership is changing; retry shortly".to_owned(),
            )
            .into());
        }
        Ok(forward::forward(&self.peers, self.id, &addr, request, call).await?)
    }

    /// The listing of one server, with where each instance is placed and what its node
    /// says it is doing.
    fn server_info(record: &ServerRecord, fleet: &FleetReport) -> ServerInfo {
        let spec = &record.spec;
        let (placements, running) = if placement::runs_everywhere(record) {
            // Every node keeps its own sessions to a remote server: count the nodes that
            // have a live one.
            let running = fleet
                .values()
                .flatten()
                .filter(|report| {
                    report
                        .instances
                        .iter()
                        .any(|i| i.server == spec.name && is_running(&i.state))
                })
                .count();
            (Vec::new(), running)
        } else {
            let placements: Vec<InstancePlacement> = record
                .placements
                .iter()
                .map(|(instance, node)| InstancePlacement {
                    state: fleet::instance_state(fleet, *node, instance),
                    instance_id: instance.clone(),
                    node_id: *node,
                })
                .collect();
            let running = placements.iter().filter(|p| is_running(&p.state)).count();
            (placements, running)
        };
        ServerInfo {
            name: spec.name.clone(),
            transport: spec.transport_kind().to_owned(),
            replicas: spec.replicas,
            priority: spec.priority,
            tags: spec.tags.clone(),
            create_revision: record.create_revision,
            mod_revision: record.mod_revision,
            spec_json: spec.redacted().to_string(),
            placements,
            running: u32::try_from(running).unwrap_or(u32::MAX),
        }
    }

    /// What every member runs right now (see [`fleet`]).
    async fn fleet_report(&self) -> FleetReport {
        let members: Vec<(NodeId, String)> = self
            .members()
            .members
            .into_iter()
            .map(|m| (m.id, m.addr))
            .collect();
        fleet::gather(&members, &self.peers, FLEET_REPORT_TIMEOUT).await
    }

    fn members(&self) -> MembersReply {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let draining: BTreeSet<NodeId> = self.registry.read(|s| {
            s.registry
                .nodes()
                .filter(|n| n.draining)
                .map(|n| n.id)
                .collect()
        });
        let members = membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                addr: node.addr.clone(),
                voter: voters.contains(id),
                draining: draining.contains(id),
                reachable: None,
            })
            .collect();
        MembersReply {
            members,
            leader_id: metrics.current_leader,
        }
    }
}

fn write_reply(name: &str, (outcome, index): (CommandOutcome, u64)) -> Response<WriteReply> {
    Response::new(WriteReply {
        revision: outcome.revision,
        name: name.to_owned(),
        created: outcome.created,
        log_index: index,
    })
}

/// True for an instance state word that means "serving".
fn is_running(state: &str) -> bool {
    InstanceState::parse(state) == Some(InstanceState::Running)
}

fn check_name(name: &str) -> Result<(), ClusterError> {
    spec::validate_name(name).map_err(ClusterError::InvalidSpec)
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

#[tonic::async_trait]
impl ClusterService for ClusterApi {
    async fn drain(&self, request: Request<DrainRequest>) -> Result<Response<WriteReply>, Status> {
        let DrainRequest { id, draining } = *request.get_ref();
        match self.propose(Command::SetDraining { id, draining }).await? {
            Route::Done(done) => {
                tracing::info!(node = id, draining, "drain mark changed");
                Ok(write_reply(&format!("node-{id}"), done))
            }
            Route::Leader(addr) => {
                self.forward(addr, request, |mut c, r| async move { c.drain(r).await })
                    .await
            }
        }
    }

    async fn get_metrics(
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

    async fn metrics(
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

    async fn deploy(
        &self,
        request: Request<DeployRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let spec = spec::parse_json(&request.get_ref().spec_json).map_err(ClusterError::from)?;
        let name = spec.name.clone();
        let command = Command::PutServer {
            spec,
            expected_revision: request.get_ref().expected_revision,
        };
        match self.propose(command).await? {
            Route::Done(done) => Ok(write_reply(&name, done)),
            Route::Leader(addr) => {
                self.forward(addr, request, |mut c, r| async move { c.deploy(r).await })
                    .await
            }
        }
    }

    async fn undeploy(
        &self,
        request: Request<UndeployRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let name = request.get_ref().name.clone();
        check_name(&name)?;
        match self
            .propose(Command::DeleteServer { name: name.clone() })
            .await?
        {
            Route::Done(done) => Ok(write_reply(&name, done)),
            Route::Leader(addr) => {
                self.forward(addr, request, |mut c, r| async move { c.undeploy(r).await })
                    .await
            }
        }
    }

    async fn scale(&self, request: Request<ScaleRequest>) -> Result<Response<WriteReply>, Status> {
        let ScaleRequest { name, replicas } = request.get_ref().clone();
        check_name(&name)?;
        if replicas > MAX_REPLICAS {
            return Err(ClusterError::InvalidArgument(format!(
                "replicas must be between 0 and {MAX_REPLICAS}, got {replicas}"
            ))
            .into());
        }
        match self
            .propose(Command::Scale {
                name: name.clone(),
                replicas,
            })
            .await?
        {
            Route::Done(done) => Ok(write_reply(&name, done)),
            Route::Leader(addr) => {
                self.forward(addr, request, |mut c, r| async move { c.scale(r).await })
                    .await
            }
        }
    }

    async fn get_server(
        &self,
        request: Request<GetServerRequest>,
    ) -> Result<Response<ServerInfo>, Status> {
        let GetServerRequest { name, stale } = request.get_ref().clone();
        if !stale {
            if let Route::Leader(addr) = self.confirm_leader().await? {
                return self
                    .forward(
                        addr,
                        request,
                        |mut c, r| async move { c.get_server(r).await },
                    )
                    .await;
            }
        }
        let fleet = self.fleet_report().await;
        self.registry
            .read(|state| {
                let registry = &state.registry;
                registry
                    .server(&name)
                    .map(|record| Self::server_info(record, &fleet))
            })
            .map(Response::new)
            .ok_or_else(|| {
                ClusterError::Rejected(mcp_raft::CommandError::ServerNotFound { name }).into()
            })
    }

    async fn list_servers(
        &self,
        request: Request<ListServersRequest>,
    ) -> Result<Response<ListServersReply>, Status> {
        if !request.get_ref().stale {
            if let Route::Leader(addr) = self.confirm_leader().await? {
                return self
                    .forward(
                        addr,
                        request,
                        |mut c, r| async move { c.list_servers(r).await },
                    )
                    .await;
            }
        }
        let fleet = self.fleet_report().await;
        let reply = self.registry.read(|state| {
            let registry = &state.registry;
            ListServersReply {
                servers: registry
                    .servers()
                    .map(|record| Self::server_info(record, &fleet))
                    .collect(),
                revision: registry.revision(),
            }
        });
        Ok(Response::new(reply))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let metrics = self.raft.metrics().borrow().clone();
        let role = match metrics.state {
            ServerState::Leader => "Leader",
            ServerState::Follower => "Follower",
            ServerState::Candidate => "Candidate",
            ServerState::Learner => "Learner",
            ServerState::Shutdown => "Shutdown",
        };
        let (revision, server_count) = self
            .registry
            .read(|s| (s.registry.revision(), s.registry.server_count()));
        let grpc_addr = metrics
            .membership_config
            .membership()
            .get_node(&self.id)
            .map(|n| n.addr.clone())
            .unwrap_or_default();
        Ok(Response::new(StatusReply {
            node_id: self.id,
            grpc_addr,
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            role: role.to_owned(),
            last_log_index: metrics.last_log_index,
            last_applied_index: metrics.last_applied.map(|l| l.index),
            snapshot_index: metrics.snapshot.map(|l| l.index),
            purged_index: metrics.purged.map(|l| l.index),
            revision,
            server_count: u32::try_from(server_count).unwrap_or(u32::MAX),
            members: self.members().members,
            instances: self
                .dataplane
                .as_ref()
                .map(|(plane, _)| {
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
                })
                .unwrap_or_default(),
            node_tags: self.node_tags.clone(),
        }))
    }

    async fn members(
        &self,
        _request: Request<MembersRequest>,
    ) -> Result<Response<MembersReply>, Status> {
        let mut reply = self.members();
        let fleet = self.fleet_report().await;
        for member in &mut reply.members {
            member.reachable = Some(fleet.get(&member.id).is_some_and(Option::is_some));
        }
        Ok(Response::new(reply))
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<MembersReply>, Status> {
        let AddLearnerRequest { id, addr } = request.get_ref().clone();
        if addr.trim().is_empty() || !addr.contains(':') {
            return Err(ClusterError::InvalidArgument(format!(
                "node address must be HOST:PORT, got {addr:?}"
            ))
            .into());
        }
        let change = || {
            self.raft
                .add_learner(id, BasicNode::new(addr.clone()), true)
        };
        match self.change_membership(change, ADD_LEARNER_TIMEOUT).await? {
            Route::Done(()) => {
                tracing::info!(node = id, %addr, "added learner");
                Ok(Response::new(self.members()))
            }
            Route::Leader(leader) => {
                self.forward(
                    leader,
                    request,
                    |mut c, r| async move { c.add_learner(r).await },
                )
                .await
            }
        }
    }

    async fn promote_voter(
        &self,
        request: Request<PromoteVoterRequest>,
    ) -> Result<Response<MembersReply>, Status> {
        let id = request.get_ref().id;
        let change = || {
            self.raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
        };
        match self.change_membership(change, self.write_timeout).await? {
            Route::Done(()) => {
                tracing::info!(node = id, "promoted to voter");
                Ok(Response::new(self.members()))
            }
            Route::Leader(leader) => {
                self.forward(leader, request, |mut c, r| async move {
                    c.promote_voter(r).await
                })
                .await
            }
        }
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<MembersReply>, Status> {
        let id = request.get_ref().id;
        let current = self.members();
        let Some(member) = current.members.iter().find(|m| m.id == id) else {
            return Err(ClusterError::Membership(format!("node {id} is not a member")).into());
        };
        let voter = member.voter;
        let change = || {
            let ids = BTreeSet::from([id]);
            // retain = false: a removed voter is dropped from the cluster, not kept as learner.
            let members = if voter {
                ChangeMembers::RemoveVoters(ids)
            } else {
                ChangeMembers::RemoveNodes(ids)
            };
            self.raft.change_membership(members, false)
        };
        match self.change_membership(change, self.write_timeout).await? {
            Route::Done(()) => {
                tracing::info!(node = id, "removed from the cluster");
                Ok(Response::new(self.members()))
            }
            Route::Leader(leader) => {
                self.forward(
                    leader,
                    request,
                    |mut c, r| async move { c.remove_node(r).await },
                )
                .await
            }
        }
    }
}
