//! The leader's scheduler: turns each scheduled server's desired replicas into placements
//! (instance id -> node), written through Raft (which servers are scheduled is
//! `ServerSpec::placement_mode`).
//!
//! It runs on every node but acts only on the leader. It watches node liveness out of the
//! Raft log (each second every member reports what it runs, see [`crate::fleet`]) and
//! declares a node dead after the grace period; a node that just became leader first gives every node one full
//! grace period, since it has no history of its own. Two sets come out of that: the nodes
//! not yet declared dead keep their placements (a node that misses a probe or two is not
//! worth a restart elsewhere), but a node whose probe in this very pass failed at once
//! (connection refused or reset: killed or restarting) receives no new instance, so a server
//! deployed just after a node died does not land on it. A node merely slow to answer
//! (loaded, paused) still does: placements are not rebalanced later, so leaving it out
//! would pile a new server's replicas on the others.
//! Plans are a pure function of the registry and those sets, so a new leader continues
//! exactly where the old one stopped: existing placements on live nodes are kept, nothing
//! is placed twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use mcp_raft::registry::{NodeRecord, ServerRecord};
use mcp_raft::types::Raft;
use mcp_raft::{Command, NodeId, RegistryReader};
use tokio::task::JoinHandle;

use crate::fleet;
use crate::forward::PeerChannels;
use crate::membership::MembershipView;
use crate::proposer::Proposer;

/// How often the leader probes members and re-plans.
const TICK: Duration = Duration::from_secs(1);
/// How long one liveness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// A placement change for one server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlacementChange {
    /// Instance id -> node, new or moved.
    pub assign: BTreeMap<String, NodeId>,
    /// Instance ids to drop.
    pub unassign: Vec<String>,
}

fn eligible(record: &ServerRecord, node: &NodeRecord) -> bool {
    let constraints = &record.spec.placement;
    (constraints.allowed_nodes.is_empty() || constraints.allowed_nodes.contains(&node.id))
        && constraints.node_tags.iter().all(|t| node.tags.contains(t))
}

/// What the leader knows of the nodes when it plans.
#[derive(Debug, Clone, Copy)]
pub struct Fleet<'a> {
    /// Members not declared dead (nor draining): their placements stay.
    pub live: &'a [NodeRecord],
    /// Members whose latest probe failed at once (refused, reset): given no new instance.
    pub unreachable: &'a BTreeSet<NodeId>,
    /// Requests running per node, from the same probe: breaks ties between nodes with as
    /// many instances.
    pub in_flight: &'a BTreeMap<NodeId, u64>,
}

/// The change that gives `record` its desired replicas on `fleet`, or `None` if its
/// placements are already right. `load` counts instances per node (all servers) and is
/// updated with the plan.
pub fn plan(
    record: &ServerRecord,
    fleet: Fleet<'_>,
    load: &mut BTreeMap<NodeId, usize>,
) -> Option<PlacementChange> {
    let name = &record.spec.name;
    let desired: BTreeSet<String> = (0..record.desired_instances())
        .map(|i| format!("{name}-{i}"))
        .collect();
    let candidates: Vec<&NodeRecord> = fleet.live.iter().filter(|n| eligible(record, n)).collect();
    let mut change = PlacementChange::default();
    let mut kept: BTreeMap<String, NodeId> = BTreeMap::new();
    for (instance, node) in &record.placements {
        let stays = desired.contains(instance) && candidates.iter().any(|n| n.id == *node);
        if stays {
            kept.insert(instance.clone(), *node);
        } else {
            change.unassign.push(instance.clone());
            if let Some(count) = load.get_mut(node) {
                *count = count.saturating_sub(1);
            }
        }
    }
    let missing: Vec<String> = desired
        .iter()
        .filter(|i| !kept.contains_key(*i))
        .cloned()
        .collect();
    for instance in missing {
        let same_server = |node: NodeId| kept.values().filter(|n| **n == node).count();
        let best = candidates
            .iter()
            .filter(|n| !fleet.unreachable.contains(&n.id))
            .min_by_key(|n| {
                (
                    same_server(n.id),
                    load.get(&n.id).copied().unwrap_or(0),
                    fleet.in_flight.get(&n.id).copied().unwrap_or(0),
                    n.id,
                )
            });
        let Some(best) = best else {
            break; // no eligible node reachable: the instance stays unplaced for now
        };
        kept.insert(instance.clone(), best.id);
        change.assign.insert(instance, best.id);
        *load.entry(best.id).or_default() += 1;
    }
    // An instance both dropped (dead node) and re-assigned is a move: keep only `assign`.
    change.unassign.retain(|i| !change.assign.contains_key(i));
    (!change.assign.is_empty() || !change.unassign.is_empty()).then_some(change)
}

/// Starts the scheduler loop of this node.
pub fn spawn(
    id: NodeId,
    raft: Raft,
    proposer: Proposer,
    registry: RegistryReader,
    peers: PeerChannels,
    grace: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_seen: HashMap<NodeId, Instant> = HashMap::new();
        let mut was_leader = false;
        let mut changes = registry.subscribe();
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = changes.changed() => if changed.is_err() { return },
            }
            let view = MembershipView::of(&raft);
            if !view.leading {
                was_leader = false;
                continue;
            }
            let now = Instant::now();
            if !was_leader {
                // No history yet: everyone gets a full grace period.
                last_seen = view.nodes.keys().map(|n| (*n, now)).collect();
                was_leader = true;
                tracing::info!(node = id, "leader: scheduling placements");
            }
            // The heartbeat: each member's report of what it runs. Answering is being alive.
            let members = view.members();
            let fleet::Probe {
                report,
                mut unreachable,
            } = fleet::probe(&members, &peers, PROBE_TIMEOUT).await;
            unreachable.remove(&id);
            last_seen.insert(id, now);
            for (node, answer) in &report {
                if answer.is_some() {
                    last_seen.insert(*node, Instant::now());
                }
            }
            let in_flight = fleet::in_flight(&report);
            for command in tag_commands(&registry, &report) {
                let proposed = proposer.propose(command).await;
                if !proposed.is_applied() {
                    tracing::debug!(?proposed, "node tag update deferred");
                }
            }
            let live: BTreeSet<NodeId> = view
                .nodes
                .keys()
                .copied()
                .filter(|n| last_seen.get(n).is_some_and(|t| t.elapsed() <= grace))
                .collect();
            for command in placement_commands(&registry, &live, &unreachable, &in_flight) {
                let proposed = proposer.propose(command).await;
                if !proposed.is_applied() {
                    tracing::debug!(?proposed, "placement deferred");
                    break;
                }
            }
        }
    })
}

/// The commands that copy the tags each node announces into its registry record.
fn tag_commands(registry: &RegistryReader, report: &fleet::FleetReport) -> Vec<Command> {
    registry.read(|state| {
        state
            .registry
            .nodes()
            .filter_map(|node| {
                let announced = report.get(&node.id)?.as_ref()?;
                (announced.tags != node.tags).then(|| {
                    tracing::info!(node = node.id, tags = ?announced.tags, "node tags changed");
                    Command::SetNodeTags {
                        id: node.id,
                        tags: announced.tags.clone(),
                    }
                })
            })
            .collect()
    })
}

/// The `Place` commands that bring the registry's placements in line with `live` nodes,
/// new instances going to those not `unreachable`.
fn placement_commands(
    registry: &RegistryReader,
    live: &BTreeSet<NodeId>,
    unreachable: &BTreeSet<NodeId>,
    in_flight: &BTreeMap<NodeId, u64>,
) -> Vec<Command> {
    registry.read(|state| {
        let live_nodes: Vec<NodeRecord> = state
            .registry
            .nodes()
            .filter(|n| live.contains(&n.id) && !n.draining)
            .cloned()
            .collect();
        let mut load: BTreeMap<NodeId, usize> = live_nodes.iter().map(|n| (n.id, 0)).collect();
        for record in state.registry.servers() {
            for node in record.placements.values() {
                if let Some(count) = load.get_mut(node) {
                    *count += 1;
                }
            }
        }
        let fleet = Fleet {
            live: &live_nodes,
            unreachable,
            in_flight,
        };
        state
            .registry
            .servers()
            .filter(|r| r.spec.is_scheduled())
            .filter_map(|record| {
                let change = plan(record, fleet, &mut load)?;
                tracing::info!(
                    server = %record.spec.name,
                    assign = ?change.assign,
                    unassign = ?change.unassign,
                    "placing instances"
                );
                Some(Command::Place {
                    name: record.spec.name.clone(),
                    assign: change.assign,
                    unassign: change.unassign,
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_raft::registry::spec;

    fn record(replicas: u32, placements: &[(&str, NodeId)]) -> ServerRecord {
        let spec = spec::parse_json(&format!(
            r#"{{"name": "s", "command": "x", "replicas": {replicas}}}"#
        ))
        .unwrap();
        ServerRecord {
            spec,
            create_revision: 1,
            mod_revision: 1,
            placements: placements
                .iter()
                .map(|(i, n)| ((*i).to_owned(), *n))
                .collect(),
            awake: false,
        }
    }

    fn nodes(ids: &[NodeId]) -> Vec<NodeRecord> {
        ids.iter()
            .map(|id| NodeRecord {
                id: *id,
                addr: format!("n{id}:1"),
                tags: vec![],
                draining: false,
            })
            .collect()
    }

    /// Plans `record` on `live` nodes of which `unreachable` failed the probe at once,
    /// none busy.
    fn plan_on(
        record: &ServerRecord,
        live: &[NodeId],
        unreachable: &[NodeId],
        load: &mut BTreeMap<NodeId, usize>,
    ) -> Option<PlacementChange> {
        let unreachable: BTreeSet<NodeId> = unreachable.iter().copied().collect();
        let fleet = Fleet {
            live: &nodes(live),
            unreachable: &unreachable,
            in_flight: &BTreeMap::new(),
        };
        plan(record, fleet, load)
    }

    #[test]
    fn spreads_replicas_over_distinct_nodes() {
        let change = plan_on(&record(3, &[]), &[1, 2, 3], &[], &mut BTreeMap::new()).unwrap();
        let used: BTreeSet<NodeId> = change.assign.values().copied().collect();
        assert_eq!(used, BTreeSet::from([1, 2, 3]));
    }

    #[test]
    fn keeps_live_placements_and_moves_dead_ones() {
        let current = record(3, &[("s-0", 1), ("s-1", 2), ("s-2", 3)]);
        assert_eq!(
            plan_on(&current, &[1, 2, 3], &[], &mut BTreeMap::new()),
            None
        );
        let change = plan_on(&current, &[1, 2], &[], &mut BTreeMap::new()).unwrap();
        assert_eq!(change.assign.len(), 1);
        assert!(change.assign.contains_key("s-2"));
        assert!(change.unassign.is_empty());
    }

    #[test]
    fn an_unreachable_node_keeps_its_instances_but_gets_no_new_one() {
        // Node 3 is within its grace period (live) but refused the latest probe: it may
        // have just died, so the new replica goes elsewhere, even though node 3 runs the
        // fewest instances.
        let mut load = BTreeMap::from([(1, 5), (2, 5), (3, 0)]);
        let current = record(2, &[("s-0", 3)]);
        let change = plan_on(&current, &[1, 2, 3], &[3], &mut load).unwrap();
        assert!(change.unassign.is_empty(), "{change:?}");
        assert_eq!(change.assign.len(), 1, "{change:?}");
        assert_ne!(change.assign["s-1"], 3, "{change:?}");
        // Only that node may run it: the instance waits unplaced.
        let mut r = record(1, &[]);
        r.spec.placement.allowed_nodes = vec![3];
        assert_eq!(plan_on(&r, &[1, 2, 3], &[3], &mut BTreeMap::new()), None);
    }

    #[test]
    fn scaling_down_drops_the_highest_instances() {
        let current = record(1, &[("s-0", 1), ("s-1", 2), ("s-2", 3)]);
        let change = plan_on(&current, &[1, 2, 3], &[], &mut BTreeMap::new()).unwrap();
        assert!(change.assign.is_empty());
        assert_eq!(change.unassign, vec!["s-1".to_owned(), "s-2".to_owned()]);
    }

    #[test]
    fn honours_allowed_nodes() {
        let mut r = record(2, &[]);
        r.spec.placement.allowed_nodes = vec![3];
        let change = plan_on(&r, &[1, 2, 3], &[], &mut BTreeMap::new()).unwrap();
        assert!(change.assign.values().all(|n| *n == 3));
    }

    #[test]
    fn ties_go_to_the_node_with_fewer_requests_in_flight() {
        let busy = BTreeMap::from([(1, 40), (2, 3), (3, 25)]);
        let fleet = Fleet {
            live: &nodes(&[1, 2, 3]),
            unreachable: &BTreeSet::new(),
            in_flight: &busy,
        };
        let change = plan(&record(1, &[]), fleet, &mut BTreeMap::new()).unwrap();
        assert_eq!(change.assign.values().copied().collect::<Vec<_>>(), vec![2]);
    }
}
