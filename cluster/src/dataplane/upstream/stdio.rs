//! The stdio transport: an MCP server as a child process, one JSON message per line.
//!
//! The process is spawned from argv (never through a shell) in its own process group, so
//! shutdown reaches anything it started. Tasks per process: a writer draining a bounded
//! queue into stdin, a reader matching response lines to waiting requests by id, a stderr
//! reader feeding tracing, and a supervisor that owns the child, reaps it, and runs the
//! shutdown sequence: close stdin, then SIGTERM, then SIGKILL to the group.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use mcp_raft::registry::spec::{is_node_private, ServerSpec, Transport, INHERITED_ENV};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use super::{Era, SessionOptions, UpstreamError, Wire};
use crate::dataplane::jsonrpc;

/// Requests queued for stdin before senders wait (backpressure, not an unbounded queue).
const WRITE_QUEUE: usize = 1024;
/// How long a process gets to exit after stdin closes, and again after SIGTERM.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// Longest stderr line forwarded to the log.
const STDERR_LINE_LIMIT: usize = 4096;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, UpstreamError>>>>>;

/// Shared between the session handle and its tasks.
struct Shared {
    pending: Pending,
    alive: AtomicBool,
    /// Why the session died, once it has.
    death: Mutex<Option<UpstreamError>>,
    label: String,
    /// Tells the writer to drop stdin: the first, polite step of stopping a server.
    close_stdin: tokio::sync::Notify,
    /// Progress token -> where the server's `notifications/progress` for it go (tokens
    /// are minted unique by the caller, see `Session::request_with_progress`).
    progress: Mutex<HashMap<String, ProgressSink>>,
    /// Where the server's `notifications/*/list_changed` are reported.
    list_changes: Option<crate::dataplane::list_changes::ListChangeSink>,
}

/// Where a request's progress notifications go (their `params`, as the server sent them).
pub type ProgressSink = mpsc::UnboundedSender<Value>;

impl Shared {
    /// Marks the session dead and fails every waiting request with `error`.
    fn die(&self, error: UpstreamError) {
        self.alive.store(false, Ordering::SeqCst);
        let mut death = self.death.lock().unwrap_or_else(|e| e.into_inner());
        if death.is_none() {
            tracing::warn!(instance = %self.label, error = %error, "stdio session ended");
            *death = Some(error.clone());
        }
        drop(death);
        let waiting: Vec<_> = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for (_, tx) in waiting {
            let _ = tx.send(Err(error.clone()));
        }
    }

    fn death(&self) -> UpstreamError {
        self.death
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| UpstreamError::Closed("session ended".into()))
    }
}

/// A child process speaking MCP on stdin/stdout.
pub struct StdioWire {
    shared: Arc<Shared>,
    stdin: mpsc::Sender<String>,
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
        let shared = Arc::new(Shared {
            pending: Arc::default(),
            alive: AtomicBool::new(true),
            death: Mutex::new(None),
            label: options.label.clone(),
            close_stdin: tokio::sync::Notify::new(),
            progress: Mutex::default(),
            list_changes: options.list_changes.clone(),
        });
        let (stdin_tx, stdin_rx) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(write_stdin(stdin, stdin_rx, Arc::clone(&shared)));
        tokio::spawn(read_stdout(
            FramedRead::new(
                stdout,
                LinesCodec::new_with_max_length(options.max_message_bytes),
            ),
            Arc::clone(&shared),
            stdin_tx.clone(),
            options.max_message_bytes,
        ));
        tokio::spawn(read_stderr(stderr, options.label.clone()));
        let (stop_tx, stop_rx) = oneshot::channel();
        let supervisor = tokio::spawn(supervise(child, stop_rx, Arc::clone(&shared)));
        Ok(Self {
            shared,
            stdin: stdin_tx,
            stop: Mutex::new(Some(stop_tx)),
            stopped: tokio::sync::Mutex::new(Some(supervisor)),
            pid,
        })
    }

    /// The process id of the server, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    async fn send_line(&self, message: &Value) -> Result<(), UpstreamError> {
        if !self.is_alive() {
            return Err(self.shared.death());
        }
        let line = serde_json::to_string(message)
            .map_err(|e| UpstreamError::Protocol(format!("cannot encode request: {e}")))?;
        self.stdin.send(line).await.map_err(|_| self.shared.death())
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
    async fn roundtrip(&self, request: Value, _era: Option<&Era>) -> Result<Value, UpstreamError> {
        let Some(id) = request.get("id").and_then(Value::as_u64) else {
            return Err(UpstreamError::Protocol(
                "internal request id must be numeric".into(),
            ));
        };
        let (tx, rx) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        // If the caller gives up (timeout), the entry must not stay behind.
        let mut guard = PendingGuard {
            pending: &self.shared.pending,
            id,
            stdin: &self.stdin,
            answered: false,
        };
        if let Err(e) = self.send_line(&request).await {
            return Err(match e {
                // Not written to stdin at all: the server never saw it.
                UpstreamError::Closed(reason) => UpstreamError::Connect(reason),
                other => other,
            });
        }
        let answer = rx.await.unwrap_or_else(|_| Err(self.shared.death()));
        guard.answered = true;
        answer
    }

    async fn notify(&self, message: Value, _era: Option<&Era>) -> Result<(), UpstreamError> {
        self.send_line(&message).await
    }

    fn is_alive(&self) -> bool {
        self.shared.alive.load(Ordering::SeqCst)
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

struct PendingGuard<'a> {
    pending: &'a Pending,
    id: u64,
    stdin: &'a mpsc::Sender<String>,
    /// False while the caller waits: dropped then, the caller gave up (timeout, the
    /// client cancelled or went away).
    answered: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        if !self.answered {
            // Tell the server, so it can stop the work (MCP cancellation); best effort: a
            // full queue or a dead session has nobody to tell.
            let cancelled = jsonrpc::notification(
                "notifications/cancelled",
                serde_json::json!({"requestId": self.id, "reason": "the caller gave up"}),
            );
            let _ = self.stdin.try_send(cancelled.to_string());
        }
    }
}

impl StdioWire {
    /// Sends the server's progress notifications for `token` to `sink` until
    /// [`StdioWire::unwatch_progress`].
    pub fn watch_progress(&self, token: &str, sink: ProgressSink) {
        self.shared
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_owned(), sink);
    }

    /// Stops sending progress for `token`.
    pub fn unwatch_progress(&self, token: &str) {
        self.shared
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }
}

async fn write_stdin(mut stdin: ChildStdin, mut rx: mpsc::Receiver<String>, shared: Arc<Shared>) {
    loop {
        let mut line = tokio::select! {
            line = rx.recv() => match line {
                Some(line) => line,
                None => return,
            },
            () = shared.close_stdin.notified() => return,
        };
        line.push('\n');
        if let Err(e) = stdin.write_all(line.as_bytes()).await {
            shared.die(UpstreamError::Closed(format!(
                "writing to stdin failed: {e}"
            )));
            return;
        }
        // Flush only when nothing else is queued: batches writes under load.
        if rx.is_empty() {
            if let Err(e) = stdin.flush().await {
                shared.die(UpstreamError::Closed(format!("flushing stdin failed: {e}")));
                return;
            }
        }
    }
}

/// Reads the server's stdout: one JSON-RPC message per line. Generic over the reader so the
/// framing and response matching can be driven by generated byte streams in tests.
async fn read_stdout<R: tokio::io::AsyncRead + Unpin>(
    mut lines: FramedRead<R, LinesCodec>,
    shared: Arc<Shared>,
    stdin: mpsc::Sender<String>,
    limit: usize,
) {
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(line) => line,
            Err(LinesCodecError::MaxLineLengthExceeded) => {
                shared.die(UpstreamError::TooLarge { limit });
                return;
            }
            Err(LinesCodecError::Io(e)) => {
                shared.die(UpstreamError::Closed(format!("reading stdout failed: {e}")));
                return;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let message: Value = match serde_json::from_str(&line) {
            Ok(message) => message,
            Err(_) => {
                let shown: String = line.chars().take(120).collect();
                shared.die(UpstreamError::Protocol(format!(
                    "server wrote non-JSON to stdout: {shown:?}"
                )));
                return;
            }
        };
        if jsonrpc::is_response(&message) {
            let id = message.get("id").and_then(Value::as_u64);
            let waiter = id.and_then(|id| {
                shared
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id)
            });
            match waiter {
                Some(tx) => {
                    let _ = tx.send(Ok(message));
                }
                None => {
                    tracing::debug!(instance = %shared.label, ?id, "response nobody waits for (timed out?)")
                }
            }
        } else if jsonrpc::is_request(&message) {
            // Server-to-client requests (sampling, roots, ...) are not relayed: answer so the
            // server does not wait forever. A ping gets its empty result.
            let id = message.get("id").cloned().unwrap_or(Value::Null);
            let reply = if jsonrpc::method(&message) == Some("ping") {
                serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {}})
            } else {
                jsonrpc::error_response(
                    id,
                    jsonrpc::METHOD_NOT_FOUND,
                    "not supported by mcp-rust: requests to the client (sampling, elicitation, \
                     roots) are not relayed",
                )
            };
            let _ = stdin.send(reply.to_string()).await;
        } else if matches!(
            jsonrpc::method(&message),
            Some(
                "notifications/tools/list_changed"
                    | "notifications/resources/list_changed"
                    | "notifications/prompts/list_changed"
            )
        ) {
            if let Some(sink) = &shared.list_changes {
                sink.announce();
            }
        } else if jsonrpc::method(&message) == Some("notifications/progress") {
            let params = message.get("params").cloned().unwrap_or(Value::Null);
            let token = params
                .get("progressToken")
                .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_owned));
            let sink = token.and_then(|t| {
                shared
                    .progress
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&t)
                    .cloned()
            });
            if let Some(sink) = sink {
                let _ = sink.send(params);
            }
        } else {
            tracing::debug!(instance = %shared.label, method = ?jsonrpc::method(&message), "notification from server");
        }
    }
    shared.die(UpstreamError::Closed("server closed stdout".into()));
}

async fn read_stderr(stderr: tokio::process::ChildStderr, label: String) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line: String = line.chars().take(STDERR_LINE_LIMIT).collect();
        tracing::info!(target: "mcp_cluster::upstream::stderr", instance = %label, "{line}");
    }
}

/// Owns the child: reaps it when it exits on its own, or runs the shutdown sequence.
async fn supervise(mut child: Child, stop: oneshot::Receiver<()>, shared: Arc<Shared>) {
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
            shared.close_stdin.notify_one();
            stop_child(&mut child, pid, &shared.label).await;
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
#[path = "stdio_props.rs"]
mod props;

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
