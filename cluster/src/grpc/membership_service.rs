//! The membership part of `ClusterService`: `Members`, `AddLearner`, `PromoteVoter` and
//! `RemoveNode`. Changes run on the leader (see [`LeaderRoute`]); the member list is Raft's
//! membership joined with the registry's drain marks.

use std::collections::BTreeSet;
use std::time::Duration;

use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
use mcp_proto::cluster::{
    AddLearnerRequest, Member, MembersReply, MembersRequest, PromoteVoterRequest, RemoveNodeRequest,
};
use mcp_raft::RegistryReader;
use openraft::{BasicNode, ChangeMembers};
use std::future::Future;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::leader_route::LeaderRoute;
use crate::error::ClusterError;
use crate::fleet::{self, FleetReport};
use crate::membership::{self, MembershipView};
use crate::proposer::Written;

/// How long adding a learner may take, including its catch-up by log or snapshot.
const ADD_LEARNER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a listing waits for each member's report of the instances it runs.
const FLEET_REPORT_TIMEOUT: Duration = Duration::from_millis(500);

/// Handlers of the membership RPCs.
#[derive(Clone)]
pub struct MembershipHandlers {
    route: LeaderRoute,
    registry: RegistryReader,
}

impl MembershipHandlers {
    /// Membership handlers on `route`, reading drain marks from `registry`.
    pub fn new(route: LeaderRoute, registry: RegistryReader) -> Self {
        Self { route, registry }
    }

    /// The members as this node sees them, with the leader it knows.
    pub fn members_reply(&self) -> MembersReply {
        let view = MembershipView::of(self.route.raft());
        let draining = membership::draining(&self.registry);
        MembersReply {
            members: view
                .nodes
                .iter()
                .map(|(id, addr)| Member {
                    id: *id,
                    addr: addr.clone(),
                    voter: view.is_voter(*id),
                    draining: draining.contains(id),
                    reachable: None,
                })
                .collect(),
            leader_id: view.leader,
        }
    }

    /// What every member runs right now (see [`fleet`]).
    pub async fn fleet_report(&self) -> FleetReport {
        let members = MembershipView::of(self.route.raft()).members();
        fleet::gather(&members, self.route.peers(), FLEET_REPORT_TIMEOUT).await
    }

    /// `Members`: the members, each marked reachable if it answered for its fleet report.
    pub async fn members(
        &self,
        _request: Request<MembersRequest>,
    ) -> Result<Response<MembersReply>, Status> {
        let mut reply = self.members_reply();
        let fleet = self.fleet_report().await;
        for member in &mut reply.members {
            member.reachable = Some(fleet.get(&member.id).is_some_and(Option::is_some));
        }
        Ok(Response::new(reply))
    }

    /// `AddLearner`: returns once the learner has caught up.
    pub async fn add_learner(
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
        // A node that cannot read this cluster's log is refused before it becomes a member.
        crate::compat::check_joiner(self.route.peers(), id, &addr).await?;
        let raft = self.route.raft();
        let change = || raft.add_learner(id, BasicNode::new(addr.clone()), true);
        let changed = || tracing::info!(node = id, %addr, "added learner");
        self.change(
            request,
            change,
            ADD_LEARNER_TIMEOUT,
            changed,
            |mut c, r| async move { c.add_learner(r).await },
        )
        .await
    }

    /// `PromoteVoter`: the learner becomes a voter.
    pub async fn promote_voter(
        &self,
        request: Request<PromoteVoterRequest>,
    ) -> Result<Response<MembersReply>, Status> {
        let id = request.get_ref().id;
        let raft = self.route.raft();
        let change =
            || raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false);
        let changed = || tracing::info!(node = id, "promoted to voter");
        let timeout = self.route.write_timeout();
        self.change(request, change, timeout, changed, |mut c, r| async move {
            c.promote_voter(r).await
        })
        .await
    }

    /// `RemoveNode`: a voter or learner leaves the cluster.
    pub async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<MembersReply>, Status> {
        let id = request.get_ref().id;
        let view = MembershipView::of(self.route.raft());
        if view.addr(id).is_none() {
            return Err(ClusterError::Membership(format!("node {id} is not a member")).into());
        }
        let voter = view.is_voter(id);
        let raft = self.route.raft();
        let change = || {
            let ids = BTreeSet::from([id]);
            // retain = false: a removed voter is dropped from the cluster, not kept as learner.
            let members = if voter {
                ChangeMembers::RemoveVoters(ids)
            } else {
                ChangeMembers::RemoveNodes(ids)
            };
            raft.change_membership(members, false)
        };
        let changed = || tracing::info!(node = id, "removed from the cluster");
        let timeout = self.route.write_timeout();
        self.change(request, change, timeout, changed, |mut c, r| async move {
            c.remove_node(r).await
        })
        .await
    }

    /// Runs `change` on the leader (here, or by forwarding `request` with `call`), then
    /// reports it with `changed` and answers the new member list.
    async fn change<T, C, CFut, F, Fut>(
        &self,
        request: Request<T>,
        change: C,
        timeout: Duration,
        changed: impl Fn(),
        call: F,
    ) -> Result<Response<MembersReply>, Status>
    where
        T: Clone,
        C: Fn() -> CFut,
        CFut: Future<Output = Written>,
        F: Fn(ClusterServiceClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<MembersReply>, Status>>,
    {
        let local = || async {
            let route = self.route.change_membership(&change, timeout).await?;
            Ok(route.map(|()| {
                changed();
                self.members_reply()
            }))
        };
        self.route.leader_or_forward(request, local, call).await
    }
}
