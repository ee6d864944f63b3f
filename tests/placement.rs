//! The leader's scheduler against real processes: spreading, scaling, node death and
//! return, and a leader lost in the middle of a scale-up.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{pids_with, text_of, wait_for, ClusterOptions, TestCluster};
use serde_json::json;

const GRACE_MS: &str = "2000";

fn cluster() -> TestCluster {
    cluster_with_grace(GRACE_MS)
}

/// Three nodes that declare a silent node dead after `grace_ms`, with a leader.
fn cluster_with_grace(grace_ms: &str) -> TestCluster {
    let cluster = TestCluster::start(
        3,
        ClusterOptions {
            extra_args: vec!["--node-grace-ms".into(), grace_ms.into()],
            ..ClusterOptions::default()
        },
    );
    cluster.wait_leader();
    cluster
}

fn deploy(cluster: &TestCluster, name: &str, replicas: u32) {
    deploy_via(cluster, 1, name, replicas);
}

fn deploy_via(cluster: &TestCluster, node: u64, name: &str, replicas: u32) {
    cluster.deploy_json(
        node,
        &json!({
            "name": name,
            "command": env!("CARGO_BIN_EXE_mcp-test-server"),
            "args": ["--instance-name", format!("marker-{name}")],
            "replicas": replicas,
        }),
    );
}

fn wait_placement(
    cluster: &TestCluster,
    server: &str,
    what: &str,
    mut ok: impl FnMut(&BTreeMap<u64, usize>) -> bool,
) {
    let mut last = BTreeMap::new();
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(what, Duration::from_secs(60), || {
            last = cluster.running_per_node(server);
            ok(&last).then_some(())
        })
    }));
    if done.is_err() {
        panic!("{what}: last seen {last:?}\n{}", cluster.logs());
    }
}

fn total(counts: &BTreeMap<u64, usize>) -> usize {
    counts.values().sum()
}

#[test]
fn replicas_spread_over_nodes_and_follow_scaling() {
    let cluster = cluster();
    deploy(&cluster, "spread", 3);
    wait_placement(&cluster, "spread", "one replica per node", |c| {
        c.len() == 3 && c.values().all(|n| *n == 1)
    });
    assert_eq!(pids_with("marker-spread").len(), 3);
    // The listing shows desired against running, and where each instance runs.
    let listing = cluster.json(2, &["get", "spread"]);
    assert_eq!(listing["replicas"], 3, "{listing}");
    assert_eq!(listing["running"], 3, "{listing}");
    let hosts: BTreeSet<u64> = listing["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| {
            assert_eq!(i["state"], "running", "{listing}");
            i["node"].as_u64().expect("node id")
        })
        .collect();
    assert_eq!(hosts, BTreeSet::from([1, 2, 3]), "{listing}");

    assert!(cluster.cli(2, &["scale", "spread", "5"]).status.success());
    wait_placement(
        &cluster,
        "spread",
        "five replicas, at most two per node",
        |c| total(c) == 5 && c.values().all(|n| (1..=2).contains(n)),
    );
    wait_for("five processes", Duration::from_secs(30), || {
        (pids_with("marker-spread").len() == 5).then_some(())
    });

    assert!(cluster.cli(3, &["scale", "spread", "1"]).status.success());
    wait_placement(&cluster, "spread", "a single replica", |c| total(c) == 1);
    wait_for("one process", Duration::from_secs(30), || {
        (pids_with("marker-spread").len() == 1).then_some(())
    });
}

#[test]
fn a_dead_nodes_replicas_move_and_its_return_leaves_no_extra_process() {
    let mut cluster = cluster();
    let leader = cluster.wait_leader();
    deploy(&cluster, "mobile", 3);
    wait_placement(&cluster, "mobile", "one replica per node", |c| {
        c.len() == 3 && c.values().all(|n| *n == 1)
    });
    let victim = (1..=3).find(|id| *id != leader).expect("a follower");
    let survivor = (1..=3).find(|id| *id != victim).expect("a survivor");
    cluster.kill(victim);
    let members = cluster.json(survivor, &["members"]);
    let reachable: BTreeMap<u64, bool> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["id"].as_u64().unwrap(), m["reachable"] == true))
        .collect();
    assert_eq!(
        reachable,
        BTreeMap::from([(1, victim != 1), (2, victim != 2), (3, victim != 3)]),
        "{members}"
    );

    // Calls keep working through the survivors while the replica moves.
    let mut calls = 0;
    wait_placement(
        &cluster,
        "mobile",
        "three replicas on the two survivors",
        |c| {
            calls += 1;
            let echoed = cluster
                .call(
                    survivor,
                    "mobile",
                    "echo",
                    &json!({"text": calls.to_string()}),
                )
                .expect("call during re-placement");
            assert_eq!(text_of(&echoed), calls.to_string());
            total(c) == 3
        },
    );

    cluster.restart(victim);
    wait_for(
        "the returning node to rejoin",
        Duration::from_secs(60),
        || {
            cluster
                .status(victim)
                .filter(|s| s["leader_id"].is_u64())
                .map(|_| ())
        },
    );
    wait_placement(
        &cluster,
        "mobile",
        "the returned node to run none of the moved replicas",
        |c| total(c) == 3 && c.get(&victim) == Some(&0),
    );
    wait_for(
        "exactly three replica processes",
        Duration::from_secs(30),
        || (pids_with("marker-mobile").len() == 3).then_some(()),
    );
}

#[test]
fn a_new_leader_finishes_a_scale_up_without_duplicates() {
    let mut cluster = cluster();
    let leader = cluster.wait_leader();
    deploy(&cluster, "grow", 1);
    wait_placement(&cluster, "grow", "one replica", |c| total(c) == 1);
    let other = (1..=3).find(|id| *id != leader).expect("a follower");
    assert!(cluster.cli(other, &["scale", "grow", "4"]).status.success());
    cluster.kill(leader);
    wait_placement(&cluster, "grow", "four replicas on the survivors", |c| {
        c.len() == 2 && total(c) == 4
    });
    let listing = cluster.json(other, &["get", "grow"]);
    let placements = listing["placements"].as_object().expect("placements");
    assert_eq!(placements.len(), 4, "{listing}");
    assert!(
        placements.values().all(|n| n.as_u64() != Some(leader)),
        "{listing}"
    );
    wait_for("four replica processes", Duration::from_secs(30), || {
        (pids_with("marker-grow").len() == 4).then_some(())
    });
}

#[test]
fn draining_a_node_moves_its_replicas_without_a_failed_call() {
    let cluster = cluster();
    deploy(&cluster, "drained", 2);
    wait_placement(&cluster, "drained", "two replicas on two nodes", |c| {
        total(c) == 2 && c.values().all(|n| *n <= 1)
    });
    let before = cluster.running_per_node("drained");
    let drained = *before
        .iter()
        .find(|(_, n)| **n == 1)
        .expect("a hosting node")
        .0;
    let other = (1..=3).find(|id| *id != drained).expect("another node");

    let out = cluster.cli(other, &["drain", &drained.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The drain is acknowledged once committed; the drained node shows it once it has
    // applied the entry too, which may be a moment later.
    wait_for(
        "the drained node to list itself as draining",
        Duration::from_secs(20),
        || {
            let members = cluster.json(drained, &["members"]);
            let marked: Vec<bool> = members["members"]
                .as_array()?
                .iter()
                .filter(|m| m["id"] == drained)
                .map(|m| m["draining"].as_bool().unwrap_or(false))
                .collect();
            (marked == vec![true]).then_some(())
        },
    );

    // Calls through the drained node itself and through another one, all the while the
    // replica moves: not one may fail.
    let mut calls = 0;
    let mut failures = Vec::new();
    wait_placement(
        &cluster,
        "drained",
        "both replicas off the drained node",
        |c| {
            for via in [drained, other] {
                calls += 1;
                let text = calls.to_string();
                match cluster.call(via, "drained", "echo", &json!({ "text": text })) {
                    Ok(echoed) if text_of(&echoed) == text => {}
                    Ok(echoed) => failures.push(format!("via {via}: wrong answer {echoed}")),
                    Err(e) => failures.push(format!("via {via}: {e}")),
                }
            }
            total(c) == 2 && c.get(&drained) == Some(&0)
        },
    );
    assert!(
        failures.is_empty(),
        "{} of {calls} calls failed during the drain: {failures:?}",
        failures.len()
    );
    wait_for("two replica processes", Duration::from_secs(30), || {
        (pids_with("marker-drained").len() == 2).then_some(())
    });

    // Undrained, the node takes new work again.
    assert!(cluster
        .cli(other, &["drain", &drained.to_string(), "--undo"])
        .status
        .success());
    assert!(cluster
        .cli(other, &["scale", "drained", "3"])
        .status
        .success());
    wait_placement(&cluster, "drained", "one replica per node again", |c| {
        c.len() == 3 && c.values().all(|n| *n == 1)
    });
}

#[test]
fn node_tags_constrain_placement() {
    let cluster = TestCluster::start(
        3,
        ClusterOptions {
            extra_args: vec!["--node-grace-ms".into(), GRACE_MS.into()],
            node_args: BTreeMap::from([(3, vec!["--node-tags".into(), "gpu,ssd".into()])]),
            ..ClusterOptions::default()
        },
    );
    cluster.wait_leader();
    cluster.deploy_json(
        1,
        &json!({
            "name": "tagged",
            "command": env!("CARGO_BIN_EXE_mcp-test-server"),
            "args": ["--instance-name", "marker-tagged"],
            "replicas": 2,
            "placement": {"node_tags": ["gpu"]},
        }),
    );
    wait_placement(
        &cluster,
        "tagged",
        "both replicas on the tagged node",
        |c| total(c) == 2 && c.get(&3) == Some(&2),
    );
    let echoed = cluster.call_eventually(1, "tagged", "echo", &json!({"text": "via 1"}));
    assert_eq!(text_of(&echoed), "via 1");
}

#[test]
fn a_call_right_after_deploy_waits_for_the_first_instance() {
    let cluster = cluster();
    // The instance takes 1.5 s to start: every call below arrives while it is starting
    // (or before the leader has even placed it), on the node that will host it and on
    // nodes that will forward.
    cluster.deploy_json(
        2,
        &json!({
            "name": "slow",
            "command": env!("CARGO_BIN_EXE_mcp-test-server"),
            "args": ["--startup-delay-ms", "1500"],
            "replicas": 1,
        }),
    );
    for node in [3, 1, 2] {
        let response = cluster
            .call(node, "slow", "echo", &json!({"text": "first"}))
            .unwrap_or_else(|e| panic!("call through node {node} failed: {e}"));
        assert_eq!(text_of(&response), "first", "{response}");
    }
}

#[test]
fn a_server_deployed_just_after_a_node_died_is_called_at_once() {
    // A grace period longer than the test: the dead node is never declared dead, so only
    // its silence in the scheduler's probes keeps new instances off it.
    let mut cluster = cluster_with_grace("120000");
    let leader = cluster.wait_leader();
    let victim = (1..=3).find(|id| *id != leader).expect("a follower");
    let survivor = (1..=3)
        .find(|id| *id != leader && *id != victim)
        .expect("another follower");
    cluster.kill(victim);
    // Three single-replica servers on three nodes with no instances: without the rule,
    // the least loaded node (the dead one) gets one of them.
    for i in 0..3 {
        let name = format!("fresh{i}");
        deploy_via(&cluster, leader, &name, 1);
        let echoed = cluster
            .call(survivor, &name, "echo", &json!({"text": name}))
            .unwrap_or_else(|e| panic!("call to {name} right after its deploy: {e}"));
        assert_eq!(text_of(&echoed), name);
    }
    let on_survivors: usize = (0..3)
        .map(|i| total(&cluster.running_per_node(&format!("fresh{i}"))))
        .sum();
    assert_eq!(on_survivors, 3, "every new instance runs on a live node");
}

#[test]
fn a_call_to_a_server_that_cannot_start_fails_with_its_crash_loop_reason() {
    let cluster = cluster();
    cluster.deploy_json(
        1,
        &json!({
            "name": "broken",
            "command": env!("CARGO_BIN_EXE_mcp-test-server"),
            "args": ["--crash-on-start"],
            "replicas": 1,
        }),
    );
    let error = cluster
        .call(1, "broken", "echo", &json!({"text": "x"}))
        .expect_err("a server that exits at start cannot answer");
    assert!(error.contains("crash_loop"), "{error}");
}
