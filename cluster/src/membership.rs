//! What this node knows of the cluster's membership and leadership, read from Raft's
//! metrics in one place: the API, leader duties, the scheduler, metrics and readiness all
//! take this view instead of each digging through openraft's membership config.

use std::collections::{BTreeMap, BTreeSet};

use mcp_raft::types::Raft;
use mcp_raft::{NodeId, RegistryReader};
use openraft::{BasicNode, RaftMetrics, ServerState};

/// The membership and leadership as this node last saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipView {
    /// This node.
    pub this: NodeId,
    /// The Raft term.
    pub term: u64,
    /// The leader this node knows of, if any.
    pub leader: Option<NodeId>,
    /// True if this node is the leader.
    pub leading: bool,
    /// Every member (voters and learners) with its advertised address, ordered by id.
    pub nodes: BTreeMap<NodeId, String>,
    /// The members that vote.
    pub voters: BTreeSet<NodeId>,
}

impl MembershipView {
    /// The current view of `raft`.
    pub fn of(raft: &Raft) -> Self {
        Self::from_metrics(&raft.metrics().borrow())
    }

    /// The view that `metrics` describe.
    pub fn from_metrics(metrics: &RaftMetrics<NodeId, BasicNode>) -> Self {
        let membership = metrics.membership_config.membership();
        Self {
            this: metrics.id,
            term: metrics.current_term,
            leader: metrics.current_leader,
            leading: metrics.state == ServerState::Leader,
            nodes: membership
                .nodes()
                .map(|(id, node)| (*id, node.addr.clone()))
                .collect(),
            voters: membership.voter_ids().collect(),
        }
    }

    /// True if `id` is a voting member.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// The members that do not vote, with their addresses.
    pub fn learners(&self) -> impl Iterator<Item = (NodeId, &str)> {
        self.nodes
            .iter()
            .filter(|(id, _)| !self.voters.contains(id))
            .map(|(id, addr)| (*id, addr.as_str()))
    }

    /// The address of member `id`.
    pub fn addr(&self, id: NodeId) -> Option<&str> {
        self.nodes.get(&id).map(String::as_str)
    }

    /// True if this node is a member.
    pub fn is_member(&self) -> bool {
        self.nodes.contains_key(&self.this)
    }

    /// Every member with its address.
    pub fn members(&self) -> Vec<(NodeId, String)> {
        self.nodes
            .iter()
            .map(|(id, addr)| (*id, addr.clone()))
            .collect()
    }

    /// Every member but this node, with its address.
    pub fn peers(&self) -> Vec<(NodeId, String)> {
        self.nodes
            .iter()
            .filter(|(id, _)| **id != self.this)
            .map(|(id, addr)| (*id, addr.clone()))
            .collect()
    }

    /// The address of the leader, if the leader is another node that this node knows.
    /// `None` while this node leads, believes it leads, or knows no leader: then Raft
    /// itself must decide (and says where to go if it is not the leader).
    pub fn other_leader_addr(&self) -> Option<&str> {
        if self.leading {
            return None;
        }
        self.leader
            .filter(|leader| *leader != self.this)
            .and_then(|leader| self.addr(leader))
    }
}

/// The nodes marked draining in the registry (the drain mark is replicated registry state,
/// not Raft membership).
pub fn draining(registry: &RegistryReader) -> BTreeSet<NodeId> {
    registry.read(|state| {
        state
            .registry
            .nodes()
            .filter(|n| n.draining)
            .map(|n| n.id)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use openraft::{LogId, Membership, StoredMembership};

    use super::*;

    fn metrics(
        this: NodeId,
        state: ServerState,
        leader: Option<NodeId>,
    ) -> RaftMetrics<NodeId, BasicNode> {
        let nodes: BTreeMap<NodeId, BasicNode> = [1, 2, 3, 4]
            .into_iter()
            .map(|id| (id, BasicNode::new(format!("n{id}:7400"))))
            .collect();
        let membership = Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes);
        let mut m = RaftMetrics::new_initial(this);
        m.state = state;
        m.current_term = 7;
        m.current_leader = leader;
        m.membership_config = Arc::new(StoredMembership::new(
            Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), 1)),
            membership,
        ));
        m
    }

    #[test]
    fn a_follower_sees_the_leader_voters_and_learners() {
        let view = MembershipView::from_metrics(&metrics(2, ServerState::Follower, Some(1)));
        assert_eq!(view.term, 7);
        assert!(!view.leading);
        assert_eq!(view.leader, Some(1));
        assert_eq!(view.voters, BTreeSet::from([1, 2, 3]));
        assert!(view.is_voter(3) && !view.is_voter(4));
        assert_eq!(view.learners().collect::<Vec<_>>(), vec![(4, "n4:7400")]);
        assert_eq!(view.addr(2), Some("n2:7400"));
        assert!(view.is_member());
        assert_eq!(
            view.peers()
                .into_iter()
                .map(|(id, _)| id)
                .collect::<Vec<_>>(),
            vec![1, 3, 4]
        );
        assert_eq!(view.other_leader_addr(), Some("n1:7400"));
    }

    #[test]
    fn the_leader_and_a_node_without_leader_let_raft_decide() {
        let leader = MembershipView::from_metrics(&metrics(1, ServerState::Leader, Some(1)));
        assert!(leader.leading);
        assert_eq!(leader.other_leader_addr(), None);

        let electing = MembershipView::from_metrics(&metrics(2, ServerState::Candidate, None));
        assert_eq!(electing.other_leader_addr(), None);

        // Metrics may name this node leader a moment before its state says so.
        let becoming = MembershipView::from_metrics(&metrics(2, ServerState::Candidate, Some(2)));
        assert_eq!(becoming.other_leader_addr(), None);
    }

    #[test]
    fn a_node_outside_the_membership_is_no_member() {
        let view = MembershipView::from_metrics(&metrics(9, ServerState::Learner, Some(1)));
        assert!(!view.is_member());
        assert_eq!(view.peers().len(), 4);
    }
}
