//! The stdio transport: an MCP server as a child process, one JSON message per line.
//!
//! The process is spawned from argv (never through a shell) in its own process group, so
//! shutdown reaches anything it started. The session itself (the writer into stdin, the
//! reader matching stdout lines to waiting requests) is the line core of [`super::lines`],
//! shared with containers; here are the process's own tasks: a stderr reader feeding
//! tracing, and a supervisor that owns the child, reaps it, and runs the shutdown
//! sequence: close stdin, then SIGTERM, then SIGKILL to the group.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_raft::registry::spec::{is_node_private, ServerSpec, Transport, INHERITED_ENV};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use super::lines::{LineState, Lines};
use super::{Era, SessionOptions, UpstreamError, Wire};
use crate::dataplane::jsonrpc::RawResponse;

pub use super::lines::ProgressSink;

/// How long a process gets to exit after stdin closes, and again after SIGTERM.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// Longest stderr line forwarded to the log.
const STDERR_LINE_LIMIT: usize = 4096;

/// A child process speaking MCP on stdin/stdout.
pub struct StdioWire {
    lines: Lines,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    stopped: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    pid: Option<u32>,
}

impl StdioWire {
    /// Spawns the process of a stdio `spec`.
    pub fn spawn(spec: &ServerSpec, options: &SessionOptions) -> Result<Self, UpstreamError> {
        let Transport::Stdio {
            command,
            args,
            env,
            inherit_env,
            cwd,
            sandbox,
        } = &spec.transport
        else {
            return Err(UpstreamError::Connect("not a stdio spec".into()));
        };
        let mut cmd = Command::new(command);
        // A clean environment: the node's own may hold its admin token and the host's
        // credentials, and a server is someone else's code.
        cmd.args(args)
            .env_clear()
            .envs(child_env(env, inherit_env, std::env::vars_os()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: SIGTERM/SIGKILL reach the whole tree it starts.
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        // Least privilege: the spec's user, group, limits and no_new_privs.
        super::sandbox::apply(&mut cmd, sandbox);
        // If mcpd itself is killed (even with SIGKILL), its servers must not live on as
        // orphans. The signal is tied to the spawning thread, which is a runtime worker that
        // lives as long as the node.
        // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
        // async-signal-safe and takes no pointers.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| UpstreamError::Connect(format!("cannot start {command:?}: {e}")))?;
        let pid = child.id();
        tracing::info!(instance = %options.label, pid, command = %command, "spawned stdio server");
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(UpstreamError::Connect("child has no stdio pipes".into()));
        };
        let state = LineState::new(&options.label, "stdio", options.list_changes.clone());
        let lines = Lines::start(Arc::clone(&state), stdout, stdin, options.max_message_bytes);
        tokio::spawn(read_stderr(stderr, options.label.clone()));
        let (stop_tx, stop_rx) = oneshot::channel();
        let supervisor = tokio::spawn(supervise(child, stop_rx, state));
        Ok(Self {
            lines,
            stop: Mutex::new(Some(stop_tx)),
            stopped: tokio::sync::Mutex::new(Some(supervisor)),
            pid,
        })
    }

    /// The process id of the server, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The line session, for progress watching.
    pub(crate) fn lines(&self) -> &Lines {
        &self.lines
    }
}

/// The whole environment of a server: the node's variables named in [`INHERITED_ENV`] or
/// in the spec's `inherit_env` (never an `MCPD_*` one, whatever the spec says), then the
/// spec's `env` over them. `node` is the node's environment.
fn child_env(
    env: &BTreeMap<String, String>,
    inherit_env: &[String],
    node: impl Iterator<Item = (OsString, OsString)>,
) -> BTreeMap<OsString, OsString> {
    let mut out: BTreeMap<OsString, OsString> = node
        .filter(|(name, _)| {
            name.to_str().is_some_and(|name| {
                !is_node_private(name)
                    && (INHERITED_ENV.contains(&name) || inherit_env.iter().any(|n| n == name))
            })
        })
        .collect();
    out.extend(env.iter().map(|(k, v)| (k.into(), v.into())));
    out
}

impl Wire for StdioWire {
    async fn roundtrip(
        &self,
        request: Value,
        _era: Option<&Era>,
    ) -> Result<RawResponse, UpstreamError> {
        self.lines.roundtrip(&request).await
    }

    async fn notify(&self, message: Value, _era: Option<&Era>) -> Result<(), UpstreamError> {
        self.lines.notify(&message).await
    }

    fn is_alive(&self) -> bool {
        self.lines.state().is_alive()
    }

    async fn shutdown(&self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
        }
        if let Some(supervisor) = self.stopped.lock().await.take() {
            let _ = supervisor.await;
        }
    }
}

async fn read_stderr(stderr: tokio::process::ChildStderr, label: String) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line: String = line.chars().take(STDERR_LINE_LIMIT).collect();
        tracing::info!(target: "mcp_cluster::upstream::stderr", instance = %label, "{line}");
    }
}

/// Owns the child: reaps it when it exits on its own, or runs the shutdown sequence.
async fn supervise(mut child: Child, stop: oneshot::Receiver<()>, shared: Arc<LineState>) {
    let pid = child.id();
    tokio::select! {
        status = child.wait() => {
            let reason = match status {
                Ok(status) => format!("process exited ({status})"),
                Err(e) => format!("waiting for the process failed: {e}"),
            };
            shared.die(UpstreamError::Closed(reason));
            kill_group(pid, libc::SIGKILL);
        }
        _ = stop => {
            shared.die(UpstreamError::Closed("instance stopped".into()));
            // Returning from the writer drops stdin, which closes it.
            shared.close_input();
            stop_child(&mut child, pid, shared.label()).await;
        }
    }
}

/// After stdin is closed: wait, SIGTERM, wait, SIGKILL; always reap.
async fn stop_child(child: &mut Child, pid: Option<u32>, label: &str) {
    if tokio::time::timeout(EXIT_GRACE, child.wait()).await.is_ok() {
        kill_group(pid, libc::SIGKILL);
        return;
    }
    tracing::info!(instance = %label, ?pid, "no exit after stdin closed: SIGTERM");
    kill_group(pid, libc::SIGTERM);
    if tokio::time::timeout(EXIT_GRACE, child.wait()).await.is_ok() {
        kill_group(pid, libc::SIGKILL);
        return;
    }
    tracing::warn!(instance = %label, ?pid, "no exit after SIGTERM: SIGKILL");
    kill_group(pid, libc::SIGKILL);
    let _ = child.wait().await;
}

/// Sends `signal` to the process group led by `pid` (anything the server left behind).
fn kill_group(pid: Option<u32>, signal: libc::c_int) {
    let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals a process group; it takes no pointers and
    // at worst fails with ESRCH when the group is already gone.
    unsafe {
        libc::kill(-pid, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_env(vars: &[(&str, &str)]) -> impl Iterator<Item = (OsString, OsString)> {
        vars.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn names(env: &BTreeMap<OsString, OsString>) -> Vec<&str> {
        env.keys().filter_map(|k| k.to_str()).collect()
    }

    #[test]
    fn a_server_gets_the_allowlist_its_names_and_its_env_only() {
        let node = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/n"),
            ("MCPD_ADMIN_TOKEN", "admin-secret"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ("AWS_PROFILE", "prod"),
            ("TZ", "UTC"),
        ];
        let env = BTreeMap::from([
            ("API_KEY".to_owned(), "k".to_owned()),
            ("TZ".to_owned(), "Asia/Tokyo".to_owned()),
        ]);
        let got = child_env(&env, &[], node_env(&node));
        assert_eq!(names(&got), ["API_KEY", "HOME", "PATH", "TZ"]);
        // The spec's env wins over an inherited value.
        assert_eq!(got[&OsString::from("TZ")], "Asia/Tokyo");

        let got = child_env(&env, &["AWS_PROFILE".to_owned()], node_env(&node));
        assert_eq!(
            names(&got),
            ["API_KEY", "AWS_PROFILE", "HOME", "PATH", "TZ"]
        );
        assert_eq!(got[&OsString::from("AWS_PROFILE")], "prod");
    }

    #[test]
    fn node_private_variables_are_never_inherited() {
        // Specs naming one are refused; this holds even for a spec stored some other way.
        let node = [("MCPD_ADMIN_TOKEN", "admin-secret"), ("PATH", "/bin")];
        let got = child_env(
            &BTreeMap::new(),
            &["MCPD_ADMIN_TOKEN".to_owned()],
            node_env(&node),
        );
        assert_eq!(names(&got), ["PATH"]);
    }
}
