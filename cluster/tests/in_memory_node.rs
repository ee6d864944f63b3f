//! A node served in memory only (`NodeConfig::in_process`, as the Python package's embedded
//! manager runs it): it binds no socket and its advertised address names none, yet it must
//! see itself like any node sees its members: reachable, with its instances running.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::inproc::serve_spec;
use common::support::wait_until;
use mcp_client::{ClientSettings, ClusterClient};
use mcp_cluster::{ClusterNode, NodeConfig, RaftTuning};

/// What an in-memory node advertises (any name that is not a dialable address).
const ADDR: &str = "in-memory-test-node";

#[tokio::test(flavor = "multi_thread")]
async fn a_node_served_in_memory_reports_itself_reachable_and_its_instances_running() {
    let dir = tempfile::tempdir().expect("create a temp dir");
    let node = ClusterNode::start(NodeConfig {
        id: Some(1),
        listen_addr: Some(([127, 0, 0, 1], 0).into()),
        advertise_addr: Some(ADDR.to_owned()),
        in_process: true,
        initial_cluster: BTreeMap::from([(1, ADDR.to_owned())]),
        raft: RaftTuning {
            leader_election_timeout: Duration::from_millis(400),
            heartbeat_interval: Duration::from_millis(100),
            ..RaftTuning::default()
        },
        ..NodeConfig::new(dir.path().join("node"))
    })
    .await
    .expect("start an in-memory node");
    let channel = node.in_process_channel().expect("an in-memory channel");
    let client = ClusterClient::with_channels(
        ClientSettings {
            seeds: Vec::new(),
            admin_token: None,
            failover_window: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
        },
        vec![(ADDR.to_owned(), channel)],
    )
    .expect("a client of the in-memory node");

    client
        .deploy(&serve_spec("local", 1))
        .await
        .expect("deploy");
    // The placement's state comes from the node's report on itself: before the node
    // reached itself through memory, it dialed its own made-up address, failed, and
    // listed its own instance as unreachable.
    wait_until("the instance listed as running", || async {
        let servers = client.list_servers(false).await.expect("list servers");
        servers
            .iter()
            .flat_map(|s| &s.placements)
            .any(|p| p.node_id == 1 && p.state == "running")
    })
    .await;
    let members = client.members().await.expect("members").members;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0].addr, ADDR);
    assert_eq!(members[0].reachable, Some(true), "{members:?}");

    node.shutdown().await.expect("shut down");
}
