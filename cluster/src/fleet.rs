//! The fleet as it runs right now: every member's own report of the instances it runs.
//!
//! The registry says where instances *should* run; only the nodes know what actually runs.
//! A report is gathered by asking each member for its status over gRPC, out of the Raft log,
//! so it works without quorum and costs nothing in the log. The leader's scheduler uses it
//! as the liveness heartbeat (and for load), and listings use it to show running replicas.

use std::collections::BTreeMap;
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

/// Asks every member in `members` (id, address) for its instances, concurrently, each
/// answer bounded by `timeout`.
pub async fn gather(
    members: &[(NodeId, String)],
    peers: &PeerChannels,
    timeout: Duration,
) -> FleetReport {
    let asks = members.iter().map(|(id, addr)| {
        let peers = peers.clone();
        let (id, addr) = (*id, addr.clone());
        async move {
            let Ok(mut client) = peers.cluster_client(&addr) else {
                return (id, None);
            };
            let reply = tokio::time::timeout(timeout, client.status(StatusRequest {})).await;
            match reply {
                Ok(Ok(reply)) => {
                    let reply = reply.into_inner();
                    let report = NodeReport {
                        instances: reply.instances,
                        tags: reply.node_tags,
                    };
                    (id, Some(report))
                }
                _ => (id, None),
            }
        }
    });
    futures::future::join_all(asks).await.into_iter().collect()
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
