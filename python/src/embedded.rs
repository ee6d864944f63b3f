//! A cluster node running inside the Python process: the same `ClusterNode` as `mcpd node`.
//!
//! Embedded mode runs a single-node cluster (data in a temporary dir unless `data_dir` is
//! given) served in memory: it binds no socket, so no other process can reach it. Distributed
//! mode with `node_id` runs one member of a larger cluster, listening for its peers. Either
//! way tool calls go straight to the node's data plane ([`LocalNode::dataplane`]), and
//! registry operations go through the same client as for a remote cluster (in memory for
//! an embedded node).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use mcp_cluster::dataplane::{DataPlane, DataPlaneConfig};
use mcp_cluster::{ClusterNode, NodeConfig, RaftTuning};
use tonic::transport::Channel;

use crate::errors::{ClientError, ErrorKind};

/// What a local node is started with.
#[derive(Debug, Clone)]
pub struct LocalNodeSpec {
    /// Node id.
    pub id: u64,
    /// gRPC listen address; `None` picks a free loopback port (or, on restart, the one
    /// pinned in the data dir). Ignored by an in-process node, which binds nothing.
    pub listen_addr: Option<SocketAddr>,
    /// Serve the gRPC API in memory only (a single-node cluster with no peers).
    pub in_process: bool,
    /// Address peers dial.
    pub advertise_addr: Option<String>,
    /// Data dir; `None` is a temporary dir deleted at shutdown.
    pub data_dir: Option<PathBuf>,
    /// Founding members (empty: join later, or already has state).
    pub initial_cluster: BTreeMap<u64, String>,
    /// Admin token of the cluster.
    pub admin_token: Option<String>,
    /// Raft election timeout.
    pub election_timeout: Duration,
    /// Data-plane settings.
    pub dataplane: DataPlaneConfig,
}

/// A running in-process node.
pub struct LocalNode {
    node: ClusterNode,
    addr: String,
    channel: Option<Channel>,
    data_dir: PathBuf,
    // Deleted when the node is dropped, after it stopped.
    _tempdir: Option<tempfile::TempDir>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::new(ErrorKind::Internal, format!("{what}: {e}"))
}

impl LocalNode {
    /// Starts the node.
    pub async fn start(spec: LocalNodeSpec) -> Result<Self, ClientError> {
        let (data_dir, tempdir) = match &spec.data_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("mcp-rust-")
                    .tempdir()
                    .map_err(|e| failed("cannot create a temporary data dir", e))?;
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let restarted = mcp_cluster::identity::exists(&data_dir);
        let listen_addr = match spec.listen_addr {
            _ if restarted => spec.listen_addr,
            // Never bound: only the identity in the data dir records it.
            _ if spec.in_process => Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            Some(addr) => Some(addr),
            None => Some(free_loopback_addr()?),
        };
        let advertise_addr = match &spec.advertise_addr {
            None if spec.in_process && !restarted => Some(IN_PROCESS_ADDR.to_owned()),
            other => other.clone(),
        };
        let mut initial_cluster = spec.initial_cluster.clone();
        // A single-node cluster lists itself, at the address just chosen.
        if initial_cluster.len() == 1 && initial_cluster.contains_key(&spec.id) {
            if let Some(addr) = listen_addr {
                let advertised = advertise_addr.clone().unwrap_or_else(|| addr.to_string());
                initial_cluster.insert(spec.id, advertised);
            }
        }
        // Heartbeats several times per election timeout, as openraft requires.
        let heartbeat = (spec.election_timeout / 4).max(Duration::from_millis(10));
        let mut config = NodeConfig::new(data_dir.clone());
        config.id = Some(spec.id);
        config.listen_addr = listen_addr;
        config.advertise_addr = advertise_addr;
        config.in_process = spec.in_process;
        config.initial_cluster = initial_cluster;
        config.admin_token = spec.admin_token.clone();
        config.raft = RaftTuning {
            leader_election_timeout: spec.election_timeout,
            heartbeat_interval: heartbeat,
            ..RaftTuning::default()
        };
        config.dataplane = spec.dataplane.clone();
        config.metrics_addr = None;
        let node = ClusterNode::start(config).await.map_err(|e| match e {
            mcp_cluster::ClusterError::Config(message) => ClientError::config("node", message),
            mcp_cluster::ClusterError::Identity { .. } => {
                ClientError::config("data_dir", e.to_string())
            }
            other => failed("cannot start the cluster node", other),
        })?;
        let addr = node.advertise_addr().to_owned();
        let channel = node.in_process_channel();
        tracing::info!(node = node.id(), %addr, in_process = spec.in_process, "in-process node started");
        Ok(Self {
            node,
            addr,
            channel,
            data_dir,
            _tempdir: tempdir,
        })
    }

    /// The address clients and peers dial.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The node id.
    pub fn id(&self) -> u64 {
        self.node.id()
    }

    /// The in-memory channel to an in-process node's API (`None`: dial [`Self::addr`]).
    pub fn channel(&self) -> Option<Channel> {
        self.channel.clone()
    }

    /// The node's data plane: tool calls made here take no network hop.
    pub fn dataplane(&self) -> Arc<DataPlane> {
        Arc::clone(self.node.dataplane())
    }

    /// Stops the node: its instances, the gRPC server and Raft.
    pub async fn shutdown(self) -> Result<(), ClientError> {
        let Self {
            node,
            _tempdir,
            data_dir,
            ..
        } = self;
        node.shutdown()
            .await
            .map_err(|e| failed("node shutdown", e))?;
        // The node's tasks let go of the database a moment after shutdown returns; a
        // manager restarted on the same data dir must find it free.
        let lock = data_dir.join("raft.db").join("db");
        let deadline = tokio::time::Instant::now() + DB_RELEASE_TIMEOUT;
        while is_locked(&lock) {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(path = %lock.display(), "the node's database is still open after shutdown");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(_tempdir);
        Ok(())
    }
}

/// What an in-process node advertises: it has no address anyone could dial.
const IN_PROCESS_ADDR: &str = "in-process";

/// How long `shutdown` waits for the database to be closed.
const DB_RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// True while another open file description holds the advisory lock sled takes on its
/// database file (`flock`, exclusive).
fn is_locked(path: &std::path::Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    // SAFETY: flock on a descriptor we own; the lock (if taken) is released right away and
    // at the latest when `file` is closed.
    unsafe {
        if libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 {
            libc::flock(file.as_raw_fd(), libc::LOCK_UN);
            false
        } else {
            true
        }
    }
}

/// A loopback address with a port the OS says is free now.
fn free_loopback_addr() -> Result<SocketAddr, ClientError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| failed("cannot find a free loopback port", e))
}
