//! Leader duties. The node that holds leadership keeps derived registry state in step with
//! Raft's own; followers only watch. Today that is the registry's node records, which follow
//! Raft membership (placement reads node records, not membership, so it sees one consistent,
//! replicated view with node attributes), and the first session key of the MCP gateways,
//! made once when the registry has none (later keys come from `RotateSessionKey`).

use std::collections::BTreeMap;

use mcp_raft::registry::NodeRecord;
use mcp_raft::types::Raft;
use mcp_raft::{Command, NodeId, RegistryReader};
use tokio::task::JoinHandle;

use crate::membership::MembershipView;
use crate::proposer::{Proposed, Proposer};

/// Starts the leader-duty loop of this node; it ends when Raft shuts down.
pub fn spawn(raft: Raft, proposer: Proposer, registry: RegistryReader) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut metrics = raft.metrics();
        let mut seen = ElectionLog::default();
        loop {
            let view = MembershipView::from_metrics(&metrics.borrow_and_update());
            seen.log_change(&view);
            if view.leading {
                ensure_session_key(&proposer, &registry).await;
                for command in node_sync_commands(&registry, &view.nodes) {
                    let proposed = proposer.propose(command).await;
                    if !proposed.is_applied() {
                        tracing::debug!(?proposed, "node record sync deferred");
                        break;
                    }
                }
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    })
}

/// Proposes a first gateway session key if the registry has none. Its id is 1 and the
/// command a compare-and-set on it, so two leaders in turn cannot both make one.
async fn ensure_session_key(proposer: &Proposer, registry: &RegistryReader) {
    let command = registry.read(|state| {
        let sessions = state.registry.gateway_sessions();
        match sessions.current_key() {
            Some(_) => None,
            None => Some(crate::gateway::session::next_key_command(
                sessions,
                crate::gateway::session::unix_ms(),
            )),
        }
    });
    if let Some((id, command)) = command {
        match proposer.propose(command).await {
            Proposed::Applied { result: Ok(_), .. } => {
                tracing::info!(key_id = id, "made the gateway session key");
            }
            other => tracing::debug!(?other, "gateway session key deferred"),
        }
    }
}

/// What this node last knew about leadership, to log each election once.
#[derive(Default)]
struct ElectionLog {
    term: u64,
    leader: Option<NodeId>,
    leading: bool,
}

impl ElectionLog {
    /// Logs, at info, each change of leader that this node observes: operators follow
    /// elections in the logs (openraft's own lines are too low-level for that).
    fn log_change(&mut self, view: &MembershipView) {
        let (id, term, leader, leading) = (view.this, view.term, view.leader, view.leading);
        if term == self.term && leader == self.leader && leading == self.leading {
            return;
        }
        if leading {
            if !self.leading {
                tracing::info!(node = id, term, "became Raft leader");
            }
        } else {
            match leader {
                Some(l) if l != id && (leader != self.leader || term != self.term) => {
                    tracing::info!(node = id, leader = l, term, "following Raft leader");
                }
                None if self.leader.is_some() => {
                    tracing::info!(
                        node = id,
                        term,
                        previous_leader = self.leader,
                        "Raft leader lost; election under way"
                    );
                }
                _ => tracing::debug!(node = id, term, ?leader, "Raft term or leader changed"),
            }
        }
        self.term = term;
        self.leader = leader;
        self.leading = leading;
    }
}

/// The commands that make the registry's node records match `members`.
fn node_sync_commands(
    registry: &RegistryReader,
    members: &BTreeMap<NodeId, String>,
) -> Vec<Command> {
    registry.read(|state| {
        let recorded: BTreeMap<NodeId, &NodeRecord> =
            state.registry.nodes().map(|n| (n.id, n)).collect();
        let mut commands = Vec::new();
        for (id, addr) in members {
            match recorded.get(id) {
                Some(record) if record.addr == *addr => {}
                Some(record) => commands.push(Command::PutNode {
                    node: NodeRecord {
                        addr: addr.clone(),
                        ..(*record).clone()
                    },
                }),
                None => commands.push(Command::PutNode {
                    node: NodeRecord {
                        id: *id,
                        addr: addr.clone(),
                        tags: Vec::new(),
                        draining: false,
                    },
                }),
            }
        }
        for id in recorded.keys().filter(|id| !members.contains_key(id)) {
            commands.push(Command::DeleteNode { id: *id });
        }
        commands
    })
}
