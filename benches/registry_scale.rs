//! Registry scale benchmark: what a registry of 10,000 servers costs a node.
//!
//! Run: `cargo bench --bench registry_scale` (markdown table on stdout; `benches/run.sh`
//! puts it into docs/benchmarks.md). Everything here is in one process, without Raft or
//! disk, so it isolates the registry's own costs:
//!
//! - apply rate: `PutServer` commands applied to the in-memory registry, one by one, as
//!   the state machine does for committed entries;
//! - scheduler pass: one full pass of the leader's placement over every server on three
//!   live nodes (the first pass places every instance; a second pass finds nothing to do,
//!   which is what the leader runs every few seconds in steady state);
//! - snapshot: the serialized state machine (its size, the time to build it and to load it
//!   back, as a follower installing it would);
//! - memory: the heap growth of the process while it holds the registry (allocated bytes
//!   cannot be read without a counting allocator; the anonymous RSS growth is close to it
//!   for a structure this large).
//!
//! The end-to-end apply rate through a 3-node cluster is `benches/deploys.py --deploys
//! 10000`, which also reports each node's RSS afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use mcp_cluster::scheduler::{plan, Fleet};
use mcp_raft::registry::spec::parse_json;
use mcp_raft::registry::NodeRecord;
use mcp_raft::state_machine::AppliedState;
use mcp_raft::{Command, Registry};

const SERVERS: usize = 10_000;

/// Anonymous resident memory of this process, in KiB (Linux).
fn rss_anon_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn spec_json(i: usize) -> String {
    // A realistic stdio spec: a command, arguments, an environment, a label.
    format!(
        r#"{{"name": "server-{i:05}", "command": "/usr/local/bin/mcp-server-{i}",
            "args": ["--port", "{i}", "--verbose"], "env": {{"MODE": "production", "REGION": "eu-{i}"}},
            "replicas": 1}}"#
    )
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn main() {
    let baseline = rss_anon_kib();
    let mut registry = Registry::default();
    for id in 1..=3u64 {
        registry
            .apply(&Command::PutNode {
                node: NodeRecord {
                    id,
                    addr: format!("127.0.0.1:{}", 7400 + id),
                    tags: Vec::new(),
                    draining: false,
                },
            })
            .expect("a node record applies");
    }

    // Each command is built just before it is applied (and only the apply is timed), so
    // the memory measured below is the registry's and not a queue of pending commands.
    let mut apply = Duration::ZERO;
    for i in 0..SERVERS {
        let command = Command::PutServer {
            spec: parse_json(&spec_json(i)).expect("the benchmark's specs are valid"),
            expected_revision: None,
        };
        let started = Instant::now();
        registry.apply(&command).expect("a new server applies");
        apply += started.elapsed();
    }

    let live: Vec<NodeRecord> = registry.nodes().cloned().collect();
    let in_flight = BTreeMap::new();
    let unreachable = BTreeSet::new();
    let fleet = Fleet {
        live: &live,
        unreachable: &unreachable,
        in_flight: &in_flight,
    };
    let pass = |registry: &Registry| {
        let mut load = BTreeMap::new();
        let started = Instant::now();
        let changes: Vec<(String, _)> = registry
            .servers()
            .filter_map(|record| {
                plan(record, fleet, &mut load).map(|c| (record.spec.name.clone(), c))
            })
            .collect();
        (started.elapsed(), changes)
    };
    let (first_pass, changes) = pass(&registry);
    let placed = changes.len();
    for (name, change) in changes {
        registry
            .apply(&Command::Place {
                name,
                assign: change.assign,
                unassign: change.unassign,
            })
            .expect("a placement applies");
    }
    let (steady_pass, nothing) = pass(&registry);
    assert!(
        nothing.is_empty(),
        "a second pass over a placed registry changes nothing"
    );

    let held = rss_anon_kib().saturating_sub(baseline);
    let state = AppliedState {
        registry,
        ..AppliedState::default()
    };
    let started = Instant::now();
    let snapshot = serde_json::to_vec(&state).expect("the state serializes");
    let build = started.elapsed();
    let started = Instant::now();
    let loaded: AppliedState = serde_json::from_slice(&snapshot).expect("the snapshot loads");
    let load = started.elapsed();
    assert_eq!(loaded.registry, state.registry);

    println!("| measure ({SERVERS} servers, 3 nodes) | value |");
    println!("|---|---:|");
    println!(
        "| apply `PutServer` (in memory) | {:.0} commands/s ({} ms in all) |",
        per_second(SERVERS, apply),
        apply.as_millis()
    );
    println!(
        "| scheduler pass placing every server | {} ms ({placed} servers placed) |",
        first_pass.as_millis()
    );
    println!(
        "| scheduler pass, steady state (nothing to do) | {:.1} ms |",
        steady_pass.as_secs_f64() * 1e3
    );
    println!(
        "| snapshot size | {:.1} MiB ({} bytes per server) |",
        snapshot.len() as f64 / (1024.0 * 1024.0),
        snapshot.len() / SERVERS
    );
    println!("| snapshot build (serialize) | {} ms |", build.as_millis());
    println!("| snapshot load (deserialize) | {} ms |", load.as_millis());
    println!(
        "| heap held by the registry (anonymous RSS growth) | {:.1} MiB |",
        held as f64 / 1024.0
    );
}
