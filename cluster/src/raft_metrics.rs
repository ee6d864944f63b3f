//! What Raft and the applied registry look like from this node, as metrics: term, role and
//! log indexes, members by role and state, the registry's revision and desired replicas
//! (all set from a [`RaftSnapshot`] at scrape time), and how long applying committed
//! entries takes (observed by the state machine). Proposals are counted by the proposer
//! (`crate::proposer::ProposalMetrics`).

use std::collections::BTreeMap;
use std::time::Duration;

use mcp_raft::types::Raft;
use mcp_raft::{ApplyObserver, RegistryReader};
use prometheus::{
    register_histogram_with_registry, register_int_gauge_vec_with_registry,
    register_int_gauge_with_registry, Histogram, HistogramOpts, IntGauge, IntGaugeVec, Registry,
};

use crate::latency::LATENCY_BUCKETS;
use crate::membership::{self, MembershipView};

/// How long a scrape waits for Raft's commit index.
const COMMIT_INDEX_TIMEOUT: Duration = Duration::from_secs(1);

/// Raft's and the registry's state as a scrape sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RaftSnapshot {
    /// Current term.
    pub term: u64,
    /// Whether this node leads.
    pub leading: bool,
    /// Last index in this node's log.
    pub last_log_index: u64,
    /// Last index known to be committed.
    pub commit_index: u64,
    /// Last index applied to the registry.
    pub applied_index: u64,
    /// Last index covered by the snapshot.
    pub snapshot_index: u64,
    /// The applied registry's revision.
    pub revision: u64,
    /// Members by (role, state): `voter`/`learner`, `active`/`draining`.
    pub nodes: BTreeMap<(&'static str, &'static str), u64>,
    /// Desired replicas by server.
    pub desired: BTreeMap<String, u32>,
}

/// Metrics of this node's Raft and applied registry.
pub struct RaftStateMetrics {
    term: IntGauge,
    is_leader: IntGauge,
    last_log_index: IntGauge,
    commit_index: IntGauge,
    last_applied_index: IntGauge,
    snapshot_index: IntGauge,
    registry_revision: IntGauge,
    cluster_nodes: IntGaugeVec,
    replicas_desired: IntGaugeVec,
    apply_duration: Histogram,
}

impl RaftStateMetrics {
    /// Creates the Raft and registry metrics in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let r = registry;
        Ok(Self {
            term: register_int_gauge_with_registry!("mcp_raft_term", "Current Raft term.", r)?,
            is_leader: register_int_gauge_with_registry!("mcp_raft_is_leader", "1 if this node is the Raft leader.", r)?,
            last_log_index: register_int_gauge_with_registry!("mcp_raft_last_log_index", "Index of the last entry in this node's Raft log.", r)?,
            commit_index: register_int_gauge_with_registry!("mcp_raft_commit_index", "Index of the last Raft entry this node knows to be committed.", r)?,
            last_applied_index: register_int_gauge_with_registry!("mcp_raft_last_applied_index", "Index of the last Raft entry applied to the registry (committed and applied).", r)?,
            snapshot_index: register_int_gauge_with_registry!("mcp_raft_snapshot_index", "Last log index covered by this node's snapshot.", r)?,
            registry_revision: register_int_gauge_with_registry!("mcp_registry_revision", "Registry revision applied on this node.", r)?,
            cluster_nodes: register_int_gauge_vec_with_registry!("mcp_cluster_nodes", "Cluster members by role (voter or learner) and state (active or draining), as this node sees them.", &["role", "state"], r)?,
            replicas_desired: register_int_gauge_vec_with_registry!("mcp_server_replicas_desired", "Desired replicas of each server (cluster-wide, from the registry).", &["server"], r)?,
            apply_duration: register_histogram_with_registry!(HistogramOpts::new("mcp_raft_apply_duration_seconds", "Time to apply one batch of committed Raft entries to the registry.").buckets(LATENCY_BUCKETS.to_vec()), r)?,
        })
    }

    /// The state machine's observer that times every applied batch.
    pub fn apply_observer(&self) -> ApplyObserver {
        let apply_duration = self.apply_duration.clone();
        Box::new(move |took, _entries| apply_duration.observe(took.as_secs_f64()))
    }

    /// Reads Raft and `registry` now.
    pub async fn snapshot(&self, raft: &Raft, registry: &RegistryReader) -> RaftSnapshot {
        let m = raft.metrics().borrow().clone();
        let applied = m.last_applied.map_or(0, |l| l.index);
        // openraft's metrics lack the commit index; its core state has it. Read after the
        // metrics, so that the exposition never shows an applied index above the commit
        // index. A core too busy to answer in time leaves the last value (raised to the
        // applied index, which is committed) rather than stalling the scrape.
        let committed = tokio::time::timeout(
            COMMIT_INDEX_TIMEOUT,
            raft.with_raft_state(|state| state.committed.map_or(0, |l| l.index)),
        )
        .await;
        let committed = match committed {
            Ok(Ok(committed)) => committed,
            _ => u64::try_from(self.commit_index.get()).unwrap_or(0),
        };
        let view = MembershipView::from_metrics(&m);
        let draining = membership::draining(registry);
        let mut nodes = BTreeMap::new();
        for id in view.nodes.keys() {
            let role = if view.is_voter(*id) {
                "voter"
            } else {
                "learner"
            };
            let state = if draining.contains(id) {
                "draining"
            } else {
                "active"
            };
            *nodes.entry((role, state)).or_default() += 1;
        }
        let (revision, desired) = registry.read(|state| {
            let desired = state
                .registry
                .servers()
                .map(|s| (s.spec.name.clone(), s.spec.scheduled_replicas()))
                .collect();
            (state.registry.revision(), desired)
        });
        RaftSnapshot {
            term: m.current_term,
            leading: view.leading,
            last_log_index: m.last_log_index.unwrap_or(0),
            commit_index: committed.max(applied),
            applied_index: applied,
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
            revision,
            nodes,
            desired,
        }
    }

    /// Sets the gauges from `snapshot`.
    pub fn record(&self, snapshot: &RaftSnapshot) {
        self.term.set(as_i64(snapshot.term));
        self.is_leader.set(i64::from(snapshot.leading));
        self.last_log_index.set(as_i64(snapshot.last_log_index));
        self.commit_index.set(as_i64(snapshot.commit_index));
        self.last_applied_index.set(as_i64(snapshot.applied_index));
        self.snapshot_index.set(as_i64(snapshot.snapshot_index));
        self.registry_revision.set(as_i64(snapshot.revision));
        // Every role and state is shown, 0 included, so that a count dropping to none
        // stays visible.
        for role in ["voter", "learner"] {
            for state in ["active", "draining"] {
                let count = snapshot.nodes.get(&(role, state)).copied().unwrap_or(0);
                self.cluster_nodes
                    .with_label_values(&[role, state])
                    .set(as_i64(count));
            }
        }
        self.replicas_desired.reset();
        for (server, replicas) in &snapshot.desired {
            self.replicas_desired
                .with_label_values(&[server])
                .set(i64::from(*replicas));
        }
    }
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use prometheus::core::Collector;

    use super::*;

    #[test]
    fn every_role_and_state_is_shown_and_removed_servers_go() {
        let metrics = RaftStateMetrics::register(&Registry::new()).unwrap();
        let mut snapshot = RaftSnapshot {
            nodes: BTreeMap::from([(("voter", "active"), 3)]),
            desired: BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 1)]),
            ..RaftSnapshot::default()
        };
        metrics.record(&snapshot);
        snapshot.desired.remove("b");
        metrics.record(&snapshot);
        let nodes = |role, state| {
            metrics
                .cluster_nodes
                .with_label_values(&[role, state])
                .get()
        };
        assert_eq!(nodes("voter", "active"), 3);
        assert_eq!(nodes("learner", "draining"), 0);
        let desired: Vec<String> = metrics
            .replicas_desired
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .flat_map(|m| m.get_label())
            .map(|l| l.value().to_owned())
            .collect();
        assert_eq!(desired, ["a"]);
    }
}
