//! Where a request that needs the leader is served: here if this node leads, else at the
//! leader, forwarded once (marked `x-mcpd-forwarded-by`, so a request that reaches a node
//! that is not the leader after all is refused instead of bouncing on).
//!
//! Leadership is first read from Raft's metrics ([`MembershipView`]): a follower that
//! knows the leader forwards at once, without queueing a proposal or asking a quorum only
//! to be told the same. Otherwise Raft decides, and may still answer "not the leader, go
//! there" (leadership moved meanwhile), which is forwarded the same way.
//!
//! Writes and linearizable reads ride out elections: when no leader is known, or the one
//! known refuses the connection (it died and the others have not noticed yet), the request
//! waits for Raft to name a new leader and goes again, until the write timeout. Nothing was
//! done by the failed attempt, so repeating it is safe; a request that may have reached the
//! leader is never repeated here.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
use mcp_raft::types::Raft;
use mcp_raft::{Command, CommandOutcome, NodeId};
use openraft::error::{
    ChangeMembershipError, CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError,
};
use openraft::BasicNode;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::batcher::ProposalBatcher;
use crate::error::ClusterError;
use crate::forward::{self, PeerChannels};
use crate::membership::MembershipView;
use crate::proposer::{Proposed, Written};
use crate::read_your_writes;

/// Pause between attempts of a membership change that found another one in progress.
const MEMBERSHIP_RETRY: Duration = Duration::from_millis(50);
/// Longest wait for Raft to name a new leader before a request that found none (or found
/// it gone) is tried again anyway: the old leader may have come back meanwhile.
const LEADER_RECHECK: Duration = Duration::from_millis(100);

/// A committed command: its outcome and the log index of its entry.
pub type Committed = (CommandOutcome, u64);

/// Where a request that needs the leader ends up.
pub enum Route<T> {
    /// This node is the leader and did the work.
    Done(T),
    /// Another node is the leader; the request must go there.
    Leader(String),
}

impl<T> Route<T> {
    /// The same route with the work's result turned by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Route<U> {
        match self {
            Route::Done(t) => Route::Done(f(t)),
            Route::Leader(addr) => Route::Leader(addr),
        }
    }
}

fn no_leader() -> ClusterError {
    ClusterError::NoLeader
}

fn leader_addr(forward: ForwardToLeader<NodeId, BasicNode>) -> Result<String, ClusterError> {
    forward.leader_node.map(|n| n.addr).ok_or_else(no_leader)
}

/// The answer to a write whose leader vanished while it had it: says that it may or may
/// not have been applied, so the caller can tell it from a write that provably was not
/// (those wait for the next leader instead), and check before writing again.
fn maybe_applied(e: ClusterError) -> ClusterError {
    match e {
        ClusterError::LeaderUnreachable {
            addr,
            detail,
            sent: true,
        } => ClusterError::Unavailable(format!(
            "the leader at {addr} became unreachable while it had this write ({detail}); it may or may not have been applied, and was not sent again"
        )),
        other => other,
    }
}

/// A Raft failure this node cannot recover from.
pub fn fatal(node: NodeId, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Fatal {
        node,
        reason: e.to_string(),
    }
}

/// The route of a node's requests to the leader.
#[derive(Clone)]
pub struct LeaderRoute {
    id: NodeId,
    raft: Raft,
    peers: PeerChannels,
    batcher: ProposalBatcher,
    write_timeout: Duration,
}

impl LeaderRoute {
    /// The route of node `id`; local writes go through `batcher`.
    pub fn new(
        id: NodeId,
        raft: Raft,
        peers: PeerChannels,
        batcher: ProposalBatcher,
        write_timeout: Duration,
    ) -> Self {
        Self {
            id,
            raft,
            peers,
            batcher,
            write_timeout,
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node's Raft.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Channels to the other nodes.
    pub fn peers(&self) -> &PeerChannels {
        &self.peers
    }

    /// How long a write may wait for its commit.
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    /// Proposes `command` here if this node leads and answers `done(committed)`, or
    /// forwards `request` to the leader with `call`. A write forwarded without asking Raft
    /// still counts in `mcp_raft_proposals_total{outcome="forwarded"}`, as one that Raft
    /// turned away does.
    pub async fn propose_or_forward<T, R, F, Fut>(
        &self,
        request: Request<T>,
        command: Command,
        done: impl Fn(Committed) -> R,
        call: F,
    ) -> Result<Response<R>, Status>
    where
        T: Clone,
        F: Fn(ClusterServiceClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        // The index of a write committed here (0: it went to another leader).
        let committed_here = AtomicU64::new(0);
        let route = || async {
            Ok(match self.other_leader() {
                Some(addr) => {
                    self.batcher.proposer().count_forwarded();
                    Route::Leader(addr)
                }
                None => self.propose(command.clone()).await?.map(|committed| {
                    committed_here.store(committed.1, Ordering::Relaxed);
                    done(committed)
                }),
            })
        };
        // A write that may have reached a leader is never sent again (see below).
        let mut reply = self.through_elections(request, false, route, call).await?;
        match committed_here.load(Ordering::Relaxed) {
            0 => {
                if let Some(index) = mcp_proto::log_index(reply.metadata()) {
                    self.wait_applied_here(index).await;
                }
            }
            index => {
                reply
                    .metadata_mut()
                    .insert(mcp_proto::LOG_INDEX, MetadataValue::from(index));
            }
        }
        Ok(reply)
    }

    /// Waits (briefly, see [`read_your_writes::wait_applied`]) until this node has applied
    /// log `index`: a client that wrote through this node and then reads from it (a call
    /// right after a deploy) finds its write, instead of "unknown server" for the moment
    /// between the leader's commit and this node hearing of it.
    async fn wait_applied_here(&self, index: u64) {
        if !read_your_writes::wait_applied(&self.raft, index).await {
            tracing::debug!(
                index,
                "a forwarded write is not applied here yet; answering anyway (it is committed)"
            );
        }
    }

    /// Finds the `route` of `request` and finishes it (answers here, or forwards it with
    /// `call`), again and again until that succeeds, fails for another reason than a
    /// missing or vanished leader, or the write timeout has passed; between attempts, waits
    /// for Raft to name a new leader (see the module docs). A `repeatable` request (a read)
    /// also goes again when the leader vanished while it had it.
    ///
    /// A write the leader may have had when it vanished is never sent again, not even one
    /// that is idempotent alone (a plain deploy, a scale): the first attempt may have been
    /// committed, and another client's write may have landed after it, so a second apply
    /// would undo that write (the nemesis suite saw an acknowledged undeploy undone by a
    /// plain deploy re-applied this way). The caller gets `unavailable`: it may or may not
    /// have been applied.
    async fn through_elections<T, R, A, AFut, F, Fut>(
        &self,
        request: Request<T>,
        repeatable: bool,
        route: A,
        call: F,
    ) -> Result<Response<R>, Status>
    where
        T: Clone,
        A: Fn() -> AFut,
        AFut: Future<Output = Result<Route<R>, ClusterError>>,
        F: Fn(ClusterServiceClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        // Kept apart so that each attempt sends the request afresh.
        let (metadata, _, message) = request.into_parts();
        let deadline = tokio::time::Instant::now() + self.write_timeout;
        loop {
            let tried = self.raft.metrics().borrow().current_leader;
            let attempt = async {
                let route = route().await?;
                let request =
                    Request::from_parts(metadata.clone(), Default::default(), message.clone());
                self.finish(request, route, &call).await
            };
            match attempt.await {
                Err(e)
                    if (e.leader_gone() || (repeatable && e.leader_lost_mid_flight()))
                        && tokio::time::Instant::now() < deadline =>
                {
                    tracing::debug!(error = %e, "no reachable leader; waiting for the election");
                    self.wait_for_other_leader(tried, deadline).await;
                }
                Err(e) if !repeatable => return Err(Status::from(maybe_applied(e))),
                other => return other.map_err(Status::from),
            }
        }
    }

    /// Waits until Raft names a leader other than `tried`, for at most [`LEADER_RECHECK`]
    /// and never past `deadline`.
    async fn wait_for_other_leader(&self, tried: Option<NodeId>, deadline: tokio::time::Instant) {
        let wait = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(LEADER_RECHECK);
        // A timeout (or Raft shutting down) just means: try again, or give up at the deadline.
        let _ = self
            .raft
            .wait(Some(wait))
            .metrics(
                |m| m.current_leader.is_some() && m.current_leader != tried,
                "a new leader",
            )
            .await;
    }

    /// Runs `local` here if this node leads (or knows no other leader: `local` then asks
    /// Raft), or forwards `request` to the leader with `call`; like a write, it waits out an
    /// election (a membership change that finds no leader was not made, so it goes again
    /// once there is one).
    pub async fn leader_or_forward<T, R, L, LFut, F, Fut>(
        &self,
        request: Request<T>,
        local: L,
        call: F,
    ) -> Result<Response<R>, Status>
    where
        T: Clone,
        L: Fn() -> LFut,
        LFut: Future<Output = Result<Route<R>, ClusterError>>,
        F: Fn(ClusterServiceClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let route = || async {
            match self.other_leader() {
                Some(addr) => Ok(Route::Leader(addr)),
                None => local().await,
            }
        };
        self.through_elections(request, false, route, call).await
    }

    /// Answers `read` here: at once for a `stale` read, else once a quorum confirmed that
    /// this node leads and has applied everything committed before now (so the read is
    /// linearizable); or forwards `request` to the leader with `call`.
    pub async fn read_or_forward<T, R, L, LFut, F, Fut>(
        &self,
        request: Request<T>,
        stale: bool,
        read: L,
        call: F,
    ) -> Result<Response<R>, Status>
    where
        T: Clone,
        L: Fn() -> LFut,
        LFut: Future<Output = Result<R, ClusterError>>,
        F: Fn(ClusterServiceClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        if stale {
            return Ok(Response::new(read().await?));
        }
        let route = || async {
            Ok(match self.other_leader() {
                Some(addr) => Route::Leader(addr),
                None => match self.confirm_leader().await? {
                    Route::Done(()) => Route::Done(read().await?),
                    Route::Leader(addr) => Route::Leader(addr),
                },
            })
        };
        // A read changes nothing: it may always go to the next leader.
        self.through_elections(request, true, route, call).await
    }

    /// Runs a membership change on the leader, or says where the leader is.
    ///
    /// openraft refuses a change while the previous one (its joint-consensus second step)
    /// is still being committed; that window is short, so the change is retried until
    /// `timeout` instead of bouncing a transient error to the user.
    pub async fn change_membership<F, Fut>(
        &self,
        change: F,
        timeout: Duration,
    ) -> Result<Route<()>, ClusterError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Written>,
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

    /// The leader's address when another node is known to lead.
    fn other_leader(&self) -> Option<String> {
        MembershipView::of(&self.raft)
            .other_leader_addr()
            .map(str::to_owned)
    }

    /// Proposes `command` and waits until it is committed and applied. Concurrent
    /// proposals share Raft entries (see [`ProposalBatcher`]).
    async fn propose(&self, command: Command) -> Result<Route<Committed>, ClusterError> {
        let op = command.op();
        match self.batcher.propose(command).await {
            Proposed::Applied { result, index } => {
                let outcome = result?;
                tracing::info!(op, revision = outcome.revision, index, "committed");
                Ok(Route::Done((outcome, index)))
            }
            Proposed::NotLeader(Some(addr)) => Ok(Route::Leader(addr)),
            Proposed::NotLeader(None) => Err(no_leader()),
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

    /// Answers with the local result, or sends `request` on to the leader unless it was
    /// already forwarded once.
    async fn finish<T, R, F, Fut>(
        &self,
        request: Request<T>,
        route: Route<R>,
        call: F,
    ) -> Result<Response<R>, ClusterError>
    where
        F: FnOnce(ClusterServiceClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let addr = match route {
            Route::Done(reply) => return Ok(Response::new(reply)),
            Route::Leader(addr) => addr,
        };
        if forward::was_forwarded(&request) {
            return Err(ClusterError::Unavailable(
                "leadership is changing; retry shortly".to_owned(),
            ));
        }
        forward::forward(&self.peers, self.id, &addr, request, call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_lost_with_its_leader_says_it_may_have_been_applied() {
        let lost = maybe_applied(ClusterError::LeaderUnreachable {
            addr: "n1:7400".to_owned(),
            detail: "connection reset".to_owned(),
            sent: true,
        });
        let status = Status::from(lost);
        assert_eq!(
            mcp_proto::contract::ErrorKind::of(&status),
            Some(mcp_proto::contract::ErrorKind::Unavailable)
        );
        assert!(
            status
                .message()
                .contains("may or may not have been applied"),
            "{status:?}"
        );
        // One that never left this node says nothing of the kind: it was not applied.
        let refused = Status::from(maybe_applied(ClusterError::LeaderUnreachable {
            addr: "n1:7400".to_owned(),
            detail: "connection refused".to_owned(),
            sent: false,
        }));
        assert!(!refused.message().contains("may or may not"), "{refused:?}");
    }
}
