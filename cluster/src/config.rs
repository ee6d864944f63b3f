//! The configuration of one cluster node, after flags, env and file have been merged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mcp_raft::NodeId;

use crate::error::ClusterError;

/// The gRPC address a node listens on when none is given: loopback only, so a node is
/// never reachable from other hosts unless told to be.
pub const DEFAULT_GRPC_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7400);

/// The metrics/health address when none is given: loopback only.
pub const DEFAULT_METRICS_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9400);

/// Raft timing and log-compaction settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftTuning {
    /// Minimum leader election timeout; a follower that hears nothing from a leader for a
    /// random time between this and 1.5 times this starts an election. openraft adds its
    /// leader lease (the maximum) on top once a leader was known, so a leader that dies is
    /// replaced after about 2.5 to 3 times this (see docs/operations.md, "Raft timing").
    pub leader_election_timeout: Duration,
    /// How often the leader sends heartbeats; must be well below the election timeout.
    pub heartbeat_interval: Duration,
    /// Build a snapshot after this many applied log entries since the last one.
    pub snapshot_logs: u64,
    /// How many entries to keep in the log behind a snapshot (so slightly lagging
    /// followers catch up from the log instead of a full snapshot).
    pub logs_to_keep: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            leader_election_timeout: Duration::from_millis(500),
            heartbeat_interval: Duration::from_millis(100),
            snapshot_logs: 1000,
            logs_to_keep: 1000,
        }
    }
}

impl RaftTuning {
    /// openraft's configuration for these settings, validated.
    pub fn to_openraft(&self) -> Result<openraft::Config, ClusterError> {
        let election_ms = duration_ms(self.leader_election_timeout);
        let heartbeat_ms = duration_ms(self.heartbeat_interval);
        if heartbeat_ms == 0 || heartbeat_ms >= election_ms {
            return Err(ClusterError::Config(format!(
                "heartbeat_interval ({heartbeat_ms} ms) must be positive and below leader_election_timeout ({election_ms} ms)"
            )));
        }
        if self.snapshot_logs == 0 {
            return Err(ClusterError::Config(
                "snapshot_logs must be at least 1".to_owned(),
            ));
        }
        let config = openraft::Config {
            cluster_name: "mcp-rust".to_owned(),
            election_timeout_min: election_ms,
            // A narrow spread keeps failover short (the maximum is also the leader lease a
            // follower waits out); a quarter of the minimum still separates candidates by
            // far more than a round trip between nodes (125 ms with the defaults).
            election_timeout_max: election_ms.saturating_add((election_ms / 4).max(1)),
            heartbeat_interval: heartbeat_ms,
            install_snapshot_timeout: (election_ms * 2).max(1000),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_logs),
            max_in_snapshot_log_to_keep: self.logs_to_keep,
            // Snapshot chunks travel JSON-encoded inside one gRPC message: keep them well
            // below `mcp_proto::MAX_MESSAGE_BYTES` even after encoding overhead.
            snapshot_max_chunk_size: 1024 * 1024,
            ..Default::default()
        };
        config
            .validate()
            .map_err(|e| ClusterError::Config(format!("invalid raft settings: {e}")))
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id. Optional on restart (read from the data dir).
    pub id: Option<NodeId>,
    /// Address the gRPC server listens on. Optional on restart.
    pub listen_addr: Option<SocketAddr>,
    /// Address peers and clients dial; defaults to `listen_addr`. Must be set when listening
    /// on an unspecified address such as 0.0.0.0.
    pub advertise_addr: Option<String>,
    /// Where the Raft log, snapshots and the node identity live.
    pub data_dir: PathBuf,
    /// The founding members (id -> advertised address). Used only on the very first start
    /// of a pristine node; ignored once the node has state.
    pub initial_cluster: BTreeMap<NodeId, String>,
    /// When set, writes, executes and Raft RPCs must carry this token (see `auth`).
    pub admin_token: Option<String>,
    /// Raft timing and compaction.
    pub raft: RaftTuning,
    /// How long a write may wait to be committed before the caller gets an "unavailable"
    /// error (the write may still commit later).
    pub write_timeout: Duration,
    /// Data plane settings.
    pub dataplane: crate::dataplane::DataPlaneConfig,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None` disables them.
    pub metrics_addr: Option<SocketAddr>,
    /// The leader declares a node dead (and re-places its instances) after it has not
    /// answered for this long.
    pub node_grace: Duration,
    /// Labels this node announces; servers may require them (`placement.node_tags`).
    pub tags: Vec<String>,
    /// The aggregated MCP endpoint (`/mcp`); `None` (the default) leaves it off.
    pub gateway: Option<crate::gateway::GatewayConfig>,
    /// Serve the gRPC API in memory only, bound to no socket: callers in this process reach
    /// it through `ClusterNode::in_process_channel`, nothing outside can. For a single-node
    /// cluster embedded in a program (it has no peers to talk to).
    pub in_process: bool,
    /// Append the audit log's JSON lines to this file too (they always go to the
    /// `mcpd::audit` tracing target).
    pub audit_log: Option<PathBuf>,
    /// TLS for the gRPC API and peer traffic (and optionally `/metrics` and `/mcp`);
    /// `None` serves plaintext.
    pub tls: Option<crate::tls::TlsSettings>,
    /// Serve beyond loopback with authentication off (see `hardening`).
    pub insecure: bool,
    /// The cluster key ring that seals and opens secrets (`--secrets-key-file` or
    /// `MCPD_SECRETS_KEY`); every node needs the same one. `None`: this node cannot set
    /// secrets or start servers whose specs refer to them. `Debug` shows key ids only.
    pub secrets_keyring: Option<std::sync::Arc<crate::guards::secrets::Keyring>>,
}

impl NodeConfig {
    /// A node keeping its state in `data_dir`, with every other setting at its default:
    /// listening on 127.0.0.1:7400 (when pristine), no admin token, metrics off.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            id: None,
            listen_addr: None,
            advertise_addr: None,
            data_dir: data_dir.into(),
            initial_cluster: BTreeMap::new(),
            admin_token: None,
            raft: RaftTuning::default(),
            write_timeout: Duration::from_secs(5),
            dataplane: crate::dataplane::DataPlaneConfig::default(),
            metrics_addr: None,
            node_grace: Duration::from_secs(10),
            tags: Vec::new(),
            gateway: None,
            in_process: false,
            audit_log: None,
            tls: None,
            insecure: false,
            secrets_keyring: None,
        }
    }
}

/// Parses `1=127.0.0.1:7401,2=127.0.0.1:7402` into id -> address.
pub fn parse_initial_cluster(value: &str) -> Result<BTreeMap<NodeId, String>, ClusterError> {
    let mut members = BTreeMap::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').ok_or_else(|| {
            ClusterError::Config(format!(
                "initial_cluster: expected ID=HOST:PORT, got {part:?}"
            ))
        })?;
        let id: NodeId = id.trim().parse().map_err(|_| {
            ClusterError::Config(format!("initial_cluster: node id {id:?} is not a number"))
        })?;
        let addr = addr.trim();
        if addr.is_empty() || !addr.contains(':') {
            return Err(ClusterError::Config(format!(
                "initial_cluster: address of node {id} must be HOST:PORT, got {addr:?}"
            )));
        }
        if members.insert(id, addr.to_owned()).is_some() {
            return Err(ClusterError::Config(format!(
                "initial_cluster: node id {id} appears twice"
            )));
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_initial_cluster() {
        let members = parse_initial_cluster("1=127.0.0.1:1, 2=h:2").unwrap();
        assert_eq!(members.get(&1).map(String::as_str), Some("127.0.0.1:1"));
        assert_eq!(members.get(&2).map(String::as_str), Some("h:2"));
    }

    #[test]
    fn rejects_bad_initial_cluster() {
        for bad in ["1", "x=h:1", "1=h:1,1=h:2", "1=nohost"] {
            assert!(parse_initial_cluster(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_heartbeat_above_election_timeout() {
        let tuning = RaftTuning {
            heartbeat_interval: Duration::from_millis(2000),
            ..RaftTuning::default()
        };
        assert!(tuning.to_openraft().is_err());
    }
}
