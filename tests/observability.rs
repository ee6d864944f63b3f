//! Observability against the real thing: Debian's `prometheus` and `promtool` (2.42) scrape,
//! lint and federate a running cluster, using the configs and alert rules shipped in
//! `cluster/prometheus/` (the ones `docs/operations.md` shows). Logs are searched for the
//! secrets a run configured.
//!
//! These tests need `prometheus` and `promtool` on the PATH (`apt-get install prometheus`;
//! CI installs it through `.ci/apt-packages.d/prometheus`). Without them they fail, saying so.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, text_of, wait_for, ChildGuard, ClusterOptions, TestCluster};
use serde_json::{json, Value};

/// Where the shipped Prometheus configs live.
fn prometheus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster/prometheus")
}

fn prometheus_file(name: &str) -> String {
    std::fs::read_to_string(prometheus_dir().join(name))
        .unwrap_or_else(|e| panic!("read cluster/prometheus/{name}: {e}"))
}

/// The path of `tool` after checking it runs; panics with the fix when it does not.
fn prometheus_tool(tool: &str) -> &str {
    let runs = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        runs,
        "`{tool}` is not installed or does not run: these tests need Debian's `prometheus` \
         package (apt-get install --no-install-recommends prometheus), which provides \
         `prometheus` and `promtool`"
    );
    tool
}

/// `text` with `from` replaced by `to`; `from` must be there (the shipped file changed
/// otherwise, and the test must follow it).
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "expected {from:?} in a shipped Prometheus config:\n{text}"
    );
    text.replacen(from, to, 1)
}

/// A plain HTTP/1.0 GET (the servers then close the connection after one unchunked body).
fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read {addr}{path}: {e}"))?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response from {addr}{path}: {raw}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line from {addr}{path}: {head}"))?;
    Ok((status, body.to_owned()))
}

/// `GET` that must answer 200.
fn get_ok(addr: &str, path: &str) -> String {
    match http_get(addr, path) {
        Ok((200, body)) => body,
        other => panic!("GET http://{addr}{path}: {other:?}"),
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One series of a query result: its labels and value.
type Sample = (BTreeMap<String, String>, f64);

/// A real Prometheus on a free loopback port with its own config and data dir; killed when
/// dropped.
struct Prometheus {
    addr: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl Prometheus {
    /// Starts Prometheus with `config` as prometheus.yml and `files` beside it, and waits
    /// until it is ready.
    fn start(config: &str, files: &[(&str, String)]) -> Self {
        let binary = prometheus_tool("prometheus");
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write config file");
        }
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let mut prometheus = Prometheus { addr, dir, child };
        let ready = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for("prometheus to be ready", Duration::from_secs(30), || {
                if let Ok(Some(status)) = prometheus.child.try_wait() {
                    panic!("prometheus exited with {status}");
                }
                matches!(http_get(&prometheus.addr, "/-/ready"), Ok((200, _))).then_some(())
            })
        }));
        if ready.is_err() {
            panic!("prometheus did not start:\n{}", prometheus.log());
        }
        prometheus
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The API result of `path` (`data` of a successful answer).
    fn api(&self, path: &str) -> Result<Value, String> {
        let (status, body) = http_get(&self.addr, path)?;
        let answer: Value =
            serde_json::from_str(&body).map_err(|e| format!("{status} {e}: {body}"))?;
        if status != 200 || answer["status"] != "success" {
            return Err(format!("{status}: {body}"));
        }
        Ok(answer["data"].clone())
    }

    /// An instant query: each result's labels and value.
    fn query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", percent_encode(promql)))?;
        let results = data["result"].as_array().cloned().unwrap_or_default();
        Ok(results
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                let value = r["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (labels, value)
            })
            .collect())
    }

    /// Polls `promql` until `check` accepts its result; the panic shows the last result.
    fn wait_query<T>(
        &self,
        what: &str,
        promql: &str,
        timeout: Duration,
        mut check: impl FnMut(&[Sample]) -> Option<T>,
    ) -> T {
        let mut last = Err(String::from("never queried"));
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for(what, timeout, || {
                last = self.query(promql);
                check(last.as_ref().ok()?)
            })
        }));
        match found {
            Ok(value) => value,
            Err(_) => panic!(
                "timed out waiting for {what}: `{promql}` last gave {last:?}\nprometheus log:\n{}",
                self.log()
            ),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped site config (`cluster/prometheus/prometheus.yml`) aimed at the test nodes,
/// scraping every second instead of every 15.
fn site_config(cluster: &TestCluster) -> String {
    let targets: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("'{}'", n.metrics_addr))
        .collect();
    let config = prometheus_file("prometheus.yml");
    let config = replace(&config, "scrape_interval: 15s", "scrape_interval: 1s");
    let config = replace(
        &config,
        "evaluation_interval: 15s",
        "evaluation_interval: 1s",
    );
    replace(
        &config,
        "['mcp-1:9400', 'mcp-2:9400', 'mcp-3:9400']",
        &format!("[{}]", targets.join(", ")),
    )
}

/// A site Prometheus scraping every node of `cluster`, alert rules loaded.
fn site_prometheus(cluster: &TestCluster) -> Prometheus {
    Prometheus::start(
        &site_config(cluster),
        &[("mcp-alerts.yml", prometheus_file("mcp-alerts.yml"))],
    )
}

/// Waits until Prometheus sees every running node up.
fn wait_all_up(prometheus: &Prometheus, cluster: &TestCluster) {
    let expected: BTreeSet<String> = cluster
        .nodes
        .iter()
        .map(|n| n.metrics_addr.clone())
        .collect();
    prometheus.wait_query(
        "every node to be up",
        "up{job=\"mcp\"}",
        Duration::from_secs(30),
        |results| {
            let up: BTreeSet<String> = results
                .iter()
                .filter(|(_, v)| *v == 1.0)
                .map(|(l, _)| l.get("instance").cloned().unwrap_or_default())
                .collect();
            (up == expected).then_some(())
        },
    );
}

/// The `node` labels of `results` whose value is `value`.
fn nodes_with(results: &[Sample], value: f64) -> BTreeSet<String> {
    results
        .iter()
        .filter(|(_, v)| *v == value)
        .filter_map(|(l, _)| l.get("node").cloned())
        .collect()
}

/// `promtool check metrics` on `text`: its complaints (empty when the text is clean).
fn promtool_problems(text: &str) -> String {
    let mut child = Command::new(prometheus_tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool output");
    let problems = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        problems
    } else {
        format!("exit {}: {problems}", out.status)
    }
}

/// Sample lines (no comments) of an exposition.
fn samples(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
}

fn echo_spec(name: &str, replicas: u32) -> Value {
    json!({"name": name, "command": env!("CARGO_BIN_EXE_mcp-test-server"), "replicas": replicas})
}

/// Waits until the cluster runs `replicas` instances of `server`; returns them per node.
fn wait_running(cluster: &TestCluster, server: &str, replicas: usize) -> BTreeMap<u64, usize> {
    wait_for(
        &format!("{replicas} running instances of {server}"),
        Duration::from_secs(60),
        || {
            let per_node = cluster.running_per_node(server);
            (per_node.values().sum::<usize>() == replicas).then_some(per_node)
        },
    )
}

#[test]
fn alert_rules_are_valid_and_fire_when_they_should() {
    let promtool = prometheus_tool("promtool");
    let check = Command::new(promtool)
        .args(["check", "rules", "mcp-alerts.yml"])
        .current_dir(prometheus_dir())
        .output()
        .expect("run promtool");
    assert!(
        check.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // The unit tests make each required alert fire on the series that should trip it, and
    // stay quiet on the ones that should not.
    let test = Command::new(promtool)
        .args(["test", "rules", "mcp-alerts.test.yml"])
        .current_dir(prometheus_dir())
        .output()
        .expect("run promtool");
    assert!(
        test.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    let rules = prometheus_file("mcp-alerts.yml");
    for alert in [
        "McpNoLeader",
        "McpInstanceCrashLoop",
        "McpCircuitBreakerOpen",
        "McpReplicasBelowDesired",
    ] {
        assert!(
            rules.contains(&format!("alert: {alert}")),
            "{alert} missing"
        );
    }
    for config in ["prometheus.yml", "cluster-view.yml", "federate.yml"] {
        let out = Command::new(promtool)
            .args(["check", "config", config])
            .current_dir(prometheus_dir())
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool check config {config}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn operations_guide_shows_the_shipped_configs() {
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
            .expect("docs/operations.md");
    for file in [
        "prometheus.yml",
        "cluster-view.yml",
        "federate.yml",
        "mcp-alerts.yml",
    ] {
        let text = prometheus_file(file);
        assert!(
            guide.contains(&format!("```yaml\n{text}```")),
            "docs/operations.md does not show cluster/prometheus/{file} as it is"
        );
    }
}

#[test]
fn a_real_prometheus_scrapes_and_federates_the_cluster() {
    let mut cluster = TestCluster::start(3, ClusterOptions::default());
    let leader = cluster.wait_leader();
    cluster.deploy_json(1, &echo_spec("echo", 2));
    let per_node = wait_running(&cluster, "echo", 2);
    // Two replicas on three nodes: one node runs none and forwards every call it gets.
    let forwarder = *per_node
        .iter()
        .find(|(_, running)| **running == 0)
        .expect("a node without a replica")
        .0;

    let site = site_prometheus(&cluster);
    wait_all_up(&site, &cluster);

    // Calls through every node while Prometheus scrapes.
    let calls: u32 = 15;
    let mut forwarded: u32 = 0;
    for i in 0..calls {
        let node = u64::from(i % 3) + 1;
        let answer = cluster
            .call(node, "echo", "echo", &json!({"text": format!("call {i}")}))
            .unwrap_or_else(|e| panic!("call {i} through node {node}: {e}"));
        assert_eq!(text_of(&answer), format!("call {i}"));
        if node == forwarder {
            forwarded += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // 1. Every node's exposition, and the cluster view, pass promtool's lint.
    for node in &cluster.nodes {
        for path in ["/metrics", "/metrics/cluster"] {
            let text = get_ok(&node.metrics_addr, path);
            // Requests are counted by the node that ran them, so the forwarding node's own
            // exposition has forwarded requests instead.
            let traffic = if node.id == forwarder && path == "/metrics" {
                "mcp_forwarded_requests_total{"
            } else {
                "mcp_requests_total{"
            };
            assert!(
                text.contains(traffic) && text.contains("mcp_raft_term{"),
                "node {} {path} lacks request or Raft series:\n{text}",
                node.id
            );
            let problems = promtool_problems(&text);
            assert!(
                problems.trim().is_empty(),
                "promtool check metrics on node {} {path}: {problems}",
                node.id
            );
            for line in samples(&text) {
                assert!(line.contains("node=\""), "series without a node: {line}");
            }
        }
    }
    // The cluster view of one node holds every node's series.
    let view = get_ok(&cluster.node(forwarder).metrics_addr, "/metrics/cluster");
    for id in 1..=3 {
        assert!(
            view.contains(&format!("mcp_raft_term{{node=\"{id}\"}}")),
            "cluster view lacks node {id}:\n{view}"
        );
    }

    // 2. Prometheus counted exactly the calls made, each once, by the node that ran it.
    let success = "sum(mcp_requests_total{job=\"mcp\",server=\"echo\",method=\"tools/call\",outcome=\"success\"})";
    site.wait_query(
        "the request counters to reach the calls made",
        success,
        Duration::from_secs(30),
        |r| (r.len() == 1 && r[0].1 == f64::from(calls)).then_some(()),
    );
    let by_node = site
        .query("sum by (node) (mcp_requests_total{job=\"mcp\",server=\"echo\"})")
        .expect("query");
    assert!(
        by_node
            .iter()
            .all(|(l, _)| l.get("node") != Some(&forwarder.to_string())),
        "the forwarding node counted requests it did not run: {by_node:?}"
    );
    site.wait_query(
        "the latency histogram to count every call",
        "sum(mcp_request_duration_seconds_count{job=\"mcp\",server=\"echo\"})",
        Duration::from_secs(10),
        |r| (r.len() == 1 && r[0].1 == f64::from(calls)).then_some(()),
    );
    site.wait_query(
        "the forwarded requests of the node without a replica",
        &format!("sum(mcp_forwarded_requests_total{{job=\"mcp\",node=\"{forwarder}\"}})"),
        Duration::from_secs(10),
        |r| (r.len() == 1 && r[0].1 == f64::from(forwarded)).then_some(()),
    );
    let leaders = site.wait_query(
        "one leader",
        "mcp_raft_is_leader{job=\"mcp\"}",
        Duration::from_secs(10),
        |r| (r.len() == 3).then(|| nodes_with(r, 1.0)),
    );
    assert_eq!(leaders, BTreeSet::from([leader.to_string()]));
    // The state series the catalogue promises, as Prometheus stored them.
    for (what, promql, expected) in [
        ("a commit index on every node", "count(mcp_raft_commit_index{job=\"mcp\"} > 0)", 3.0),
        (
            "no node applied beyond its commit index",
            "count(mcp_raft_commit_index{job=\"mcp\"} >= on (node) mcp_raft_last_applied_index{job=\"mcp\"})",
            3.0,
        ),
        (
            "apply latency observed on every node",
            "count(mcp_raft_apply_duration_seconds_count{job=\"mcp\"} > 0)",
            3.0,
        ),
        (
            "commit latency observed on the leader",
            "count(sum by (node) (mcp_raft_commit_duration_seconds_count{job=\"mcp\"}) > 0)",
            1.0,
        ),
        (
            "three active voters as every node sees them",
            "count(mcp_cluster_nodes{job=\"mcp\",role=\"voter\",state=\"active\"} == 3)",
            3.0,
        ),
        (
            "resident memory of every node",
            "count(process_resident_memory_bytes{job=\"mcp\"} > 0)",
            3.0,
        ),
        (
            "CPU time of every node",
            "count(process_cpu_seconds_total{job=\"mcp\"})",
            3.0,
        ),
        (
            "running echo instances",
            "sum(mcp_instances{job=\"mcp\",server=\"echo\",state=\"running\"})",
            2.0,
        ),
        (
            "a running count for echo from every node, 0 included",
            "count(mcp_server_replicas_running{job=\"mcp\",server=\"echo\"})",
            3.0,
        ),
        (
            "closed breakers of the echo instances",
            "sum(mcp_circuit_breakers{job=\"mcp\",server=\"echo\",state=\"closed\"})",
            2.0,
        ),
        (
            "desired echo replicas",
            "max(mcp_server_replicas_desired{job=\"mcp\",server=\"echo\"})",
            2.0,
        ),
    ] {
        site.wait_query(what, promql, Duration::from_secs(10), |r| {
            (r.len() == 1 && r[0].1 == expected).then_some(())
        });
    }

    // The shipped rules load and evaluate against real series.
    let rules = wait_for("alert rules evaluated", Duration::from_secs(30), || {
        let groups = site.api("/api/v1/rules").ok()?;
        let health: Vec<(String, String)> = groups["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .map(|r| {
                (
                    r["name"].as_str().unwrap_or_default().to_owned(),
                    r["health"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        health.iter().all(|(_, h)| h == "ok").then_some(health)
    });
    let shipped = prometheus_file("mcp-alerts.yml")
        .matches("- alert: ")
        .count();
    assert_eq!(rules.len(), shipped, "{rules:?}");

    // 3. A second Prometheus federates from the first and sees every node's series.
    let federate = prometheus_file("federate.yml");
    let federate = replace(&federate, "scrape_interval: 30s", "scrape_interval: 1s");
    let federate = replace(&federate, "prometheus-site-a:9090", &site.addr);
    let global = Prometheus::start(&federate, &[]);
    let federated = global.wait_query(
        "federated Raft series of all three nodes",
        "mcp_raft_is_leader{job=\"mcp\"}",
        Duration::from_secs(30),
        |r| {
            let nodes: BTreeSet<String> = r
                .iter()
                .filter_map(|(l, _)| l.get("node").cloned())
                .collect();
            (nodes.len() == 3).then(|| r.to_vec())
        },
    );
    for (labels, _) in &federated {
        assert_eq!(
            labels.get("site").map(String::as_str),
            Some("site-a"),
            "{labels:?}"
        );
    }
    assert_eq!(
        nodes_with(&federated, 1.0),
        BTreeSet::from([leader.to_string()])
    );
    global.wait_query(
        "federated request counters",
        success,
        Duration::from_secs(30),
        |r| (r.len() == 1 && r[0].1 == f64::from(calls)).then_some(()),
    );
    global.wait_query(
        "federated up series of the three nodes",
        "up{job=\"mcp\"} == 1",
        Duration::from_secs(30),
        |r| (r.len() == 3).then_some(()),
    );

    // The cluster view: one target, every node's series, and which peers answered.
    let view_config = prometheus_file("cluster-view.yml");
    let view_config = replace(&view_config, "scrape_interval: 15s", "scrape_interval: 1s");
    let view_config = replace(
        &view_config,
        "evaluation_interval: 15s",
        "evaluation_interval: 1s",
    );
    let view_config = replace(
        &view_config,
        "['mcp-1:9400']",
        &format!("['{}']", cluster.node(forwarder).metrics_addr),
    );
    let single = Prometheus::start(
        &view_config,
        &[("mcp-alerts.yml", prometheus_file("mcp-alerts.yml"))],
    );
    let viewed = single.wait_query(
        "every node's Raft series through one target",
        "mcp_raft_is_leader{job=\"mcp\"}",
        Duration::from_secs(30),
        |r| (r.len() == 3).then(|| r.to_vec()),
    );
    assert_eq!(
        nodes_with(&viewed, 1.0),
        BTreeSet::from([leader.to_string()])
    );
    single.wait_query(
        "the view's peers reported up",
        &format!("mcp_cluster_view_peer_up{{job=\"mcp\",node=\"{forwarder}\"}} == 1"),
        Duration::from_secs(30),
        |r| (r.len() == 2).then_some(()),
    );
    single.wait_query(
        "the request counters through the view",
        success,
        Duration::from_secs(30),
        |r| (r.len() == 1 && r[0].1 == f64::from(calls)).then_some(()),
    );
    drop(single);

    // Health endpoints: alive and ready on members; a node not yet added is alive only.
    for node in &cluster.nodes {
        assert_eq!(get_ok(&node.metrics_addr, "/healthz").trim(), "ok");
        assert_eq!(get_ok(&node.metrics_addr, "/readyz").trim(), "ready");
    }
    let spare = format!("127.0.0.1:{}", free_port());
    cluster.add_node(4, &spare, None);
    let spare_metrics = cluster.node(4).metrics_addr.clone();
    wait_for(
        "the spare node to be alive",
        Duration::from_secs(30),
        || matches!(http_get(&spare_metrics, "/healthz"), Ok((200, _))).then_some(()),
    );
    let (status, body) = http_get(&spare_metrics, "/readyz").expect("readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not a cluster member"), "{body}");
}

#[test]
fn killing_the_leader_shows_in_prometheus_within_seconds() {
    let mut cluster = TestCluster::start(3, ClusterOptions::default());
    let old_leader = cluster.wait_leader();
    let site = site_prometheus(&cluster);
    wait_all_up(&site, &cluster);
    let old_term = site.wait_query(
        "the leader's term",
        "mcp_raft_term{job=\"mcp\"} and on (node) mcp_raft_is_leader == 1",
        Duration::from_secs(30),
        |r| match r {
            [(labels, term)] if labels.get("node") == Some(&old_leader.to_string()) => Some(*term),
            _ => None,
        },
    );

    cluster.kill(old_leader);
    let old_addr = cluster.node(old_leader).metrics_addr.clone();
    let new_leader = site.wait_query(
        "another node to report leadership in a higher term",
        "mcp_raft_term{job=\"mcp\"} and on (node) mcp_raft_is_leader == 1",
        Duration::from_secs(30),
        |r| match r {
            [(labels, term)] if *term > old_term => labels.get("node").cloned(),
            _ => None,
        },
    );
    assert_ne!(new_leader, old_leader.to_string());
    site.wait_query(
        "the old leader to be down",
        &format!("up{{job=\"mcp\",instance=\"{old_addr}\"}}"),
        Duration::from_secs(10),
        |r| (r.len() == 1 && r[0].1 == 0.0).then_some(()),
    );
    assert_eq!(cluster.wait_leader().to_string(), new_leader);
    let new_id: u64 = new_leader.parse().expect("node id");

    // Calls need no quorum, so a node that has caught up stays ready without a leader;
    // Prometheus shows the cluster leaderless (what McpNoLeader alerts on).
    let survivor = cluster
        .nodes
        .iter()
        .find(|n| n.is_running() && n.id != new_id)
        .map(|n| n.id)
        .expect("a third node");
    cluster.kill(new_id);
    site.wait_query(
        "no node to report leadership",
        "sum(mcp_raft_is_leader{job=\"mcp\"})",
        Duration::from_secs(30),
        |r| (r.len() == 1 && r[0].1 == 0.0).then_some(()),
    );
    let (status, body) = http_get(&cluster.node(survivor).metrics_addr, "/readyz").expect("readyz");
    assert_eq!((status, body.trim()), (200, "ready"));

    // The election is in the new leader's log, at info.
    let log = std::fs::read_to_string(&cluster.node(new_id).log).expect("log");
    assert!(
        log.lines()
            .any(|l| l.contains("INFO") && l.contains("became Raft leader")),
        "node {new_id} did not log its election:\n{log}"
    );
}

#[test]
fn no_secret_reaches_logs_metrics_or_listings() {
    // Distinct, unlikely strings: any occurrence anywhere is a leak.
    let admin_token = "admintok-7c1f9e2d4b";
    let wrong_token = "wrongtok-5a8e3c0f71";
    let env_value = "envval-93b7d1e4a2";
    let doomed_env = "envval-doomed-0c4f8a";
    let header_value = "hdrval-2e6a9f0c5d";
    let api_key = "apikey-b41d7e8c03";
    let bearer = "bearer-f08c2a6d9e";
    let secrets = [
        admin_token,
        wrong_token,
        env_value,
        doomed_env,
        header_value,
        api_key,
        bearer,
    ];

    let port = free_port();
    let _http_server = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_mcp-test-server"))
            .args(["--transport", "http", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the HTTP test server"),
    );
    let mut cluster = TestCluster::start(
        3,
        ClusterOptions {
            admin_token: Some(admin_token.to_owned()),
            ..ClusterOptions::default()
        },
    );
    cluster.wait_leader();

    cluster.deploy_json(
        1,
        &json!({"name": "envy", "command": env!("CARGO_BIN_EXE_mcp-test-server"),
                "env": {"MCP_TEST_SECRET": env_value}, "replicas": 1}),
    );
    cluster.deploy_json(
        1,
        &json!({"name": "doomed", "command": env!("CARGO_BIN_EXE_mcp-test-server"),
                "args": ["--crash-on-start"], "env": {"DOOMED_SECRET": doomed_env},
                "replicas": 1}),
    );
    cluster.deploy_json(
        2,
        &json!({"name": "remote", "url": format!("http://127.0.0.1:{port}/mcp"),
                "headers": {"X-Team-Secret": header_value},
                "auth": {"type": "api_key", "key": api_key}}),
    );
    let dead_port = free_port();
    cluster.deploy_json(
        3,
        &json!({"name": "unreachable", "url": format!("http://127.0.0.1:{dead_port}/mcp"),
                "auth": {"type": "bearer", "token": bearer}}),
    );
    // A write with the wrong token is refused (and its token must not be logged either).
    let refused = cluster.cli_with_token(2, Some(wrong_token), &["scale", "envy", "2"]);
    assert!(!refused.status.success(), "a wrong token was accepted");

    // The env value reaches the process: the secret is used, not just stored.
    for node in 1..=3 {
        let answer =
            cluster.call_eventually(node, "envy", "env", &json!({"name": "MCP_TEST_SECRET"}));
        assert_eq!(text_of(&answer), env_value);
        let remote = cluster.call_eventually(node, "remote", "echo", &json!({"text": "hi"}));
        assert_eq!(text_of(&remote), "hi");
        assert!(cluster
            .call(node, "unreachable", "echo", &json!({"text": "hi"}))
            .is_err());
    }
    wait_for(
        "the doomed server to crash-loop",
        Duration::from_secs(60),
        || {
            cluster
                .nodes
                .iter()
                .flat_map(|n| cluster.instances(n.id))
                .any(|i| i["server"] == "doomed" && i["state"] == "crash_loop")
                .then_some(())
        },
    );
    // A node restart replays the log holding every spec.
    cluster.kill(3);
    cluster.restart(3);
    cluster.wait_leader();
    cluster.call_eventually(3, "envy", "echo", &json!({"text": "back"}));

    // What a user or operator can see: listings, status, stats, metrics.
    let mut seen = String::new();
    for args in [
        vec!["-o", "json", "ls"],
        vec!["-o", "json", "get", "envy"],
        vec!["-o", "json", "get", "remote"],
        vec!["-o", "json", "get", "unreachable"],
        vec!["-o", "json", "get", "doomed"],
        vec!["-o", "json", "status"],
        vec!["-o", "json", "stats"],
        vec!["-o", "json", "members"],
    ] {
        let out = cluster.cli(1, &args);
        assert!(out.status.success(), "mcpd {args:?} failed");
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    assert!(
        seen.contains("<redacted>"),
        "listings show no redaction:\n{seen}"
    );
    let metrics = get_ok(&cluster.node(1).metrics_addr, "/metrics/cluster");
    assert!(metrics.contains("server=\"remote\""), "{metrics}");
    seen.push_str(&metrics);

    // Every log line of every node. They must show the paths that could leak ran.
    let mut logs = String::new();
    for node in &cluster.nodes {
        logs.push_str(&std::fs::read_to_string(&node.log).expect("node log"));
    }
    for evidence in [
        "spawned stdio server",
        "crash-looping",
        "serving forwarded request",
        "request failed",
        "session established",
    ] {
        assert!(logs.contains(evidence), "no {evidence:?} in the logs");
    }
    for secret in secrets {
        let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "secret {secret} logged: {leaks:#?}");
        assert!(!seen.contains(secret), "secret {secret} shown to users");
    }
}
