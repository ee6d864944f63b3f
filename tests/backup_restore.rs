//! Backup, restore and disaster recovery on real multi-process clusters (issue 18,
//! acceptance 2 and 3): a snapshot saved from a loaded cluster founds a new three-node
//! cluster holding the identical registry at the identical revision; a cluster whose two
//! other members are lost for good is rebuilt from the survivor's data dir and grown back
//! to three without losing an acknowledged write.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, mcpd_bin, stdio_spec, wait_for, ClusterOptions, TestCluster};
use mcp_client::{ClientSettings, ClusterClient};
use serde_json::Value;

fn mcpd(args: &[&str]) -> Output {
    Command::new(mcpd_bin())
        .args(args)
        .env_remove("MCPD_ADMIN_TOKEN")
        .env_remove("MCPD_ENDPOINT")
        .env_remove("MCPD_ENDPOINTS")
        .stdin(Stdio::null())
        .output()
        .expect("run mcpd")
}

fn ok_json(out: Output) -> Value {
    assert!(
        out.status.success(),
        "mcpd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json output")
}

fn endpoints(cluster: &TestCluster) -> String {
    cluster
        .nodes
        .iter()
        .filter(|n| n.is_running())
        .map(|n| n.addr.clone())
        .collect::<Vec<_>>()
        .join(",")
}

/// Deploys `count` registry-only servers named `{prefix}-{i}`, 32 at a time, through a
/// cluster client on every node.
fn load(cluster: &TestCluster, prefix: &str, count: usize) {
    let seeds = cluster.nodes.iter().map(|n| n.addr.clone()).collect();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = ClusterClient::new(ClientSettings {
            seeds,
            admin_token: None,
            failover_window: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        })
        .expect("client");
        let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
        for chunk in names.chunks(32) {
            let deploys = chunk.iter().map(|name| {
                let spec = stdio_spec(name);
                let client = &client;
                async move { client.deploy(&spec).await }
            });
            for result in futures::future::join_all(deploys).await {
                result.expect("deploy");
            }
        }
    });
}

/// Server name -> (create revision, mod revision, spec) of a `ls -o json` listing.
fn registry_view(listing: &Value) -> Vec<(String, Value, Value, Value)> {
    listing["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name").to_owned(),
                s["create_revision"].clone(),
                s["mod_revision"].clone(),
                s["spec"].clone(),
            )
        })
        .collect()
}

#[test]
fn a_saved_snapshot_founds_a_cluster_with_the_identical_registry_and_revision() {
    const SECRET: &str = "pl41ntext-never-in-a-backup";
    let keys = tempfile::tempdir().expect("tempdir");
    let key_file = keys.path().join("secrets.key");
    std::fs::write(&key_file, format!("{}\n", "5e1f".repeat(16))).expect("key");
    let value_file = keys.path().join("value");
    std::fs::write(&value_file, SECRET).expect("value");
    let options = ClusterOptions {
        extra_args: vec![
            "--secrets-key-file".to_owned(),
            key_file.display().to_string(),
        ],
        ..ClusterOptions::default()
    };
    let mut old = TestCluster::start(3, options.clone());
    old.wait_leader();
    load(&old, "svc", 300);
    let set = old.cli(
        1,
        &[
            "secret",
            "set",
            "api-key",
            "--file",
            value_file.to_str().expect("utf8"),
        ],
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let list = endpoints(&old);
    let file = old.dir.path().join("backup.snap");
    let file = file.to_str().expect("utf8 path");
    let saved = ok_json(mcpd(&[
        "--endpoints",
        &list,
        "-o",
        "json",
        "snapshot",
        "save",
        file,
    ]));
    let listing = ok_json(mcpd(&["--endpoints", &list, "-o", "json", "ls"]));
    let revision = saved["revision"].as_u64().expect("revision");
    assert_eq!(saved["server_count"], 300, "{saved}");
    assert_eq!(listing["revision"].as_u64(), Some(revision), "{listing}");
    let status = ok_json(mcpd(&["-o", "json", "snapshot", "status", file]));
    assert_eq!(status["sha256"], saved["sha256"]);
    // Secrets travel as the registry's ciphertext.
    let bytes = std::fs::read(file).expect("read snapshot");
    assert!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "the snapshot holds a secret in the clear"
    );

    // The old cluster is gone; the new one is founded on the same ids and addresses
    // (the usual rebuild on the same hosts), each node from the file.
    let addrs: Vec<(u64, String)> = old.nodes.iter().map(|n| (n.id, n.addr.clone())).collect();
    for id in 1..=3 {
        old.kill(id);
    }
    let initial = addrs
        .iter()
        .map(|(id, addr)| format!("{id}={addr}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut new = TestCluster::start_at(Vec::new(), options);
    for (id, addr) in &addrs {
        let dir = new.dir.path().join(format!("node-{id}"));
        let restored = ok_json(mcpd(&[
            "-o",
            "json",
            "snapshot",
            "restore",
            file,
            "--data-dir",
            dir.to_str().expect("utf8 path"),
            "--id",
            &id.to_string(),
            "--initial-cluster",
            &initial,
        ]));
        assert_eq!(restored["revision"].as_u64(), Some(revision));
        new.add_node(*id, addr, Some(&initial));
    }
    new.wait_leader();
    for id in 1..=3 {
        let status = new.status(id).expect("status");
        assert_eq!(status["revision"].as_u64(), Some(revision), "node {id}");
    }
    let restored = ok_json(mcpd(&["--endpoints", &list, "-o", "json", "ls"]));
    assert_eq!(restored["revision"].as_u64(), Some(revision));
    assert_eq!(registry_view(&restored), registry_view(&listing));

    // Byte for byte: a snapshot of the new cluster holds the same registry.
    let again = new.dir.path().join("again.snap");
    let again = ok_json(mcpd(&[
        "--endpoints",
        &list,
        "-o",
        "json",
        "snapshot",
        "save",
        again.to_str().expect("utf8 path"),
    ]));
    assert_eq!(again["revision"].as_u64(), Some(revision));
    assert_eq!(again["sha256"], saved["sha256"], "{again} vs {saved}");

    // The secret came along, usable with the cluster's key.
    let secrets = new.json(1, &["secret", "ls"]);
    assert_eq!(secrets["secrets"][0]["name"], "api-key", "{secrets}");

    // A restore never overwrites a node.
    let dir = new.dir.path().join("node-1");
    let refused = mcpd(&[
        "snapshot",
        "restore",
        file,
        "--data-dir",
        dir.to_str().expect("utf8 path"),
        "--id",
        "1",
        "--initial-cluster",
        &initial,
    ]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("already holds a node"), "{err}");
}

#[test]
fn a_cluster_rebuilt_from_one_surviving_data_dir_keeps_every_acknowledged_write() {
    let mut cluster = TestCluster::start(3, ClusterOptions::default());
    let leader = cluster.wait_leader();
    load(&cluster, "before", 50);

    // Writes stream in while two members are lost for good.
    let list = endpoints(&cluster);
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let (stop, acknowledged, list) = (stop.clone(), acknowledged.clone(), list.clone());
        let dir = cluster.dir.path().to_owned();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("during-{i}");
                let path = dir.join(format!("{name}.json"));
                std::fs::write(&path, stdio_spec(&name)).expect("spec");
                let out = mcpd(&[
                    "--endpoints",
                    &list,
                    "deploy",
                    "-f",
                    path.to_str().expect("utf8"),
                ]);
                if out.status.success() {
                    acknowledged.lock().expect("acks").push(name);
                }
                i += 1;
            }
        })
    };
    wait_for(
        "some writes during the loss",
        Duration::from_secs(60),
        || (acknowledged.lock().expect("acks").len() >= 10).then_some(()),
    );
    let lost: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    for id in &lost {
        cluster.kill(*id);
    }
    // Without a quorum nothing more is acknowledged; give the writer time to find out.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let acknowledged = acknowledged.lock().expect("acks").clone();

    // The documented procedure: stop the survivor, check what it holds, recover it.
    cluster.terminate(leader, Duration::from_secs(30));
    let dir = cluster.node(leader).data_dir.display().to_string();
    let dry = ok_json(mcpd(&[
        "-o",
        "json",
        "recover",
        "--data-dir",
        &dir,
        "--dry-run",
    ]));
    let recovered = ok_json(mcpd(&["-o", "json", "recover", "--data-dir", &dir]));
    assert_eq!(dry["revision"], recovered["revision"]);
    assert_eq!(recovered["members"].as_array().map(Vec::len), Some(1));
    cluster.restart(leader);
    wait_for(
        "the survivor to lead alone",
        Duration::from_secs(60),
        || {
            cluster
                .status(leader)
                .filter(|s| s["role"] == "leader")
                .map(|_| ())
        },
    );

    // Grow back to three with new, empty nodes.
    for id in [4u64, 5] {
        let addr = format!("127.0.0.1:{}", free_port());
        cluster.add_node(id, &addr, None);
        let id_text = id.to_string();
        let added = cluster.cli(leader, &["members", "add", &id_text, &addr]);
        assert!(
            added.status.success(),
            "{}",
            String::from_utf8_lossy(&added.stderr)
        );
        let promoted = cluster.cli(leader, &["members", "promote", &id_text]);
        assert!(
            promoted.status.success(),
            "{}",
            String::from_utf8_lossy(&promoted.stderr)
        );
    }
    let members = cluster.json(leader, &["members"]);
    let voters: BTreeSet<u64> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["voter"] == true)
        .filter_map(|m| m["id"].as_u64())
        .collect();
    assert_eq!(voters, BTreeSet::from([leader, 4, 5]), "{members}");
    let revision = cluster.status(leader).expect("status")["revision"]
        .as_u64()
        .expect("revision");
    cluster.wait_converged(revision);

    // Every acknowledged write, on every member, read locally.
    for id in [leader, 4, 5] {
        let listing = cluster.json(id, &["ls", "--stale"]);
        let names: BTreeSet<String> = listing["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .filter_map(|s| s["name"].as_str().map(str::to_owned))
            .collect();
        for i in 0..50 {
            assert!(
                names.contains(&format!("before-{i}")),
                "node {id}: before-{i}"
            );
        }
        for name in &acknowledged {
            assert!(names.contains(name), "node {id} lost acknowledged {name}");
        }
    }
    // The cluster takes writes again.
    let out = cluster.deploy(4, &stdio_spec("after"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
