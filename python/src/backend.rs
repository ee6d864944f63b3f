//! What a manager does, independent of Python: start the mode it was configured for,
//! run operations through the cluster client, and stop.
//!
//! Modes: embedded (an in-process single-node cluster), client of a remote cluster, or
//! member (this process runs one node of a cluster). Registry and status operations go
//! through a [`ClusterClient`] in every mode (over an in-memory channel for embedded), so
//! each has one implementation. Tool calls in embedded and member modes go straight to the
//! in-process node's data plane: no gRPC, no socket, no protobuf on the hot path.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use mcp_cluster::dataplane::{DataPlane, DataPlaneConfig, ExecuteError, ExecuteOptions, Executed};
use mcp_proto::cluster::WriteReply;
use mcp_proto::execute::ExecuteReply;

use crate::distributed::DistributedConfig;
use crate::embedded::{LocalNode, LocalNodeSpec};
use crate::errors::{ClientError, ErrorKind};
use crate::metrics_server::{MetricsEndpoint, MetricsServer};
use crate::types::{server_state, HealthStatus, InstanceHealth, Metrics, ServerHealth, ServerInfo};
use mcp_client::{ClientSettings, ClusterClient};

/// Election timeout of the embedded single-node cluster (it elects itself at once).
const EMBEDDED_ELECTION_TIMEOUT: Duration = Duration::from_millis(300);
/// Failover window of embedded mode (one node: this only bounds the first election).
const EMBEDDED_WINDOW: Duration = Duration::from_secs(10);

/// Everything a backend is configured with.
#[derive(Clone)]
pub struct BackendSettings {
    /// Data-plane settings (for nodes run in this process).
    pub dataplane: DataPlaneConfig,
    /// Distributed mode, if set.
    pub distributed: Option<DistributedConfig>,
    /// Embedded mode's data dir (temporary when unset).
    pub data_dir: Option<PathBuf>,
    /// Embedded mode: serve the node's gRPC API here. Unset (the default), the embedded
    /// node binds no socket at all.
    pub grpc_addr: Option<SocketAddr>,
    /// Where to serve Prometheus text, if anywhere.
    pub metrics_endpoint: Option<MetricsEndpoint>,
    /// False: metrics reads are refused.
    pub enable_metrics: bool,
}

/// How the manager reaches its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In-process single-node cluster.
    Embedded,
    /// Client of a remote cluster.
    Client,
    /// This process runs one node of the cluster.
    Member,
}

impl Mode {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Embedded => "embedded",
            Mode::Client => "client",
            Mode::Member => "member",
        }
    }
}

struct Running {
    client: Arc<ClusterClient>,
    /// The in-process node's data plane (embedded and member modes).
    plane: Option<Arc<DataPlane>>,
    node: Mutex<Option<LocalNode>>,
    node_addr: Option<String>,
    metrics_server: Mutex<Option<MetricsServer>>,
}

/// A deploy's outcome.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// Server name.
    pub name: String,
    /// Registry revision after the write.
    pub revision: u64,
    /// True when the server was created (not replaced).
    pub created: bool,
    /// Raft log index of the write.
    pub log_index: u64,
}

/// One manager's state.
pub struct Backend {
    settings: BackendSettings,
    mode: Mode,
    lifecycle: tokio::sync::Mutex<()>,
    running: RwLock<Option<Arc<Running>>>,
}

impl Backend {
    /// A backend that starts on first use.
    pub fn new(settings: BackendSettings) -> Self {
        let mode = match &settings.distributed {
            None => Mode::Embedded,
            Some(d) if d.node_id.is_some() => Mode::Member,
            Some(_) => Mode::Client,
        };
        Self {
            settings,
            mode,
            lifecycle: tokio::sync::Mutex::new(()),
            running: RwLock::new(None),
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn current(&self) -> Option<Arc<Running>> {
        self.running
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// True while started.
    pub fn is_running(&self) -> bool {
        self.current().is_some()
    }

    /// Starts if needed (idempotent; concurrent callers share one start).
    async fn running(&self) -> Result<Arc<Running>, ClientError> {
        if let Some(running) = self.current() {
            return Ok(running);
        }
        let _one_start = self.lifecycle.lock().await;
        if let Some(running) = self.current() {
            return Ok(running);
        }
        let running = Arc::new(self.start_mode().await?);
        *self.running.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&running));
        Ok(running)
    }

    /// Starts the manager.
    pub async fn start(&self) -> Result<(), ClientError> {
        self.running().await.map(|_| ())
    }

    /// Stops the manager: the metrics endpoint, and the in-process node with its
    /// instances. A later call starts it again.
    pub async fn stop(&self) -> Result<(), ClientError> {
        let _one_stop = self.lifecycle.lock().await;
        let running = self
            .running
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(running) = running else {
            return Ok(());
        };
        let server = running
            .metrics_server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(server) = server {
            server.stop().await;
        }
        let node = running
            .node
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(node) = node {
            if self.leaves_on_stop() {
                // Its state dies with the temporary data dir: a member that can never come
                // back would only weaken the quorum, so it leaves the cluster first.
                if let Err(e) = running.client.remove_node(node.id()).await {
                    tracing::warn!(node = node.id(), error = %e, "could not leave the cluster");
                }
            }
            node.shutdown().await?;
        }
        Ok(())
    }

    /// A member with a temporary data dir leaves the membership when it stops.
    fn leaves_on_stop(&self) -> bool {
        self.mode == Mode::Member
            && self
                .settings
                .distributed
                .as_ref()
                .is_some_and(|d| d.data_dir.is_none() && d.founders().ok().flatten().is_none())
    }

    async fn start_mode(&self) -> Result<Running, ClientError> {
        let request_timeout = self.settings.dataplane.request_timeout;
        let (client, node) = match &self.settings.distributed {
            None => {
                let node = LocalNode::start(LocalNodeSpec {
                    id: 1,
                    listen_addr: self.settings.grpc_addr,
                    in_process: self.settings.grpc_addr.is_none(),
                    advertise_addr: None,
                    data_dir: self.settings.data_dir.clone(),
                    initial_cluster: BTreeMap::from([(1, String::new())]),
                    admin_token: None,
                    election_timeout: EMBEDDED_ELECTION_TIMEOUT,
                    dataplane: self.settings.dataplane.clone(),
                })
                .await?;
                // In memory unless `grpc_addr` asked for a socket.
                let (seeds, known) = match node.channel() {
                    Some(channel) => (Vec::new(), vec![(node.addr().to_owned(), channel)]),
                    None => (vec![node.addr().to_owned()], Vec::new()),
                };
                let settings = ClientSettings {
                    seeds,
                    admin_token: None,
                    failover_window: EMBEDDED_WINDOW,
                    request_timeout,
                };
                let client = ClusterClient::with_channels(settings, known)?;
                (client, Some(node))
            }
            Some(d) => match d.node_id {
                None => {
                    let client =
                        ClusterClient::new(client_settings(d, d.addresses(), request_timeout))?;
                    let client = match d.client_tls()? {
                        Some(tls) => client.with_tls(tls)?,
                        None => client,
                    };
                    (client, None)
                }
                Some(id) => self.start_member(d, id, request_timeout).await?,
            },
        };
        let client = Arc::new(client);
        if self.mode == Mode::Client {
            // A cluster that lost its quorum still serves calls: any live node will do.
            client.wait_for_any_node().await?;
        } else {
            client.wait_for_leader().await?;
        }
        let node_addr = node.as_ref().map(|n| n.addr().to_owned());
        let plane = node.as_ref().map(LocalNode::dataplane);
        let metrics_server = match &self.settings.metrics_endpoint {
            Some(endpoint) if self.settings.enable_metrics => {
                Some(MetricsServer::start(endpoint.clone(), Arc::clone(&client)).await?)
            }
            _ => None,
        };
        Ok(Running {
            client,
            plane,
            node: Mutex::new(node),
            node_addr,
            metrics_server: Mutex::new(metrics_server),
        })
    }

    /// Runs node `id` here: as a founding member, or joining the running cluster.
    async fn start_member(
        &self,
        d: &DistributedConfig,
        id: u64,
        request_timeout: Duration,
    ) -> Result<(ClusterClient, Option<LocalNode>), ClientError> {
        let founders = d
            .founders()
            .map_err(|_| ClientError::config("cluster_nodes", "invalid cluster_nodes"))?;
        let listen_addr = match (&d.listen_addr, &founders) {
            (Some(addr), _) => Some(parse_addr("listen_addr", addr)?),
            (None, Some(founders)) => match founders.get(&id) {
                Some(addr) => Some(parse_addr("cluster_nodes", addr)?),
                None => None,
            },
            (None, None) => None,
        };
        let node = LocalNode::start(LocalNodeSpec {
            id,
            listen_addr,
            in_process: false,
            advertise_addr: d.advertise_addr.clone(),
            data_dir: d.data_dir.as_ref().map(PathBuf::from),
            initial_cluster: founders.clone().unwrap_or_default(),
            admin_token: d.admin_token.clone(),
            election_timeout: d.election_timeout(),
            dataplane: self.settings.dataplane.clone(),
        })
        .await?;
        let others: Vec<String> = d
            .addresses()
            .into_iter()
            .filter(|a| a != node.addr())
            .collect();
        if founders.is_none() {
            if let Err(e) = join(d, id, node.addr(), others.clone(), request_timeout).await {
                let _ = node.shutdown().await;
                return Err(e);
            }
        }
        // The node's own address first: its executes are served locally when it can.
        let mut seeds = vec![node.addr().to_owned()];
        seeds.extend(others);
        let client = ClusterClient::new(client_settings(d, seeds, request_timeout))?;
        Ok((client, Some(node)))
    }

    /// Addresses the manager talks to, the in-process node's address, and the leader.
    pub fn endpoints(&self) -> (Vec<String>, Option<String>, Option<String>) {
        match self.current() {
            Some(r) => (r.client.addresses(), r.node_addr.clone(), r.client.leader()),
            None => (Vec::new(), None, None),
        }
    }

    /// Where the Prometheus endpoint listens, while it runs.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.current().and_then(|r| {
            r.metrics_server
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(MetricsServer::addr)
        })
    }

    /// Deploys a server from its spec JSON.
    pub async fn deploy(&self, spec_json: &str) -> Result<Deployed, ClientError> {
        let running = self.running().await?;
        let reply: WriteReply = running.client.deploy(spec_json).await?;
        self.confirm(&running, reply.log_index).await?;
        Ok(Deployed {
            name: reply.name,
            revision: reply.revision,
            created: reply.created,
            log_index: reply.log_index,
        })
    }

    /// Removes a server.
    pub async fn undeploy(&self, name: &str) -> Result<u64, ClientError> {
        let running = self.running().await?;
        let reply = running.client.undeploy(name).await?;
        self.confirm(&running, reply.log_index).await?;
        Ok(reply.revision)
    }

    /// Sets a server's replicas.
    pub async fn scale(&self, name: &str, replicas: u32) -> Result<u64, ClientError> {
        let running = self.running().await?;
        let reply = running.client.scale(name, replicas).await?;
        self.confirm(&running, reply.log_index).await?;
        Ok(reply.revision)
    }

    /// Every server.
    pub async fn list_servers(&self) -> Result<Vec<ServerInfo>, ClientError> {
        let running = self.running().await?;
        let servers = running.client.list_servers(false).await?;
        Ok(servers.into_iter().map(ServerInfo::from).collect())
    }

    /// Sends a JSON-RPC request to a server.
    pub async fn execute(
        &self,
        server: &str,
        request_json: &str,
        timeout: Option<Duration>,
        retry_unsafe: bool,
    ) -> Result<ExecuteReply, ClientError> {
        let running = self.running().await?;
        if let Some(plane) = &running.plane {
            let options = local_options(timeout, retry_unsafe);
            let executed = plane.execute_text(server, request_json, options).await;
            return local_reply(executed);
        }
        running
            .client
            .execute(server, request_json, timeout, retry_unsafe)
            .await
            .map_err(ClientError::from)
    }

    /// Calls a tool.
    pub async fn execute_tool(
        &self,
        server: &str,
        tool: &str,
        arguments_json: &str,
        timeout: Option<Duration>,
        retry_unsafe: bool,
    ) -> Result<ExecuteReply, ClientError> {
        let running = self.running().await?;
        if let Some(plane) = &running.plane {
            let options = local_options(timeout, retry_unsafe);
            let executed = plane.call_tool(server, tool, arguments_json, options).await;
            return local_reply(executed);
        }
        running
            .client
            .execute_tool(server, tool, arguments_json, timeout, retry_unsafe)
            .await
            .map_err(ClientError::from)
    }

    fn metrics_enabled(&self) -> Result<(), ClientError> {
        if self.settings.enable_metrics {
            Ok(())
        } else {
            Err(ClientError::config(
                "enable_metrics",
                "metrics are disabled for this manager (enable_metrics=False)",
            ))
        }
    }

    /// Request statistics summed over the nodes that answer.
    pub async fn metrics(&self) -> Result<Metrics, ClientError> {
        self.metrics_enabled()?;
        let running = self.running().await?;
        let replies = running.client.metrics_of_all().await;
        if replies.is_empty() {
            return Err(ClientError::new(
                ErrorKind::ClusterUnavailable,
                "no node answered the metrics request",
            ));
        }
        Ok(Metrics::from_nodes(&replies))
    }

    /// Prometheus text: every node that answers, merged into one exposition.
    pub async fn prometheus(&self) -> Result<String, ClientError> {
        self.metrics_enabled()?;
        let running = self.running().await?;
        prometheus_text(&running.client).await
    }

    /// Health of every server, from the registry and every node's instances.
    pub async fn health(&self) -> Result<HealthStatus, ClientError> {
        let running = self.running().await?;
        // A stale read: health must be answerable while the cluster has no quorum.
        let servers = running.client.list_servers(true).await?;
        let statuses = running.client.status_of_all().await;
        let mut by_server: BTreeMap<String, Vec<InstanceHealth>> = BTreeMap::new();
        for status in &statuses {
            for i in &status.instances {
                by_server
                    .entry(i.server.clone())
                    .or_default()
                    .push(InstanceHealth {
                        id: i.id.clone(),
                        node_id: status.node_id,
                        state: i.state.clone(),
                        breaker: i.breaker.clone(),
                        in_flight: i.in_flight,
                        restarts: i.restarts,
                        protocol_version: i.protocol_version.clone(),
                    });
            }
        }
        let mut result = BTreeMap::new();
        for server in &servers {
            let instances = by_server.remove(&server.name).unwrap_or_default();
            let healthy_instances = instances.iter().filter(|i| i.is_healthy()).count();
            let desired = if server.scheduled { server.replicas } else { 0 };
            result.insert(
                server.name.clone(),
                ServerHealth {
                    name: server.name.clone(),
                    healthy: healthy_instances > 0,
                    state: server_state(server.scheduled, server.replicas, &instances),
                    desired_replicas: desired,
                    healthy_instances,
                    instances,
                },
            );
        }
        Ok(HealthStatus {
            healthy_servers: result.values().filter(|s| s.healthy).count(),
            total_servers: result.len(),
            servers: result,
            nodes_reporting: statuses.len(),
            nodes_total: running.client.addresses().len(),
        })
    }

    /// The state word of one server (see [`server_state`]).
    pub async fn server_state(&self, name: &str) -> Result<String, ClientError> {
        let health = self.health().await?;
        match health.servers.get(name) {
            Some(server) => Ok(server.state.clone()),
            None => Err(ClientError::new(
                ErrorKind::ServerNotFound,
                format!("unknown server {name:?}"),
            )),
        }
    }

    /// The cluster's members `(id, address, voter)` and the leader's id, as the answering
    /// node sees them.
    pub async fn members(&self) -> Result<(Vec<(u64, String, bool)>, Option<u64>), ClientError> {
        let running = self.running().await?;
        let reply = running.client.members().await?;
        Ok((
            reply
                .members
                .into_iter()
                .map(|m| (m.id, m.addr, m.voter))
                .collect(),
            reply.leader_id,
        ))
    }

    /// Waits until `consensus_threshold` of the voters applied `log_index`.
    async fn confirm(&self, running: &Running, log_index: u64) -> Result<(), ClientError> {
        let Some(d) = &self.settings.distributed else {
            return Ok(());
        };
        let Some(threshold) = d.consensus_threshold else {
            return Ok(());
        };
        let deadline = Instant::now() + d.failover_window();
        loop {
            let replies = running.client.discover().await;
            let voters: BTreeSet<u64> = replies
                .iter()
                .flat_map(|r| r.members.iter())
                .filter(|m| m.voter)
                .map(|m| m.id)
                .collect();
            let needed = voters_needed(threshold, voters.len());
            let applied = replies
                .iter()
                .filter(|r| voters.contains(&r.node_id))
                .filter(|r| r.last_applied_index.unwrap_or(0) >= log_index)
                .count();
            if !voters.is_empty() && applied >= needed {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClientError::new(
                    ErrorKind::ClusterUnavailable,
                    format!(
                        "the write was committed at log index {log_index}, but only {applied} of {} voters applied it within {} ms; consensus_threshold={threshold} needs {needed}",
                        voters.len(),
                        d.failover_window().as_millis()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `ceil(threshold * voters)`, at least a strict majority.
pub fn voters_needed(threshold: f64, voters: usize) -> usize {
    let by_threshold = (threshold * voters as f64 - 1e-9).ceil();
    let by_threshold = if by_threshold.is_finite() && by_threshold > 0.0 {
        by_threshold as usize
    } else {
        0
    };
    by_threshold.max(voters / 2 + 1).min(voters)
}

/// Every answering node's exposition, merged.
pub async fn prometheus_text(client: &ClusterClient) -> Result<String, ClientError> {
    let texts = client.expositions().await;
    if texts.is_empty() {
        return Err(ClientError::new(
            ErrorKind::ClusterUnavailable,
            "no node answered the metrics request",
        ));
    }
    Ok(mcp_cluster::metrics::merge_expositions(&texts))
}

/// Options of a call made in this process: a fresh request id (logged by every node that
/// handles the call, as for a gRPC caller).
fn local_options(timeout: Option<Duration>, retry_unsafe: bool) -> ExecuteOptions {
    ExecuteOptions {
        retry_unsafe,
        timeout,
        forwarded: false,
        request_id: ExecuteOptions::new_request_id(),
        ..ExecuteOptions::default()
    }
}

/// A local call's outcome in the shape a remote call has.
fn local_reply(executed: Result<Executed, ExecuteError>) -> Result<ExecuteReply, ClientError> {
    let executed = executed.map_err(mcp_client::Error::from)?;
    Ok(ExecuteReply {
        response_json: executed.response.into_string(),
        node_id: executed.node_id,
        instance_id: executed.instance_id,
    })
}

fn client_settings(
    d: &DistributedConfig,
    seeds: Vec<String>,
    request_timeout: Duration,
) -> ClientSettings {
    ClientSettings {
        seeds,
        admin_token: d.client_token(),
        failover_window: d.failover_window(),
        request_timeout,
    }
}

fn parse_addr(field: &str, addr: &str) -> Result<SocketAddr, ClientError> {
    addr.parse().map_err(|_| {
        ClientError::config(
            field,
            format!("{field}: a node run in this process needs an IP:PORT address to listen on, got {addr:?}"),
        )
    })
}

/// Makes node `id` at `addr` a voter of the cluster at `others`.
async fn join(
    d: &DistributedConfig,
    id: u64,
    addr: &str,
    others: Vec<String>,
    request_timeout: Duration,
) -> Result<(), ClientError> {
    let cluster = ClusterClient::new(client_settings(d, others, request_timeout))?;
    cluster.wait_for_leader().await?;
    let members = cluster.members().await?;
    match members.members.iter().find(|m| m.id == id) {
        Some(m) if m.addr != addr => {
            return Err(ClientError::config(
                "node_id",
                format!(
                    "node {id} is already a member of the cluster at {}, not {addr}",
                    m.addr
                ),
            ))
        }
        Some(m) if m.voter => return Ok(()),
        Some(_) => {}
        None => {
            tracing::info!(node = id, %addr, "joining the cluster as a learner");
            cluster.add_learner(id, addr).await?;
        }
    }
    tracing::info!(node = id, "promoting to voter");
    cluster.promote_voter(id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_round_up_and_never_below_majority() {
        assert_eq!(voters_needed(0.7, 3), 3);
        assert_eq!(voters_needed(0.51, 3), 2);
        assert_eq!(voters_needed(0.6, 5), 3);
        assert_eq!(voters_needed(0.8, 5), 4);
        assert_eq!(voters_needed(1.0, 4), 4);
    }
}
