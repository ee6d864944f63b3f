//! Orphaned containers: this node removes the containers of its scope that no instance of
//! this process owns, once at start (after a crash of the node, that is all of them) and
//! then periodically (a container whose removal failed). The mechanics are in
//! [`super::upstream::docker`].

use std::sync::Arc;
use std::time::Duration;

use mcp_raft::registry::spec::Transport;

use super::upstream::docker;
use super::DataPlane;

/// Time between reaps after the first.
const REAP_EVERY: Duration = Duration::from_secs(30);

/// Reaps now, then every [`REAP_EVERY`] while the registry holds a docker server; ends
/// when the data plane stops.
pub async fn reap_orphans(plane: Arc<DataPlane>) {
    let mut stop = plane.stop.subscribe();
    let mut first = true;
    loop {
        if *stop.borrow() {
            return;
        }
        if first || has_docker_servers(&plane) {
            match docker::reap(&plane.config().containers).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed orphaned containers"),
                // No engine is no failure of the node: docker instances report it themselves.
                Err(e) if first => tracing::debug!(error = %e, "no orphaned containers reaped"),
                Err(e) => tracing::warn!(error = %e, "cannot reap orphaned containers"),
            }
            first = false;
        }
        tokio::select! {
            () = tokio::time::sleep(REAP_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

fn has_docker_servers(plane: &DataPlane) -> bool {
    plane.registry.read(|state| {
        state
            .registry
            .servers()
            .any(|s| matches!(s.spec.transport, Transport::Docker(_)))
    })
}
