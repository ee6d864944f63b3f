//! Authorization end to end, on real nodes with an admin token: tool calls, writes, reads
//! and Raft RPCs need a credential (only `status` is open), and a node that passes a tool
//! call to the peer running the server authorizes itself with the cluster's token.

mod common;

use common::{text_of, wait_for, ClusterOptions, TestCluster};
use mcp_proto::raft::raft_service_client::RaftServiceClient;
use mcp_proto::raft::RaftPayload;
use serde_json::json;
use std::time::Duration;

const TOKEN: &str = "t0ken-for-authorization";

fn test_server() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-test-server")
}

/// Asserts a CLI command failed as unauthorized.
fn assert_unauthorized(out: &std::process::Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} succeeded without the token");
    assert!(stderr.contains("[unauthorized]"), "{what}: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_guards_tool_calls_writes_reads_and_raft() {
    let cluster = TestCluster::start(
        2,
        ClusterOptions {
            admin_token: Some(TOKEN.to_owned()),
            ..ClusterOptions::default()
        },
    );
    cluster.wait_leader();
    let spec = json!({"name": "echo", "command": test_server(), "replicas": 1});
    cluster.deploy_json(1, &spec);
    cluster.call_eventually(1, "echo", "echo", &json!({"text": "warm"}));

    // The node that does not run the instance must pass calls to the one that does.
    let host = wait_for("one running instance", Duration::from_secs(30), || {
        let running = cluster.running_per_node("echo");
        let hosts: Vec<u64> = running
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(id, _)| *id)
            .collect();
        (hosts.len() == 1).then(|| hosts[0])
    });
    let other = if host == 1 { 2 } else { 1 };

    for id in [host, other] {
        let args = json!({"text": format!("via {id}")});
        for bad in [None, Some("wrong")] {
            let call =
                cluster.cli_with_token(id, bad, &["call", "echo", "echo", &args.to_string()]);
            assert_unauthorized(&call, &format!("call on node {id} with {bad:?}"));
            let exec =
                cluster.cli_with_token(id, bad, &["exec", "echo", r#"{"method": "tools/list"}"#]);
            assert_unauthorized(&exec, &format!("exec on node {id} with {bad:?}"));
            for write in [
                vec!["scale", "echo", "2"],
                vec!["undeploy", "echo"],
                vec!["members", "remove", "2"],
            ] {
                let out = cluster.cli_with_token(id, bad, &write);
                assert_unauthorized(&out, &format!("{write:?} on node {id} with {bad:?}"));
            }
        }
        // With the token the call works, also through the node without an instance.
        let reply = cluster
            .call(id, "echo", "echo", &args)
            .unwrap_or_else(|e| panic!("call on node {id} with the token: {e}"));
        assert_eq!(text_of(&reply), format!("via {id}"));

        // Reads need a credential too; only `status` (how clients find the leader) is open.
        for read in [
            vec!["-o", "json", "ls"],
            vec!["-o", "json", "get", "echo"],
            vec!["-o", "json", "members"],
        ] {
            let out = cluster.cli_with_token(id, None, &read);
            assert_unauthorized(&out, &format!("{read:?} on node {id} without the token"));
            let out = cluster.cli(id, &read);
            assert!(
                out.status.success(),
                "{read:?} on node {id} with the token: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = cluster.cli_with_token(id, None, &["-o", "json", "status"]);
        assert!(
            out.status.success(),
            "status on node {id} without the token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Nothing the refused writes asked for happened.
    let server = cluster.json(1, &["get", "echo"]);
    assert_eq!(server["replicas"], 1);

    // A forged Raft RPC is refused before it is even decoded; with the token it reaches
    // the handler, which rejects the garbage payload instead.
    let mut raft = RaftServiceClient::connect(format!("http://{}", cluster.node(1).addr))
        .await
        .expect("connect");
    for bad in [None, Some("Bearer wrong")] {
        let mut vote = tonic::Request::new(RaftPayload {
            data: b"not json".to_vec(),
        });
        if let Some(bad) = bad {
            vote.metadata_mut()
                .insert(mcp_proto::AUTHORIZATION, bad.parse().expect("ascii"));
        }
        let refused = raft.vote(vote).await.expect_err("vote without the token");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
        assert_eq!(
            mcp_proto::contract::ErrorKind::of(&refused),
            Some(mcp_proto::contract::ErrorKind::Unauthorized)
        );
    }
    let mut vote = tonic::Request::new(RaftPayload {
        data: b"not json".to_vec(),
    });
    vote.metadata_mut().insert(
        mcp_proto::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().expect("ascii"),
    );
    let undecodable = raft.vote(vote).await.expect_err("garbage vote");
    assert_eq!(undecodable.code(), tonic::Code::InvalidArgument);
}
