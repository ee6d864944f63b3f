//! The README's shell snippets, run as written: each block marked `<!-- test: NAME -->` is
//! read from README.md itself and run by bash in a fresh directory. Only the binary changes:
//! `target/release/mcpd` becomes this build's `mcpd`, and `cargo` is a stand-in that skips
//! `cargo build` and turns `cargo run --bin mcpd -- ARGS` into `mcpd ARGS`.
//!
//! The snippets use fixed ports (7400, 9400 and 7480 for `mcpd dev`; 7401–7403 and
//! 9401–9403 for the 3-node cluster); the other tests only use ports the OS picks, which
//! are never in that range.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{mcpd_bin, python, wait_for};
use serde_json::Value;

const README: &str = include_str!("../README.md");

/// Runs before every snippet: stops at the first failing command, and stands in for cargo.
const PRELUDE: &str = r#"set -e
shopt -s expand_aliases
cargo() {
  case "$1" in
    build) ;;
    run)
      while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
      [ "$#" -gt 0 ] || { echo "cargo stand-in: no -- after cargo run" >&2; return 97; }
      shift
      "$MCPD_BIN" "$@" ;;
    *) echo "cargo stand-in: unexpected cargo $*" >&2; return 97 ;;
  esac
}
"#;

/// The body of the ```sh block that follows `<!-- test: name -->` in the README.
fn snippet(name: &str) -> String {
    let marker = format!("<!-- test: {name} -->");
    let mut lines = README
        .lines()
        .skip_while(|line| line.trim() != marker)
        .skip(1);
    assert_eq!(
        lines.next().map(str::trim),
        Some("```sh"),
        "README.md has no ```sh block right after {marker}"
    );
    let body: Vec<&str> = lines.take_while(|line| line.trim() != "```").collect();
    assert!(!body.is_empty(), "the README block {marker} is empty");
    body.join("\n") + "\n"
}

/// The lines of `script` from the one starting with `first` through the one equal to `last`.
fn lines_between(script: &str, first: &str, last: &str) -> String {
    let block: Vec<&str> = script
        .lines()
        .skip_while(|line| !line.starts_with(first))
        .collect();
    let end = block
        .iter()
        .position(|line| *line == last)
        .unwrap_or_else(|| panic!("no {first:?} ... {last:?} in the README snippet"));
    block[..=end].join("\n") + "\n"
}

/// Fails at once, and says why, when a port the README uses is taken.
fn assert_ports_free(ports: &[u16]) {
    for port in ports {
        assert!(
            TcpListener::bind(("127.0.0.1", *port)).is_ok(),
            "port {port} is in use, but the README snippets need it: is an `mcpd dev` or a \
             README cluster running on this machine?"
        );
    }
}

/// A bash running a snippet, in a process group of its own with everything it starts.
/// Dropping it stops the whole group (SIGTERM, then SIGKILL), also when the test fails.
struct Shell {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Shell {
    /// Starts `script` (after the prelude) in `dir`, with `path_front` ahead in PATH.
    fn start(name: &str, script: &str, dir: &Path, path_front: &[PathBuf]) -> Self {
        let bin = Path::new(mcpd_bin());
        let script = script.replace("target/release/mcpd", "\"$MCPD_BIN\"");
        let mut path = path_front.to_vec();
        path.push(bin.parent().expect("binary dir").to_owned());
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(format!("{PRELUDE}{script}"))
            .current_dir(dir)
            .env("PATH", std::env::join_paths(path).expect("PATH"))
            .env("MCPD_BIN", bin)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        // Settings from the developer's shell must not change what the snippet does.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MCPD_") {
                cmd.env_remove(key);
            }
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .expect("bash is needed to run the README snippets");
        Shell {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for bash to exit (what it started in the background may keep running).
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for bash") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the snippet did not finish within {timeout:?}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn output(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout(), self.stderr())
    }

    /// Signals every process of the group; false once none is left.
    fn signal(&self, signal: &str) -> bool {
        Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        // SIGTERM first: nodes shut down cleanly, stop their servers and `mcpd dev` removes
        // its data dir.
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Reap bash, or its zombie would keep the group alive.
            let _ = self.child.try_wait();
            if !self.signal("-0") || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.signal("-KILL");
        let _ = self.child.wait();
    }
}

/// Runs `mcpd ARGS` against the node at `endpoint`; its stdout when it succeeds.
fn mcpd(endpoint: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(mcpd_bin())
        .args(["--endpoint", endpoint])
        .args(args)
        .env_remove("MCPD_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json(endpoint: &str, args: &[&str]) -> Option<Value> {
    let mut full = vec!["-o", "json"];
    full.extend_from_slice(args);
    serde_json::from_str(&mcpd(endpoint, &full)?).ok()
}

/// Status code and body of `GET http://addr/path`.
fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| e.to_string())?;
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {reply:?}"))?;
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_owned()))
}

/// The log lines a user should not see while nodes start and work normally.
fn alarming_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains(" ERROR ") || line.contains("RaftState"))
        .collect()
}

/// The venv python with `mcp-server-time` goes first in PATH, so the tour's `python3 -m
/// mcp_server_time` finds the module.
fn python_path() -> PathBuf {
    python::modern().parent().expect("venv bin dir").to_owned()
}

#[test]
fn dev_and_the_tour_work_as_written() {
    assert_ports_free(&[7400, 9400, 7480]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = [python_path()];
    let dev = Shell::start("dev", &snippet("dev"), dir.path(), &path);
    let endpoint = "127.0.0.1:7400";
    wait_for("mcpd dev to lead", Duration::from_secs(60), || {
        json(endpoint, &["status"]).filter(|s| s["role"] == "leader")
    });
    // The tour starts with a call to `demo`: give its instance time to start.
    wait_for("the demo server to answer", Duration::from_secs(60), || {
        mcpd(endpoint, &["call", "demo", "echo", r#"{"text": "hi"}"#])
    });

    let mut tour = Shell::start("tour", &snippet("tour"), dir.path(), &path);
    let status = tour.wait(Duration::from_secs(120));
    assert!(
        status.success(),
        "the tour failed ({status})\n{}",
        tour.output()
    );
    let out = tour.stdout();
    assert!(out.contains("hello"), "mcpd call demo echo:\n{out}");
    assert!(out.contains("<redacted>"), "mcpd get time:\n{out}");
    assert!(
        out.lines().any(|line| line.starts_with("time ")),
        "mcpd ls lists time:\n{out}"
    );
    let listing = json(endpoint, &["ls"]).expect("mcpd ls");
    assert!(
        !listing.to_string().contains("\"time\""),
        "the tour ends with undeploy time: {listing}"
    );

    // The refused spec prints exactly the error the README shows.
    let invalid = snippet("invalid-spec");
    let expected: Vec<&str> = invalid
        .lines()
        .filter_map(|line| line.strip_prefix("# "))
        .collect();
    assert!(
        !expected.is_empty(),
        "the invalid-spec snippet shows no error"
    );
    let mut refused = Shell::start("invalid", &format!("set +e\n{invalid}"), dir.path(), &[]);
    refused.wait(Duration::from_secs(60));
    let stderr = refused.stderr();
    for line in expected {
        assert!(stderr.contains(line), "expected {line:?} in:\n{stderr}");
    }

    let alarming = alarming_lines(&dev.stderr()).join("\n");
    assert!(alarming.is_empty(), "mcpd dev logged:\n{alarming}");
}

#[test]
fn three_node_cluster_works_as_written() {
    assert_ports_free(&[7401, 7402, 7403, 9401, 9402, 9403]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = [python_path()];
    // The snippet deploys the tour's time.yaml.
    let time_yaml = lines_between(&snippet("tour"), "cat > time.yaml", "YAML");
    let mut setup = Shell::start("setup", &time_yaml, dir.path(), &[]);
    assert!(
        setup.wait(Duration::from_secs(30)).success(),
        "{}",
        setup.output()
    );

    let mut cluster = Shell::start("three-node", &snippet("three-node"), dir.path(), &path);
    let status = cluster.wait(Duration::from_secs(120));
    assert!(
        status.success(),
        "the 3-node snippet failed ({status})\n{}",
        cluster.output()
    );

    // `mcpd members`, the snippet's last command: three members up, one of them leading.
    let out = cluster.stdout();
    let rows: Vec<&str> = out
        .lines()
        .filter(|line| line.contains("127.0.0.1:740"))
        .collect();
    let output = cluster.output();
    assert_eq!(rows.len(), 3, "members:\n{output}");
    assert!(
        rows.iter().all(|row| row.trim_end().ends_with(" up")),
        "members:\n{output}"
    );
    assert_eq!(
        rows.iter().filter(|row| row.contains(" leader ")).count(),
        1,
        "members:\n{output}"
    );

    for i in 1..=3 {
        let endpoint = format!("127.0.0.1:740{i}");
        let status = wait_for(
            &format!("node {i} to know the leader"),
            Duration::from_secs(30),
            || json(&endpoint, &["status"]).filter(|s| !s["leader_id"].is_null()),
        );
        assert_eq!(
            status["members"].as_array().map(Vec::len),
            Some(3),
            "{status}"
        );
        // Every node answers on its own metrics port, the gRPC port + 2000.
        let metrics = format!("127.0.0.1:940{i}");
        let (code, body) = http_get(&metrics, "/metrics").expect("metrics endpoint");
        assert_eq!(code, 200, "{metrics}/metrics: {body}");
        assert!(
            body.contains(&format!("node=\"{i}\"")),
            "{metrics}/metrics: {body}"
        );
        let (code, body) = http_get(&metrics, "/readyz").expect("readyz");
        assert_eq!((code, body.trim()), (200, "ready"), "{metrics}/readyz");
    }
    // The deployed server is in the registry of every node.
    let server = json("127.0.0.1:7401", &["get", "time"]).expect("mcpd get time");
    assert_eq!(server["spec"]["replicas"], 2, "{server}");

    let alarming = alarming_lines(&cluster.stderr()).join("\n");
    assert!(alarming.is_empty(), "the nodes logged:\n{alarming}");
}
