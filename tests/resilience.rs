//! The data plane's resilience chain against the repo's own misbehaving MCP test server:
//! concurrency, crashes, crash loops, clean undeploy, timeouts, garbage, oversized output,
//! circuit breakers and retry rules.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{pids_with, text_of, wait_for, zombies_of, ClusterOptions, TestCluster};
use mcp_proto::execute::execute_service_client::ExecuteServiceClient;
use mcp_proto::execute::ExecuteToolRequest;
use serde_json::{json, Value};

fn test_server() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-test-server")
}

fn spec(name: &str, replicas: u32, extra_args: &[&str]) -> Value {
    let mut args = vec!["--instance-name".to_owned(), format!("marker-{name}")];
    args.extend(extra_args.iter().map(|a| (*a).to_owned()));
    json!({"name": name, "command": test_server(), "args": args, "replicas": replicas})
}

fn node_with(args: &[&str]) -> TestCluster {
    let cluster = TestCluster::start(
        1,
        ClusterOptions {
            extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
            ..ClusterOptions::default()
        },
    );
    cluster.wait_leader();
    cluster
}

/// Waits until node `id` runs `count` instances.
fn wait_running(cluster: &TestCluster, id: u64, count: usize) {
    wait_for(
        &format!("{count} running instances on node {id}"),
        Duration::from_secs(60),
        || {
            let running = cluster
                .instances(id)
                .iter()
                .filter(|i| i["state"] == "running")
                .count();
            (running == count).then_some(())
        },
    );
}

fn error_kind(result: &Result<Value, String>) -> String {
    match result {
        Ok(v) => format!("ok: {v}"),
        Err(e) => e
            .rsplit('[')
            .next()
            .unwrap_or("")
            .trim()
            .trim_end_matches(']')
            .to_owned(),
    }
}

async fn exec_client(addr: &str) -> ExecuteServiceClient<tonic::transport::Channel> {
    ExecuteServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect to node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_calls_each_get_their_own_answer() {
    let cluster = node_with(&[]);
    cluster.deploy_json(1, &spec("echo", 2, &[]));
    let addr = cluster.node(1).addr.clone();
    wait_running(&cluster, 1, 2);
    let client = exec_client(&addr).await;
    let calls = (0..1000).map(|i| {
        let mut client = client.clone();
        async move {
            let reply = client
                .execute_tool(ExecuteToolRequest {
                    server: "echo".into(),
                    tool: "echo".into(),
                    arguments_json: json!({"text": format!("call-{i}")}).to_string(),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner());
            (i, reply)
        }
    });
    let results = futures::future::join_all(calls).await;
    let mut by_instance = BTreeMap::<String, usize>::new();
    for (i, reply) in results {
        let reply = reply.unwrap_or_else(|e| panic!("call {i} failed: {e}"));
        let response: Value = serde_json::from_str(&reply.response_json).expect("json");
        assert_eq!(
            text_of(&response),
            format!("call-{i}"),
            "call {i} got another call's answer"
        );
        *by_instance.entry(reply.instance_id).or_default() += 1;
    }
    assert_eq!(
        by_instance.len(),
        2,
        "load went to one replica only: {by_instance:?}"
    );
}

#[test]
fn killed_replica_is_restarted_while_calls_keep_succeeding() {
    let cluster = node_with(&[]);
    cluster.deploy_json(1, &spec("pair", 2, &[]));
    let first = cluster.call_eventually(1, "pair", "whoami", &json!({}));
    let victim: u32 = text_of(&first)
        .rsplit("pid=")
        .next()
        .and_then(|p| p.parse().ok())
        .expect("whoami names a pid");
    wait_running(&cluster, 1, 2);
    assert!(std::process::Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap()
        .success());
    // Idempotent requests sent right after the kill are retried on the other replica.
    for _ in 0..20 {
        let out = cluster.cli(
            1,
            &["-o", "json", "exec", "pair", r#"{"method": "tools/list"}"#],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for i in 0..20 {
        let echoed = cluster
            .call(1, "pair", "echo", &json!({"text": i.to_string()}))
            .expect("call after kill");
        assert_eq!(text_of(&echoed), i.to_string());
    }
    wait_for(
        "the killed replica to be restarted",
        Duration::from_secs(60),
        || {
            let instances = cluster.instances(1);
            let restarted = instances.iter().any(|i| i["restarts"].as_u64() >= Some(1));
            let all_running = instances.iter().all(|i| i["state"] == "running");
            (restarted && all_running).then_some(())
        },
    );
    assert!(!pids_with("marker-pair").contains(&victim));
}

#[test]
fn server_crashing_at_start_ends_in_a_visible_crash_loop() {
    let cluster = node_with(&[]);
    cluster.deploy_json(1, &spec("doomed", 1, &["--crash-on-start"]));
    let restarts_at_loop = wait_for("a crash loop", Duration::from_secs(60), || {
        let instance = cluster
            .instances(1)
            .into_iter()
            .find(|i| i["server"] == "doomed")?;
        (instance["state"] == "crash_loop").then(|| instance["restarts"].as_u64().unwrap_or(0))
    });
    // In a crash loop restarts slow down to the maximum backoff: no restart storm.
    std::thread::sleep(Duration::from_secs(2));
    let instance = cluster
        .instances(1)
        .into_iter()
        .find(|i| i["server"] == "doomed")
        .expect("instance");
    assert_eq!(instance["state"], "crash_loop");
    assert!(
        instance["restarts"].as_u64().unwrap_or(0) <= restarts_at_loop + 1,
        "{instance}"
    );
    let call = cluster.call(1, "doomed", "echo", &json!({"text": "x"}));
    assert_eq!(error_kind(&call), "no_healthy_instance", "{call:?}");
}

#[test]
fn undeploy_leaves_no_child_process_behind() {
    let cluster = node_with(&[]);
    cluster.deploy_json(1, &spec("ephemeral", 3, &[]));
    wait_for("three replica processes", Duration::from_secs(60), || {
        (pids_with("marker-ephemeral").len() == 3).then_some(())
    });
    let out = cluster.cli(1, &["undeploy", "ephemeral"]);
    assert!(out.status.success());
    let node = cluster.node(1).pid().expect("node runs");
    wait_for(
        "every replica process to be gone and reaped",
        Duration::from_secs(30),
        || (pids_with("marker-ephemeral").is_empty() && zombies_of(node).is_empty()).then_some(()),
    );
}

#[test]
fn hanging_tool_times_out_and_a_timed_out_call_is_not_sent_twice() {
    let cluster = node_with(&["--request-timeout-ms", "1000"]);
    cluster.deploy_json(1, &spec("slow", 2, &[]));
    cluster.call_eventually(1, "slow", "echo", &json!({"text": "warm"}));
    wait_running(&cluster, 1, 2);

    let started = Instant::now();
    let result = cluster.call(1, "slow", "sleep", &json!({"ms": 30_000}));
    assert_eq!(error_kind(&result), "timeout", "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the timeout did not fire"
    );

    // Count the tool calls each replica has seen: the sleep reached exactly one of them.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sleeps: u64 = rt.block_on(async {
        let mut client = exec_client(&cluster.node(1).addr).await;
        let mut first_reading = BTreeMap::<String, u64>::new();
        for _ in 0..200 {
            let reply = client
                .execute_tool(ExecuteToolRequest {
                    server: "slow".into(),
                    tool: "counter".into(),
                    ..Default::default()
                })
                .await
                .expect("counter")
                .into_inner();
            let response: Value = serde_json::from_str(&reply.response_json).expect("json");
            let count: u64 = text_of(&response).parse().expect("count");
            first_reading.entry(reply.instance_id).or_insert(count);
            if first_reading.len() == 2 {
                break;
            }
        }
        assert_eq!(first_reading.len(), 2, "never reached both replicas");
        // Each first reading counts the warm-up echo (if it went there), the sleep (if it
        // went there) and itself.
        first_reading.values().map(|c| c - 1).sum::<u64>() - 1
    });
    assert_eq!(
        sleeps, 1,
        "the timed-out tools/call was sent {sleeps} times"
    );
}

#[test]
fn garbage_and_oversized_output_trip_the_breaker_without_touching_other_servers() {
    let cluster = node_with(&[
        "--circuit-breaker-recovery-secs",
        "2",
        "--max-message-bytes",
        "100000",
    ]);
    cluster.deploy_json(1, &spec("rogue", 1, &[]));
    cluster.deploy_json(1, &spec("bystander", 1, &[]));
    cluster.call_eventually(1, "rogue", "echo", &json!({"text": "ok"}));
    cluster.call_eventually(1, "bystander", "echo", &json!({"text": "ok"}));

    let garbage = cluster.call(1, "rogue", "garbage", &json!({}));
    assert_eq!(error_kind(&garbage), "connection", "{garbage:?}");
    // Isolated: its breaker is open, the other server does not notice.
    let refused = cluster.call(1, "rogue", "echo", &json!({"text": "x"}));
    let kind = error_kind(&refused);
    assert!(
        kind == "circuit_open" || kind == "no_healthy_instance",
        "{refused:?}"
    );
    assert_eq!(
        text_of(
            &cluster
                .call(1, "bystander", "echo", &json!({"text": "fine"}))
                .unwrap()
        ),
        "fine"
    );
    wait_for(
        "the rogue breaker to report open",
        Duration::from_secs(10),
        || {
            cluster
                .instances(1)
                .iter()
                .any(|i| i["server"] == "rogue" && i["breaker"] == "open")
                .then_some(())
        },
    );

    // Half-open after the recovery time lets traffic back; successes close it.
    let back = cluster.call_eventually(1, "rogue", "echo", &json!({"text": "back"}));
    assert_eq!(text_of(&back), "back");
    cluster
        .call(1, "rogue", "echo", &json!({"text": "again"}))
        .expect("second success");
    wait_for("the breaker to close", Duration::from_secs(10), || {
        cluster
            .instances(1)
            .iter()
            .any(|i| i["server"] == "rogue" && i["breaker"] == "closed")
            .then_some(())
    });

    let huge = cluster.call(1, "rogue", "huge", &json!({"bytes": 200_000}));
    assert_eq!(error_kind(&huge), "connection", "{huge:?}");
    assert!(
        format!("{huge:?}").contains("100000-byte limit"),
        "{huge:?}"
    );
    assert_eq!(
        text_of(
            &cluster
                .call(1, "bystander", "echo", &json!({"text": "still"}))
                .unwrap()
        ),
        "still"
    );
    let small = cluster.call_eventually(1, "rogue", "huge", &json!({"bytes": 1000}));
    assert_eq!(text_of(&small).len(), 1000);
}

#[test]
fn server_errors_pass_through_intact() {
    let cluster = node_with(&[]);
    cluster.deploy_json(1, &spec("strict", 1, &[]));
    cluster.call_eventually(1, "strict", "echo", &json!({"text": "warm"}));
    let failed = cluster.call(1, "strict", "fail", &json!({"message": "no such thing"}));
    assert_eq!(error_kind(&failed), "server_error", "{failed:?}");
    assert!(format!("{failed:?}").contains("no such thing"));
    // Through `exec` the JSON-RPC error object comes back untouched.
    let raw = cluster.json(
        1,
        &["exec", "strict", r#"{"id": "abc", "method": "tools/call", "params": {"name": "fail", "arguments": {"message": "m"}}}"#],
    );
    assert_eq!(raw["id"], "abc");
    assert_eq!(raw["error"], json!({"code": -32000, "message": "m"}));
    let unknown = cluster.call(1, "nope", "echo", &json!({}));
    assert_eq!(error_kind(&unknown), "unknown_server", "{unknown:?}");
    let names: BTreeSet<String> = cluster.json(
        1,
        &["exec", "strict", r#"{"method": "nonexistent/method"}"#],
    )["error"]["code"]
        .as_i64()
        .map(|c| BTreeSet::from([c.to_string()]))
        .unwrap_or_default();
    assert_eq!(names, BTreeSet::from(["-32601".to_owned()]));

    // One call succeeded and the server said no to three: the statistics count those
    // three as failures (waiting for the instance may add failed attempts, never successes).
    let strict = cluster.server_stats(1, "strict");
    assert_eq!(strict["successful_requests"], 1, "{strict}");
    assert!(strict["total_requests"].as_u64() >= Some(4), "{strict}");
}

#[test]
fn lost_http_session_is_reinitialized() {
    let port = common::free_port();
    let start_server = || {
        common::ChildGuard(
            std::process::Command::new(test_server())
                .args([
                    "--transport",
                    "http",
                    "--port",
                    &port.to_string(),
                    "--handshake-only",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start the HTTP test server"),
        )
    };
    let server = start_server();
    let cluster = node_with(&["--max-attempts", "1"]);
    cluster.deploy_json(
        1,
        &json!({"name": "remote", "url": format!("http://127.0.0.1:{port}/mcp")}),
    );
    let first = cluster.call_eventually(1, "remote", "echo", &json!({"text": "one"}));
    assert_eq!(text_of(&first), "one");
    let version = cluster.instances(1)[0]["protocol_version"].clone();
    assert_eq!(
        version, "2025-11-25",
        "a handshake-only server negotiates the handshake era"
    );

    // A restarted server has forgotten every session: the next request gets a 404, and
    // the instance re-initializes instead of failing forever.
    drop(server);
    let _server = start_server();
    let again = cluster.call_eventually(1, "remote", "echo", &json!({"text": "two"}));
    assert_eq!(text_of(&again), "two");
}

#[test]
fn request_that_never_reached_a_server_is_retried_elsewhere() {
    let mut cluster = TestCluster::start(3, ClusterOptions::default());
    cluster.wait_leader();
    // Two replicas land on nodes 1 and 2 (one per node); node 3 hosts none and forwards.
    cluster.deploy_json(1, &spec("spread", 2, &[]));
    for id in [1, 2] {
        wait_for(
            &format!("node {id} to run a replica"),
            Duration::from_secs(60),
            || {
                cluster
                    .instances(id)
                    .iter()
                    .any(|i| i["server"] == "spread" && i["state"] == "running")
                    .then_some(())
            },
        );
    }
    assert!(cluster.instances(3).is_empty());
    cluster.kill(1);
    // Node 3 still believes node 1 hosts a replica; connecting to it fails before anything
    // is sent, so every request (even a tools/call) moves on to node 2.
    for i in 0..10 {
        let pong = cluster.json(3, &["exec", "spread", r#"{"method": "ping"}"#]);
        assert_eq!(pong["result"], json!({}), "ping {i}: {pong}");
        let echoed = cluster
            .call(3, "spread", "echo", &json!({"text": i.to_string()}))
            .expect("tools/call after a connect failure");
        assert_eq!(text_of(&echoed), i.to_string());
    }
}
