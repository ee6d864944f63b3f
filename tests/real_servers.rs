//! The data plane against real MCP servers from PyPI, through a real 3-node cluster.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    free_port, python, text_of, tool_names, wait_for, ChildGuard, ClusterOptions, TestCluster,
};
use serde_json::json;

fn exec(cluster: &TestCluster, id: u64, server: &str, request: &str) -> serde_json::Value {
    cluster.json(id, &["exec", server, request])
}

#[test]
fn pypi_servers_answer_through_every_node() {
    let python = python::modern();
    let cluster = TestCluster::start(3, ClusterOptions::default());
    cluster.wait_leader();

    // stdio: mcp-server-time, one replica somewhere in the cluster.
    cluster.deploy_json(
        1,
        &json!({"name": "time", "command": python, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}),
    );
    // Streamable HTTP: a server written with the mcp 2.3 SDK, reached from every node.
    let port = free_port();
    let _http = ChildGuard(
        Command::new(&python)
            .arg(python::fixture("sdk_http_server.py"))
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the SDK HTTP server"),
    );
    cluster.deploy_json(
        2,
        &json!({"name": "sdk", "type": "http", "url": format!("http://127.0.0.1:{port}/mcp")}),
    );

    for id in 1..=3 {
        let now = cluster.call_eventually(
            id,
            "time",
            "get_current_time",
            &json!({"timezone": "Asia/Tokyo"}),
        );
        let answer: serde_json::Value =
            serde_json::from_str(&text_of(&now)).expect("time server answers JSON text");
        assert_eq!(answer["timezone"], "Asia/Tokyo", "node {id}: {now}");
        let tools = tool_names(&exec(&cluster, id, "time", r#"{"method": "tools/list"}"#));
        assert!(
            tools.contains(&"convert_time".to_owned()),
            "node {id}: {tools:?}"
        );

        let sum = cluster.call_eventually(id, "sdk", "add", &json!({"a": 2, "b": 40}));
        assert_eq!(text_of(&sum), "42", "node {id}: {sum}");
        let tools = tool_names(&exec(&cluster, id, "sdk", r#"{"method": "tools/list"}"#));
        assert!(tools.contains(&"shout".to_owned()), "node {id}: {tools:?}");
    }
}

#[test]
fn handshake_era_and_stateless_era_servers_work_alike() {
    let modern = python::modern();
    let legacy = python::legacy();
    let cluster = TestCluster::start(1, ClusterOptions::default());
    cluster.wait_leader();
    cluster.deploy_json(
        1,
        &json!({"name": "legacy", "command": legacy, "args": [python::fixture("legacy_stdio_server.py")]}),
    );
    cluster.deploy_json(
        1,
        &json!({"name": "time", "command": modern, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}),
    );

    let reversed = cluster.call_eventually(1, "legacy", "reverse", &json!({"text": "stressed"}));
    assert_eq!(text_of(&reversed), "desserts");
    let now = cluster.call_eventually(1, "time", "get_current_time", &json!({"timezone": "UTC"}));
    assert!(text_of(&now).contains("UTC"));

    let versions = wait_for(
        "both sessions to report their era",
        Duration::from_secs(30),
        || {
            let instances = cluster.instances(1);
            let version = |server: &str| {
                instances
                    .iter()
                    .find(|i| i["server"] == server)
                    .and_then(|i| i["protocol_version"].as_str())
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
            };
            Some((version("legacy")?, version("time")?))
        },
    );
    assert!(
        versions.0.starts_with("2025-"),
        "legacy negotiated {}",
        versions.0
    );
    assert_eq!(versions.1, "2026-07-28");
}

#[test]
fn survivor_keeps_serving_without_quorum() {
    let python = python::modern();
    let mut cluster = TestCluster::start(3, ClusterOptions::default());
    cluster.wait_leader();
    // Three replicas: one per node.
    cluster.deploy_json(
        1,
        &json!({"name": "time", "command": python, "args": ["-m", "mcp_server_time"], "replicas": 3}),
    );
    cluster.call_eventually(3, "time", "get_current_time", &json!({"timezone": "UTC"}));
    wait_for("node 3 to run its replica", Duration::from_secs(60), || {
        cluster
            .instances(3)
            .iter()
            .any(|i| i["state"] == "running")
            .then_some(())
    });

    cluster.kill(1);
    cluster.kill(2);
    // Writes fail without a quorum...
    let out = cluster.cli(3, &["scale", "time", "1"]);
    assert!(!out.status.success(), "a write succeeded without quorum");
    // ...but calls keep being served from the last applied registry state.
    for _ in 0..5 {
        let now = cluster
            .call(3, "time", "get_current_time", &json!({"timezone": "UTC"}))
            .expect("call without quorum");
        assert!(text_of(&now).contains("UTC"));
    }
}
