//! Data-plane benchmark: calls per second and p50/p99 latency of `tools/call` through one
//! node, beside direct calls to the same MCP server.
//!
//! Run: `cargo bench --bench dataplane` (results go to stdout as a markdown table; copy
//! them into docs/benchmarks.md). Both paths use the repo's `mcp-test-server` over stdio;
//! "direct" talks to it with mcp-rust's own session client and no node in between,
//! "through node" is a gRPC `ExecuteTool` to a single-node cluster on loopback.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_cluster::dataplane::upstream::{Session, SessionOptions};
use mcp_cluster::{ClusterNode, NodeConfig};
use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
use mcp_proto::cluster::DeployRequest;
use mcp_proto::execute::execute_service_client::ExecuteServiceClient;
use mcp_proto::execute::ExecuteToolRequest;
use serde_json::json;

const WARMUP: usize = 500;

struct Stats {
    calls_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

fn stats(mut latencies: Vec<Duration>, wall: Duration) -> Stats {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        calls_per_sec: latencies.len() as f64 / wall.as_secs_f64(),
        p50_us: at(0.50).as_secs_f64() * 1e6,
        p99_us: at(0.99).as_secs_f64() * 1e6,
    }
}

/// Runs `total` calls of `call` with `concurrency` workers and measures each.
async fn measure<F, Fut>(concurrency: usize, total: usize, call: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    for i in 0..WARMUP {
        call(i).await;
    }
    let started = Instant::now();
    let per_worker = total / concurrency;
    let workers = (0..concurrency).map(|w| {
        let call = Arc::clone(&call);
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker);
            for i in 0..per_worker {
                let t = Instant::now();
                call(w * per_worker + i).await;
                latencies.push(t.elapsed());
            }
            latencies
        })
    });
    let mut latencies = Vec::with_capacity(total);
    for worker in futures::future::join_all(workers).await {
        latencies.extend(worker.expect("worker"));
    }
    stats(latencies, started.elapsed())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::main]
async fn main() {
    let server = env!("CARGO_BIN_EXE_mcp-test-server");
    let spec_json = json!({"name": "bench", "command": server, "replicas": 1}).to_string();
    let spec = mcp_raft::registry::spec::parse_json(&spec_json).expect("spec");

    // Direct: one session to the server, no node in between.
    let options = SessionOptions {
        connect_timeout: Duration::from_secs(10),
        max_message_bytes: 16 << 20,
        label: "bench-direct".into(),
        idle_timeout: Duration::from_secs(300),
        keepalive: true,
        keepalive_interval: Duration::from_secs(30),
        containers: Default::default(),
    };
    let session = Arc::new(
        Session::connect(&spec, &options)
            .await
            .expect("direct session"),
    );

    // Through a node: a single-node cluster with the same server deployed.
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let node = ClusterNode::start(NodeConfig {
        id: Some(1),
        listen_addr: Some(addr.parse().expect("addr")),
        initial_cluster: BTreeMap::from([(1, addr.clone())]),
        ..NodeConfig::new(dir.path())
    })
    .await
    .expect("node");
    let endpoint = format!("http://{addr}");
    let mut cluster = loop {
        match ClusterServiceClient::connect(endpoint.clone()).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    loop {
        let deployed = cluster
            .deploy(DeployRequest {
                spec_json: spec_json.clone(),
                expected_revision: None,
            })
            .await;
        if deployed.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exec = ExecuteServiceClient::connect(endpoint)
        .await
        .expect("exec client");
    let request = || ExecuteToolRequest {
        server: "bench".into(),
        tool: "echo".into(),
        arguments_json: r#"{"text":"hello"}"#.into(),
        ..Default::default()
    };
    loop {
        if exec.clone().execute_tool(request()).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    println!("| path | concurrency | calls/s | p50 (µs) | p99 (µs) |");
    println!("|---|---|---|---|---|");
    for (concurrency, total) in [(1usize, 5_000usize), (32, 40_000)] {
        let s = Arc::clone(&session);
        let direct = measure(concurrency, total, move |i| {
            let s = Arc::clone(&s);
            async move {
                let call = mcp_cluster::dataplane::jsonrpc::request(
                    i as u64,
                    "tools/call",
                    json!({"name": "echo", "arguments": {"text": "hello"}}),
                );
                s.request(&call).await.expect("direct call");
            }
        })
        .await;
        let client = exec.clone();
        let through = measure(concurrency, total, move |_| {
            let mut client = client.clone();
            async move {
                client
                    .execute_tool(request())
                    .await
                    .expect("call through node");
            }
        })
        .await;
        for (path, s) in [("direct", &direct), ("through node", &through)] {
            println!(
                "| {path} | {concurrency} | {:.0} | {:.0} | {:.0} |",
                s.calls_per_sec, s.p50_us, s.p99_us
            );
        }
        println!(
            "| overhead | {concurrency} | {:.0}% of direct | +{:.0} | +{:.0} |",
            100.0 * through.calls_per_sec / direct.calls_per_sec,
            through.p50_us - direct.p50_us,
            through.p99_us - direct.p99_us
        );
    }
    session.shutdown().await;
    let _ = node.shutdown().await;
}
