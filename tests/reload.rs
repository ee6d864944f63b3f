//! Hot reload of node settings (issue 17): SIGHUP, and a change of the `--config` file
//! alone, re-read the data-plane settings without dropping a session (the server keeps
//! its process), and a setting that needs a restart is named in the log.

mod common;

use std::time::Duration;

use common::{text_of, wait_for, ClusterOptions, TestCluster};
use serde_json::json;

fn write_config(path: &std::path::Path, request_timeout_ms: u64, extra: &str) {
    std::fs::write(
        path,
        format!("{extra}\n[dataplane]\nrequest_timeout_ms = {request_timeout_ms}\n"),
    )
    .unwrap();
}

#[test]
fn sighup_and_file_changes_reload_data_plane_settings_without_dropping_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mcpd.toml");
    write_config(&config, 30_000, "");
    let cluster = TestCluster::start(
        1,
        ClusterOptions {
            extra_args: vec!["--config".into(), config.display().to_string()],
            ..Default::default()
        },
    );
    cluster.wait_leader();
    let bin = env!("CARGO_BIN_EXE_mcp-test-server");
    cluster.deploy_json(1, &json!({"name": "slow", "command": bin}));
    let before = text_of(&cluster.call_eventually(1, "slow", "whoami", &json!({})));
    let slow_call = json!({"ms": 1500});
    cluster
        .call(1, "slow", "sleep", &slow_call)
        .expect("a 1.5 s call within the 30 s timeout");

    // SIGHUP: a 500 ms request timeout, plus a setting that needs a restart.
    write_config(&config, 500, "node_grace_ms = 20000\nlog_level = \"debug\"");
    assert!(cluster.signal(1, "HUP"), "SIGHUP not delivered");
    let error = wait_for("the new request timeout", Duration::from_secs(60), || {
        cluster.call(1, "slow", "sleep", &slow_call).err()
    });
    assert!(
        error.contains("timeout") || error.contains("timed out"),
        "{error}"
    );
    let logs = cluster.logs();
    assert!(
        logs.contains("need a restart") && logs.contains("node_grace"),
        "no restart warning naming node_grace:\n{logs}"
    );
    // The session survived the reload: the same process answers.
    let after = text_of(&cluster.call_eventually(1, "slow", "whoami", &json!({})));
    assert_eq!(before, after, "the server was restarted by a reload");

    // The file alone (no signal): back to 30 s.
    write_config(&config, 30_000, "");
    wait_for("the file change to apply", Duration::from_secs(60), || {
        cluster.call(1, "slow", "sleep", &slow_call).ok()
    });
    let again = text_of(&cluster.call_eventually(1, "slow", "whoami", &json!({})));
    assert_eq!(before, again);
}
