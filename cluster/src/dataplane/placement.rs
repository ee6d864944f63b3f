//! Where each instance runs, as every node reads it from the replicated registry.
//!
//! Stdio instances run where the leader's scheduler placed them (`ServerRecord::placements`),
//! and nowhere until it has: a server deployed while no leader can place it waits, rather
//! than starting on nodes that its placement constraints may exclude. Remote HTTP servers
//! run everywhere: each node keeps its own sessions to them.

use std::collections::BTreeMap;

use mcp_raft::registry::{PlacementMode, Registry, ServerRecord};
use mcp_raft::NodeId;

/// True for servers every node connects to itself (the rule is
/// `ServerSpec::placement_mode`).
pub fn runs_everywhere(record: &ServerRecord) -> bool {
    record.spec.placement_mode() == PlacementMode::Everywhere
}

/// The instances `node` must run: instance id -> server name. `http_sessions` bounds the
/// sessions per remote HTTP server (fewest, most).
pub fn local_instances(
    registry: &Registry,
    node: NodeId,
    http_sessions: (usize, usize),
) -> BTreeMap<String, String> {
    let (min_sessions, max_sessions) = http_sessions;
    let mut wanted = BTreeMap::new();
    for record in registry.servers() {
        let name = &record.spec.name;
        if runs_everywhere(record) {
            // An on-demand server that a call woke has sessions while it is awake.
            let replicas = record.desired_instances();
            if replicas == 0 {
                continue;
            }
            let sessions = (replicas as usize)
                .max(min_sessions)
                .clamp(1, max_sessions.max(1));
            for i in 0..sessions {
                wanted.insert(format!("{name}-{i}@{node}"), name.clone());
            }
        } else {
            for (instance, host) in &record.placements {
                if *host == node {
                    wanted.insert(instance.clone(), name.clone());
                }
            }
        }
    }
    wanted
}

/// The nodes that host an instance of `server` (empty for unknown servers).
pub fn hosts(registry: &Registry, server: &str) -> Vec<NodeId> {
    let Some(record) = registry.server(server) else {
        return Vec::new();
    };
    let mut hosts: Vec<NodeId> = record.placements.values().copied().collect();
    hosts.sort_unstable();
    hosts.dedup();
    hosts
}
