//! What a stdio server's process sees of the node's environment: only the documented
//! allowlist, the names its spec's `inherit_env` lists and its spec's `env`; never the
//! node's admin token or anything else the node happens to have.

mod common;

use std::collections::BTreeMap;

use common::{text_of, ClusterOptions, TestCluster};
use mcp_raft::registry::spec::INHERITED_ENV;
use serde_json::json;

const ADMIN_TOKEN: &str = "adm1n-t0ken-never-for-servers";
const CLOUD_SECRET: &str = "cl0ud-s3cret-never-for-servers";

fn test_server() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-test-server")
}

/// The names of the variables `server`'s process has, through the test server's `env` tool.
fn env_names(cluster: &TestCluster, server: &str) -> Vec<String> {
    let answer = cluster.call_eventually(1, server, "env", &json!({}));
    text_of(&answer).lines().map(str::to_owned).collect()
}

/// The value of `name` in `server`'s process, empty when it has none.
fn env_value(cluster: &TestCluster, server: &str, name: &str) -> String {
    text_of(&cluster.call_eventually(1, server, "env", &json!({"name": name})))
}

/// Asserts every variable of `server` is allowlisted or one of `own` (and all of `own` are there).
fn assert_env_is(cluster: &TestCluster, server: &str, own: &[&str]) {
    let names = env_names(cluster, server);
    let stray: Vec<&String> = names
        .iter()
        .filter(|n| !INHERITED_ENV.contains(&n.as_str()) && !own.contains(&n.as_str()))
        .collect();
    assert!(
        stray.is_empty(),
        "{server} inherited {stray:?}; it has {names:?}"
    );
    for name in own.iter().chain(&["PATH"]) {
        assert!(
            names.iter().any(|n| n == name),
            "{server} lacks {name}: {names:?}"
        );
    }
}

#[test]
fn stdio_servers_get_a_clean_environment() {
    let cluster = TestCluster::start(
        1,
        ClusterOptions {
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            env: BTreeMap::from([
                ("AWS_SECRET_ACCESS_KEY".to_owned(), CLOUD_SECRET.to_owned()),
                ("AWS_PROFILE".to_owned(), "prod-profile".to_owned()),
            ]),
            ..ClusterOptions::default()
        },
    );
    cluster.wait_leader();
    cluster.deploy_json(
        1,
        &json!({"name": "plain", "command": test_server(), "env": {"SPEC_VAR": "from-spec"}}),
    );
    cluster.deploy_json(
        1,
        &json!({"name": "opted", "command": test_server(), "inherit_env": ["AWS_PROFILE"]}),
    );

    // By default: the allowlist (PATH with the node's value) and the spec's env, nothing else.
    assert_env_is(&cluster, "plain", &["SPEC_VAR"]);
    assert_eq!(env_value(&cluster, "plain", "SPEC_VAR"), "from-spec");
    assert_eq!(
        env_value(&cluster, "plain", "PATH"),
        std::env::var("PATH").unwrap_or_default()
    );
    for secret in ["MCPD_ADMIN_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"] {
        assert_eq!(env_value(&cluster, "plain", secret), "", "{secret}");
    }

    // `inherit_env` adds exactly the variables it names.
    assert_env_is(&cluster, "opted", &["AWS_PROFILE"]);
    assert_eq!(env_value(&cluster, "opted", "AWS_PROFILE"), "prod-profile");

    // The node's own variables cannot be asked for, and the refusal names the field.
    let refused = cluster.deploy(
        1,
        &json!({"name": "greedy", "command": test_server(), "inherit_env": ["MCPD_ADMIN_TOKEN"]})
            .to_string(),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "a spec inherited the admin token"
    );
    assert!(stderr.contains("inherit_env[0]"), "{stderr}");
    assert!(!stderr.contains(ADMIN_TOKEN), "{stderr}");
}
