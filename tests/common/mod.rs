//! Test harness: real `mcpd node` processes on loopback, driven through the real CLI.
#![allow(dead_code)]

pub mod history;
pub mod http;
pub mod netproxy;
pub mod python;
pub mod rng;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Path of the `mcpd` binary built for this test run.
pub fn mcpd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcpd")
}

/// A free loopback port (the OS picks it; we release it right away).
///
/// The port is free when this returns, not reserved: the OS may hand it out again once the
/// probe socket closes, and tests of one binary run in parallel. So a port is never given
/// twice in this process; otherwise two nodes of concurrent tests could be told the same one.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Polls `f` until it returns Some, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One node of a test cluster.
pub struct TestNode {
    pub id: u64,
    pub addr: String,
    /// Where the node serves /metrics, /healthz and /readyz.
    pub metrics_addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl TestNode {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The node process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// Options for a test cluster.
#[derive(Clone, Default)]
pub struct ClusterOptions {
    pub admin_token: Option<String>,
    pub extra_args: Vec<String>,
    /// Extra flags for one node only (given again when it restarts).
    pub node_args: BTreeMap<u64, Vec<String>>,
    /// Extra environment variables of every node process.
    pub env: BTreeMap<String, String>,
    /// The address a node advertises to its peers when it is not the one it binds (a
    /// fault-injecting proxy in front of it, say).
    pub advertise: BTreeMap<u64, String>,
}

/// A set of `mcpd node` processes; every process is killed when it is dropped.
pub struct TestCluster {
    pub nodes: Vec<TestNode>,
    pub dir: tempfile::TempDir,
    pub options: ClusterOptions,
}

impl TestCluster {
    /// Starts `n` founding nodes with ids 1..=n.
    pub fn start(n: u64, options: ClusterOptions) -> Self {
        let addrs: Vec<(u64, String)> = (1..=n)
            .map(|id| (id, format!("127.0.0.1:{}", free_port())))
            .collect();
        Self::start_at(addrs, options)
    }

    /// Starts founding nodes listening on the given (id, address) pairs; each advertises
    /// `options.advertise[id]` if given, else its listen address.
    pub fn start_at(addrs: Vec<(u64, String)>, options: ClusterOptions) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cluster = TestCluster {
            nodes: Vec::new(),
            dir,
            options,
        };
        let initial = addrs
            .iter()
            .map(|(id, addr)| {
                let advertised = cluster.options.advertise.get(id).unwrap_or(addr);
                format!("{id}={advertised}")
            })
            .collect::<Vec<_>>()
            .join(",");
        for (id, addr) in addrs {
            cluster.add_node(id, &addr, Some(&initial));
        }
        cluster
    }

    /// Starts a new node process; `initial` is the `--initial-cluster` value, if any.
    pub fn add_node(&mut self, id: u64, addr: &str, initial: Option<&str>) {
        let data_dir = self.dir.path().join(format!("node-{id}"));
        let log = self.dir.path().join(format!("node-{id}.log"));
        let mut args = vec![
            "node".to_owned(),
            "--id".to_owned(),
            id.to_string(),
            "--grpc-addr".to_owned(),
            addr.to_owned(),
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
        ];
        if let Some(advertised) = self.options.advertise.get(&id) {
            args.push("--advertise-addr".to_owned());
            args.push(advertised.clone());
        }
        if let Some(initial) = initial {
            args.push("--initial-cluster".to_owned());
            args.push(initial.to_owned());
        }
        let metrics_addr = format!("127.0.0.1:{}", free_port());
        args.push("--metrics-addr".to_owned());
        args.push(metrics_addr.clone());
        args.extend(self.options.node_args.get(&id).cloned().unwrap_or_default());
        let mut node = TestNode {
            id,
            addr: addr.to_owned(),
            metrics_addr,
            data_dir,
            log,
            child: None,
        };
        node.child = Some(self.spawn(&args, &node.log));
        self.nodes.push(node);
    }

    fn spawn(&self, args: &[String], log: &Path) -> Child {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open node log");
        let mut cmd = Command::new(mcpd_bin());
        cmd.args(args)
            .args([
                "--leader-election-timeout-ms",
                "400",
                "--heartbeat-interval-ms",
                "100",
            ])
            .args(&self.options.extra_args)
            .env("RUST_LOG", "info")
            .env_remove("MCPD_ADMIN_TOKEN")
            .envs(&self.options.env)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log fd"))
            .stderr(log_file);
        if let Some(token) = &self.options.admin_token {
            cmd.env("MCPD_ADMIN_TOKEN", token);
        }
        cmd.spawn().expect("spawn mcpd node")
    }

    pub fn node(&self, id: u64) -> &TestNode {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    fn node_mut(&mut self, id: u64) -> &mut TestNode {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    /// `kill -9` a node.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.node_mut(id).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (a `kill` signal name such as STOP, CONT or TERM) to a running node.
    pub fn signal(&self, id: u64, signal: &str) -> bool {
        self.node(id).pid().is_some_and(|pid| {
            Command::new("kill")
                .args([format!("-{signal}"), pid.to_string()])
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// Stops a node with SIGTERM and waits up to `grace` for it to exit (then kill -9).
    pub fn terminate(&mut self, id: u64, grace: Duration) {
        self.signal(id, "TERM");
        let deadline = Instant::now() + grace;
        if let Some(child) = self.node_mut(id).child.as_mut() {
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.kill(id);
    }

    /// Restarts a killed node with nothing but its data dir.
    pub fn restart(&mut self, id: u64) {
        let node = self.node(id);
        // Only the data dir: the node's identity comes from it. The metrics address is not
        // part of the identity, so it is given again.
        let mut args = vec![
            "node".to_owned(),
            "--data-dir".to_owned(),
            node.data_dir.display().to_string(),
            "--metrics-addr".to_owned(),
            node.metrics_addr.clone(),
        ];
        args.extend(self.options.node_args.get(&id).cloned().unwrap_or_default());
        let child = self.spawn(&args, &node.log.clone());
        self.node_mut(id).child = Some(child);
    }

    /// Runs an `mcpd` client command against node `id`.
    pub fn cli(&self, id: u64, args: &[&str]) -> Output {
        self.cli_with_token(id, self.options.admin_token.as_deref(), args)
    }

    pub fn cli_with_token(&self, id: u64, token: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = Command::new(mcpd_bin());
        cmd.arg("--endpoint")
            .arg(&self.node(id).addr)
            .args(args)
            .env_remove("MCPD_ADMIN_TOKEN")
            .stdin(Stdio::null());
        if let Some(token) = token {
            cmd.env("MCPD_ADMIN_TOKEN", token);
        }
        cmd.output().expect("run mcpd")
    }

    /// Runs a client command with `-o json` and returns its parsed output, or None if it failed.
    pub fn try_json(&self, id: u64, args: &[&str]) -> Option<Value> {
        let mut full = vec!["-o", "json"];
        full.extend_from_slice(args);
        let out = self.cli(id, &full);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Like `try_json`, but the command must succeed.
    pub fn json(&self, id: u64, args: &[&str]) -> Value {
        let mut full = vec!["-o", "json"];
        full.extend_from_slice(args);
        let out = self.cli(id, &full);
        assert!(
            out.status.success(),
            "mcpd {args:?} on node {id} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        serde_json::from_slice(&out.stdout).expect("json output")
    }

    /// Deploys a spec (JSON text) through node `id`.
    pub fn deploy(&self, id: u64, spec: &str) -> Output {
        let path = self.dir.path().join(format!("spec-{}.json", free_port()));
        std::fs::write(&path, spec).expect("write spec");
        self.cli(
            id,
            &[
                "-o",
                "json",
                "deploy",
                "-f",
                path.to_str().expect("utf8 path"),
            ],
        )
    }

    /// Status of node `id`, if it answers.
    pub fn status(&self, id: u64) -> Option<Value> {
        self.try_json(id, &["status"])
    }

    /// Waits until the running nodes agree on one leader and returns its id.
    pub fn wait_leader(&self) -> u64 {
        let mut seen = Vec::new();
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for("a leader", Duration::from_secs(60), || {
                seen = self
                    .nodes
                    .iter()
                    .filter(|n| n.is_running())
                    .map(|n| {
                        (
                            n.id,
                            self.status(n.id)
                                .map(|s| (s["leader_id"].clone(), s["role"].clone())),
                        )
                    })
                    .collect();
                let mut leader = None;
                for (_, status) in &seen {
                    let l = status.as_ref()?.0.as_u64()?;
                    if leader.is_some_and(|prev| prev != l) {
                        return None;
                    }
                    leader = Some(l);
                }
                let l = leader?;
                // The leader must itself be running and say so.
                let role = seen.iter().find(|(id, _)| *id == l)?.1.as_ref()?.1.clone();
                (role == "leader").then_some(l)
            })
        }));
        match found {
            Ok(leader) => leader,
            Err(_) => panic!("no agreed leader; last statuses {seen:?}\n{}", self.logs()),
        }
    }

    /// Waits until every running node reports the same revision, at least `revision`
    /// (the leader may add its own changes, such as node records, after a restart).
    pub fn wait_converged(&self, revision: u64) -> u64 {
        wait_for(
            &format!("running nodes to converge at revision >= {revision}"),
            Duration::from_secs(30),
            || {
                let mut seen = None;
                for node in self.nodes.iter().filter(|n| n.is_running()) {
                    let r = self.status(node.id)?["revision"].as_u64()?;
                    if r < revision || seen.is_some_and(|s| s != r) {
                        return None;
                    }
                    seen = Some(r);
                }
                seen
            },
        )
    }

    /// Waits until node `id` has applied at least `revision`.
    pub fn wait_revision(&self, id: u64, revision: u64) {
        wait_for(
            &format!("node {id} to reach revision {revision}"),
            Duration::from_secs(30),
            || {
                let s = self.status(id)?;
                (s["revision"].as_u64()? >= revision).then_some(())
            },
        )
    }

    /// All node logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for node in &self.nodes {
            let text = std::fs::read_to_string(&node.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            all.push_str(&format!("--- node {} log (last 40 lines) ---\n", node.id));
            for line in tail.into_iter().rev() {
                all.push_str(line);
                all.push('\n');
            }
        }
        all
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "test cluster dir: {}\n{}",
                self.dir.path().display(),
                self.logs()
            );
            if std::env::var_os("MCPD_TEST_KEEP").is_some() {
                let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
                let _ = kept.keep();
            }
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A child process killed when dropped (test servers outside the cluster).
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl TestCluster {
    /// Deploys a spec given as a JSON value; panics if refused.
    pub fn deploy_json(&self, id: u64, spec: &serde_json::Value) -> Value {
        let out = self.deploy(id, &spec.to_string());
        assert!(
            out.status.success(),
            "deploy {spec} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    }

    /// `mcpd call` through node `id`: the JSON-RPC response, or the error text.
    pub fn call(
        &self,
        id: u64,
        server: &str,
        tool: &str,
        args: &serde_json::Value,
    ) -> Result<Value, String> {
        let out = self.cli(id, &["-o", "json", "call", server, tool, &args.to_string()]);
        if out.status.success() {
            serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Waits until a tool call through node `id` succeeds, and returns its response.
    pub fn call_eventually(
        &self,
        id: u64,
        server: &str,
        tool: &str,
        args: &serde_json::Value,
    ) -> Value {
        let mut last = String::new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for(
                &format!("{server}/{tool} to answer on node {id}"),
                Duration::from_secs(60),
                || match self.call(id, server, tool, args) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        last = e;
                        None
                    }
                },
            )
        }));
        match result {
            Ok(v) => v,
            Err(_) => panic!(
                "{server}/{tool} never answered on node {id}; last error: {last}\n{}",
                self.logs()
            ),
        }
    }

    /// Running instances of `server` on each running node.
    pub fn running_per_node(&self, server: &str) -> BTreeMap<u64, usize> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| {
                let running = self
                    .instances(n.id)
                    .iter()
                    .filter(|i| i["server"] == server && i["state"] == "running")
                    .count();
                (n.id, running)
            })
            .collect()
    }

    /// The `mcpd stats` entry of `server` on node `id`.
    pub fn server_stats(&self, id: u64, server: &str) -> Value {
        let stats = self.json(id, &["stats"]);
        stats["servers"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["server"] == server))
            .cloned()
            .unwrap_or_else(|| panic!("node {id} has no stats for {server}: {stats}"))
    }

    /// The instances node `id` reports.
    pub fn instances(&self, id: u64) -> Vec<Value> {
        self.status(id)
            .and_then(|s| s["instances"].as_array().cloned())
            .unwrap_or_default()
    }
}

/// The tool names of a `tools/list` response.
pub fn tool_names(response: &Value) -> Vec<String> {
    response["result"]["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The text of the first content item of a tools/call response.
pub fn text_of(response: &Value) -> String {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Pids of processes whose command line contains `marker`.
pub fn pids_with(marker: &str) -> Vec<u32> {
    proc_entries()
        .filter(|(_, cmdline, _)| cmdline.contains(marker))
        .map(|(pid, _, _)| pid)
        .collect()
}

/// Zombie children of `parent` (exited but never reaped).
pub fn zombies_of(parent: u32) -> Vec<u32> {
    proc_entries()
        .filter(|(_, _, stat)| {
            // stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
            let mut fields = stat.rsplit(')').next().unwrap_or("").split_whitespace();
            fields.next() == Some("Z") && fields.next() == Some(parent.to_string().as_str())
        })
        .map(|(pid, _, _)| pid)
        .collect()
}

fn proc_entries() -> impl Iterator<Item = (u32, String, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            Some((pid, cmdline, stat))
        })
}

/// A valid stdio spec with no replicas: registry tests need no running processes.
pub fn stdio_spec(name: &str) -> String {
    serde_json::json!({"name": name, "transport": "stdio", "command": "python3", "args": ["-m", "mcp_server_time"], "replicas": 0}).to_string()
}
