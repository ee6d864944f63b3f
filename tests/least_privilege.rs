//! Least privilege for the processes a node starts: a stdio spec's `sandbox` (user, group,
//! resource limits, `no_new_privs`) is what the server's process really runs with, read
//! back from `/proc/self` by a shell that then becomes the test server.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{text_of, wait_for, ClusterOptions, TestCluster};
use serde_json::json;

fn test_server() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-test-server")
}

/// A spec whose process (the shell, `$$`) records its status and limits into `dir/NAME.*`, then runs the
/// test server (so the instance is healthy and callable).
fn recording_spec(name: &str, dir: &Path, sandbox: Option<serde_json::Value>) -> serde_json::Value {
    let out = dir.join(name);
    let script = format!(
        "cat /proc/$$/status > {out}.status; cat /proc/$$/limits > {out}.limits; exec {server}",
        out = out.display(),
        server = test_server()
    );
    let mut spec = json!({"name": name, "command": "/bin/sh", "args": ["-c", script]});
    if let Some(sandbox) = sandbox {
        spec["sandbox"] = sandbox;
    }
    spec
}

/// The value of `key:` in a `/proc/self/status` dump.
fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The soft limit of the `/proc/self/limits` line starting with `name`.
fn soft_limit(limits: &str, name: &str) -> String {
    limits
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l[name.len()..].split_whitespace().next())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn stdio_servers_run_with_their_sandbox() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The unprivileged server must be able to write its record here.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let cluster = TestCluster::start(1, ClusterOptions::default());
    cluster.wait_leader();
    let root = nix_is_root();
    let mut boxed = json!({"max_open_files": 64, "max_processes": 4096, "max_memory_mb": 8192});
    if root {
        boxed["uid"] = json!(65534);
        boxed["gid"] = json!(65534);
    }
    cluster.deploy_json(1, &recording_spec("plain", dir.path(), None));
    cluster.deploy_json(1, &recording_spec("boxed", dir.path(), Some(boxed)));
    cluster.deploy_json(
        1,
        &recording_spec(
            "privileged",
            dir.path(),
            Some(json!({"no_new_privs": false})),
        ),
    );
    for name in ["plain", "boxed", "privileged"] {
        let reply = cluster.call_eventually(1, name, "echo", &json!({"text": name}));
        assert_eq!(text_of(&reply), name);
    }
    let read = |name: &str, ext: &str| {
        let path = dir.path().join(format!("{name}.{ext}"));
        wait_for(
            &format!("{}", path.display()),
            Duration::from_secs(30),
            || {
                std::fs::read_to_string(&path)
                    .ok()
                    .filter(|t| !t.is_empty())
            },
        )
    };

    // By default: the node's user, and no_new_privs.
    let plain = read("plain", "status");
    assert_eq!(status_field(&plain, "NoNewPrivs"), "1", "{plain}");
    // The sandbox: limits and, as root, another user and group.
    let boxed = read("boxed", "status");
    assert_eq!(status_field(&boxed, "NoNewPrivs"), "1");
    if root {
        assert_eq!(
            status_field(&boxed, "Uid"),
            "65534 65534 65534 65534",
            "{boxed}"
        );
        assert_eq!(
            status_field(&boxed, "Gid"),
            "65534 65534 65534 65534",
            "{boxed}"
        );
        assert_eq!(status_field(&boxed, "Groups"), "", "{boxed}");
        assert_eq!(status_field(&plain, "Uid"), "0 0 0 0");
    }
    let limits = read("boxed", "limits");
    assert_eq!(soft_limit(&limits, "Max open files"), "64", "{limits}");
    assert_eq!(soft_limit(&limits, "Max processes"), "4096", "{limits}");
    assert_eq!(
        soft_limit(&limits, "Max address space"),
        (8192u64 * 1024 * 1024).to_string(),
        "{limits}"
    );
    let plain_limits = read("plain", "limits");
    assert_ne!(soft_limit(&plain_limits, "Max open files"), "64");
    // Turned off on request (the node itself runs without it).
    let privileged = read("privileged", "status");
    if status_field(
        &std::fs::read_to_string("/proc/self/status").unwrap_or_default(),
        "NoNewPrivs",
    ) == "0"
    {
        assert_eq!(status_field(&privileged, "NoNewPrivs"), "0");
    }
    // Each server leads its own process group.
    assert_eq!(
        status_field(&plain, "NSpgid"),
        status_field(&plain, "NSpid"),
        "{plain}"
    );
}

/// True when the tests run as root (the uid switch needs it).
fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| status_field(&s, "Uid").starts_with("0 "))
        .unwrap_or(false)
}
