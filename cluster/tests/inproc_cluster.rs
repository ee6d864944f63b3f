//! Cluster behaviour seen through the client, on an in-process cluster (see
//! `common::inproc`): writes through any node, placement on scale, a node that stops
//! gracefully and catches up when it returns, and proposals of the program running a node.

mod common;

use std::collections::BTreeSet;

use common::inproc::{serve_spec, InProcCluster};
use common::support::wait_until;
use mcp_client::ClusterClient;
use mcp_cluster::proposer::Proposed;
use mcp_raft::{Command, NodeId};

/// The server names node `id` has applied (a stale read answered by that node alone).
async fn applied_on(cluster: &InProcCluster, id: NodeId) -> BTreeSet<String> {
    match cluster.client_of(id).list_servers(true).await {
        Ok(servers) => servers.into_iter().map(|s| s.name).collect(),
        Err(e) => panic!("stale read on node {id}: {e}"),
    }
}

async fn wait_applied_everywhere(cluster: &InProcCluster, name: &str) {
    for id in cluster.ids() {
        wait_until(&format!("node {id} to apply {name}"), || async move {
            applied_on(cluster, id).await.contains(name)
        })
        .await;
    }
}

/// The nodes each placed instance of `name` runs on, as the cluster lists them.
async fn running_hosts(client: &ClusterClient, name: &str) -> Vec<NodeId> {
    let servers = client.list_servers(false).await.expect("list servers");
    let Some(server) = servers.into_iter().find(|s| s.name == name) else {
        return Vec::new();
    };
    server
        .placements
        .iter()
        .filter(|p| p.state == "running")
        .map(|p| p.node_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_through_a_follower_is_read_on_every_node() {
    let cluster = InProcCluster::start(3).await;
    let follower = cluster.follower_of(cluster.wait_for_leader().await);

    let reply = cluster
        .client_of(follower)
        .deploy(&serve_spec("via-follower", 1))
        .await
        .expect("deploy through a follower");
    assert!(reply.revision > 0, "{reply:?}");

    // A linearizable read through any node sees a write that has returned.
    for id in cluster.ids() {
        let servers = cluster.client_of(id).list_servers(false).await;
        let names: Vec<String> = servers.expect("list").into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["via-follower"], "read on node {id}");
    }
    wait_applied_everywhere(&cluster, "via-follower").await;
    cluster.shutdown().await;
}

/// A client that wrote through a node and then reads from that node alone (the CLI with
/// one endpoint, a call right after a deploy) sees its write: the node answers the
/// forwarded write only once it has applied it itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_through_a_follower_is_applied_there_when_it_returns() {
    let cluster = InProcCluster::start(3).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.follower_of(leader);
    // One-shot, like the CLI: it stays on the node it was given instead of finding the
    // leader and writing there.
    let client = cluster.client_of(follower).one_shot();
    for i in 0..200 {
        let name = format!("seen-{i}");
        client.deploy(&serve_spec(&name, 0)).await.expect("deploy");
        assert!(
            applied_on(&cluster, follower).await.contains(&name),
            "node {follower} forwarded the deploy of {name} and answered it before applying it"
        );
    }
    cluster.shutdown().await;
}

/// A request that names its client's last write (`x-mcpd-min-index`) is answered by a
/// follower only once that follower has applied the write, even though the write went to
/// the leader: a client reads its own writes on every node.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_naming_a_write_waits_for_it_on_a_follower() {
    use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
    use mcp_proto::cluster::DeployRequest;
    use mcp_proto::cluster::ListServersRequest;

    let cluster = InProcCluster::start(3).await;
    let leader = cluster.wait_for_leader().await;
    let connect = |id| {
        let addr = format!("http://{}", cluster.addr(id));
        async move {
            ClusterServiceClient::connect(addr)
                .await
                .expect("connect to a node")
        }
    };
    let mut writer = connect(leader).await;
    let mut readers = Vec::new();
    for id in cluster.ids().into_iter().filter(|id| *id != leader) {
        readers.push((id, connect(id).await));
    }
    for i in 0..200 {
        let name = format!("mine-{i}");
        let reply = writer
            .deploy(DeployRequest {
                spec_json: serve_spec(&name, 0),
                expected_revision: None,
            })
            .await
            .expect("deploy on the leader");
        let index = reply
            .metadata()
            .get(mcp_proto::LOG_INDEX)
            .expect("a write's reply names its log index")
            .clone();
        assert_eq!(
            index.to_str().ok().and_then(|v| v.parse::<u64>().ok()),
            Some(reply.get_ref().log_index),
            "the header and the reply agree"
        );
        let (id, reader) = &mut readers[i % 2];
        let mut read = tonic::Request::new(ListServersRequest { stale: true });
        read.metadata_mut().insert(mcp_proto::MIN_INDEX, index);
        let servers = reader
            .list_servers(read)
            .await
            .expect("stale read")
            .into_inner();
        assert!(
            servers.servers.iter().any(|s| s.name == name),
            "node {id} answered a read naming the deploy of {name} before applying it"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scaling_up_places_one_running_instance_per_node_and_each_answers() {
    let cluster = InProcCluster::start(3).await;
    let client = cluster.client();
    client
        .deploy(&serve_spec("spread", 1))
        .await
        .expect("deploy");
    wait_until("one running instance", || async {
        running_hosts(&client, "spread").await.len() == 1
    })
    .await;

    client.scale("spread", 3).await.expect("scale to 3");
    wait_until("three instances running, one per node", || async {
        let hosts = running_hosts(&client, "spread").await;
        hosts.len() == 3 && hosts.iter().collect::<BTreeSet<_>>().len() == 3
    })
    .await;

    // Every node can serve a call, from its own instance.
    for id in cluster.ids() {
        let reply = cluster
            .client_of(id)
            .execute(
                "spread",
                r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#,
                None,
                false,
            )
            .await
            .unwrap_or_else(|e| panic!("execute through node {id}: {e}"));
        assert_eq!(reply.node_id, id, "node {id} ran it on its own instance");
        let response: serde_json::Value =
            serde_json::from_str(&reply.response_json).expect("a JSON-RPC response");
        assert_eq!(response["id"], 7, "the caller's id comes back: {response}");
    }

    client.scale("spread", 1).await.expect("scale to 1");
    wait_until("a single instance", || async {
        running_hosts(&client, "spread").await.len() == 1
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_stopped_gracefully_catches_up_when_it_restarts() {
    let mut cluster = InProcCluster::start(3).await;
    let leader = cluster.wait_for_leader().await;
    let stopped = cluster.follower_of(leader);
    let client = cluster.client_of(leader);
    client
        .deploy(&serve_spec("before", 1))
        .await
        .expect("deploy");
    wait_applied_everywhere(&cluster, "before").await;

    cluster.stop(stopped).await;
    // Two of three nodes still make a quorum: writes go on without the stopped node.
    client
        .deploy(&serve_spec("while-down", 1))
        .await
        .expect("deploy");
    client.undeploy("before").await.expect("undeploy");

    cluster.restart(stopped).await;
    let wanted = BTreeSet::from(["while-down".to_owned()]);
    wait_until("the restarted node to catch up", || async {
        applied_on(&cluster, stopped).await == wanted
    })
    .await;
    let status = cluster
        .client_of(stopped)
        .status_of_all()
        .await
        .into_iter()
        .find(|s| s.node_id == stopped)
        .expect("the restarted node answers");
    assert_eq!(status.role, "follower", "{status:?}");
    cluster.shutdown().await;
}

/// The value of `mcp_raft_proposals_total{outcome}` in node `id`'s exposition.
async fn proposals(cluster: &InProcCluster, id: NodeId, outcome: &str) -> f64 {
    let label = format!("outcome=\"{outcome}\"");
    let expositions = cluster.client_of(id).expositions().await;
    let exposition = expositions.first().expect("the node answers");
    exposition
        .lines()
        .filter(|line| line.starts_with("mcp_raft_proposals_total{") && line.contains(&label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_proposed_by_the_program_running_the_node_is_counted() {
    let cluster = InProcCluster::start(1).await;
    assert_eq!(proposals(&cluster, 1, "rejected").await, 0.0);
    // Only this proposal can be rejected: the node itself never deletes a missing server.
    let fate = cluster
        .node(1)
        .propose(Command::DeleteServer {
            name: "missing".to_owned(),
        })
        .await;
    assert!(
        matches!(fate, Proposed::Applied { result: Err(_), .. }),
        "{fate:?}"
    );
    assert_eq!(proposals(&cluster, 1, "rejected").await, 1.0);
    cluster.shutdown().await;
}
