//! The `mcpd` command line as a user meets it: settings precedence, what the retry flags
//! mean, YAML specs, compare-and-set deploys and `mcpd dev`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, mcpd_bin, wait_for, ClusterOptions, TestCluster};
use serde_json::Value;

fn status_at(addr: &str) -> Option<Value> {
    let out = Command::new(mcpd_bin())
        .args(["--endpoint", addr, "-o", "json", "status"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn node_settings_come_from_flags_then_env_then_file() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port) = (free_port(), free_port());
    let addr = format!("127.0.0.1:{env_port}");
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "id = 5\ngrpc_addr = \"127.0.0.1:{file_port}\"\ndata_dir = \"{}\"\ninitial_cluster = \"1={addr}\"\nleader_election_timeout_ms = 300\nheartbeat_interval_ms = 100\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(mcpd_bin())
        .args(["node", "--config"])
        .arg(&config)
        .args(["--id", "1"])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .env("MCPD_GRPC_ADDR", &addr)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = wait_for(
        "the configured node to lead",
        Duration::from_secs(30),
        || status_at(&addr).filter(|s| s["role"] == "leader"),
    );
    let _ = child.kill();
    let _ = child.wait();
    // The flag (--id 1) beat the file (id = 5); the env address beat the file's.
    assert_eq!(status["node_id"], 1);
    assert_eq!(status["grpc_addr"], addr.as_str());
}

#[test]
fn retry_flags_say_whether_the_first_attempt_counts() {
    let help = Command::new(mcpd_bin())
        .args(["node", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--max-attempts <MAX_ATTEMPTS>")
            && help.contains("Attempts of one request in all, the first included"),
        "{help}"
    );
    assert!(
        help.contains("--max-retries <MAX_RETRIES>")
            && help.contains("Retries after the first attempt")
            && help.contains("N makes N + 1 attempts"),
        "{help}"
    );

    let dir = tempfile::tempdir().unwrap();
    let both = Command::new(mcpd_bin())
        .args(["node", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--max-attempts", "2", "--max-retries", "1"])
        .output()
        .unwrap();
    assert!(!both.status.success());
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert!(
        stderr.contains("max_attempts and max_retries are one setting (attempts = retries + 1)"),
        "{stderr}"
    );
}

#[test]
fn yaml_specs_and_compare_and_set() {
    let cluster = TestCluster::start(1, ClusterOptions::default());
    cluster.wait_leader();
    let yaml = cluster.dir.path().join("time.yaml");
    std::fs::write(
        &yaml,
        "name: time\ntransport: stdio\ncommand: python3\nargs: [\"-m\", \"mcp_server_time\"]\nenv: {TZ: UTC}\nreplicas: 2\n",
    )
    .unwrap();
    let path = yaml.to_str().unwrap();
    let created = cluster.json(1, &["deploy", "-f", path, "--expected-revision", "0"]);
    let revision = created["revision"].as_u64().unwrap();

    // "Must not exist yet" fails now, and so does a stale revision.
    for stale in ["0", "999"] {
        let out = cluster.cli(1, &["deploy", "-f", path, "--expected-revision", stale]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("revision_mismatch"), "{stderr}");
    }
    let updated = cluster.json(
        1,
        &[
            "deploy",
            "-f",
            path,
            "--expected-revision",
            &revision.to_string(),
        ],
    );
    assert_eq!(updated["created"], false);

    let server = cluster.json(1, &["get", "time"]);
    assert_eq!(server["replicas"], 2);
    assert_eq!(server["spec"]["env"]["TZ"], "<redacted>");
    let table = cluster.cli(1, &["ls"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("time ")), "{text}");
}

#[test]
fn dev_mode_runs_a_single_node_cluster_and_cleans_up() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(mcpd_bin())
        .args(["dev", "--grpc-addr", &addr])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--mcp-addr", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(dir) = line.strip_prefix("data dir (deleted on exit): ") {
                let _ = tx.send(dir.to_owned());
            }
        }
    });
    let data_dir = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("dev prints its data dir");
    wait_for("dev node to lead", Duration::from_secs(30), || {
        status_at(&addr).filter(|s| s["role"] == "leader")
    });
    // The bundled test server is deployed as "demo" and answers calls.
    let called = wait_for("the demo server to answer", Duration::from_secs(60), || {
        let out = Command::new(mcpd_bin())
            .args([
                "--endpoint",
                &addr,
                "call",
                "demo",
                "echo",
                r#"{"text": "hello"}"#,
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(called.trim(), "hello");
    let spec = r#"{"name": "extra", "command": "true", "replicas": 0}"#;
    let mut deploy = Command::new(mcpd_bin())
        .args(["--endpoint", &addr, "deploy", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    deploy
        .stdin
        .take()
        .unwrap()
        .write_all(spec.as_bytes())
        .unwrap();
    assert!(deploy.wait().unwrap().success());
    assert!(std::path::Path::new(&data_dir).exists());

    let term = Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "dev exited with {exit}");
    assert!(
        !std::path::Path::new(&data_dir).exists(),
        "dev left {data_dir} behind"
    );
}
