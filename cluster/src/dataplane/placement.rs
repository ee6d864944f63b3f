//! Where each instance runs, as every node computes it from the replicated registry.
//!
//! Placements written to the registry (by the leader's scheduler) win. A server without
//! any gets the default rule: instance `i` of a stdio server runs on the `i`-th node of the
//! registry's node list (in id order, wrapping around), so replicas spread over distinct
//! nodes and every node reaches the same answer without talking to the others. Remote HTTP
//! servers run everywhere: each node keeps its own sessions to them.

use std::collections::BTreeMap;

use mcp_raft::registry::spec::Transport;
use mcp_raft::registry::{Registry, ServerRecord};
use mcp_raft::NodeId;

/// Instance id -> node, for one stdio server.
pub fn stdio_placement(record: &ServerRecord, nodes: &[NodeId]) -> BTreeMap<String, NodeId> {
    if !record.placements.is_empty() {
        return record.placements.clone();
    }
    if nodes.is_empty() {
        return BTreeMap::new();
    }
    (0..record.spec.replicas as usize)
        .map(|i| (format!("{}-{i}", record.spec.name), nodes[i % nodes.len()]))
        .collect()
}

/// The registry's node ids in order.
pub fn node_ids(registry: &Registry) -> Vec<NodeId> {
    registry.nodes().map(|n| n.id).collect()
}

/// True for servers every node connects to itself (remote HTTP endpoints).
pub fn runs_everywhere(record: &ServerRecord) -> bool {
    matches!(record.spec.transport, Transport::Http { .. })
}

/// The instances `node` must run: instance id -> server name. `http_sessions` bounds the
/// sessions per remote HTTP server (fewest, most).
pub fn local_instances(
    registry: &Registry,
    node: NodeId,
    http_sessions: (usize, usize),
) -> BTreeMap<String, String> {
    let (min_sessions, max_sessions) = http_sessions;
    let nodes = node_ids(registry);
    let mut wanted = BTreeMap::new();
    for record in registry.servers() {
        let name = &record.spec.name;
        if runs_everywhere(record) {
            if record.spec.replicas == 0 {
                continue;
            }
            let sessions = (record.spec.replicas as usize)
                .max(min_sessions)
                .clamp(1, max_sessions.max(1));
            for i in 0..sessions {
                wanted.insert(format!("{name}-{i}@{node}"), name.clone());
            }
        } else {
            for (instance, host) in stdio_placement(record, &nodes) {
                if host == node {
                    wanted.insert(instance, name.clone());
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
    let mut hosts: Vec<NodeId> = stdio_placement(record, &node_ids(registry))
        .into_values()
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    hosts
}
