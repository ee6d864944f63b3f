//! The fleet as it runs right now: every member's own report of the instances it runs.
//!
//! The registry says where instances *should* run; only the nodes know what actually runs.
//! A report is gathered by asking each member for its status over gRPC, out of the Raft log,
//! so it works without quorum and costs nothing in the log. The leader's scheduler uses it
//! as the liveness heartbeat (and for load), and listings use it to show running replicas.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mcp_proto::cluster::{InstanceInfo, StatusRequest};
use mcp_proto::contract::InstanceState;
use mcp_raft::NodeId;

use crate::forward::PeerChannels;

/// What one member says about itself.
#[derive(Debug, Clone, Default)]
pub struct NodeReport {
    /// The instances it runs.
    pub instances: Vec<InstanceInfo>,
    /// The tags it was started with.
    pub tags: Vec<String>,
}

/// Each member's report, or `None` if it did not answer in time.
pub type FleetReport = BTreeMap<NodeId, Option<NodeReport>>;

/// One round of asking every member for its instances.
#[derive(Debug, Default)]
pub struct Probe {
    /// Each member's report, or `None` if it did not answer in time.
    pub report: FleetReport,
    /// Members whose probe failed at once (connection refused or reset, an error
    /// answer): down or restarting, unlike one that is merely slow to answer.
    pub unreachable: BTreeSet<NodeId>,
}

/// Asks every member in `members` (id, address) for its instances, concurrently, each
/// answer bounded by `timeout`.
pub async fn gather(
    members: &[(NodeId, String)],
    peers: &PeerChannels,
    timeout: Duration,
) -> FleetReport {
    probe(members, peers, timeout).await.report
}

/// How one member's probe ended.
enum Answer {
    Report(NodeReport),
    /// No answer in time, or no channel to ask on: proves nothing about the member.
    Silent,
    /// The call failed at once: refused or reset.
    Failed,
}

/// [`gather`], also telling which members failed at once.
pub async fn probe(members: &[(NodeId, String)], peers: &PeerChannels, timeout: Duration) -> Probe {
    let asks = members.iter().map(|(id, addr)| {
        let peers = peers.clone();
        let (id, addr) = (*id, addr.clone());
        async move {
            let Ok(mut client) = peers.cluster_client(&addr) else {
                return (id, Answer::Silent);
            };
            let reply = tokio::time::timeout(timeout, client.status(StatusRequest {})).await;
            match reply {
                Ok(Ok(reply)) => {
                    let reply = reply.into_inner();
                    let report = NodeReport {
                        instances: reply.instances,
                        tags: reply.node_tags,
                    };
                    (id, Answer::Report(report))
                }
                // Not only a refused connect: the first call on a connection to a
                // process killed a moment ago fails with a reset instead.
                Ok(Err(_)) => (id, Answer::Failed),
                Err(_) => (id, Answer::Silent),
            }
        }
    });
    let mut probe = Probe::default();
    for (id, answer) in futures::future::join_all(asks).await {
        let report = match answer {
            Answer::Report(report) => Some(report),
            Answer::Silent => None,
            Answer::Failed => {
                probe.unreachable.insert(id);
                None
            }
        };
        probe.report.insert(id, report);
    }
    probe
}

/// Requests in flight on each node that answered.
pub fn in_flight(report: &FleetReport) -> BTreeMap<NodeId, u64> {
    report
        .iter()
        .filter_map(|(id, report)| {
            let report = report.as_ref()?;
            Some((*id, report.instances.iter().map(|i| i.in_flight).sum()))
        })
        .collect()
}

/// The state of `instance` as `node` reported it: its state word (passed on as sent, so a
/// newer node's words survive), `not_running` if the node answered without it,
/// `unreachable` if the node did not answer.
pub fn instance_state(report: &FleetReport, node: NodeId, instance: &str) -> String {
    match report.get(&node) {
        Some(Some(report)) => report
            .instances
            .iter()
            .find(|i| i.id == instance)
            .map_or_else(
                || InstanceState::NotRunning.as_str().to_owned(),
                |i| i.state.clone(),
            ),
        _ => InstanceState::Unreachable.as_str().to_owned(),
    }
}
