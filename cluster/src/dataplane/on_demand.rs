//! Scale to zero on the data plane: a call to a sleeping on-demand server wakes it (a
//! `SetAwake` through the leader, whose scheduler then places one instance like any
//! other) and waits for it; a node whose on-demand instance sat idle for the server's
//! `idle_timeout_secs` puts the server back to sleep, and the instance is drained and
//! stopped like any unplaced one. Cold starts are counted and timed from the wake to the
//! first call served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use mcp_raft::registry::spec::DEFAULT_IDLE_TIMEOUT_SECS;

use super::DataPlane;

/// How often a node looks for idle on-demand instances.
const IDLE_CHECK: Duration = Duration::from_millis(500);
/// A node proposes the same wake or sleep again only after this long.
const REPROPOSE_AFTER: Duration = Duration::from_secs(2);

/// Records a server's wake state in the registry (through the leader).
pub trait DemandWriter: Send + Sync {
    /// Proposes `SetAwake { name: server, awake }` and waits for it to apply.
    fn set_awake(&self, server: String, awake: bool) -> BoxFuture<'static, Result<(), String>>;
}

/// This node's scale-to-zero state.
#[derive(Default)]
pub struct OnDemand {
    writer: OnceLock<Arc<dyn DemandWriter>>,
    /// Servers this node woke and has not served a call of yet: when it woke them.
    waking: Mutex<HashMap<String, Instant>>,
    /// Last sleep proposal per server, so an idle instance is not reported every tick.
    sleeping: Mutex<HashMap<String, Instant>>,
}

impl OnDemand {
    /// Sets where wake and sleep proposals go (once; later calls are ignored).
    pub fn set_writer(&self, writer: Arc<dyn DemandWriter>) {
        let _ = self.writer.set(writer);
    }
}

impl DataPlane {
    /// Sets where this node proposes wakes and sleeps of on-demand servers.
    pub fn set_demand_writer(&self, writer: Arc<dyn DemandWriter>) {
        self.on_demand.set_writer(writer);
    }

    /// Wakes `server` if it is an on-demand server asleep; true if it was (the caller then
    /// waits for the instance the leader places).
    pub(super) async fn wake_if_sleeping(&self, server: &str) -> bool {
        let sleeping = self.registry.read(|state| {
            state
                .registry
                .server(server)
                .is_some_and(|record| record.sleeping())
        });
        if !sleeping {
            return false;
        }
        let Some(writer) = self.on_demand.writer.get().cloned() else {
            tracing::warn!(
                server,
                "cannot wake an on-demand server: this node has no writer"
            );
            return false;
        };
        {
            let mut waking = self
                .on_demand
                .waking
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(since) = waking.get(server) {
                if since.elapsed() < REPROPOSE_AFTER {
                    // Another call of this node woke it a moment ago.
                    return true;
                }
            }
            waking.insert(server.to_owned(), Instant::now());
        }
        tracing::info!(server, "waking on-demand server");
        match writer.set_awake(server.to_owned(), true).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(server, error = %e, "could not wake on-demand server");
                self.on_demand
                    .waking
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(server);
                false
            }
        }
    }

    /// True while a cold start of `server` that this node began is still within the
    /// connection timeout and not yet served.
    pub(super) fn cold_start_pending(&self, server: &str) -> bool {
        self.on_demand
            .waking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(server)
            .is_some_and(|since| since.elapsed() < self.config().connect_timeout)
    }

    /// Called when a call of `server` was served: a cold start this node began ends here.
    pub(super) fn served(&self, server: &str) {
        let began = {
            let mut waking = self
                .on_demand
                .waking
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if waking.is_empty() {
                return;
            }
            waking.remove(server)
        };
        if let Some(began) = began {
            let took = began.elapsed();
            tracing::info!(server, ms = took.as_millis() as u64, "cold start served");
            self.metrics.observe_cold_start(server, took.as_secs_f64());
        }
    }
}

/// Puts on-demand servers to sleep whose local instances sat idle long enough; ends when
/// the data plane stops.
pub async fn stop_idle(plane: Arc<DataPlane>) {
    let mut stop = plane.stop.subscribe();
    let mut tick = tokio::time::interval(IDLE_CHECK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        for server in idle_servers(&plane) {
            let Some(writer) = plane.on_demand.writer.get().cloned() else {
                break;
            };
            {
                let mut sleeping = plane
                    .on_demand
                    .sleeping
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if sleeping
                    .get(&server)
                    .is_some_and(|at| at.elapsed() < REPROPOSE_AFTER)
                {
                    continue;
                }
                sleeping.insert(server.clone(), Instant::now());
            }
            tracing::info!(server = %server, "on-demand server idle: stopping its instance");
            if let Err(e) = writer.set_awake(server.clone(), false).await {
                tracing::warn!(server = %server, error = %e, "could not put on-demand server to sleep");
            }
        }
    }
}

/// Awake on-demand servers (without replicas of their own) whose every local instance
/// has had no request in flight for the server's idle timeout.
fn idle_servers(plane: &DataPlane) -> Vec<String> {
    let awake: Vec<(String, Duration)> = plane.registry.read(|state| {
        state
            .registry
            .servers()
            .filter(|r| r.spec.on_demand && r.awake && r.spec.replicas == 0)
            .map(|r| {
                let secs = r
                    .spec
                    .idle_timeout_secs
                    .unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS);
                (r.spec.name.clone(), Duration::from_secs(secs))
            })
            .collect()
    });
    awake
        .into_iter()
        .filter(|(server, timeout)| {
            let instances = plane.pool.instances(server);
            !instances.is_empty()
                && instances
                    .iter()
                    .all(|i| i.in_flight() == 0 && i.idle_for() >= *timeout)
        })
        .map(|(server, _)| server)
        .collect()
}
