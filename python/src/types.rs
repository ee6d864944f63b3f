//! The read-only objects the manager returns: servers, metrics, health, deploy results.
//! Plain frozen data; they are built in Rust from node replies and never call back.

use pyo3::prelude::*;

use mcp_proto::cluster::{ServerInfo as ProtoServerInfo, ServerStats};
use mcp_proto::contract::{BreakerState, InstanceState};

/// One server of the registry (`list_servers()`).
#[pyclass(module = "mcp_rust._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// Server name (its id).
    pub name: String,
    /// `stdio` or `http`.
    pub transport: String,
    /// Desired replicas.
    pub replicas: u32,
    /// Load-balancing priority.
    pub priority: i32,
    /// Tags.
    pub tags: Vec<String>,
    /// Registry revision it was created at.
    pub create_revision: u64,
    /// Registry revision of its last change.
    pub mod_revision: u64,
    /// The spec as JSON, secrets replaced by `<redacted>`.
    pub spec_json: String,
    /// `(instance_id, node_id)` of each placed instance.
    pub placements: Vec<(String, u64)>,
}

#[pymethods]
impl ServerInfo {
    /// Same as `name` (the older API's `server_id`).
    #[getter]
    fn server_id(&self) -> String {
        self.name.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "ServerInfo(name={:?}, transport={:?}, replicas={}, priority={}, tags={:?}, mod_revision={})",
            self.name, self.transport, self.replicas, self.priority, self.tags, self.mod_revision
        )
    }
}

impl From<ProtoServerInfo> for ServerInfo {
    fn from(info: ProtoServerInfo) -> Self {
        Self {
            name: info.name,
            transport: info.transport,
            replicas: info.replicas,
            priority: info.priority,
            tags: info.tags,
            create_revision: info.create_revision,
            mod_revision: info.mod_revision,
            spec_json: info.spec_json,
            placements: info
                .placements
                .into_iter()
                .map(|p| (p.instance_id, p.node_id))
                .collect(),
        }
    }
}

/// Request statistics of one server, or of all of them (`Metrics`).
#[pyclass(module = "mcp_rust._native", frozen, get_all)]
#[derive(Debug, Clone, Default)]
pub struct ServerMetrics {
    /// Server name (`"*"` for the total).
    pub server: String,
    /// Requests answered.
    pub total_requests: u64,
    /// Of which succeeded.
    pub successful_requests: u64,
    /// Of which failed.
    pub failed_requests: u64,
    /// Percentage of successful requests, 0-100 (100 when there were none).
    pub success_rate: f64,
    /// Mean latency.
    pub avg_latency_ms: f64,
    /// 99th percentile latency; across nodes, the highest node's value (an upper bound).
    pub p99_latency_ms: f64,
}

#[pymethods]
impl ServerMetrics {
    fn __repr__(&self) -> String {
        format!(
            "ServerMetrics(server={:?}, total_requests={}, success_rate={:.2}, avg_latency_ms={:.3}, p99_latency_ms={:.3})",
            self.server, self.total_requests, self.success_rate, self.avg_latency_ms, self.p99_latency_ms
        )
    }
}

impl ServerMetrics {
    /// Adds one node's statistics.
    pub fn add(&mut self, stats: &ServerStats) {
        let before = self.total_requests;
        self.total_requests += stats.total_requests;
        self.successful_requests += stats.successful_requests;
        self.failed_requests =
            self.total_requests - self.successful_requests.min(self.total_requests);
        if self.total_requests > 0 {
            let weight = stats.total_requests as f64 / self.total_requests as f64;
            self.avg_latency_ms = self.avg_latency_ms
                * (before as f64 / self.total_requests as f64)
                + stats.avg_latency_ms * weight;
            self.success_rate =
                100.0 * self.successful_requests as f64 / self.total_requests as f64;
        } else {
            self.success_rate = 100.0;
        }
        self.p99_latency_ms = self.p99_latency_ms.max(stats.p99_latency_ms);
    }

    /// Empty statistics for `server`.
    pub fn empty(server: &str) -> Self {
        Self {
            server: server.to_owned(),
            success_rate: 100.0,
            ..Self::default()
        }
    }
}

/// Request statistics of the cluster (`get_metrics()`), summed over the nodes that answered.
#[pyclass(module = "mcp_rust._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Requests answered.
    pub total_requests: u64,
    /// Of which succeeded.
    pub successful_requests: u64,
    /// Of which failed.
    pub failed_requests: u64,
    /// Percentage of successful requests, 0-100.
    pub success_rate: f64,
    /// Mean latency.
    pub avg_latency_ms: f64,
    /// 99th percentile latency (across nodes: the highest node's).
    pub p99_latency_ms: f64,
    /// Per server.
    pub servers: std::collections::BTreeMap<String, ServerMetrics>,
    /// Nodes whose statistics are included.
    pub nodes_reporting: usize,
}

#[pymethods]
impl Metrics {
    fn __repr__(&self) -> String {
        format!(
            "Metrics(total_requests={}, success_rate={:.2}, avg_latency_ms={:.3}, p99_latency_ms={:.3}, servers={}, nodes_reporting={})",
            self.total_requests,
            self.success_rate,
            self.avg_latency_ms,
            self.p99_latency_ms,
            self.servers.len(),
            self.nodes_reporting
        )
    }
}

impl Metrics {
    /// Builds the cluster view from every node's totals.
    pub fn from_nodes(replies: &[mcp_proto::cluster::GetMetricsReply]) -> Self {
        let mut total = ServerMetrics::empty("*");
        let mut servers: std::collections::BTreeMap<String, ServerMetrics> = Default::default();
        for reply in replies {
            if let Some(t) = &reply.total {
                total.add(t);
            }
            for s in &reply.servers {
                servers
                    .entry(s.server.clone())
                    .or_insert_with(|| ServerMetrics::empty(&s.server))
                    .add(s);
            }
        }
        Self {
            total_requests: total.total_requests,
            successful_requests: total.successful_requests,
            failed_requests: total.failed_requests,
            success_rate: total.success_rate,
            avg_latency_ms: total.avg_latency_ms,
            p99_latency_ms: total.p99_latency_ms,
            servers,
            nodes_reporting: replies.len(),
        }
    }
}

/// One instance of a server on one node.
#[pyclass(module = "mcp_rust._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct InstanceHealth {
    /// Instance id.
    pub id: String,
    /// Node running it.
    pub node_id: u64,
    /// `starting`, `running`, `restarting`, `crash_loop` or `stopped`.
    pub state: String,
    /// `closed`, `open` or `half_open`.
    pub breaker: String,
    /// Requests in flight.
    pub in_flight: u64,
    /// Restarts so far.
    pub restarts: u32,
    /// Negotiated MCP protocol version (empty while not connected).
    pub protocol_version: String,
}

#[pymethods]
impl InstanceHealth {
    /// Running with a breaker that admits calls.
    #[getter]
    fn healthy(&self) -> bool {
        self.is_healthy()
    }

    fn __repr__(&self) -> String {
        format!(
            "InstanceHealth(id={:?}, node_id={}, state={:?}, breaker={:?})",
            self.id, self.node_id, self.state, self.breaker
        )
    }
}

impl InstanceHealth {
    /// Running with a breaker that admits calls.
    pub fn is_healthy(&self) -> bool {
        InstanceState::parse(&self.state) == Some(InstanceState::Running)
            && BreakerState::parse(&self.breaker) != Some(BreakerState::Open)
    }
}

/// Health of one server.
#[pyclass(module = "mcp_rust._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct ServerHealth {
    /// Server name.
    pub name: String,
    /// At least one healthy instance.
    pub healthy: bool,
    /// `running`, `degraded`, `starting`, `restarting`, `crash_loop`, `circuit_open`,
    /// `unavailable` or `stopped` (see `get_server_state`).
    pub state: String,
    /// Desired replicas (0 for remote HTTP servers, which every node reaches).
    pub desired_replicas: u32,
    /// Healthy instances.
    pub healthy_instances: usize,
    /// Every instance on the nodes that answered.
    pub instances: Vec<InstanceHealth>,
}

#[pymethods]
impl ServerHealth {
    fn __repr__(&self) -> String {
        format!(
            "ServerHealth(name={:?}, healthy={}, state={:?}, healthy_instances={}, instances={})",
            self.name,
            if self.healthy { "True" } else { "False" },
            self.state,
            self.healthy_instances,
            self.instances.len()
        )
    }
}

/// Health of every server (`get_health_status()`).
#[pyclass(module = "mcp_rust._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct HealthStatus {
    /// Servers with at least one healthy instance.
    pub healthy_servers: usize,
    /// Servers in the registry.
    pub total_servers: usize,
    /// Per server, by name.
    pub servers: std::collections::BTreeMap<String, ServerHealth>,
    /// Nodes that answered.
    pub nodes_reporting: usize,
    /// Nodes the client knows.
    pub nodes_total: usize,
}

#[pymethods]
impl HealthStatus {
    /// True when every server is healthy.
    #[getter]
    fn all_healthy(&self) -> bool {
        self.healthy_servers == self.total_servers
    }

    fn __repr__(&self) -> String {
        format!(
            "HealthStatus(healthy_servers={}, total_servers={}, nodes_reporting={}/{})",
            self.healthy_servers, self.total_servers, self.nodes_reporting, self.nodes_total
        )
    }
}

/// The state word of a server from its instances (see `get_server_state`).
///
/// `scheduled` is `ServerInfo.scheduled`: the leader places `desired` instances of the
/// server; otherwise every node runs its own sessions and one healthy node is enough.
pub fn server_state(scheduled: bool, desired: u32, instances: &[InstanceHealth]) -> String {
    let healthy = instances.iter().filter(|i| i.is_healthy()).count();
    let expected = if scheduled {
        usize::try_from(desired).unwrap_or(usize::MAX)
    } else {
        instances.len().max(1)
    };
    if scheduled && desired == 0 {
        return "stopped".to_owned();
    }
    if healthy > 0 {
        return if healthy >= expected {
            "running"
        } else {
            "degraded"
        }
        .to_owned();
    }
    let state_of = |i: &InstanceHealth| InstanceState::parse(&i.state);
    for state in [
        InstanceState::CrashLoop,
        InstanceState::Restarting,
        InstanceState::Starting,
    ] {
        if instances.iter().any(|i| state_of(i) == Some(state)) {
            return state.as_str().to_owned();
        }
    }
    if instances.iter().any(|i| {
        state_of(i) == Some(InstanceState::Running)
            && BreakerState::parse(&i.breaker) == Some(BreakerState::Open)
    }) {
        return "circuit_open".to_owned();
    }
    "unavailable".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(state: &str, breaker: &str) -> InstanceHealth {
        InstanceHealth {
            id: "i".into(),
            node_id: 1,
            state: state.into(),
            breaker: breaker.into(),
            in_flight: 0,
            restarts: 0,
            protocol_version: String::new(),
        }
    }

    #[test]
    fn states_follow_instances() {
        assert_eq!(server_state(true, 0, &[]), "stopped");
        assert_eq!(
            server_state(true, 2, &[instance("running", "closed")]),
            "degraded"
        );
        assert_eq!(
            server_state(true, 1, &[instance("running", "closed")]),
            "running"
        );
        assert_eq!(
            server_state(true, 1, &[instance("running", "open")]),
            "circuit_open"
        );
        assert_eq!(
            server_state(true, 1, &[instance("crash_loop", "closed")]),
            "crash_loop"
        );
        assert_eq!(server_state(false, 0, &[]), "unavailable");
    }

    #[test]
    fn metrics_add_up_across_nodes() {
        let stats = |total, ok, avg, p99| ServerStats {
            server: "s".into(),
            total_requests: total,
            successful_requests: ok,
            success_rate: 0.0,
            avg_latency_ms: avg,
            p99_latency_ms: p99,
        };
        let mut m = ServerMetrics::empty("s");
        m.add(&stats(10, 10, 1.0, 2.0));
        m.add(&stats(30, 20, 3.0, 9.0));
        assert_eq!(m.total_requests, 40);
        assert_eq!(m.failed_requests, 10);
        assert!((m.success_rate - 75.0).abs() < 1e-9);
        assert!((m.avg_latency_ms - 2.5).abs() < 1e-9);
        assert!((m.p99_latency_ms - 9.0).abs() < 1e-9);
    }
}
