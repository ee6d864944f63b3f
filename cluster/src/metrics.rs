//! Every Prometheus metric a node exposes, in one place (the catalogue is
//! `docs/metrics.md`; a test keeps the two in step).
//!
//! Event metrics (requests, retries, proposals, ...) are updated where the event happens.
//! State metrics (Raft role and indexes, instances, breakers, replicas) are read from their
//! owners at scrape time, so they can never drift from the truth. Every series carries a
//! `node` label with the node id.

use std::collections::{BTreeMap, HashMap};

use mcp_proto::contract::{BreakerState, InstanceState};
use mcp_raft::types::Raft;
use mcp_raft::RegistryReader;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::dataplane::DataPlane;
use crate::membership::{self, MembershipView};

/// Latency buckets from 50 µs to 60 s: resolves sub-millisecond calls and long tool runs.
const LATENCY_BUCKETS: [f64; 18] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0, 30.0, 60.0,
];

/// How long a scrape waits for Raft's commit index.
const COMMIT_INDEX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a metric could not be created or encoded.
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// The metrics of one node.
pub struct Metrics {
    registry: Registry,
    /// `mcp_requests_total{server,method,outcome}`: execute requests answered by this node.
    pub requests: IntCounterVec,
    /// `mcp_request_duration_seconds{server}`: latency of requests executed here.
    pub request_duration: HistogramVec,
    /// `mcp_retries_total{server}`: extra attempts on another instance.
    pub retries: IntCounterVec,
    /// `mcp_saturation_rejections_total{server}`: requests refused because every instance
    /// was at its in-flight limit.
    pub saturation_rejections: IntCounterVec,
    /// `mcp_circuit_breaker_transitions_total{server,state}`.
    pub breaker_transitions: IntCounterVec,
    /// `mcp_gateway_rejections_total{reason}`: requests the MCP gateway refused at its
    /// door (`host`, `origin`, `unauthorized`).
    pub gateway_rejections: IntCounterVec,
    /// `mcp_instance_restarts_total{server}`.
    pub instance_restarts: IntCounterVec,
    /// `mcp_forwarded_requests_total{target}`: requests sent to another node.
    pub forwarded: IntCounterVec,
    /// `mcp_raft_proposals_total{outcome}`.
    pub proposals: IntCounterVec,
    /// `mcp_raft_commit_duration_seconds`: from proposal to applied, on the leader.
    pub commit_duration: HistogramVec,
    /// `mcp_raft_apply_duration_seconds`: applying one batch of committed entries to the
    /// registry, on every node.
    pub apply_duration: Histogram,
    raft_term: IntGauge,
    raft_is_leader: IntGauge,
    raft_last_log_index: IntGauge,
    raft_commit_index: IntGauge,
    raft_last_applied_index: IntGauge,
    raft_snapshot_index: IntGauge,
    registry_revision: IntGauge,
    cluster_nodes: IntGaugeVec,
    instances: IntGaugeVec,
    in_flight: IntGaugeVec,
    breaker_open: IntGaugeVec,
    breakers: IntGaugeVec,
    replicas_desired: IntGaugeVec,
    replicas_running: IntGaugeVec,
    /// `mcp_cluster_view_peer_up{peer}`: whether the last cluster view served by this node
    /// got the metrics of each peer (1) or not (0).
    pub cluster_view_peer_up: IntGaugeVec,
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
    let metric = IntGauge::new(name, help)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, MetricsError> {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<HistogramVec, MetricsError> {
    let metric = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    /// The metrics of node `node`, process metrics included.
    pub fn new(node: u64) -> Result<Self, MetricsError> {
        let labels = HashMap::from([("node".to_owned(), node.to_string())]);
        let registry = Registry::new_custom(None, Some(labels))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let r = &registry;
        Ok(Self {
            requests: counter(r, "mcp_requests_total", "Execute requests answered by this node, by server, JSON-RPC method and outcome (success or error kind).", &["server", "method", "outcome"])?,
            request_duration: histogram(r, "mcp_request_duration_seconds", "Latency of execute requests run on this node's instances.", &["server"])?,
            retries: counter(r, "mcp_retries_total", "Extra attempts of a request on another instance.", &["server"])?,
            saturation_rejections: counter(r, "mcp_saturation_rejections_total", "Requests refused because every instance was at its in-flight limit.", &["server"])?,
            breaker_transitions: counter(r, "mcp_circuit_breaker_transitions_total", "Circuit breaker state changes, by the state entered.", &["server", "state"])?,
            gateway_rejections: counter(r, "mcp_gateway_rejections_total", "Requests refused by the MCP gateway's guard, by reason (host, origin, unauthorized).", &["reason"])?,
            instance_restarts: counter(r, "mcp_instance_restarts_total", "Restarts of crashed or broken instances.", &["server"])?,
            forwarded: counter(r, "mcp_forwarded_requests_total", "Execute requests forwarded to another node, by target node id.", &["target"])?,
            proposals: counter(r, "mcp_raft_proposals_total", "Registry writes proposed on this node, by outcome.", &["outcome"])?,
            commit_duration: histogram(r, "mcp_raft_commit_duration_seconds", "Time from proposing a registry write to having it applied, on the leader.", &["op"])?,
            apply_duration: {
                let metric = Histogram::with_opts(
                    HistogramOpts::new("mcp_raft_apply_duration_seconds", "Time to apply one batch of committed Raft entries to the registry.")
                        .buckets(LATENCY_BUCKETS.to_vec()),
                )?;
                r.register(Box::new(metric.clone()))?;
                metric
            },
            raft_term: gauge(r, "mcp_raft_term", "Current Raft term.")?,
            raft_is_leader: gauge(r, "mcp_raft_is_leader", "1 if this node is the Raft leader.")?,
            raft_last_log_index: gauge(r, "mcp_raft_last_log_index", "Index of the last entry in this node's Raft log.")?,
            raft_commit_index: gauge(r, "mcp_raft_commit_index", "Index of the last Raft entry this node knows to be committed.")?,
            raft_last_applied_index: gauge(r, "mcp_raft_last_applied_index", "Index of the last Raft entry applied to the registry (committed and applied).")?,
            raft_snapshot_index: gauge(r, "mcp_raft_snapshot_index", "Last log index covered by this node's snapshot.")?,
            registry_revision: gauge(r, "mcp_registry_revision", "Registry revision applied on this node.")?,
            cluster_nodes: gauge_vec(r, "mcp_cluster_nodes", "Cluster members by role (voter or learner) and state (active or draining), as this node sees them.", &["role", "state"])?,
            instances: gauge_vec(r, "mcp_instances", "Server instances on this node by state (starting, running, restarting, crash_loop).", &["server", "state"])?,
            in_flight: gauge_vec(r, "mcp_in_flight_requests", "Requests in flight on this node's instances.", &["server"])?,
            breakers: gauge_vec(r, "mcp_circuit_breakers", "Instances of a server on this node by circuit breaker state (closed, open, half_open).", &["server", "state"])?,
            breaker_open: gauge_vec(r, "mcp_circuit_breaker_open", "Instances of a server on this node whose circuit breaker is open.", &["server"])?,
            replicas_desired: gauge_vec(r, "mcp_server_replicas_desired", "Desired replicas of each server (cluster-wide, from the registry).", &["server"])?,
            replicas_running: gauge_vec(r, "mcp_server_replicas_running", "Running instances of each server on this node.", &["server"])?,
            cluster_view_peer_up: gauge_vec(r, "mcp_cluster_view_peer_up", "Whether the last /metrics/cluster scrape served by this node got each peer's metrics (1) or not (0).", &["peer"])?,
            registry,
        })
    }

    /// Refreshes the state metrics and renders everything in the Prometheus text format.
    pub async fn render(
        &self,
        raft: &Raft,
        registry: &RegistryReader,
        plane: &DataPlane,
    ) -> Result<String, MetricsError> {
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
            _ => u64::try_from(self.raft_commit_index.get()).unwrap_or(0),
        };
        self.raft_commit_index.set(as_i64(committed.max(applied)));
        self.raft_term.set(as_i64(m.current_term));
        let view = MembershipView::from_metrics(&m);
        self.raft_is_leader.set(i64::from(view.leading));
        self.raft_last_log_index
            .set(as_i64(m.last_log_index.unwrap_or(0)));
        self.raft_last_applied_index.set(as_i64(applied));
        self.raft_snapshot_index
            .set(as_i64(m.snapshot.map_or(0, |l| l.index)));
        let draining = membership::draining(registry);
        let mut nodes: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for role in ["voter", "learner"] {
            for state in ["active", "draining"] {
                nodes.insert((role, state), 0);
            }
        }
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
        for ((role, state), count) in nodes {
            self.cluster_nodes
                .with_label_values(&[role, state])
                .set(as_i64(count));
        }

        let desired: BTreeMap<String, u32> = registry.read(|state| {
            self.registry_revision
                .set(as_i64(state.registry.revision()));
            state
                .registry
                .servers()
                .map(|s| (s.spec.name.clone(), s.spec.scheduled_replicas()))
                .collect()
        });
        self.replicas_desired.reset();
        for (server, replicas) in &desired {
            self.replicas_desired
                .with_label_values(&[server])
                .set(i64::from(*replicas));
        }
        self.instances.reset();
        self.in_flight.reset();
        self.breaker_open.reset();
        self.breakers.reset();
        self.replicas_running.reset();
        // Every registered server gets a running count, 0 included: a server with no
        // instance anywhere must still show up, or "desired > running" alerts stay silent.
        for server in desired.keys() {
            self.replicas_running.with_label_values(&[server]).set(0);
        }
        for instance in plane.instances() {
            let server = instance.server.as_str();
            self.instances
                .with_label_values(&[server, instance.state.as_str()])
                .inc();
            self.in_flight
                .with_label_values(&[server])
                .add(as_i64(instance.in_flight as u64));
            self.breaker_open
                .with_label_values(&[server])
                .add(i64::from(instance.breaker == BreakerState::Open));
            self.breakers
                .with_label_values(&[server, instance.breaker.as_str()])
                .inc();
            self.replicas_running
                .with_label_values(&[server])
                .add(i64::from(instance.state == InstanceState::Running));
        }
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }
}

/// Request totals and latency of one server (or all of them), as `GetMetrics` reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestStats {
    /// Server name ("" for the total).
    pub server: String,
    /// Requests counted.
    pub total: u64,
    /// Of which succeeded.
    pub successful: u64,
    /// Sum of observed latencies, seconds.
    latency_sum: f64,
    /// Latency observations.
    latency_count: u64,
    /// Cumulative bucket counts by upper bound.
    buckets: Vec<(f64, u64)>,
}

impl RequestStats {
    /// successful / total (1.0 without requests).
    pub fn success_rate(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.successful as f64 / self.total as f64
        }
    }

    /// Mean latency in milliseconds.
    pub fn avg_latency_ms(&self) -> f64 {
        if self.latency_count == 0 {
            0.0
        } else {
            1000.0 * self.latency_sum / self.latency_count as f64
        }
    }

    /// The `q` quantile of latency in milliseconds, interpolated within its bucket.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latency_count == 0 {
            return 0.0;
        }
        let rank = q * self.latency_count as f64;
        let (mut lower, mut below) = (0.0, 0u64);
        for (upper, cumulative) in &self.buckets {
            if *cumulative as f64 >= rank {
                let in_bucket = (cumulative - below) as f64;
                let upper = if upper.is_finite() { *upper } else { lower };
                let fraction = if in_bucket > 0.0 {
                    (rank - below as f64) / in_bucket
                } else {
                    1.0
                };
                return 1000.0 * (lower + (upper - lower) * fraction);
            }
            lower = *upper;
            below = *cumulative;
        }
        1000.0 * lower
    }

    fn add(&mut self, other: &RequestStats) {
        self.total += other.total;
        self.successful += other.successful;
        self.latency_sum += other.latency_sum;
        self.latency_count += other.latency_count;
        if self.buckets.is_empty() {
            self.buckets = other.buckets.clone();
        } else {
            for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
                mine.1 += theirs.1;
            }
        }
    }
}

impl Metrics {
    /// Per-server request statistics and their total, from this node's counters.
    pub fn request_stats(&self) -> (RequestStats, Vec<RequestStats>) {
        let mut by_server: BTreeMap<String, RequestStats> = BTreeMap::new();
        let label = |m: &prometheus::proto::Metric, name: &str| {
            m.get_label()
                .iter()
                .find(|l| l.name() == name)
                .map(|l| l.value().to_owned())
                .unwrap_or_default()
        };
        for family in self.registry.gather() {
            match family.name() {
                "mcp_requests_total" => {
                    for m in family.get_metric() {
                        let stats = by_server.entry(label(m, "server")).or_default();
                        let count = m.get_counter().get_value() as u64;
                        stats.total += count;
                        if label(m, "outcome") == "success" {
                            stats.successful += count;
                        }
                    }
                }
                "mcp_request_duration_seconds" => {
                    for m in family.get_metric() {
                        let stats = by_server.entry(label(m, "server")).or_default();
                        let h = m.get_histogram();
                        stats.latency_sum += h.get_sample_sum();
                        stats.latency_count += h.get_sample_count();
                        stats.buckets = h
                            .get_bucket()
                            .iter()
                            .map(|b| (b.upper_bound(), b.cumulative_count()))
                            .collect();
                        stats.buckets.push((f64::INFINITY, h.get_sample_count()));
                    }
                }
                _ => {}
            }
        }
        let mut total = RequestStats::default();
        let servers: Vec<RequestStats> = by_server
            .into_iter()
            .map(|(server, mut stats)| {
                stats.server = server;
                total.add(&stats);
                stats
            })
            .collect();
        (total, servers)
    }
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
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
    use super::*;

    /// Gives every labelled family one series, so that `gather` lists it.
    fn touch_all(m: &Metrics) {
        m.requests
            .with_label_values(&["s", "tools/call", "success"])
            .inc();
        m.request_duration.with_label_values(&["s"]).observe(0.001);
        m.retries.with_label_values(&["s"]).inc();
        m.gateway_rejections.with_label_values(&["origin"]).inc();
        m.saturation_rejections.with_label_values(&["s"]).inc();
        m.breaker_transitions
            .with_label_values(&["s", "open"])
            .inc();
        m.instance_restarts.with_label_values(&["s"]).inc();
        m.forwarded.with_label_values(&["2"]).inc();
        m.proposals.with_label_values(&["committed"]).inc();
        m.commit_duration
            .with_label_values(&["put_server"])
            .observe(0.001);
        m.cluster_nodes
            .with_label_values(&["voter", "active"])
            .set(1);
        m.instances.with_label_values(&["s", "running"]).set(1);
        m.in_flight.with_label_values(&["s"]).set(0);
        m.breaker_open.with_label_values(&["s"]).set(0);
        m.breakers.with_label_values(&["s", "closed"]).set(1);
        m.replicas_desired.with_label_values(&["s"]).set(1);
        m.replicas_running.with_label_values(&["s"]).set(1);
        m.cluster_view_peer_up.with_label_values(&["2"]).set(1);
    }

    #[test]
    fn catalogue_matches_the_exposition() {
        let metrics = Metrics::new(1).unwrap();
        touch_all(&metrics);
        let exposed: std::collections::BTreeSet<String> = metrics
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        let catalogue: std::collections::BTreeSet<String> = include_str!("../../docs/metrics.md")
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
        let metrics = Metrics::new(7).unwrap();
        touch_all(&metrics);
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&metrics.registry.gather(), &mut buffer)
            .unwrap();
        let text = String::from_utf8(buffer).unwrap();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.contains("node=\"7\""), "{line}");
        }
    }

    #[test]
    fn request_stats_sum_counters_and_estimate_p99() {
        let m = Metrics::new(1).unwrap();
        for _ in 0..99 {
            m.requests
                .with_label_values(&["a", "tools/call", "success"])
                .inc();
            m.request_duration.with_label_values(&["a"]).observe(0.0007);
        }
        m.requests
            .with_label_values(&["a", "tools/call", "timeout"])
            .inc();
        m.request_duration.with_label_values(&["a"]).observe(0.02);
        m.requests
            .with_label_values(&["b", "ping", "success"])
            .inc();
        let (total, servers) = m.request_stats();
        assert_eq!((total.total, total.successful), (101, 100));
        let a = &servers[0];
        assert_eq!(a.server, "a");
        assert!((a.success_rate() - 0.99).abs() < 1e-9);
        assert!(
            a.quantile_ms(0.5) > 0.5 && a.quantile_ms(0.5) <= 1.0,
            "{}",
            a.quantile_ms(0.5)
        );
        assert!(a.quantile_ms(0.99) <= 1.0, "{}", a.quantile_ms(0.99));
        assert!(a.quantile_ms(1.0) > 10.0);
        assert!((a.avg_latency_ms() - (99.0 * 0.7 + 20.0) / 100.0).abs() < 1e-6);
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
