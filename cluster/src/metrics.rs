//! A node's metrics as one exposition: the one registry every subsystem registers its own
//! metrics into (every series carries a `node` label; process metrics included), the
//! rendering of it, and the merge of several nodes' expositions for the cluster view. The
//! catalogue is `docs/metrics.md`; a test keeps the two in step.
//!
//! Each metric is defined next to what it measures: the data plane's requests, retries,
//! forwards, breakers and instances in `dataplane::metrics`; proposals and commit latency
//! in `proposer`; Raft's state, members, the registry and apply latency in
//! `raft_metrics`; the gateway's refusals in `gateway::guard`; the cluster view's peers
//! here. Event metrics are updated where the event happens; state metrics are set from
//! each subsystem's snapshot at scrape time, so they never drift from the truth.

use std::collections::HashMap;
use std::sync::Arc;

use mcp_raft::types::Raft;
use mcp_raft::{ApplyObserver, NodeId, RegistryReader};
use prometheus::{
    register_int_gauge_vec_with_registry, Encoder, IntGaugeVec, Registry, TextEncoder,
};

use crate::dataplane::metrics::{DataPlaneMetrics, RequestStats};
use crate::dataplane::DataPlane;
use crate::gateway::guard::GatewayMetrics;
use crate::proposer::ProposalMetrics;
use crate::raft_metrics::RaftStateMetrics;

/// Why a metric could not be created or encoded.
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// The metrics of one node: its registry and each subsystem's metrics in it.
pub struct NodeMetrics {
    registry: Registry,
    raft: RaftStateMetrics,
    proposals: Arc<ProposalMetrics>,
    dataplane: Arc<DataPlaneMetrics>,
    gateway: Arc<GatewayMetrics>,
    /// `mcp_cluster_view_peer_up{peer}`: whether the last cluster view served by this node
    /// got the metrics of each peer (1) or not (0).
    cluster_view_peer_up: IntGaugeVec,
}

impl NodeMetrics {
    /// The metrics of node `node`, process metrics included.
    pub fn new(node: NodeId) -> Result<Self, MetricsError> {
        let labels = HashMap::from([("node".to_owned(), node.to_string())]);
        let registry = Registry::new_custom(None, Some(labels))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            raft: RaftStateMetrics::register(&registry)?,
            proposals: Arc::new(ProposalMetrics::register(&registry)?),
            dataplane: Arc::new(DataPlaneMetrics::register(&registry)?),
            gateway: Arc::new(GatewayMetrics::register(&registry)?),
            cluster_view_peer_up: register_int_gauge_vec_with_registry!(
                "mcp_cluster_view_peer_up",
                "Whether the last /metrics/cluster scrape served by this node got each peer's metrics (1) or not (0).",
                &["peer"],
                registry
            )?,
            registry,
        })
    }

    /// The proposer's metrics.
    pub fn proposals(&self) -> &Arc<ProposalMetrics> {
        &self.proposals
    }

    /// The data plane's metrics.
    pub fn dataplane(&self) -> &Arc<DataPlaneMetrics> {
        &self.dataplane
    }

    /// The registry itself, for subsystems that register their metrics later (guards).
    pub fn prometheus_registry(&self) -> &Registry {
        &self.registry
    }

    /// The MCP gateway's metrics.
    pub fn gateway(&self) -> &Arc<GatewayMetrics> {
        &self.gateway
    }

    /// The state machine's observer that times every applied batch.
    pub fn apply_observer(&self) -> ApplyObserver {
        self.raft.apply_observer()
    }

    /// Records which peers the cluster view just got metrics from (`true`) or not.
    pub fn record_cluster_view(&self, peers: &[(NodeId, bool)]) {
        self.cluster_view_peer_up.reset();
        for (peer, up) in peers {
            self.cluster_view_peer_up
                .with_label_values(&[&peer.to_string()])
                .set(i64::from(*up));
        }
    }

    /// Per-server request statistics and their total, from this node's counters.
    pub fn request_stats(&self) -> (RequestStats, Vec<RequestStats>) {
        self.dataplane.request_stats()
    }

    /// Sets the state metrics from each subsystem's snapshot and renders everything in the
    /// Prometheus text format.
    pub async fn render(
        &self,
        raft: &Raft,
        registry: &RegistryReader,
        plane: &DataPlane,
    ) -> Result<String, MetricsError> {
        self.raft.record(&self.raft.snapshot(raft, registry).await);
        self.dataplane.record(&plane.snapshot());
        self.encode()
    }

    fn encode(&self) -> Result<String, MetricsError> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }
}

/// Merges the expositions of several nodes into one valid exposition: each metric family's
/// HELP and TYPE once, followed by every node's samples (they differ by their `node` label).
pub fn merge_expositions(texts: &[String]) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut families: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
    for text in texts {
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
            {
                let name = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let entry = families.entry(name.clone()).or_insert_with(|| {
                    order.push(name.clone());
                    (Vec::new(), Vec::new())
                });
                if !entry.0.iter().any(|h| h == line) {
                    entry.0.push(line.to_owned());
                }
                current = name;
            } else if !line.trim().is_empty() && !line.starts_with('#') {
                families
                    .entry(current.clone())
                    .or_insert_with(|| {
                        order.push(current.clone());
                        (Vec::new(), Vec::new())
                    })
                    .1
                    .push(line.to_owned());
            }
        }
    }
    let mut out = String::new();
    for name in order {
        if let Some((headers, samples)) = families.get(&name) {
            for line in headers.iter().chain(samples) {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use mcp_proto::contract::{BreakerState, InstanceState};

    use super::*;
    use crate::dataplane::{DataPlaneSnapshot, InstanceStatus};
    use crate::proposer::Proposed;
    use crate::raft_metrics::RaftSnapshot;

    /// Gives every labelled family one series, through what each subsystem offers, so
    /// that `gather` lists it.
    fn touch_all(m: &NodeMetrics) {
        let plane = m.dataplane();
        plane.count_request("s", "tools/call", "success");
        plane.observe_duration("s", 0.001);
        plane.count_retry("s");
        plane.count_saturated("s");
        plane.count_breaker_transition("s", BreakerState::Open);
        plane.count_restart("s");
        plane.count_forwarded(2);
        plane.observe_cold_start("s", 0.5);
        plane.record(&DataPlaneSnapshot {
            registered: BTreeSet::from(["s".to_owned()]),
            instances: vec![InstanceStatus {
                id: "s-0".to_owned(),
                server: "s".to_owned(),
                state: InstanceState::Running,
                breaker: BreakerState::Closed,
                in_flight: 0,
                restarts: 0,
                protocol_version: None,
            }],
        });
        m.gateway().count_auth_rejection("unauthorized");
        m.raft.record(&RaftSnapshot {
            desired: BTreeMap::from([("s".to_owned(), 1)]),
            ..RaftSnapshot::default()
        });
        m.proposals().count(&[Proposed::TimedOut]);
        m.proposals()
            .observe_commit("put_server", std::time::Duration::from_millis(1));
        m.record_cluster_view(&[(2, true)]);
    }

    fn touched(node: NodeId) -> NodeMetrics {
        let metrics = NodeMetrics::new(node).unwrap();
        touch_all(&metrics);
        metrics
    }

    #[test]
    fn catalogue_matches_the_exposition() {
        let exposed: BTreeSet<String> = touched(1)
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        let catalogue: BTreeSet<String> = include_str!("../../docs/metrics.md")
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .map(str::to_owned)
            .collect();
        assert_eq!(
            exposed, catalogue,
            "docs/metrics.md and the exposition differ"
        );
    }

    #[test]
    fn every_series_names_the_node() {
        let text = touched(7).encode().unwrap();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.contains("node=\"7\""), "{line}");
        }
    }

    #[test]
    fn merging_keeps_one_header_per_family() {
        let a = "# HELP x_total X.\n# TYPE x_total counter\nx_total{node=\"1\"} 1\n".to_owned();
        let b = "# HELP x_total X.\n# TYPE x_total counter\nx_total{node=\"2\"} 2\n".to_owned();
        let merged = merge_expositions(&[a, b]);
        assert_eq!(
            merged,
            "# HELP x_total X.\n# TYPE x_total counter\nx_total{node=\"1\"} 1\nx_total{node=\"2\"} 2\n"
        );
    }
}
