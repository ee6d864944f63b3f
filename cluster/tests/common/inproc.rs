//! An in-process cluster: N `ClusterNode`s in the test's own tokio runtime, each with a
//! real gRPC server on a loopback port, a temporary data dir and short Raft timings.
//!
//! It lives here, among the cluster crate's integration tests, rather than as a
//! `cluster::testing` module behind a feature: it needs nothing private, adds no public API
//! or feature to keep stable, and its tests drive the nodes only through what users have
//! (the `mcp_client::ClusterClient`, gRPC on each node's port). Nodes stop gracefully
//! ([`InProcCluster::stop`]); a node killed with -9, which only a separate process can
//! show, stays in the root package's multi-process tests (`tests/`).
//!
//! The servers these tests deploy run [`SERVE`] under `/bin/sh`, so no binary of another
//! package is needed.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use mcp_client::{ClientSettings, ClusterClient};
use mcp_cluster::{ClusterNode, NodeConfig, RaftTuning};
use mcp_raft::NodeId;

use super::support::{wait_until, PATIENCE, SERVE};

/// How long one node may take to shut down when the cluster is dropped.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(15);

/// The spec JSON of a stdio server `name` running [`SERVE`] with `replicas`.
pub fn serve_spec(name: &str, replicas: u32) -> String {
    serde_json::json!({
        "name": name,
        "command": "/bin/sh",
        "args": ["-c", SERVE],
        "replicas": replicas,
    })
    .to_string()
}

/// A free loopback address (the OS picks the port; it is released at once, so another
/// process could take it before the node binds it: rare, and the start then fails loudly).
fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("read the bound address")
}

/// N nodes of one cluster, founded together, in this process.
///
/// Needs a multi-threaded runtime (`#[tokio::test(flavor = "multi_thread")]`): dropping
/// the cluster shuts every running node down gracefully, which blocks the dropping thread.
pub struct InProcCluster {
    dir: tempfile::TempDir,
    addrs: BTreeMap<NodeId, SocketAddr>,
    /// `None` while a node is stopped.
    nodes: BTreeMap<NodeId, Option<ClusterNode>>,
}

impl InProcCluster {
    /// Starts nodes 1..=n on loopback ports and waits until they agree on a leader.
    pub async fn start(n: NodeId) -> Self {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let addrs: BTreeMap<NodeId, SocketAddr> = (1..=n).map(|id| (id, free_addr())).collect();
        let mut cluster = Self {
            dir,
            addrs,
            nodes: BTreeMap::new(),
        };
        for id in 1..=n {
            let node = ClusterNode::start(cluster.config(id))
                .await
                .unwrap_or_else(|e| panic!("start node {id}: {e}"));
            cluster.nodes.insert(id, Some(node));
        }
        cluster.wait_for_leader().await;
        cluster
    }

    /// Node `id`'s configuration: the same on every start, as a restarted process's flags.
    fn config(&self, id: NodeId) -> NodeConfig {
        NodeConfig {
            id: Some(id),
            listen_addr: Some(self.addrs[&id]),
            initial_cluster: self
                .addrs
                .iter()
                .map(|(id, addr)| (*id, addr.to_string()))
                .collect(),
            raft: RaftTuning {
                leader_election_timeout: Duration::from_millis(400),
                heartbeat_interval: Duration::from_millis(100),
                ..RaftTuning::default()
            },
            node_grace: Duration::from_secs(3),
            ..NodeConfig::new(self.dir.path().join(format!("node-{id}")))
        }
    }

    /// The ids of every node, running or not.
    pub fn ids(&self) -> Vec<NodeId> {
        self.addrs.keys().copied().collect()
    }

    /// Node `id`'s gRPC address.
    pub fn addr(&self, id: NodeId) -> String {
        self.addrs[&id].to_string()
    }

    /// Running node `id`.
    pub fn node(&self, id: NodeId) -> &ClusterNode {
        match self.nodes.get(&id) {
            Some(Some(node)) => node,
            _ => panic!("node {id} is not running"),
        }
    }

    /// The leader every running node agrees on (waits for one).
    pub async fn wait_for_leader(&self) -> NodeId {
        let mut agreed = None;
        wait_until("the running nodes to agree on a running leader", || {
            let leaders: Vec<Option<NodeId>> = self
                .nodes
                .values()
                .flatten()
                .map(|node| node.raft().metrics().borrow().current_leader)
                .collect();
            agreed = match leaders.first() {
                Some(Some(leader))
                    if leaders.iter().all(|l| *l == Some(*leader))
                        && matches!(self.nodes.get(leader), Some(Some(_))) =>
                {
                    Some(*leader)
                }
                _ => None,
            };
            std::future::ready(agreed.is_some())
        })
        .await;
        agreed.unwrap_or_else(|| unreachable!("waited for a leader"))
    }

    /// A running node that is not `leader`.
    pub fn follower_of(&self, leader: NodeId) -> NodeId {
        self.nodes
            .iter()
            .find(|(id, node)| **id != leader && node.is_some())
            .map(|(id, _)| *id)
            .expect("a running follower")
    }

    /// A client that knows only node `id` (every request goes there first).
    pub fn client_of(&self, id: NodeId) -> ClusterClient {
        client(vec![self.addr(id)])
    }

    /// A client that knows every node, as a user's client of the whole cluster.
    pub fn client(&self) -> ClusterClient {
        client(self.ids().into_iter().map(|id| self.addr(id)).collect())
    }

    /// Stops node `id` gracefully (instances stopped, gRPC and Raft shut down).
    pub async fn stop(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).and_then(Option::take);
        let node = node.unwrap_or_else(|| panic!("node {id} is not running"));
        node.shutdown()
            .await
            .unwrap_or_else(|e| panic!("stop node {id}: {e}"));
    }

    /// Starts stopped node `id` again from its data dir, with the same configuration.
    pub async fn restart(&mut self, id: NodeId) {
        assert!(
            matches!(self.nodes.get(&id), Some(None)),
            "node {id} is running"
        );
        let node = ClusterNode::start(self.config(id))
            .await
            .unwrap_or_else(|e| panic!("restart node {id}: {e}"));
        self.nodes.insert(id, Some(node));
    }

    /// Stops every running node gracefully.
    pub async fn shutdown(mut self) {
        self.stop_all().await;
    }

    async fn stop_all(&mut self) {
        let running: Vec<ClusterNode> = self.nodes.values_mut().filter_map(Option::take).collect();
        let stops = running.into_iter().map(|node| async move {
            let id = node.id();
            match tokio::time::timeout(SHUTDOWN_BOUND, node.shutdown()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("node {id} shut down with an error: {e}"),
                Err(_) => eprintln!("node {id} did not shut down within {SHUTDOWN_BOUND:?}"),
            }
        });
        futures::future::join_all(stops).await;
    }
}

impl Drop for InProcCluster {
    fn drop(&mut self) {
        if self.nodes.values().all(Option::is_none) {
            return;
        }
        // A test that failed (or forgot `shutdown`): stop the nodes before the runtime
        // goes, so their server processes and sled files are released in order.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return;
        }
        tokio::task::block_in_place(|| runtime.block_on(self.stop_all()));
    }
}

fn client(seeds: Vec<String>) -> ClusterClient {
    ClusterClient::new(ClientSettings {
        seeds,
        admin_token: None,
        failover_window: PATIENCE,
        request_timeout: Duration::from_secs(10),
    })
    .expect("a client of the test cluster")
}
