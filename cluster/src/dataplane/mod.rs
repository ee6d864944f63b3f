//! The data plane: runs the MCP server instances placed on this node and executes
//! requests against them.
//!
//! Requests flow one way: [`router`] (which node, which attempt) -> [`pool`] (which
//! instance) -> [`instance`] (a supervised session) -> [`upstream`] (the transport).
//! [`reconciler`] starts and stops instances as the replicated registry changes. Nothing
//! here needs the Raft leader: it works from this node's last applied registry state.
//! The router reaches other nodes only through a [`PeerForwarder`]; what the data plane
//! measures is in [`metrics`], registered into the node's registry by whoever starts it.

pub mod breaker;
pub mod calls;
pub mod config;
pub mod containers;
pub mod error;
pub mod instance;
pub mod jsonrpc;
pub mod list_changes;
pub mod metrics;
pub mod on_demand;
pub mod peer_health;
pub mod placement;
pub mod pool;
pub mod reconciler;
pub mod reload;
pub mod router;
pub mod upstream;

use std::collections::BTreeSet;
use std::sync::Arc;

use mcp_proto::contract::InstanceState as WireState;
use mcp_raft::{NodeId, RegistryReader};
use tokio::sync::watch;

pub use config::DataPlaneConfig;
pub use error::ExecuteError;
pub use metrics::{DataPlaneMetrics, DataPlaneSnapshot};
pub use router::{ExecuteOptions, Executed, PeerForwarder};

use crate::guards::Guards;
use pool::InstancePool;

/// The data plane of one node.
pub struct DataPlane {
    node_id: NodeId,
    /// Swapped whole by [`DataPlane::reload`]; read through [`DataPlane::config`].
    config: reload::LiveConfig,
    registry: RegistryReader,
    pool: InstancePool,
    peers: Arc<dyn PeerForwarder>,
    /// Which peers to try last (those whose forwarded calls just failed).
    peer_health: peer_health::PeerHealth,
    metrics: Arc<DataPlaneMetrics>,
    stop: watch::Sender<bool>,
    /// Scale to zero: wakes, sleeps and cold starts (see [`on_demand`]).
    on_demand: on_demand::OnDemand,
    /// Where list changes heard by sessions are proposed from.
    list_changes: list_changes::ListChanges,
    list_change_sender: tokio::sync::mpsc::UnboundedSender<String>,
    /// Pins, secrets, limits and quotas (see [`crate::guards`]).
    guards: Arc<Guards>,
}

/// One local instance, as listed in status.
#[derive(Debug, Clone)]
pub struct InstanceStatus {
    /// Instance id.
    pub id: String,
    /// Server name.
    pub server: String,
    /// Lifecycle state.
    pub state: WireState,
    /// Circuit breaker state.
    pub breaker: breaker::BreakerState,
    /// Requests in flight.
    pub in_flight: usize,
    /// Restarts so far.
    pub restarts: u32,
    /// Negotiated protocol version, while connected.
    pub protocol_version: Option<String>,
}

impl DataPlane {
    /// Creates the data plane of `node_id` and starts reconciling instances; requests for
    /// servers hosted elsewhere go to `peers`.
    pub fn start(
        node_id: NodeId,
        config: DataPlaneConfig,
        registry: RegistryReader,
        peers: Arc<dyn PeerForwarder>,
        metrics: Arc<DataPlaneMetrics>,
    ) -> Arc<Self> {
        let guards = Arc::new(Guards::new(node_id, None, None));
        Self::start_with_guards(node_id, config, registry, peers, metrics, guards)
    }

    /// [`DataPlane::start`] with the node's `guards` (its secrets key, metrics and pin
    /// writer); also lists the tools of each instance that connects (see
    /// [`crate::guards::pinning::watch_instances`]).
    pub fn start_with_guards(
        node_id: NodeId,
        config: DataPlaneConfig,
        registry: RegistryReader,
        peers: Arc<dyn PeerForwarder>,
        metrics: Arc<DataPlaneMetrics>,
        guards: Arc<Guards>,
    ) -> Arc<Self> {
        let (stop, _) = watch::channel(false);
        let (list_change_sender, list_changes_heard) = tokio::sync::mpsc::unbounded_channel();
        let plane = Arc::new(Self {
            node_id,
            config: reload::LiveConfig::new(config),
            registry,
            pool: InstancePool::default(),
            peers,
            peer_health: peer_health::PeerHealth::default(),
            metrics,
            stop,
            on_demand: on_demand::OnDemand::default(),
            list_changes: list_changes::ListChanges::default(),
            list_change_sender,
            guards,
        });
        tokio::spawn(list_changes::run(
            Arc::downgrade(&plane),
            list_changes_heard,
        ));
        tokio::spawn(reconciler::run(Arc::clone(&plane)));
        tokio::spawn(containers::reap_orphans(Arc::clone(&plane)));
        tokio::spawn(on_demand::stop_idle(Arc::clone(&plane)));
        tokio::spawn(crate::guards::pinning::watch_instances(Arc::downgrade(
            &plane,
        )));
        plane
    }

    /// The guards this data plane applies.
    pub fn guards(&self) -> &Arc<Guards> {
        &self.guards
    }

    /// The registry this data plane reads.
    pub fn registry(&self) -> &RegistryReader {
        &self.registry
    }

    /// Every local instance's live session, with its server (for the pin watcher).
    pub(crate) fn connected_sessions(&self) -> Vec<(String, Arc<upstream::Session>)> {
        self.pool
            .all()
            .into_values()
            .filter_map(|i| i.usable_session().map(|s| (i.server.clone(), s)))
            .collect()
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Fewest and most sessions this node keeps per remote HTTP server.
    fn http_sessions(&self) -> (usize, usize) {
        let config = self.config();
        (config.initial_size, config.max_connections_per_server)
    }

    /// The local instances and their state.
    pub fn instances(&self) -> Vec<InstanceStatus> {
        self.pool
            .all()
            .into_values()
            .map(|i| InstanceStatus {
                id: i.id.clone(),
                server: i.server.clone(),
                state: i.state().wire(),
                breaker: i.breaker.state(),
                in_flight: i.in_flight(),
                restarts: i.restarts(),
                protocol_version: i.protocol_version(),
            })
            .collect()
    }

    /// What this data plane measures.
    pub fn metrics(&self) -> &Arc<DataPlaneMetrics> {
        &self.metrics
    }

    /// The registered servers and the local instances, for the instance gauges.
    pub fn snapshot(&self) -> DataPlaneSnapshot {
        let registered: BTreeSet<String> = self.registry.read(|state| {
            state
                .registry
                .servers()
                .map(|s| s.spec.name.clone())
                .collect()
        });
        DataPlaneSnapshot {
            registered,
            instances: self.instances(),
        }
    }

    /// Stops reconciling and stops every instance (their processes are gone on return).
    pub async fn shutdown(&self) {
        // Sticks even if the reconciler has not subscribed yet (a plane stopped at once).
        self.stop.send_replace(true);
        let instances: Vec<_> = self.pool.all().into_keys().collect();
        let stops = instances
            .iter()
            .filter_map(|id| self.pool.remove(id))
            .map(|instance| async move { instance.stop().await });
        futures::future::join_all(stops).await;
    }
}
