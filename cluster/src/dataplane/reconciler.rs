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
            // Reloaded settings may change how many sessions a remote server gets.
            () = plane.config.reloaded() => {}
            _ = stop.changed() => return,
        }
    }
}

fn reconcile(plane: &DataPlane) {
    let wanted: BTreeMap<String, Arc<ServerSpec>> = plane.registry.read(|state| {
        placement::local_instances(&state.registry, plane.node_id, plane.http_sessions())
            .into_iter()
            .filter_map(|(instance, server)| {
                let spec = &state.registry.server(&server)?.spec;
                // `${secret:NAME}` references are filled here, on the node that starts
                // the instance, and only in memory: the resolved spec is what the instance
                // runs (a changed secret value is a changed spec, so it restarts).
                let keyring = plane.guards.keyring();
                match crate::guards::secrets::resolve(spec, state.registry.secrets(), keyring) {
                    Ok(resolved) => Some((instance, Arc::new(resolved))),
                    Err(e) => {
                        tracing::warn!(instance = %instance, server = %server, error = %e, "instance not started: its secrets cannot be opened here");
                        None
                    }
                }
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
                let drain = plane.config().request_timeout;
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
            let mut config = (*plane.config()).clone();
            config.list_changes = Some(plane.list_change_sender.clone());
            plane.pool.insert(Instance::start(
                id,
                spec,
                &config,
                Arc::clone(&plane.metrics),
                Arc::clone(plane.pool.changes()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use mcp_raft::Command;

    use super::*;
    use crate::dataplane::instance::InstanceState;
    use crate::testing::{
        eventually, metrics, put_node, quick_config, sh_server, NoPeers, TestRegistry, SERVE,
    };

    /// The data plane of node 1 on `registry`.
    fn plane_of_node_1(registry: &TestRegistry) -> Arc<DataPlane> {
        DataPlane::start(
            1,
            quick_config(),
            registry.reader(),
            Arc::new(NoPeers),
            metrics(),
        )
    }

    /// The ids of the node's running instances, as status lists them.
    fn running(plane: &DataPlane) -> Vec<String> {
        plane
            .instances()
            .into_iter()
            .filter(|i| i.state == mcp_proto::contract::InstanceState::Running)
            .map(|i| i.id)
            .collect()
    }

    async fn wait_for_running(plane: &DataPlane, ids: &[&str]) {
        let what = format!("exactly {ids:?} running");
        eventually(&what, || {
            running(plane) == ids && plane.instances().len() == ids.len()
        })
        .await;
    }

    #[tokio::test]
    async fn instances_follow_placements_onto_and_off_this_node() {
        let mut registry = TestRegistry::new();
        registry.apply([put_node(1), put_node(2)]).await;
        registry.put_server(sh_server("s", SERVE, 2)).await;
        registry.place("s", &[("s-0", 1), ("s-1", 2)], &[]).await;
        let plane = plane_of_node_1(&registry);
        wait_for_running(&plane, &["s-0"]).await;

        registry.place("s", &[("s-1", 1)], &[]).await;
        wait_for_running(&plane, &["s-0", "s-1"]).await;

        let moved = plane.pool.all().remove("s-0").expect("s-0 runs here");
        registry.place("s", &[("s-0", 2)], &[]).await;
        wait_for_running(&plane, &["s-1"]).await;
        eventually("the moved instance to stop", || {
            moved.state() == InstanceState::Stopped
        })
        .await;

        let left = plane.pool.all().remove("s-1").expect("s-1 runs here");
        registry
            .apply([Command::DeleteServer { name: "s".into() }])
            .await;
        wait_for_running(&plane, &[]).await;
        eventually("the undeployed instance to stop", || {
            left.state() == InstanceState::Stopped
        })
        .await;
        plane.shutdown().await;
    }

    #[tokio::test]
    async fn a_changed_spec_replaces_the_instance() {
        let mut registry = TestRegistry::new();
        registry.apply([put_node(1)]).await;
        registry.put_server(sh_server("s", SERVE, 1)).await;
        registry.place("s", &[("s-0", 1)], &[]).await;
        let plane = plane_of_node_1(&registry);
        wait_for_running(&plane, &["s-0"]).await;
        let old = plane.pool.all().remove("s-0").expect("s-0 runs here");

        let changed = sh_server("s", &format!("{SERVE} # v2"), 1);
        registry.put_server(changed.clone()).await;
        eventually("a new instance with the changed spec", || {
            plane
                .pool
                .all()
                .get("s-0")
                .is_some_and(|i| *i.spec == changed && i.state() == InstanceState::Running)
        })
        .await;
        eventually("the old instance to stop", || {
            old.state() == InstanceState::Stopped
        })
        .await;
        assert_eq!(running(&plane), vec!["s-0"]);
        plane.shutdown().await;
    }

    #[tokio::test]
    async fn an_instance_taken_away_finishes_its_requests_before_it_stops() {
        let mut registry = TestRegistry::new();
        registry.apply([put_node(1), put_node(2)]).await;
        registry.put_server(sh_server("s", SERVE, 1)).await;
        registry.place("s", &[("s-0", 1)], &[]).await;
        let plane = plane_of_node_1(&registry);
        wait_for_running(&plane, &["s-0"]).await;
        let instance = plane.pool.all().remove("s-0").expect("s-0 runs here");
        let request = instance.try_begin(8).expect("a free slot");

        registry.place("s", &[("s-0", 2)], &[]).await;
        eventually("s-0 out of rotation", || plane.pool.all().is_empty()).await;
        assert_eq!(
            instance.state(),
            InstanceState::Running,
            "stopped with a request in flight"
        );
        drop(request);
        eventually("the drained instance to stop", || {
            instance.state() == InstanceState::Stopped
        })
        .await;
        plane.shutdown().await;
    }
}
