//! The nemesis suite: concurrent clients deploy, compare-and-set, scale, undeploy and read
//! (linearizably) through random nodes of a 3-node cluster while a nemesis kills (-9) the
//! leader, a follower or two nodes, pauses nodes with SIGSTOP, restarts them, and cuts the
//! network (the leader alone in a minority, a follower alone, one direction only, and
//! flapping) through a fault-injecting proxy in front of every node's peer port
//! (tests/common/netproxy.rs). Every operation goes into a history that
//! tests/common/history.rs checks for linearizability per key, lost writes, phantoms,
//! stale reads, divergence after healing and data-plane continuity.
//!
//! CI runs a fixed number of faults (about two minutes). A longer run:
//! `MCPD_NEMESIS_SECS=600 cargo test --release --test nemesis -- --nocapture`.
//! The seed is printed; `MCPD_NEMESIS_SEED=<n>` replays the same choices (the timing of a
//! real cluster still varies).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::history::{DataCall, History, NodeState, Op, Outcome, Value};
use common::netproxy::{Cuts, NetProxy};
use common::rng::Rng;
use common::{free_port, ChildGuard, ClusterOptions, TestCluster};
use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
use mcp_proto::cluster::{
    DeployRequest, GetServerRequest, ListServersRequest, ScaleRequest, ServerInfo, StatusRequest,
    UndeployRequest,
};
use mcp_proto::contract::ErrorKind;
use mcp_proto::execute::execute_service_client::ExecuteServiceClient;
use mcp_proto::execute::ExecuteToolRequest;
use serde_json::{json, Value as Json};
use tonic::transport::{Channel, Endpoint};

/// Faults in the bounded (CI) run.
const CI_FAULTS: usize = 24;
/// How long a client waits for one operation before calling its outcome unknown.
const OP_TIMEOUT: Duration = Duration::from_secs(6);
/// Concurrent registry clients.
const CLIENTS: usize = 4;
/// Operations per generation of keys: keys are retired after this many operations so
/// that each key's history stays short enough to check exhaustively.
const OPS_PER_GENERATION: u64 = 150;
const KEYS_PER_GENERATION: u64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillLeader,
    KillFollower,
    KillTwo,
    PauseLeader,
    PauseFollower,
    Restart,
    /// Majority/minority with the leader alone in the minority.
    IsolateLeader,
    /// Majority/minority with a follower alone in the minority.
    IsolateFollower,
    /// The leader's outgoing connections are cut; incoming ones still work.
    LeaderCannotSend,
    /// The followers' connections to the leader are cut; the leader's still work.
    LeaderCannotHear,
    /// The leader is isolated and healed again several times in quick succession.
    Flapping,
}

const ALL_FAULTS: [Fault; 11] = [
    Fault::KillLeader,
    Fault::KillFollower,
    Fault::KillTwo,
    Fault::PauseLeader,
    Fault::PauseFollower,
    Fault::Restart,
    Fault::IsolateLeader,
    Fault::IsolateFollower,
    Fault::LeaderCannotSend,
    Fault::LeaderCannotHear,
    Fault::Flapping,
];

fn lazy_channel(addr: &str) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy()
}

/// The value a spec carries: its marker (description) and replica count.
fn value_of(info: &ServerInfo) -> Value {
    let spec: Json = serde_json::from_str(&info.spec_json).unwrap_or_default();
    Value {
        marker: spec["description"].as_str().unwrap_or_default().to_owned(),
        replicas: info.replicas,
    }
}

/// A spec that no node may run (placement allows only a node that does not exist), so
/// registry churn starts no processes.
fn register_spec(key: &str, value: &Value, command: &str) -> String {
    json!({
        "name": key,
        "command": command,
        "replicas": value.replicas,
        "description": value.marker,
        "placement": {"allowed_nodes": [99]},
    })
    .to_string()
}

/// What a failed registry call tells about its effect.
fn failure(status: &tonic::Status) -> Outcome {
    match ErrorKind::of(status) {
        Some(ErrorKind::NotFound) => Outcome::NotFound,
        Some(ErrorKind::RevisionMismatch) => {
            let actual = status
                .message()
                .split("is at revision ")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok());
            match actual {
                Some(actual) => Outcome::RevisionMismatch { actual },
                None => Outcome::Refused(status.message().to_owned()),
            }
        }
        Some(ErrorKind::InvalidSpec) | Some(ErrorKind::InvalidArgument) => {
            Outcome::Refused(status.message().to_owned())
        }
        kind => Outcome::Unknown(format!(
            "{}: {}",
            kind.map_or("transport".to_owned(), |k| format!("{k:?}")),
            status.message().chars().take(80).collect::<String>()
        )),
    }
}

struct Shared {
    history: History,
    nodes: Vec<(u64, Channel)>,
    stop: AtomicBool,
    ops: AtomicU64,
    command: String,
    /// Node id -> its current process (for the soak's RSS and fd samples).
    pids: std::sync::Mutex<BTreeMap<u64, u32>>,
}

impl Shared {
    fn keys(&self) -> Vec<String> {
        let generation = self.ops.load(Ordering::Relaxed) / OPS_PER_GENERATION;
        (0..KEYS_PER_GENERATION)
            .map(|i| format!("g{generation}-k{i}"))
            .collect()
    }
}

/// One registry client: random operations on the current keys through random nodes.
async fn client(shared: Arc<Shared>, id: usize, seed: u64) {
    let mut rng = Rng(seed ^ (id as u64).wrapping_mul(0x1234_5678_9ABC_DEF1));
    // The last revision this client saw per key, for its compare-and-sets.
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut counter = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        shared.ops.fetch_add(1, Ordering::Relaxed);
        let key = rng.pick(&shared.keys());
        let (node, channel) = rng.pick(&shared.nodes);
        let mut c = ClusterServiceClient::new(channel);
        counter += 1;
        let marker = format!("c{id}-{counter}");
        let roll = rng.below(100);
        let (op, outcome) = if roll < 37 {
            let op = Op::Read {
                key: key.clone(),
                last: false,
            };
            let h = shared.history.invoke(id, node, op.clone());
            let reply = tokio::time::timeout(
                OP_TIMEOUT,
                c.get_server(GetServerRequest {
                    name: key.clone(),
                    stale: false,
                }),
            )
            .await;
            let outcome = match reply {
                Ok(Ok(info)) => {
                    let info = info.into_inner();
                    seen.insert(key.clone(), info.mod_revision);
                    Outcome::Read(Some((value_of(&info), info.mod_revision)))
                }
                Ok(Err(status)) => match failure(&status) {
                    Outcome::NotFound => {
                        seen.insert(key.clone(), 0);
                        Outcome::Read(None)
                    }
                    Outcome::Refused(e) | Outcome::Unknown(e) => Outcome::Unknown(e),
                    other => Outcome::Unknown(format!("{other}")),
                },
                Err(_) => Outcome::Unknown("client timeout".into()),
            };
            (h, outcome)
        } else if roll < 77 {
            // A plain deploy, or a compare-and-set on the last revision seen.
            let value = Value {
                marker: marker.clone(),
                replicas: rng.below(3) as u32,
            };
            let expected = if roll < 52 {
                None
            } else {
                Some(seen.get(&key).copied().unwrap_or(0))
            };
            let op = Op::Deploy {
                key: key.clone(),
                value: value.clone(),
                expected,
            };
            let h = shared.history.invoke(id, node, op.clone());
            let reply = tokio::time::timeout(
                OP_TIMEOUT,
                c.deploy(DeployRequest {
                    spec_json: register_spec(&key, &value, &shared.command),
                    expected_revision: expected,
                }),
            )
            .await;
            let outcome = match reply {
                Ok(Ok(r)) => {
                    let revision = r.into_inner().revision;
                    seen.insert(key.clone(), revision);
                    Outcome::Written { revision }
                }
                Ok(Err(status)) => failure(&status),
                Err(_) => Outcome::Unknown("client timeout".into()),
            };
            if let Outcome::RevisionMismatch { actual } = outcome {
                seen.insert(key.clone(), actual);
            }
            (h, outcome)
        } else if roll < 92 {
            let replicas = rng.below(3) as u32;
            let op = Op::Scale {
                key: key.clone(),
                replicas,
            };
            let h = shared.history.invoke(id, node, op.clone());
            let reply = tokio::time::timeout(
                OP_TIMEOUT,
                c.scale(ScaleRequest {
                    name: key.clone(),
                    replicas,
                }),
            )
            .await;
            let outcome = match reply {
                Ok(Ok(r)) => Outcome::Written {
                    revision: r.into_inner().revision,
                },
                Ok(Err(status)) => failure(&status),
                Err(_) => Outcome::Unknown("client timeout".into()),
            };
            (h, outcome)
        } else {
            let op = Op::Undeploy { key: key.clone() };
            let h = shared.history.invoke(id, node, op.clone());
            let reply = tokio::time::timeout(
                OP_TIMEOUT,
                c.undeploy(UndeployRequest { name: key.clone() }),
            )
            .await;
            let outcome = match reply {
                Ok(Ok(r)) => Outcome::Written {
                    revision: r.into_inner().revision,
                },
                Ok(Err(status)) => failure(&status),
                Err(_) => Outcome::Unknown("client timeout".into()),
            };
            (h, outcome)
        };
        shared.history.complete(op, outcome);
        tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
    }
}

/// One data-plane prober per node: a tool call through that node every 150 ms.
async fn prober(shared: Arc<Shared>, node: u64, channel: Channel, stop: Arc<AtomicBool>) {
    let mut c = ExecuteServiceClient::new(channel);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let text = format!("n{node}-{n}");
        let invoke = shared.history.now();
        let reply = tokio::time::timeout(
            Duration::from_secs(10),
            c.execute_tool(ExecuteToolRequest {
                server: "dp".into(),
                tool: "echo".into(),
                arguments_json: json!({"text": text}).to_string(),
                timeout_ms: Some(8_000),
                ..Default::default()
            }),
        )
        .await;
        let error = match reply {
            Err(_) => Some("client timeout".to_owned()),
            Ok(Err(status)) => Some(format!(
                "{:?}: {}",
                ErrorKind::of(&status),
                status.message()
            )),
            Ok(Ok(r)) => {
                let response: Json =
                    serde_json::from_str(&r.into_inner().response_json).unwrap_or_default();
                let echoed = common::text_of(&response);
                (echoed != text).then(|| format!("wrong answer: {response}"))
            }
        };
        shared.history.data_call(DataCall {
            node,
            invoke,
            complete: shared.history.now(),
            error,
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// The leader the running nodes agree on, asked over gRPC (None while they disagree).
async fn agreed_leader(shared: &Shared, running: &BTreeSet<u64>) -> Option<u64> {
    let mut leader = None;
    for (id, channel) in &shared.nodes {
        if !running.contains(id) {
            continue;
        }
        let mut c = ClusterServiceClient::new(channel.clone());
        let status = tokio::time::timeout(Duration::from_secs(2), c.status(StatusRequest {}))
            .await
            .ok()?
            .ok()?
            .into_inner();
        let l = status.leader_id?;
        if leader.is_some_and(|p| p != l) {
            return None;
        }
        if l == *id && status.role != "leader" {
            return None;
        }
        leader = Some(l);
    }
    leader.filter(|l| running.contains(l))
}

struct Nemesis<'a> {
    rt: &'a tokio::runtime::Runtime,
    cluster: TestCluster,
    proxy: NetProxy,
    shared: Arc<Shared>,
    rng: Rng,
    counts: BTreeMap<Fault, usize>,
    /// Leader isolations after which the majority elected another leader.
    new_leader_while_isolated: usize,
    /// A node never killed or restarted (the soak watches its memory and fds grow).
    kept: Option<u64>,
}

impl Nemesis<'_> {
    fn ids(&self) -> Vec<u64> {
        self.shared.nodes.iter().map(|(id, _)| *id).collect()
    }

    fn running(&self) -> BTreeSet<u64> {
        self.ids().into_iter().collect()
    }

    /// Waits (generously) for an agreed leader among all nodes.
    fn leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(l) = self
                .rt
                .block_on(agreed_leader(&self.shared, &self.running()))
            {
                return l;
            }
            if Instant::now() > deadline {
                panic!(
                    "no agreed leader 90 s after healing\n{}",
                    self.cluster.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn follower(&mut self, leader: u64) -> u64 {
        let others: Vec<u64> = self.ids().into_iter().filter(|i| *i != leader).collect();
        self.rng.pick(&others)
    }

    /// A follower that may be killed (not the kept node).
    fn killable_follower(&mut self, leader: u64) -> u64 {
        let others: Vec<u64> = self
            .ids()
            .into_iter()
            .filter(|i| *i != leader && Some(*i) != self.kept)
            .collect();
        self.rng.pick(&others)
    }

    /// Tells the proxy and the samplers which process node `id` is now.
    fn track(&self, id: u64) {
        let pid = self.cluster.node(id).pid();
        self.proxy.set_pid(id, pid);
        let mut pids = self.shared.pids.lock().unwrap();
        match pid {
            Some(pid) => pids.insert(id, pid),
            None => pids.remove(&id),
        };
    }

    fn note(&self, text: String) {
        eprintln!(
            "nemesis {:>7.3}s {text}",
            self.shared.history.now() as f64 / 1e6
        );
        self.shared.history.note(text);
    }

    fn kill(&mut self, ids: &[u64], what: &str) {
        let from = self.shared.history.now();
        for &id in ids {
            self.cluster.kill(id);
            self.track(id);
        }
        self.note(format!("{what}: kill -9 {ids:?}"));
        std::thread::sleep(self.rng.millis(800, 2500));
        for &id in ids {
            self.cluster.restart(id);
            self.track(id);
        }
        let healed = self.shared.history.now();
        self.note(format!("restarted {ids:?}"));
        for &id in ids {
            self.shared.history.node_fault(id, from, healed, what);
        }
    }

    fn pause(&mut self, id: u64, what: &str) {
        let from = self.shared.history.now();
        self.cluster.signal(id, "STOP");
        self.note(format!("{what}: SIGSTOP {id}"));
        std::thread::sleep(self.rng.millis(800, 2500));
        self.cluster.signal(id, "CONT");
        let healed = self.shared.history.now();
        self.note(format!("SIGCONT {id}"));
        self.shared.history.node_fault(id, from, healed, what);
    }

    fn cut(&mut self, cuts: Cuts, what: &str, hold: Duration) {
        self.note(format!("{what}: cut {cuts:?}"));
        self.proxy.set_cuts(cuts);
        std::thread::sleep(hold);
        self.proxy.heal();
        self.note("healed the network".to_owned());
    }

    fn apply(&mut self, fault: Fault) {
        let leader = self.leader();
        // The kept node is paused instead of killed.
        let fault = match fault {
            Fault::KillLeader if Some(leader) == self.kept => Fault::PauseLeader,
            other => other,
        };
        let others: Vec<u64> = self.ids().into_iter().filter(|i| *i != leader).collect();
        let what = format!("{fault:?}");
        match fault {
            Fault::KillLeader => self.kill(&[leader], &what),
            Fault::KillFollower => {
                let f = self.killable_follower(leader);
                self.kill(&[f], &what)
            }
            Fault::KillTwo => {
                let mut ids = self.ids();
                let spared = match self.kept {
                    Some(kept) => ids.iter().position(|i| *i == kept).unwrap_or(0),
                    None => self.rng.below(ids.len() as u64) as usize,
                };
                ids.remove(spared);
                self.kill(&ids, &what)
            }
            Fault::PauseLeader => self.pause(leader, &what),
            Fault::PauseFollower => {
                let f = self.follower(leader);
                self.pause(f, &what)
            }
            Fault::Restart => {
                let candidates: Vec<u64> = self
                    .ids()
                    .into_iter()
                    .filter(|i| Some(*i) != self.kept)
                    .collect();
                let id = self.rng.pick(&candidates);
                let from = self.shared.history.now();
                self.note(format!("{what}: SIGTERM {id}, then start again"));
                self.cluster.terminate(id, Duration::from_secs(15));
                self.track(id);
                self.cluster.restart(id);
                self.track(id);
                let healed = self.shared.history.now();
                self.shared.history.node_fault(id, from, healed, what);
            }
            Fault::IsolateLeader => {
                let mut cuts = Cuts::new();
                for &o in &others {
                    cuts.insert((leader, o));
                    cuts.insert((o, leader));
                }
                self.note(format!("{what}: leader {leader} alone in a minority"));
                self.proxy.set_cuts(cuts);
                // Hold until the majority has elected another leader (or 15 s), plus a
                // little: writes acknowledged on the old leader's side would show up as
                // lost.
                let majority: BTreeSet<u64> = others.iter().copied().collect();
                let deadline = Instant::now() + Duration::from_secs(15);
                while Instant::now() < deadline {
                    if self
                        .rt
                        .block_on(agreed_leader(&self.shared, &majority))
                        .is_some_and(|l| l != leader)
                    {
                        self.new_leader_while_isolated += 1;
                        self.note("the majority elected a new leader".to_owned());
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                std::thread::sleep(self.rng.millis(300, 1500));
                self.proxy.heal();
                self.note("healed the network".to_owned());
            }
            Fault::IsolateFollower => {
                let f = self.follower(leader);
                let others: Vec<u64> = self.ids().into_iter().filter(|i| *i != f).collect();
                let mut cuts = Cuts::new();
                for o in others {
                    cuts.insert((f, o));
                    cuts.insert((o, f));
                }
                let hold = self.rng.millis(1000, 3000);
                self.cut(cuts, &what, hold)
            }
            Fault::LeaderCannotSend => {
                let cuts = others.iter().map(|&o| (leader, o)).collect();
                let hold = self.rng.millis(1000, 3000);
                self.cut(cuts, &what, hold)
            }
            Fault::LeaderCannotHear => {
                let cuts = others.iter().map(|&o| (o, leader)).collect();
                let hold = self.rng.millis(1000, 3000);
                self.cut(cuts, &what, hold)
            }
            Fault::Flapping => {
                self.note(format!(
                    "{what}: leader {leader} isolated and healed 5 times"
                ));
                for _ in 0..5 {
                    let mut cuts = Cuts::new();
                    for &o in &others {
                        cuts.insert((leader, o));
                        cuts.insert((o, leader));
                    }
                    self.proxy.set_cuts(cuts);
                    std::thread::sleep(self.rng.millis(200, 800));
                    self.proxy.heal();
                    std::thread::sleep(self.rng.millis(200, 800));
                }
                self.note("flapping over".to_owned());
            }
        }
        *self.counts.entry(fault).or_default() += 1;
        // Let the cluster settle so the next fault starts from a known leader.
        let l = self.leader();
        self.note(format!("leader is {l}"));
        std::thread::sleep(self.rng.millis(200, 800));
    }
}

/// Writes `secs,node,pid,rss_kb,fds` lines to `path` every `MCPD_NEMESIS_SAMPLE_SECS`
/// (default 10) until the clients stop.
fn sample(shared: &Shared, path: &str) {
    let every = std::env::var("MCPD_NEMESIS_SAMPLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10u64);
    let mut out = std::fs::File::create(path).expect("samples file");
    let _ = writeln!(out, "secs,node,pid,rss_kb,fds");
    let mut next = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        if Instant::now() >= next {
            next += Duration::from_secs(every);
            let pids = shared.pids.lock().unwrap().clone();
            for (node, pid) in pids {
                let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find(|l| l.starts_with("VmRSS:"))
                            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    });
                let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .map(|d| d.count())
                    .ok();
                if let (Some(rss), Some(fds)) = (rss, fds) {
                    let secs = shared.history.now() / 1_000_000;
                    let _ = writeln!(out, "{secs},{node},{pid},{rss},{fds}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads of every node's registry without confirming leadership, once they agree (or
/// the last answers after a minute: the checker then reports the divergence).
fn final_states(rt: &tokio::runtime::Runtime, shared: &Shared) -> BTreeMap<u64, NodeState> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut states = BTreeMap::new();
        for (id, channel) in &shared.nodes {
            let mut c = ClusterServiceClient::new(channel.clone());
            let listing = rt.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(5),
                    c.list_servers(ListServersRequest { stale: true }),
                )
                .await
            });
            if let Ok(Ok(reply)) = listing {
                let reply = reply.into_inner();
                states.insert(
                    *id,
                    NodeState {
                        revision: reply.revision,
                        servers: reply
                            .servers
                            .iter()
                            .map(|s| (s.name.clone(), (value_of(s), s.mod_revision)))
                            .collect(),
                    },
                );
            }
        }
        let agreed = states.len() == shared.nodes.len()
            && states.values().all(|s| Some(s) == states.values().next());
        if agreed || Instant::now() > deadline {
            return states;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn registry_stays_linearizable_under_kills_pauses_and_partitions() {
    let seed = std::env::var("MCPD_NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(15)
        });
    let long_run: Option<u64> = std::env::var("MCPD_NEMESIS_SECS")
        .ok()
        .and_then(|s| s.parse().ok());
    eprintln!("nemesis seed {seed} (MCPD_NEMESIS_SEED={seed} replays the choices)");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .enable_all()
        .build()
        .expect("runtime");
    let real: BTreeMap<u64, String> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let proxy = rt.block_on(NetProxy::start(&real));
    let cluster = TestCluster::start_at(
        real.clone().into_iter().collect(),
        ClusterOptions {
            advertise: proxy.advertised(),
            ..ClusterOptions::default()
        },
    );
    for id in real.keys() {
        proxy.set_pid(*id, cluster.node(*id).pid());
    }
    cluster.wait_leader();

    // The data plane: a remote HTTP MCP server every node reaches directly.
    let dp_port = free_port();
    let test_server = env!("CARGO_BIN_EXE_mcp-test-server");
    let _dp = ChildGuard(
        std::process::Command::new(test_server)
            .args(["--transport", "http", "--port", &dp_port.to_string()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the data-plane server"),
    );
    cluster.deploy_json(
        1,
        &json!({"name": "dp", "transport": "http", "url": format!("http://127.0.0.1:{dp_port}/mcp")}),
    );
    for id in real.keys() {
        cluster.call_eventually(*id, "dp", "echo", &json!({"text": "ready"}));
    }

    // Lazy channels spawn their worker on the runtime they are made in.
    let nodes = rt.block_on(async {
        real.iter()
            .map(|(id, addr)| (*id, lazy_channel(addr)))
            .collect::<Vec<_>>()
    });
    let shared = Arc::new(Shared {
        history: History::new(),
        nodes,
        stop: AtomicBool::new(false),
        ops: AtomicU64::new(0),
        command: test_server.to_owned(),
        pids: std::sync::Mutex::new(BTreeMap::new()),
    });
    let probes_stop = Arc::new(AtomicBool::new(false));
    let probes: Vec<_> = shared
        .nodes
        .iter()
        .map(|(id, ch)| rt.spawn(prober(shared.clone(), *id, ch.clone(), probes_stop.clone())))
        .collect();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| rt.spawn(client(shared.clone(), i, seed)))
        .collect();

    let mut nemesis = Nemesis {
        rt: &rt,
        cluster,
        proxy,
        shared: shared.clone(),
        rng: Rng(seed),
        counts: BTreeMap::new(),
        new_leader_while_isolated: 0,
        kept: std::env::var("MCPD_NEMESIS_KEEP_NODE")
            .ok()
            .and_then(|s| s.parse().ok()),
    };
    for id in nemesis.ids() {
        nemesis.track(id);
    }
    // The soak's samples: every node's RSS and open fds, as CSV.
    let sampler = std::env::var("MCPD_NEMESIS_SAMPLES").ok().map(|path| {
        let shared = shared.clone();
        std::thread::spawn(move || sample(&shared, &path))
    });
    let started = Instant::now();
    match long_run {
        None => {
            // Every kind twice, in a seeded order, then random ones up to CI_FAULTS.
            let mut plan: Vec<Fault> = ALL_FAULTS
                .iter()
                .chain(ALL_FAULTS.iter())
                .copied()
                .collect();
            while plan.len() < CI_FAULTS {
                plan.push(nemesis.rng.pick(&ALL_FAULTS));
            }
            for i in (1..plan.len()).rev() {
                let j = nemesis.rng.below(i as u64 + 1) as usize;
                plan.swap(i, j);
            }
            for fault in plan {
                nemesis.apply(fault);
            }
        }
        Some(secs) => {
            while started.elapsed() < Duration::from_secs(secs) {
                let fault = nemesis.rng.pick(&ALL_FAULTS);
                nemesis.apply(fault);
            }
        }
    }
    let fault_phase = started.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(sampler) = sampler {
        sampler.join().expect("sampler");
    }

    // Heal (every fault undoes itself), stop the clients, then read every key once more.
    nemesis.proxy.heal();
    nemesis.leader();
    shared.stop.store(true, Ordering::Relaxed);
    for c in clients {
        rt.block_on(c).expect("client task");
    }
    let keys: BTreeSet<String> = shared
        .history
        .events()
        .iter()
        .map(|e| e.op.key().to_owned())
        .collect();
    for key in &keys {
        let deadline = Instant::now() + Duration::from_secs(60);
        for attempt in 0usize.. {
            let (node, channel) = &shared.nodes[attempt % shared.nodes.len()];
            let mut c = ClusterServiceClient::new(channel.clone());
            let op = Op::Read {
                key: key.clone(),
                last: true,
            };
            let h = shared.history.invoke(99, *node, op);
            let reply = rt.block_on(async {
                tokio::time::timeout(
                    OP_TIMEOUT,
                    c.get_server(GetServerRequest {
                        name: key.clone(),
                        stale: false,
                    }),
                )
                .await
            });
            let outcome = match reply {
                Ok(Ok(info)) => {
                    let info = info.into_inner();
                    Outcome::Read(Some((value_of(&info), info.mod_revision)))
                }
                Ok(Err(status)) if ErrorKind::of(&status) == Some(ErrorKind::NotFound) => {
                    Outcome::Read(None)
                }
                Ok(Err(status)) => Outcome::Unknown(status.message().to_owned()),
                Err(_) => Outcome::Unknown("client timeout".into()),
            };
            let done = matches!(outcome, Outcome::Read(_));
            shared.history.complete(h, outcome);
            if done {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no final read of {key} succeeded within 60 s\n{}",
                nemesis.cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // Data-plane probes run through the final reads, so every node serves after healing.
    std::thread::sleep(Duration::from_secs(1));
    probes_stop.store(true, Ordering::Relaxed);
    for p in probes {
        rt.block_on(p).expect("probe task");
    }
    let finals = final_states(&rt, &shared);

    let check_started = Instant::now();
    let report = shared.history.check(&finals);
    let total: usize = nemesis.counts.values().sum();
    // Straight to stderr, past the test harness's capture: CI logs show the counts.
    let _ = writeln!(
        std::io::stderr(),
        "nemesis summary: seed {seed}; {total} faults of {} kinds in {:.1}s: {:?}; the majority elected a new leader during {} leader isolations; {}; checked {} keys ({} search steps) in {:.2}s",
        nemesis.counts.len(),
        fault_phase.as_secs_f64(),
        nemesis.counts,
        nemesis.new_leader_while_isolated,
        shared.history.summary(),
        report.keys_checked,
        report.search_steps,
        check_started.elapsed().as_secs_f64(),
    );
    if !report.is_ok() {
        // The whole history, for the diagnosis (the report shows only the surroundings).
        let dump = std::env::temp_dir().join(format!("nemesis-history-{seed}.txt"));
        let mut text: Vec<String> = shared
            .history
            .events()
            .iter()
            .map(|e| e.to_string())
            .collect();
        text.extend(
            shared
                .history
                .notes()
                .iter()
                .map(|(t, n)| format!("note {:.3}s {n}", *t as f64 / 1e6)),
        );
        let _ = std::fs::write(&dump, text.join("\n"));
        panic!(
            "seed {seed}: the history has anomalies (whole history in {}):\n{report}\n{}",
            dump.display(),
            nemesis.cluster.logs()
        );
    }
    assert!(total >= 20, "only {total} faults");
    assert!(nemesis.counts.len() >= 4, "only {:?}", nemesis.counts);
    assert!(
        nemesis.counts.contains_key(&Fault::IsolateLeader),
        "the leader was never isolated"
    );
    // The run did real work: writes were acknowledged and reads answered.
    let events = shared.history.events();
    let acked = events
        .iter()
        .filter(|e| matches!(e.outcome, Some(Outcome::Written { .. })))
        .count();
    let read = events
        .iter()
        .filter(|e| matches!(e.outcome, Some(Outcome::Read(Some(_)))))
        .count();
    assert!(
        acked >= 50 && read >= 50,
        "too little load: {acked} writes, {read} reads"
    );
}
