//! Starts and stops local instances so that they match the registry.
//!
//! Runs on every applied registry change: instances that this node should run and does not
//! are started; instances it runs but should not (undeployed, scaled down, moved, or whose
//! spec changed) are taken out of rotation, drained of requests in flight, and stopped.

use std::collections::BTreeMap;
use std::sync::Arc;

use mcp_raft::registry::spec::ServerSpec;

use super::instance::Instance;
use super::{placement, DataPlane};

/// The reconcile loop of `plane`; ends when the data plane stops or the registry goes away.
pub async fn run(plane: Arc<DataPlane>) {
    let mut changes = plane.registry.subscribe();
    let mut stop = plane.stop.subscribe();
    loop {
        reconcile(&plane);
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

fn reconcile(plane: &DataPlane) {
    let wanted: BTreeMap<String, Arc<ServerSpec>> = plane.registry.read(|state| {
        placement::local_instances(&state.registry, plane.node_id, plane.http_sessions())
            .into_iter()
            .filter_map(|(instance, server)| {
                let spec = state.registry.server(&server)?.spec.clone();
                Some((instance, Arc::new(spec)))
            })
            .collect()
    });
    let running = plane.pool.all();
    for (id, instance) in &running {
        let keep = wanted.get(id).is_some_and(|spec| **spec == *instance.spec);
        if !keep {
            if let Some(instance) = plane.pool.remove(id) {
                // Out of rotation already; let requests in flight finish (up to the request
                // timeout) before the session goes.
                let drain = plane.config.request_timeout;
                tracing::info!(instance = %id, "draining and stopping instance");
                tokio::spawn(async move {
                    let deadline = tokio::time::Instant::now() + drain;
                    while instance.in_flight() > 0 && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    instance.stop().await
                });
            }
        }
    }
    for (id, spec) in wanted {
        let current = running.get(&id).filter(|i| *i.spec == *spec);
        if current.is_none() {
            tracing::info!(instance = %id, server = %spec.name, "starting instance");
            plane.pool.insert(Instance::start(
                id,
                spec,
                &plane.config,
                Arc::clone(&plane.metrics),
                Arc::clone(plane.pool.changes()),
            ));
        }
    }
}
