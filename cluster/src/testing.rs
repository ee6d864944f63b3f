//! Fakes and helpers shared by the crate's unit tests: a condition poller, a fake MCP
//! server (a few lines of `sh`, so no test needs a built binary), instances running it, a
//! registry that tests change by applying commands to a real state machine without Raft,
//! and peers that must never be asked.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use mcp_raft::registry::spec::{self, ServerSpec};
use mcp_raft::registry::NodeRecord;
use mcp_raft::types::Entry;
use mcp_raft::{Command, NodeId, RegistryReader, RegistryStateMachine};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, LogId};
use serde_json::Value;
use tokio::sync::Notify;

use crate::dataplane::breaker::BreakerConfig;
use crate::dataplane::config::RestartPolicy;
use crate::dataplane::instance::Instance;
use crate::dataplane::{
    DataPlaneConfig, DataPlaneMetrics, ExecuteError, ExecuteOptions, Executed, PeerForwarder,
};

// One copy for unit and integration tests alike.
#[path = "../tests/common/support.rs"]
mod support;
pub use support::{wait_until, SERVE};

/// Polls `condition` until it holds; panics naming `what` after [`support::PATIENCE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    wait_until(what, || std::future::ready(condition())).await;
}

/// A stdio server `name` with `replicas` that runs `script` under `/bin/sh` (an absolute
/// path: a server's environment need not have `PATH`).
pub fn sh_server(name: &str, script: &str, replicas: u32) -> ServerSpec {
    let value = serde_json::json!({
        "name": name,
        "command": "/bin/sh",
        "args": ["-c", script],
        "replicas": replicas,
    });
    match spec::from_value(value) {
        Ok(spec) => spec,
        Err(e) => panic!("test spec {name}: {e}"),
    }
}

/// A data plane config that restarts quickly, probes health often, crash-loops after
/// three failed starts and never lets a breaker half-open during a test.
pub fn quick_config() -> DataPlaneConfig {
    DataPlaneConfig {
        health_check_interval: Duration::from_millis(50),
        restart: RestartPolicy {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            crash_loop_after: 3,
            stable_after: Duration::from_secs(600),
        },
        breaker: BreakerConfig {
            open_timeout: Duration::from_secs(3600),
            ..BreakerConfig::default()
        },
        ..DataPlaneConfig::default()
    }
}

/// Fresh data plane metrics in a registry of their own.
pub fn metrics() -> Arc<DataPlaneMetrics> {
    Arc::new(DataPlaneMetrics::register(&prometheus::Registry::new()).unwrap())
}

/// Starts instance `id` of server `s`, running `script`, with `config`.
pub fn start_instance(id: &str, script: &str, config: &DataPlaneConfig) -> Arc<Instance> {
    Instance::start(
        id.to_owned(),
        Arc::new(sh_server("s", script, 1)),
        config,
        metrics(),
        Arc::new(Notify::new()),
    )
}

/// A node record of node `id`, at `n{id}:7400`.
pub fn put_node(id: NodeId) -> Command {
    Command::PutNode {
        node: NodeRecord {
            id,
            addr: format!("n{id}:7400"),
            tags: vec![],
            draining: false,
        },
    }
}

/// A registry changed by applying commands directly to its state machine.
pub struct TestRegistry {
    machine: RegistryStateMachine,
    next_index: u64,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    /// An empty registry in a temporary directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = mcp_storage::open_db(dir.path(), 1 << 20).unwrap();
        Self {
            machine: RegistryStateMachine::open(&db).unwrap(),
            next_index: 1,
            _dir: dir,
        }
    }

    /// Applies `commands` as committed entries; each must succeed.
    pub async fn apply(&mut self, commands: impl IntoIterator<Item = Command>) {
        let entries: Vec<Entry> = commands
            .into_iter()
            .map(|command| {
                let index = self.next_index;
                self.next_index += 1;
                Entry {
                    log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
                    payload: EntryPayload::Normal(command),
                }
            })
            .collect();
        for result in self.machine.apply(entries).await.unwrap() {
            result.unwrap();
        }
    }

    /// Applies `PutServer` of `spec` (created or replaced).
    pub async fn put_server(&mut self, spec: ServerSpec) {
        let command = Command::PutServer {
            spec,
            expected_revision: None,
        };
        self.apply([command]).await;
    }

    /// Applies a `Place` of `server`: each instance id to its node, and `unassign`.
    pub async fn place(&mut self, server: &str, assign: &[(&str, NodeId)], unassign: &[&str]) {
        self.apply([Command::Place {
            name: server.to_owned(),
            assign: assign
                .iter()
                .map(|(id, node)| ((*id).to_owned(), *node))
                .collect::<BTreeMap<_, _>>(),
            unassign: unassign.iter().map(|id| (*id).to_owned()).collect(),
        }])
        .await;
    }

    /// A read handle that sees every later change.
    pub fn reader(&self) -> RegistryReader {
        self.machine.reader()
    }
}

/// Peers for a data plane whose test never forwards: any forward fails the test.
pub struct NoPeers;

impl PeerForwarder for NoPeers {
    fn forward<'a>(
        &'a self,
        peer: NodeId,
        _addr: &'a str,
        server: &'a str,
        _request: &'a Value,
        _options: &'a ExecuteOptions,
    ) -> BoxFuture<'a, Result<Executed, ExecuteError>> {
        panic!("unexpected forward of {server} to node {peer}")
    }
}
