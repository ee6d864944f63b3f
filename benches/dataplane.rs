//! Data-plane benchmark: calls per second and p50/p99 latency of `tools/call` through one
//! node, beside direct calls to the same MCP server.
//!
//! Run: `cargo bench --bench dataplane` (results go to stdout as a markdown table; copy
//! them into docs/benchmarks.md). Both paths use the repo's `mcp-test-server` over stdio;
//! "direct" talks to it with mcp-rust's own session client and no node in between,
//! "through node" is a gRPC `ExecuteTool` to a single-node cluster on loopback, "gateway"
//! a 2026-07-28 `tools/call` POSTed to that node's MCP gateway (`/mcp`), each worker on its
//! own keep-alive HTTP/1.1 connection.

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_cluster::dataplane::upstream::{Session, SessionOptions};
use mcp_cluster::{ClusterNode, NodeConfig};
use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
use mcp_proto::cluster::DeployRequest;
use mcp_proto::execute::execute_service_client::ExecuteServiceClient;
use mcp_proto::execute::ExecuteToolRequest;
use serde_json::json;

/// The node runs in this process: give it mcpd's allocator, counting allocations while
/// [`per_call`] asks it to (one relaxed load per allocation otherwise).
#[global_allocator]
static ALLOCATOR: Counting = Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

struct Counting;

impl Counting {
    fn count(&self) {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded unchanged to mimalloc; counting touches only atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.count();
        mimalloc::MiMalloc.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.count();
        mimalloc::MiMalloc.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        mimalloc::MiMalloc.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.count();
        mimalloc::MiMalloc.realloc(ptr, layout, new_size)
    }
}

/// Context switches (voluntary and not) of every thread of this process so far.
fn context_switches() -> u64 {
    // SAFETY: getrusage fills the zeroed struct it is given and touches nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    u64::try_from(usage.ru_nvcsw + usage.ru_nivcsw).unwrap_or(0)
}

/// What one call of a path costs this process.
struct PerCall {
    /// Heap allocations and reallocations: the benchmark's client, the node and the
    /// session together.
    allocations: f64,
    /// Context switches of this process's threads (the MCP server's are not counted).
    switches: f64,
}

/// [`PerCall`] of `call`, one call at a time.
async fn per_call<Fut: std::future::Future<Output = ()>>(
    calls: usize,
    mut call: impl FnMut(usize) -> Fut,
) -> PerCall {
    for i in 0..WARMUP {
        call(i).await;
    }
    let switches = context_switches();
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    for i in 0..calls {
        call(i).await;
    }
    COUNTING.store(false, Ordering::Relaxed);
    PerCall {
        allocations: ALLOCATIONS.load(Ordering::Relaxed) as f64 / calls as f64,
        switches: context_switches().saturating_sub(switches) as f64 / calls as f64,
    }
}

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

/// One keep-alive HTTP/1.1 connection to the gateway, speaking just enough HTTP for the
/// benchmark (the answers carry Content-Length).
struct GatewayConnection {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
    addr: String,
}

impl GatewayConnection {
    async fn open(addr: &str) -> Self {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to the gateway");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream: tokio::io::BufReader::new(stream),
            addr: addr.to_owned(),
        }
    }

    /// A `tools/call` of `bench__echo` whose answer must echo the text.
    async fn echo(&mut self, id: usize) {
        let answer = self.call(id).await;
        assert!(answer.contains("\"hello\""), "gateway answered {answer}");
    }

    /// A stateless `tools/call` of `bench__echo`; returns the answer's body.
    async fn call(&mut self, id: usize) -> String {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "bench__echo", "arguments": {"text": "hello"},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}}}})
        .to_string();
        let head = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\
             Mcp-Method: tools/call\r\nMcp-Name: bench__echo\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(body.as_bytes()).await.expect("write");
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).await.expect("read");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("length");
                }
            }
        }
        let mut answer = vec![0u8; length];
        self.stream.read_exact(&mut answer).await.expect("body");
        String::from_utf8(answer).expect("utf-8")
    }
}

/// One `tools/call` of `echo`, numbered `id`, on the direct session.
async fn call_direct(session: &Session, id: usize) {
    let call = mcp_cluster::dataplane::jsonrpc::request(
        id as u64,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hello"}}),
    );
    session.request_raw(&call).await.expect("direct call");
}

/// The same call as an `ExecuteTool` of the deployed server `bench`.
fn echo_request() -> ExecuteToolRequest {
    ExecuteToolRequest {
        server: "bench".into(),
        tool: "echo".into(),
        arguments_json: r#"{"text":"hello"}"#.into(),
        ..Default::default()
    }
}

/// [`echo_request`] through the node.
async fn call_through_node(mut client: ExecuteServiceClient<tonic::transport::Channel>) {
    client
        .execute_tool(echo_request())
        .await
        .expect("call through node");
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
        list_changes: None,
    };
    let session = Arc::new(
        Session::connect(&spec, &options)
            .await
            .expect("direct session"),
    );

    // Through a node: a single-node cluster with the same server deployed.
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let mcp_addr = format!("127.0.0.1:{}", free_port());
    let node = ClusterNode::start(NodeConfig {
        id: Some(1),
        listen_addr: Some(addr.parse().expect("addr")),
        initial_cluster: BTreeMap::from([(1, addr.clone())]),
        gateway: Some(mcp_cluster::gateway::GatewayConfig {
            addr: mcp_addr.parse().expect("gateway addr"),
            token: None,
            allowed_origins: Vec::new(),
            session_lifetime: mcp_cluster::gateway::session::DEFAULT_SESSION_LIFETIME,
            oauth: None,
        }),
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
    loop {
        if exec.clone().execute_tool(echo_request()).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The gateway answers once the catalog lists the tool.
    loop {
        let listed = tokio::time::timeout(Duration::from_secs(5), async {
            GatewayConnection::open(&mcp_addr).await.call(0).await
        })
        .await;
        if listed.is_ok_and(|answer| answer.contains("\"result\"")) {
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
            async move { call_direct(&s, i).await }
        })
        .await;
        let client = exec.clone();
        let through = measure(concurrency, total, move |_| {
            call_through_node(client.clone())
        })
        .await;
        let mut connections = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            connections.push(tokio::sync::Mutex::new(
                GatewayConnection::open(&mcp_addr).await,
            ));
        }
        let connections = Arc::new(connections);
        let per_worker = total / concurrency;
        let gateway = measure(concurrency, total, move |i| {
            let connections = Arc::clone(&connections);
            async move {
                // Calls of worker w are numbered w * per_worker + k; warm-up ones, 0..
                let mut connection = connections[(i / per_worker) % connections.len()]
                    .lock()
                    .await;
                connection.echo(i).await;
            }
        })
        .await;
        for (path, s) in [
            ("direct", &direct),
            ("through node (gRPC)", &through),
            ("gateway (MCP over HTTP)", &gateway),
        ] {
            println!(
                "| {path} | {concurrency} | {:.0} | {:.0} | {:.0} |",
                s.calls_per_sec, s.p50_us, s.p99_us
            );
        }
        for (path, s) in [("gRPC", &through), ("gateway", &gateway)] {
            println!(
                "| {path} overhead | {concurrency} | {:.0}% of direct | +{:.0} | +{:.0} |",
                100.0 * s.calls_per_sec / direct.calls_per_sec,
                s.p50_us - direct.p50_us,
                s.p99_us - direct.p99_us
            );
        }
    }

    // What each path costs this process per call. Background tasks (the node's scheduler
    // tick, health checks) allocate and switch too; over 2,000 calls they add well under
    // one per call.
    const COUNTED: usize = 2_000;
    let direct = per_call(COUNTED, |i| call_direct(&session, i)).await;
    let through = per_call(COUNTED, |_| call_through_node(exec.clone())).await;
    let connection = tokio::sync::Mutex::new(GatewayConnection::open(&mcp_addr).await);
    let connection = &connection;
    let gateway = per_call(
        COUNTED,
        |i| async move { connection.lock().await.echo(i).await },
    )
    .await;
    println!();
    println!("| path (concurrency 1) | heap allocations per call | context switches per call |");
    println!("|---|---|---|");
    for (path, cost) in [
        ("direct", direct),
        ("through node (gRPC)", through),
        ("gateway (MCP over HTTP)", gateway),
    ] {
        println!(
            "| {path} | {:.1} | {:.1} |",
            cost.allocations, cost.switches
        );
    }
    session.shutdown().await;
    let _ = node.shutdown().await;
}
