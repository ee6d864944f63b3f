//! `mcpd apply` against a real cluster (acceptance 4 of issue 17): a directory of YAML and
//! JSON specs is diffed (`--dry-run`, exit status 2 with `--exit-code`), applied, re-applied
//! as a no-op, round-trips through `mcpd get -o yaml`, prunes the server of a deleted file
//! (and only servers apply manages), and a change made between apply's read and its write
//! makes it fail without overwriting that change.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{mcpd_bin, wait_for, ClusterOptions, TestCluster};
use serde_json::Value;

fn apply(cluster: &TestCluster, args: &[&str]) -> (i32, String, String) {
    let mut full = vec!["apply"];
    full.extend_from_slice(args);
    let out = cluster.cli(1, &full);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// name -> (mod_revision, spec) of every server.
fn servers(cluster: &TestCluster) -> Vec<(String, u64, Value)> {
    let listed = cluster.json(1, &["ls"]);
    let items = listed
        .as_array()
        .cloned()
        .or_else(|| listed["servers"].as_array().cloned())
        .unwrap_or_default();
    let mut out: Vec<(String, u64, Value)> = items
        .iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap_or_default().to_owned();
            let got = cluster.json(1, &["get", &name]);
            (
                name,
                got["mod_revision"].as_u64().unwrap_or(0),
                got["spec"].clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn names(cluster: &TestCluster) -> Vec<String> {
    servers(cluster).into_iter().map(|(n, _, _)| n).collect()
}

#[test]
fn apply_a_directory_diff_apply_noop_round_trip_prune_and_conflict() {
    let cluster = TestCluster::start(1, ClusterOptions::default());
    cluster.wait_leader();
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    let bin = env!("CARGO_BIN_EXE_mcp-test-server");
    std::fs::write(
        specs.join("team-a.yaml"),
        format!(
            "name: ap-a\ncommand: {bin}\nreplicas: 0\nenv:\n  TOKEN: s3cret\n---\nname: ap-b\ncommand: {bin}\nreplicas: 0\ndescription: first\n"
        ),
    )
    .unwrap();
    std::fs::write(
        specs.join("remote.json"),
        r#"{"name": "ap-c", "url": "http://127.0.0.1:9/mcp", "replicas": 0}"#,
    )
    .unwrap();
    // A server apply does not manage, which prune must leave alone.
    let foreign = cluster.deploy(
        1,
        &format!(r#"{{"name": "ap-foreign", "command": "{bin}", "replicas": 0}}"#),
    );
    assert!(foreign.status.success());
    let dir_arg = specs.to_str().unwrap();

    // Dry run: the diff, exit status 2, nothing written.
    let (code, out, err) = apply(&cluster, &["-f", dir_arg, "--dry-run", "--exit-code"]);
    assert_eq!(code, 2, "{out}{err}");
    for name in ["ap-a", "ap-b", "ap-c"] {
        assert!(out.contains(&format!("+ create {name}")), "{out}");
    }
    assert_eq!(names(&cluster), ["ap-foreign"]);

    // Apply, then a re-apply changes nothing.
    let (code, out, err) = apply(&cluster, &["-f", dir_arg]);
    assert_eq!(code, 0, "{out}{err}");
    let applied = servers(&cluster);
    assert_eq!(
        applied.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["ap-a", "ap-b", "ap-c", "ap-foreign"]
    );
    assert!(
        !format!("{applied:?}").contains("s3cret"),
        "a secret in a listing"
    );
    let (code, out, _) = apply(&cluster, &["-f", dir_arg, "--dry-run", "--exit-code"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no changes"), "{out}");
    let (code, out, _) = apply(&cluster, &["-f", dir_arg]);
    assert_eq!(code, 0);
    assert!(out.contains("no changes"), "{out}");
    assert_eq!(
        servers(&cluster),
        applied,
        "a no-op apply changed revisions"
    );

    // `get -o yaml` round-trips through apply.
    let got = cluster.cli(1, &["-o", "yaml", "get", "ap-a"]);
    assert!(got.status.success());
    let round = dir.path().join("round");
    std::fs::create_dir(&round).unwrap();
    std::fs::write(round.join("ap-a.yaml"), &got.stdout).unwrap();
    let (code, out, err) = apply(
        &cluster,
        &["-f", round.to_str().unwrap(), "--dry-run", "--exit-code"],
    );
    assert_eq!(code, 0, "get -o yaml did not round-trip: {out}{err}");

    // An edit shows field by field, then applies.
    let edited = std::fs::read_to_string(specs.join("team-a.yaml"))
        .unwrap()
        .replace("description: first", "description: second");
    std::fs::write(specs.join("team-a.yaml"), edited).unwrap();
    let (code, out, _) = apply(&cluster, &["-f", dir_arg, "--dry-run", "--exit-code"]);
    assert_eq!(code, 2);
    assert!(
        out.contains("~ update ap-b") && out.contains("description: \"first\" -> \"second\""),
        "{out}"
    );
    let (code, _, err) = apply(&cluster, &["-f", dir_arg]);
    assert_eq!(code, 0, "{err}");
    let b = cluster.json(1, &["get", "ap-b"]);
    assert_eq!(b["spec"]["description"], "second");

    // Prune: the deleted file's server goes, the unmanaged one stays.
    std::fs::remove_file(specs.join("remote.json")).unwrap();
    let (code, out, _) = apply(&cluster, &["-f", dir_arg, "--dry-run"]);
    assert_eq!(code, 0);
    assert!(!out.contains("delete"), "deleted without --prune: {out}");
    let (code, out, err) = apply(&cluster, &["-f", dir_arg, "--prune"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("- delete ap-c"), "{out}");
    assert_eq!(names(&cluster), ["ap-a", "ap-b", "ap-foreign"]);

    // A change between apply's read and its write: apply fails, the change stays.
    let edited = std::fs::read_to_string(specs.join("team-a.yaml"))
        .unwrap()
        .replace("description: second", "description: from-apply");
    std::fs::write(specs.join("team-a.yaml"), edited).unwrap();
    let barrier = dir.path().join("go");
    let mut child = Command::new(mcpd_bin())
        .args(["--endpoint", &cluster.node(1).addr, "apply", "-f", dir_arg])
        .env("MCPD_APPLY_TEST_BARRIER", &barrier)
        .env_remove("MCPD_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("planned 1 changes"), "{line}");
    let concurrent = cluster.deploy(
        1,
        &format!(
            r#"{{"name": "ap-b", "command": "{bin}", "replicas": 0, "description": "concurrent"}}"#
        ),
    );
    assert!(concurrent.status.success());
    std::fs::write(&barrier, b"").unwrap();
    let status = wait_for("apply to finish", Duration::from_secs(60), || {
        child.try_wait().unwrap()
    });
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(1), "{rest}");
    assert!(rest.contains("changed by someone else"), "{rest}");
    let b = cluster.json(1, &["get", "ap-b"]);
    assert_eq!(
        b["spec"]["description"], "concurrent",
        "apply overwrote a concurrent change"
    );
}
