//! What an operator sees of a request: its id in the logs of every node it crosses, and the
//! per-server totals of `mcpd stats` (the gRPC `GetMetrics`).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{text_of, wait_for, ClusterOptions, TestCluster};
use serde_json::{json, Value};

/// Request ids a node logged with `message`.
fn logged_ids(cluster: &TestCluster, id: u64, message: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(&cluster.node(id).log).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == message)
        .filter_map(|entry| entry["fields"]["request_id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn forwarded_requests_keep_their_id_and_are_counted_once() {
    let cluster = TestCluster::start(
        3,
        ClusterOptions {
            extra_args: vec!["--log-format".into(), "json".into()],
            ..ClusterOptions::default()
        },
    );
    cluster.wait_leader();
    // One replica: on node 1 (the first node of the registry), so node 3 must forward.
    cluster.deploy_json(
        1,
        &json!({"name": "echo", "command": env!("CARGO_BIN_EXE_mcp-test-server"), "replicas": 1}),
    );
    wait_for("node 1 to run the replica", Duration::from_secs(60), || {
        cluster
            .instances(1)
            .iter()
            .any(|i| i["state"] == "running")
            .then_some(())
    });
    for i in 0..5 {
        let echoed = cluster
            .call(3, "echo", "echo", &json!({"text": i.to_string()}))
            .expect("forwarded call");
        assert_eq!(text_of(&echoed), i.to_string());
    }

    let sent = logged_ids(&cluster, 3, "forwarding request");
    let served = logged_ids(&cluster, 1, "serving forwarded request");
    assert_eq!(sent.len(), 5, "node 3 logged {sent:?}");
    assert_eq!(sent, served, "request ids differ between the two hops");

    // Counted once, by the node that ran the calls.
    let echo = cluster.server_stats(1, "echo");
    assert_eq!(echo["total_requests"], 5);
    assert_eq!(echo["success_rate"], 1.0);
    assert!(
        echo["p99_latency_ms"].as_f64().unwrap_or(0.0) > 0.0,
        "{echo}"
    );
    assert_eq!(cluster.json(3, &["stats"])["total"]["total_requests"], 0);
}
