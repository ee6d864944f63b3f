//! Day-2 operations on a real three-node cluster (issue 18): a rolling restart under
//! steady calls and writes through an endpoint list fails nothing; a snapshot saved from
//! a loaded cluster founds an identical new one; a cluster rebuilt from one surviving
//! data dir keeps every acknowledged write.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{free_port, mcpd_bin, stdio_spec, text_of, wait_for, ClusterOptions, TestCluster};
use serde_json::{json, Value};

fn test_server() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-test-server")
}

/// Every node's address, comma-separated, in id order.
fn endpoints(cluster: &TestCluster) -> String {
    cluster
        .nodes
        .iter()
        .map(|n| n.addr.clone())
        .collect::<Vec<_>>()
        .join(",")
}

/// The comma-separated `list` rotated left by `by`, so that successive commands start
/// from different nodes (the one being restarted among them).
fn rotated(list: &str, by: usize) -> String {
    let mut nodes: Vec<&str> = list.split(',').collect();
    let n = nodes.len();
    nodes.rotate_left(by % n);
    nodes.join(",")
}

/// Runs `mcpd --endpoints LIST -o json ARGS`.
fn cli(endpoints: &str, args: &[&str]) -> Output {
    Command::new(mcpd_bin())
        .args(["--endpoints", endpoints, "-o", "json"])
        .args(args)
        .env_remove("MCPD_ADMIN_TOKEN")
        .env_remove("MCPD_ENDPOINT")
        .stdin(Stdio::null())
        .output()
        .expect("run mcpd")
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "mcpd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json output")
}

/// What a load loop saw.
#[derive(Default)]
struct Tally {
    ok: usize,
    failures: Vec<String>,
    /// Names whose deploy was acknowledged.
    acknowledged: Vec<String>,
}

/// Runs `step(i)` in a loop on its own thread until `stop`; each step reports success
/// (with a name to remember) or a failure.
fn load(
    stop: &Arc<AtomicBool>,
    tally: &Arc<Mutex<Tally>>,
    step: impl Fn(usize) -> Result<Option<String>, String> + Send + 'static,
) -> JoinHandle<()> {
    let (stop, tally) = (Arc::clone(stop), Arc::clone(tally));
    std::thread::spawn(move || {
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let outcome = step(i);
            let mut t = tally.lock().expect("tally");
            match outcome {
                Ok(name) => {
                    t.ok += 1;
                    t.acknowledged.extend(name);
                }
                Err(e) => t.failures.push(e),
            }
            drop(t);
            i += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// Instances node `id` runs or is starting (a stopped one is on its way out).
fn instances_on(cluster: &TestCluster, id: u64) -> usize {
    cluster
        .instances(id)
        .iter()
        .filter(|i| i["state"] != "stopped")
        .count()
}

fn server_names(listing: &Value) -> BTreeSet<String> {
    listing["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn rolling_restart_under_load_fails_no_call_and_no_write() {
    let mut cluster = TestCluster::start(3, ClusterOptions::default());
    cluster.wait_leader();
    let list = endpoints(&cluster);
    let spec = json!({"name": "echo", "command": test_server(), "args": ["--instance-name", "marker-rolling"], "replicas": 2});
    json_of(&cli(&list, &["deploy", "-f", &write_spec(&cluster, &spec)]));
    let first = cluster.call_eventually(1, "echo", "echo", &json!({"text": "up"}));
    assert_eq!(text_of(&first), "up");

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(Mutex::new(Tally::default()));
    let writes = Arc::new(Mutex::new(Tally::default()));
    let call_list = list.clone();
    let caller = load(&stop, &calls, move |i| {
        let text = format!("call-{i}");
        let args = json!({ "text": text }).to_string();
        let out = cli(&rotated(&call_list, i), &["call", "echo", "echo", &args]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let reply: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        if text_of(&reply) == text {
            Ok(None)
        } else {
            Err(format!("wrong answer {reply}"))
        }
    });
    let write_list = list.clone();
    let spec_dir = cluster.dir.path().to_owned();
    let writer = load(&stop, &writes, move |i| {
        let name = format!("w-{i}");
        let path = spec_dir.join(format!("{name}.json"));
        std::fs::write(&path, stdio_spec(&name)).map_err(|e| e.to_string())?;
        let out = cli(
            &rotated(&write_list, i),
            &["deploy", "-f", path.to_str().expect("utf8 path")],
        );
        if out.status.success() {
            Ok(Some(name))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });

    // The documented procedure (docs/operations.md, "Rolling restart"), node by node.
    for id in 1..=3u64 {
        json_of(&cli(&list, &["drain", &id.to_string()]));
        wait_for(
            &format!("node {id} to hand its instances over"),
            Duration::from_secs(60),
            || (instances_on(&cluster, id) == 0).then_some(()),
        );
        cluster.terminate(id, Duration::from_secs(30));
        // Let the load run against the remaining two for a while: a third of the commands
        // start from the stopped node.
        std::thread::sleep(Duration::from_secs(2));
        cluster.restart(id);
        wait_for(
            &format!("node {id} to answer again"),
            Duration::from_secs(60),
            || cluster.status(id),
        );
        json_of(&cli(&list, &["drain", &id.to_string(), "--undo"]));
        let leader = cluster.wait_leader();
        let revision = cluster.status(leader).expect("leader status")["revision"]
            .as_u64()
            .expect("revision");
        cluster.wait_converged(revision);
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    caller.join().expect("caller thread");
    writer.join().expect("writer thread");

    let calls = calls.lock().expect("calls");
    let writes = writes.lock().expect("writes");
    eprintln!(
        "rolling restart: {} calls and {} writes succeeded",
        calls.ok, writes.ok
    );
    assert!(
        calls.failures.is_empty(),
        "{} of {} calls failed: {:?}",
        calls.failures.len(),
        calls.ok + calls.failures.len(),
        calls.failures
    );
    assert!(
        writes.failures.is_empty(),
        "{} of {} writes failed: {:?}",
        writes.failures.len(),
        writes.ok + writes.failures.len(),
        writes.failures
    );
    assert!(
        calls.ok > 10 && writes.ok > 10,
        "too little load to mean anything"
    );
    // Every acknowledged write is there, on every node.
    let listed = server_names(&json_of(&cli(&list, &["ls"])));
    for name in &writes.acknowledged {
        assert!(
            listed.contains(name),
            "acknowledged write {name} is missing"
        );
    }
}

fn write_spec(cluster: &TestCluster, spec: &Value) -> String {
    let path = cluster
        .dir
        .path()
        .join(format!("spec-{}.json", free_port()));
    std::fs::write(&path, spec.to_string()).expect("write spec");
    path.display().to_string()
}

/// Runs `mcpd ARGS` with `env` set and no endpoint variables inherited.
fn mcpd_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(mcpd_bin())
        .args(args)
        .env_remove("MCPD_ADMIN_TOKEN")
        .env_remove("MCPD_ENDPOINT")
        .env_remove("MCPD_ENDPOINTS")
        .env_remove("MCPD_CLIENT_CONFIG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run mcpd")
}

#[test]
fn endpoint_lists_come_from_the_flag_the_environment_or_the_client_file() {
    let cluster = TestCluster::start(1, ClusterOptions::default());
    cluster.wait_leader();
    let good = cluster.node(1).addr.clone();
    let dead = format!("127.0.0.1:{}", free_port());
    let list = format!("{dead},{good}");
    let node_of = |out: Output| json_of(&out)["node_id"].as_u64();

    // The dead node comes first every time: each command moves on to the live one.
    let flag = mcpd_env(&["--endpoints", &list, "-o", "json", "status"], &[]);
    assert_eq!(node_of(flag), Some(1));
    let env = mcpd_env(&["-o", "json", "status"], &[("MCPD_ENDPOINTS", &list)]);
    assert_eq!(node_of(env), Some(1));
    let file = cluster.dir.path().join("client.toml");
    std::fs::write(&file, format!("endpoints = [\"{dead}\", \"{good}\"]\n")).expect("toml");
    let file = file.to_str().expect("utf8 path");
    let from_file = mcpd_env(&["--client-config", file, "-o", "json", "status"], &[]);
    assert_eq!(node_of(from_file), Some(1));
    // Writes too.
    let spec = cluster.dir.path().join("listed.json");
    std::fs::write(&spec, stdio_spec("listed")).expect("spec");
    let spec = spec.to_str().expect("utf8 path");
    json_of(&mcpd_env(
        &["--endpoints", &list, "-o", "json", "deploy", "-f", spec],
        &[],
    ));

    // One dead endpoint alone fails at once, naming it.
    let alone = mcpd_env(&["--endpoint", &dead, "status"], &[]);
    assert!(!alone.status.success());
    let err = String::from_utf8_lossy(&alone.stderr);
    assert!(
        err.contains("no node could be reached") && err.contains(&dead),
        "{err}"
    );
    // Both spellings at once is a usage error, whichever came from where.
    let both = mcpd_env(
        &["--endpoint", &good, "status"],
        &[("MCPD_ENDPOINTS", &list)],
    );
    assert!(!both.status.success());
    assert!(String::from_utf8_lossy(&both.stderr).contains("not both"));
    // A file with an unknown key says which.
    std::fs::write(file, "endpoint = \"x\"\n").expect("toml");
    let bad = mcpd_env(&["--client-config", file, "status"], &[]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("endpoint"));
}
