//! The one way registry commands reach `raft.client_write`. User writes (through the
//! [`crate::batcher`]), the scheduler's placements and tag updates, and the leader's node
//! records all go through [`Proposer`], so `mcp_raft_proposals_total` counts every
//! proposal of this node by outcome and `mcp_raft_commit_duration_seconds` times them all
//! (both are [`ProposalMetrics`], defined here).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_raft::types::Raft;
use mcp_raft::{Command, CommandResult, NodeId, TypeConfig};
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::BasicNode;
use prometheus::{
    register_histogram_vec_with_registry, register_int_counter_vec_with_registry, HistogramOpts,
    HistogramVec, IntCounterVec, Registry,
};

use crate::latency::LATENCY_BUCKETS;

/// What the proposer measures.
pub struct ProposalMetrics {
    /// `mcp_raft_proposals_total{outcome}`.
    proposals: IntCounterVec,
    /// `mcp_raft_commit_duration_seconds{op}`: from proposal to applied, on the leader.
    commit_duration: HistogramVec,
}

impl ProposalMetrics {
    /// Creates the proposal metrics in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            proposals: register_int_counter_vec_with_registry!(
                "mcp_raft_proposals_total",
                "Registry writes proposed on this node, by outcome.",
                &["outcome"],
                registry
            )?,
            commit_duration: register_histogram_vec_with_registry!(
                HistogramOpts::new(
                    "mcp_raft_commit_duration_seconds",
                    "Time from proposing a registry write to having it applied, on the leader."
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["op"],
                registry
            )?,
        })
    }

    /// Counts each fate by its outcome.
    pub(crate) fn count(&self, fates: &[Proposed]) {
        for fate in fates {
            self.proposals.with_label_values(&[fate.outcome()]).inc();
        }
    }

    /// Records how long a committed entry of command `op` took from proposal to applied.
    pub(crate) fn observe_commit(&self, op: &str, took: Duration) {
        self.commit_duration
            .with_label_values(&[op])
            .observe(took.as_secs_f64());
    }
}

/// A command's fate once its entry was handled.
#[derive(Debug, Clone)]
pub enum Proposed {
    /// Committed and applied at this log index, with this result.
    Applied {
        /// The command's own result.
        result: CommandResult,
        /// Log index of the entry that carried it.
        index: u64,
    },
    /// This node is not the leader; the leader's address, if one is known.
    NotLeader(Option<String>),
    /// Not committed within the write timeout; it may still be applied later.
    TimedOut,
    /// Raft refused or failed.
    Failed(String),
}

impl Proposed {
    /// True if the command was committed and applied (whether or not its precondition
    /// held).
    pub fn is_applied(&self) -> bool {
        matches!(self, Proposed::Applied { .. })
    }

    /// The `outcome` label this fate is counted under.
    fn outcome(&self) -> &'static str {
        match self {
            Proposed::Applied { result: Ok(_), .. } => "committed",
            Proposed::Applied { result: Err(_), .. } => "rejected",
            Proposed::NotLeader(_) => "forwarded",
            Proposed::TimedOut => "timeout",
            Proposed::Failed(_) => "failed",
        }
    }
}

/// What `raft.client_write` (or a membership change) returns.
pub type Written =
    Result<ClientWriteResponse<TypeConfig>, RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>>;

/// Proposes registry commands to Raft and counts them.
#[derive(Clone)]
pub struct Proposer {
    raft: Raft,
    metrics: Arc<ProposalMetrics>,
    /// How long a proposal may wait for its commit; `None` waits as long as Raft does.
    timeout: Option<Duration>,
}

impl Proposer {
    /// A proposer for `raft` that waits as long as Raft does.
    pub fn new(raft: Raft, metrics: Arc<ProposalMetrics>) -> Self {
        Self {
            raft,
            metrics,
            timeout: None,
        }
    }

    /// The same proposer, giving up on a commit after `timeout` (the write may still be
    /// applied later).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Proposes `command` as its own entry and waits until it is handled.
    pub async fn propose(&self, command: Command) -> Proposed {
        self.propose_all(vec![command])
            .await
            .pop()
            .unwrap_or_else(|| Proposed::Failed("no fate for the proposal".to_owned()))
    }

    /// Proposes `commands` as one entry (a `Command::Batch` when there are several) and
    /// returns each command's fate, in order.
    pub async fn propose_all(&self, mut commands: Vec<Command>) -> Vec<Proposed> {
        let n = commands.len();
        let entry = match commands.pop() {
            None => return Vec::new(),
            Some(only) if commands.is_empty() => only,
            Some(last) => {
                commands.push(last);
                Command::Batch { commands }
            }
        };
        let op = entry.op();
        let started = Instant::now();
        let write = self.raft.client_write(entry);
        let written = match self.timeout {
            Some(timeout) => tokio::time::timeout(timeout, write).await.ok(),
            None => Some(write.await),
        };
        if matches!(written, Some(Ok(_))) {
            self.metrics.observe_commit(op, started.elapsed());
        }
        let fates = fates(written, n);
        self.metrics.count(&fates);
        fates
    }

    /// Counts a write this node sent to the leader without proposing it (a follower that
    /// knows the leader does not ask Raft first).
    pub fn count_forwarded(&self) {
        self.metrics.count(&[Proposed::NotLeader(None)]);
    }
}

/// The fate of each of the `n` commands of an entry, from what the write returned (`None`:
/// it timed out).
fn fates(written: Option<Written>, n: usize) -> Vec<Proposed> {
    match written {
        None => vec![Proposed::TimedOut; n],
        Some(Ok(response)) => {
            let index = response.log_id.index;
            let results: Vec<CommandResult> = if n == 1 {
                vec![response.data]
            } else {
                tracing::debug!(commands = n, index, "committed a batch");
                match response.data {
                    Ok(outcome) => outcome.batch,
                    Err(e) => vec![Err(e); n],
                }
            };
            results
                .into_iter()
                .map(|result| Proposed::Applied { result, index })
                .collect()
        }
        Some(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            vec![Proposed::NotLeader(f.leader_node.map(|node| node.addr)); n]
        }
        Some(Err(e)) => vec![Proposed::Failed(e.to_string()); n],
    }
}

#[cfg(test)]
mod tests {
    use mcp_raft::{CommandError, CommandOutcome};
    use openraft::error::ForwardToLeader;
    use openraft::{CommittedLeaderId, LogId};

    use super::*;

    fn outcome(batch: Vec<CommandResult>) -> CommandOutcome {
        CommandOutcome {
            revision: 4,
            created: false,
            batch,
        }
    }

    fn response(data: CommandResult) -> ClientWriteResponse<TypeConfig> {
        ClientWriteResponse {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 9),
            data,
            membership: None,
        }
    }

    fn counted(metrics: &ProposalMetrics, outcome: &str) -> u64 {
        metrics.proposals.with_label_values(&[outcome]).get()
    }

    fn metrics() -> ProposalMetrics {
        ProposalMetrics::register(&Registry::new()).unwrap()
    }

    #[test]
    fn each_command_of_a_batch_is_counted_by_its_own_result() {
        let metrics = metrics();
        let rejected = Err(CommandError::ServerNotFound { name: "x".into() });
        let batch = outcome(vec![Ok(outcome(vec![])), rejected, Ok(outcome(vec![]))]);
        let fates = fates(Some(Ok(response(Ok(batch)))), 3);
        metrics.count(&fates);
        assert!(fates
            .iter()
            .all(|f| matches!(f, Proposed::Applied { index: 9, .. })));
        assert_eq!(counted(&metrics, "committed"), 2);
        assert_eq!(counted(&metrics, "rejected"), 1);
    }

    #[test]
    fn a_follower_timeout_or_failure_counts_every_command() {
        let metrics = metrics();
        let not_leader: Written = Err(RaftError::APIError(ClientWriteError::ForwardToLeader(
            ForwardToLeader {
                leader_id: Some(2),
                leader_node: Some(BasicNode::new("n2:7400")),
            },
        )));
        let fates_of_follower = fates(Some(not_leader), 2);
        assert!(matches!(
            &fates_of_follower[0],
            Proposed::NotLeader(Some(addr)) if addr == "n2:7400"
        ));
        metrics.count(&fates_of_follower);
        metrics.count(&fates(None, 3));
        assert_eq!(counted(&metrics, "forwarded"), 2);
        assert_eq!(counted(&metrics, "timeout"), 3);
    }

    #[test]
    fn a_single_command_keeps_its_own_result() {
        let fates = fates(Some(Ok(response(Ok(outcome(vec![]))))), 1);
        assert!(matches!(
            fates.as_slice(),
            [Proposed::Applied { result: Ok(o), index: 9 }] if o.revision == 4
        ));
    }
}
