//! Generated inputs against a real node: 10,000 raw HTTP requests to the MCP gateway
//! (methods, headers of both protocol eras present, missing, contradicting or malformed,
//! bodies that are valid JSON-RPC, wrong JSON-RPC, not JSON, not UTF-8, oversized, with
//! broken framing) and 10,000 gRPC requests (deploys with generated, empty, invalid and
//! huge specs, compare-and-set guards, scales, undeploys, reads, executes with garbage
//! arguments and timeouts). Every request must be answered (no hang) with a clear refusal
//! or a success: HTTP never 5xx, gRPC always carrying its typed error category and never
//! `internal`; the node is still healthy afterwards.
//!
//! The cases come from a seeded generator (the seed is printed; `MCPD_FUZZ_SEED` replays
//! it, `MCPD_FUZZ_CASES` changes the count) and run 8 at a time.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use common::rng::Rng;
use common::{free_port, ClusterOptions, TestCluster};
use futures::StreamExt;
use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
use mcp_proto::cluster::{
    DeployRequest, GetServerRequest, ListServersRequest, ScaleRequest, StatusRequest,
    UndeployRequest,
};
use mcp_proto::contract::ErrorKind;
use mcp_proto::execute::execute_service_client::ExecuteServiceClient;
use mcp_proto::execute::{ExecuteRequest, ExecuteToolRequest};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

const IN_FLIGHT: usize = 8;
/// Longest a single answer may take (far above any real answer; only a hang reaches it).
const ANSWER_BOUND: Duration = Duration::from_secs(30);

fn cases() -> usize {
    std::env::var("MCPD_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

/// The fuzz-specific generators (the generic ones are in `common::rng`).
impl Rng {
    /// A string: empty, short ASCII, unicode, control characters, or long.
    fn text(&mut self) -> String {
        match self.below(8) {
            0 => String::new(),
            1 => "ü€𝄞\u{0}\u{7f}".to_owned(),
            2 => "x".repeat(self.below(70_000) as usize),
            3 => String::from_utf8_lossy(&self.bytes(40)).into_owned(),
            4 => self
                .pick(&["demo", "echo", "demo__echo", "../etc", "a b", "A", "-", "."])
                .to_owned(),
            _ => (0..self.below(20))
                .map(|_| (b'a' + self.below(26) as u8) as char)
                .collect(),
        }
    }
    /// Any JSON value, nested a little.
    fn json(&mut self, depth: u32) -> Value {
        match self.below(if depth == 0 { 6 } else { 8 }) {
            0 => Value::Null,
            1 => json!(self.chance(50)),
            2 => json!(self.next() as i64),
            3 => json!(self.below(100)),
            4 => json!(self.next() as f64 / 3.0),
            5 => json!(self.text()),
            6 => Value::Array((0..self.below(4)).map(|_| self.json(depth - 1)).collect()),
            _ => {
                let mut map = serde_json::Map::new();
                for _ in 0..self.below(4) {
                    let key =
                        self.pick(&["name", "arguments", "_meta", "id", "uri", "cursor", "x"]);
                    map.insert(key.to_owned(), self.json(depth - 1));
                }
                Value::Object(map)
            }
        }
    }
}

const METHODS: [&str; 14] = [
    "initialize",
    "notifications/initialized",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "subscriptions/listen",
    "nope/nothing",
    "",
];

/// A raw HTTP request to `/mcp` (or elsewhere), and whether its framing is broken on
/// purpose (then a closed connection is an acceptable answer).
fn http_case(rng: &mut Rng, host: &str) -> (Vec<u8>, bool) {
    let method = if rng.chance(85) {
        "POST".to_owned()
    } else {
        rng.pick(&["GET", "DELETE", "PUT", "OPTIONS", "HEAD", "PATCH", "BREW"])
            .to_owned()
    };
    let path = if rng.chance(92) {
        "/mcp".to_owned()
    } else {
        rng.pick(&[
            "/",
            "/mcp/",
            "/mcp?x=1",
            "/metrics",
            "/.well-known/oauth-protected-resource",
            "/%ff",
            "//mcp",
        ])
        .to_owned()
    };
    let rpc_method = rng.pick(&METHODS).to_owned();
    let era = rng.pick(&[
        "2026-07-28",
        "2025-11-25",
        "2025-06-18",
        "2024-11-05",
        "1999-01-01",
        "",
        "garbage",
    ]);
    // The body.
    let body: Vec<u8> = match rng.below(10) {
        0 => rng.bytes(300),
        1 => b"{\"jsonrpc\":\"2.0\",".to_vec(),
        2 => json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
            .to_string()
            .into_bytes(),
        3 => vec![b' '; rng.below(3_000_000) as usize],
        _ => {
            let mut params = match rpc_method.as_str() {
                "tools/call" => json!({
                    "name": rng.pick(&["demo__echo", "demo__add", "demo__whoami", "demo__tool_error", "demo__fail", "demo__nope", "nope", ""]),
                    "arguments": if rng.chance(70) { json!({"text": rng.text(), "a": 1, "b": 2}) } else { rng.json(2) },
                }),
                "resources/read" => json!({"uri": rng.text()}),
                "prompts/get" => json!({"name": rng.text()}),
                _ => {
                    if rng.chance(60) {
                        json!({})
                    } else {
                        rng.json(2)
                    }
                }
            };
            if params.is_object() && rng.chance(70) {
                params["_meta"] = if rng.chance(80) {
                    json!({"io.modelcontextprotocol/protocolVersion": era, "io.modelcontextprotocol/clientCapabilities": {}})
                } else {
                    rng.json(2)
                };
            }
            let id = match rng.below(6) {
                0 => Value::Null,
                1 => json!("s-1"),
                2 => json!(1.5),
                3 => json!({"a": 1}),
                _ => json!(rng.below(1000)),
            };
            let mut message = json!({"jsonrpc": "2.0", "method": rpc_method, "params": params});
            if rng.chance(85) {
                message["id"] = id;
            }
            if rng.chance(5) {
                message["jsonrpc"] = json!("1.0");
            }
            message.to_string().into_bytes()
        }
    };
    // The headers.
    let mut headers: Vec<(String, Vec<u8>)> = vec![("Host".into(), host.as_bytes().to_vec())];
    let mut add = |rng: &mut Rng, name: &str, value: &str| {
        if rng.chance(85) {
            headers.push((name.to_owned(), value.as_bytes().to_vec()));
        }
    };
    let content_type = rng.pick(&[
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "",
        "application/x-www-form-urlencoded",
    ]);
    add(rng, "Content-Type", content_type);
    let accept = rng.pick(&[
        "application/json, text/event-stream",
        "application/json",
        "text/event-stream",
        "*/*",
        "image/png",
    ]);
    add(rng, "Accept", accept);
    add(rng, "MCP-Protocol-Version", era);
    let mcp_method = if rng.chance(80) {
        rpc_method.clone()
    } else {
        rng.pick(&METHODS).to_owned()
    };
    add(rng, "Mcp-Method", &mcp_method);
    if rng.chance(50) {
        let name = rng.pick(&["demo__echo", "demo__add", "x", ""]);
        headers.push(("Mcp-Name".into(), name.as_bytes().to_vec()));
    }
    if rng.chance(20) {
        let id = rng.text();
        headers.push(("Mcp-Session-Id".into(), id.into_bytes()));
    }
    if rng.chance(10) {
        let origin = rng.pick(&["http://evil.example", "http://127.0.0.1", "null", ""]);
        headers.push(("Origin".into(), origin.as_bytes().to_vec()));
    }
    if rng.chance(10) {
        let auth = rng.pick(&["Bearer x", "Bearer ", "Basic Zm9vOmJhcg==", "garbage"]);
        headers.push(("Authorization".into(), auth.as_bytes().to_vec()));
    }
    if rng.chance(5) {
        // Duplicate a header with another value.
        headers.push(("MCP-Protocol-Version".into(), b"2025-11-25".to_vec()));
    }
    if rng.chance(3) {
        // A header value that is not valid text.
        headers.push(("X-Junk".into(), vec![0xff, 0xfe, b'a']));
    }
    if rng.chance(2) {
        headers.push(("X-Big".into(), vec![b'b'; 70_000]));
    }
    // Framing: right, or broken on purpose.
    let mut broken = false;
    match rng.below(40) {
        0 => {
            headers.push(("Content-Length".into(), b"nonsense".to_vec()));
            broken = true;
        }
        1 => {
            headers.push((
                "Content-Length".into(),
                (body.len() + 10).to_string().into_bytes(),
            ));
            broken = true;
        }
        2 => {
            headers.push(("Transfer-Encoding".into(), b"chunked".to_vec()));
            broken = true;
        }
        _ => headers.push(("Content-Length".into(), body.len().to_string().into_bytes())),
    }
    headers.push(("Connection".into(), b"close".to_vec()));
    let mut raw = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    for (k, v) in headers {
        raw.extend_from_slice(k.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(&v);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(&body);
    (raw, broken)
}

/// Sends one raw request; the status code (None: the connection closed without one).
/// Only the status line is read: a streamed answer (SSE) never ends by itself.
async fn send_http(addr: &str, raw: &[u8], broken: bool) -> Result<Option<u16>, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    // The server may answer (413, 400) and close before reading everything.
    let _ = stream.write_all(raw).await;
    if broken {
        // Broken framing may leave the server waiting for bytes that never come: end the
        // request side so it sees the end. A well-framed request keeps its write side open
        // (a half-closed connection counts as a client gone away).
        let _ = stream.shutdown().await;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    if answer.is_empty() {
        return Ok(None);
    }
    let head = String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned();
    head.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .map(Some)
        .ok_or_else(|| format!("not an HTTP answer: {head:?}"))
}

#[derive(Debug)]
enum GrpcCase {
    Deploy(String, Option<u64>),
    Scale(String, u32),
    Undeploy(String),
    Get(String, bool),
    List(bool),
    ExecuteTool(String, String, String, Option<u64>, bool),
    Execute(String, String, Option<u64>),
}

fn grpc_case(rng: &mut Rng) -> GrpcCase {
    // Names for writes never touch `demo`, which the data-plane cases use.
    let write_name = |rng: &mut Rng| {
        if rng.chance(60) {
            format!("f{}", rng.below(20))
        } else {
            let t = rng.text();
            if t == "demo" {
                "demo2".to_owned()
            } else {
                t
            }
        }
    };
    match rng.below(7) {
        0 => {
            let spec = match rng.below(5) {
                0 => String::from_utf8_lossy(&rng.bytes(200)).into_owned(),
                1 => "x".repeat(rng.below(1_000_000) as usize),
                2 => rng.json(3).to_string(),
                _ => {
                    let mut spec = json!({
                        "name": write_name(rng),
                        "command": "/bin/echo",
                        "replicas": rng.below(4),
                    });
                    for _ in 0..rng.below(3) {
                        let key = rng.pick(&["args", "env", "transport", "url", "tags", "priority", "request_timeout_ms", "description", "cwd", "headers", "auth", "x", "image", "inherit_env"]);
                        spec[key] = rng.json(2);
                    }
                    // Nothing generated may actually run.
                    spec["placement"] = json!({"allowed_nodes": [99]});
                    spec.to_string()
                }
            };
            let expected = match rng.below(4) {
                0 => None,
                1 => Some(0),
                2 => Some(rng.below(50)),
                _ => Some(rng.next()),
            };
            GrpcCase::Deploy(spec, expected)
        }
        1 => GrpcCase::Scale(write_name(rng), if rng.chance(80) { rng.below(5) as u32 } else { rng.next() as u32 }),
        2 => GrpcCase::Undeploy(write_name(rng)),
        3 => GrpcCase::Get(rng.text(), rng.chance(50)),
        4 => GrpcCase::List(rng.chance(50)),
        5 => GrpcCase::ExecuteTool(
            if rng.chance(60) { "demo".to_owned() } else { rng.text() },
            rng.pick(&["echo", "add", "whoami", "tool_error", "fail", "nope", ""]).to_owned(),
            match rng.below(4) {
                0 => String::from_utf8_lossy(&rng.bytes(50)).into_owned(),
                1 => String::new(),
                _ => json!({"text": rng.text(), "a": rng.json(0), "b": 2}).to_string(),
            },
            if rng.chance(50) { None } else { Some(rng.below(5_000)) },
            rng.chance(20),
        ),
        _ => GrpcCase::Execute(
            if rng.chance(60) { "demo".to_owned() } else { rng.text() },
            match rng.below(4) {
                0 => String::from_utf8_lossy(&rng.bytes(100)).into_owned(),
                1 => json!({"jsonrpc": "2.0", "id": rng.json(0), "method": rng.pick(&METHODS), "params": rng.json(2)}).to_string(),
                2 => json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]).to_string(),
                _ => json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string(),
            },
            if rng.chance(50) { None } else { Some(rng.below(5_000)) },
        ),
    }
}

/// Runs one gRPC case: Ok(()) for a success or a typed refusal.
async fn send_grpc(channel: Channel, case: &GrpcCase) -> Result<(), String> {
    let mut c = ClusterServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let mut e = ExecuteServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let result = match case {
        GrpcCase::Deploy(spec, expected) => c
            .deploy(DeployRequest {
                spec_json: spec.clone(),
                expected_revision: *expected,
            })
            .await
            .map(|_| ()),
        GrpcCase::Scale(name, replicas) => c
            .scale(ScaleRequest {
                name: name.clone(),
                replicas: *replicas,
            })
            .await
            .map(|_| ()),
        GrpcCase::Undeploy(name) => c
            .undeploy(UndeployRequest { name: name.clone() })
            .await
            .map(|_| ()),
        GrpcCase::Get(name, stale) => c
            .get_server(GetServerRequest {
                name: name.clone(),
                stale: *stale,
            })
            .await
            .map(|_| ()),
        GrpcCase::List(stale) => c
            .list_servers(ListServersRequest { stale: *stale })
            .await
            .map(|_| ()),
        GrpcCase::ExecuteTool(server, tool, args, timeout_ms, retry_unsafe) => e
            .execute_tool(ExecuteToolRequest {
                server: server.clone(),
                tool: tool.clone(),
                arguments_json: args.clone(),
                retry_unsafe: *retry_unsafe,
                timeout_ms: *timeout_ms,
            })
            .await
            .map(|_| ()),
        GrpcCase::Execute(server, request, timeout_ms) => e
            .execute(ExecuteRequest {
                server: server.clone(),
                request_json: request.clone(),
                retry_unsafe: false,
                timeout_ms: *timeout_ms,
            })
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => Ok(()),
        Err(status) => match ErrorKind::of(&status) {
            Some(ErrorKind::Internal) | None => Err(format!(
                "{:?} {:?}: {}",
                status.code(),
                ErrorKind::of(&status),
                status.message()
            )),
            Some(_) => Ok(()),
        },
    }
}

fn short(text: &str) -> String {
    let mut s: String = text.chars().take(1500).collect();
    if s.len() < text.len() {
        s.push_str(&format!("… ({} bytes)", text.len()));
    }
    s
}

#[test]
fn generated_http_and_grpc_inputs_get_clear_answers() {
    let seed: u64 = std::env::var("MCPD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        });
    let n = cases();
    eprintln!("input fuzz seed {seed} (MCPD_FUZZ_SEED={seed} replays it), {n} cases per target");
    let mcp_addr = format!("127.0.0.1:{}", free_port());
    let cluster = TestCluster::start(
        1,
        ClusterOptions {
            node_args: BTreeMap::from([(1, vec!["--mcp-addr".to_owned(), mcp_addr.clone()])]),
            ..ClusterOptions::default()
        },
    );
    cluster.wait_leader();
    cluster.deploy_json(
        1,
        &json!({"name": "demo", "command": env!("CARGO_BIN_EXE_mcp-test-server")}),
    );
    cluster.call_eventually(1, "demo", "echo", &json!({"text": "ready"}));
    let grpc_addr = cluster.node(1).addr.clone();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = std::time::Instant::now();

    // HTTP.
    let mut rng = Rng(seed);
    let http_cases: Vec<(Vec<u8>, bool)> = (0..n).map(|_| http_case(&mut rng, &mcp_addr)).collect();
    let mut statuses = BTreeMap::<String, usize>::new();
    let failures: Vec<String> = rt.block_on(async {
        let results = futures::stream::iter(http_cases.iter().enumerate())
            .map(|(i, (raw, broken))| {
                let addr = mcp_addr.clone();
                async move {
                    let answer =
                        tokio::time::timeout(ANSWER_BOUND, send_http(&addr, raw, *broken)).await;
                    (i, *broken, answer)
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        let mut failures = Vec::new();
        for (i, broken, answer) in results {
            let request = || short(&String::from_utf8_lossy(&http_cases[i].0));
            match answer {
                Err(_) => failures.push(format!(
                    "case {i}: no answer in {ANSWER_BOUND:?}: {}",
                    request()
                )),
                Ok(Err(e)) => failures.push(format!("case {i}: {e}: {}", request())),
                Ok(Ok(None)) if broken => *statuses.entry("closed".into()).or_default() += 1,
                Ok(Ok(None)) => failures.push(format!(
                    "case {i}: connection closed without an answer: {}",
                    request()
                )),
                Ok(Ok(Some(code))) if code >= 500 => {
                    failures.push(format!("case {i}: HTTP {code}: {}", request()))
                }
                Ok(Ok(Some(code))) => *statuses.entry(code.to_string()).or_default() += 1,
            }
        }
        failures
    });
    let http_time = started.elapsed();
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {n} HTTP cases failed; first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // gRPC.
    let grpc_cases: Vec<GrpcCase> = (0..n).map(|_| grpc_case(&mut rng)).collect();
    let failures: Vec<String> = rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
            .expect("endpoint")
            .connect_lazy();
        futures::stream::iter(grpc_cases.iter().enumerate())
            .map(|(i, case)| {
                let channel = channel.clone();
                async move {
                    match tokio::time::timeout(ANSWER_BOUND, send_grpc(channel, case)).await {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => {
                            Some(format!("case {i}: {e}: {}", short(&format!("{case:?}"))))
                        }
                        Err(_) => Some(format!(
                            "case {i}: no answer in {ANSWER_BOUND:?}: {}",
                            short(&format!("{case:?}"))
                        )),
                    }
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .filter_map(|f| async move { f })
            .collect::<Vec<_>>()
            .await
    });
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {n} gRPC cases failed; first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Still healthy: status answers and the data plane serves.
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
            .expect("endpoint")
            .connect_lazy();
        let mut c = ClusterServiceClient::new(channel);
        c.status(StatusRequest {})
            .await
            .expect("the node still answers");
    });
    let answer = cluster.call_eventually(1, "demo", "echo", &json!({"text": "still here"}));
    assert_eq!(common::text_of(&answer), "still here");
    // Straight to stderr, past the test harness's capture: CI logs show the counts.
    let _ = writeln!(
        std::io::stderr(),
        "input fuzz: {n} HTTP cases in {:.1}s (statuses {statuses:?}), {n} gRPC cases in {:.1}s",
        http_time.as_secs_f64(),
        (started.elapsed() - http_time).as_secs_f64()
    );
}
