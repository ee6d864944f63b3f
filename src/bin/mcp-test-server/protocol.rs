//! JSON-RPC dispatch and the tools, shared by both transports.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

const STATELESS: &str = "2026-07-28";
const HANDSHAKE_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// What to send back for one stdio line.
pub enum Outcome {
    Reply(Value),
    Garbage(String),
    Silent,
}

/// What to send back for one HTTP POST.
pub enum HttpOutcome {
    Json {
        body: Value,
        session: Option<String>,
    },
    Accepted,
    Status(u16, String),
    Garbage(String),
}

/// The server state.
pub struct Server {
    name: String,
    fail_health: bool,
    handshake_only: bool,
    /// Serve resources, prompts and completions too (`--content`).
    content: bool,
    /// Where notifications to the client go (stdio only; set by the transport).
    notify: Mutex<Option<tokio::sync::mpsc::Sender<String>>>,
    calls: AtomicU64,
    sessions: Mutex<HashSet<String>>,
    next_session: AtomicU64,
}

impl Server {
    pub fn new(name: String, fail_health: bool, handshake_only: bool, content: bool) -> Self {
        Self {
            name,
            fail_health,
            handshake_only,
            content,
            notify: Mutex::new(None),
            calls: AtomicU64::new(0),
            sessions: Mutex::default(),
            next_session: AtomicU64::new(1),
        }
    }

    /// Lets tools send notifications (progress) through `sender`.
    pub fn set_notifier(&self, sender: tokio::sync::mpsc::Sender<String>) {
        *self.notify.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
    }

    pub async fn handle_line(&self, line: &str) -> Outcome {
        let message: Value = match serde_json::from_str(line) {
            Ok(m) => m,
            Err(e) => {
                return Outcome::Reply(error(Value::Null, -32700, &format!("parse error: {e}")))
            }
        };
        self.dispatch(&message).await
    }

    pub async fn handle_http(&self, body: &str, session: Option<&str>) -> HttpOutcome {
        let message: Value = match serde_json::from_str(body) {
            Ok(m) => m,
            Err(e) => {
                return HttpOutcome::Json {
                    body: error(Value::Null, -32700, &format!("parse error: {e}")),
                    session: None,
                }
            }
        };
        let method = message.get("method").and_then(Value::as_str).unwrap_or("");
        let stateless = message
            .pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion")
            .is_some_and(|v| v == STATELESS);
        let mut new_session = None;
        if method == "initialize" {
            let id = format!("s{}", self.next_session.fetch_add(1, Ordering::Relaxed));
            self.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.clone());
            new_session = Some(id);
        } else if !stateless || self.handshake_only {
            match session {
                None => return HttpOutcome::Status(400, "missing Mcp-Session-Id".into()),
                Some(id)
                    if !self
                        .sessions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains(id) =>
                {
                    return HttpOutcome::Status(404, "unknown session".into())
                }
                Some(_) => {}
            }
        }
        match self.dispatch(&message).await {
            Outcome::Reply(body) => HttpOutcome::Json {
                body,
                session: new_session,
            },
            Outcome::Garbage(text) => HttpOutcome::Garbage(text),
            Outcome::Silent => HttpOutcome::Accepted,
        }
    }

    async fn dispatch(&self, message: &Value) -> Outcome {
        let Some(method) = message.get("method").and_then(Value::as_str) else {
            return Outcome::Silent;
        };
        let Some(id) = message.get("id").cloned() else {
            return Outcome::Silent; // notification
        };
        let params = message.get("params").cloned().unwrap_or(json!({}));
        let capabilities = if self.content {
            crate::content::capabilities()
        } else {
            json!({"tools": {}})
        };
        if self.content {
            match crate::content::handle(method, &params, &self.name) {
                Ok(Some(result)) => {
                    return Outcome::Reply(json!({"jsonrpc": "2.0", "id": id, "result": result}))
                }
                Ok(None) => {}
                Err((code, message)) => return Outcome::Reply(error(id, code, &message)),
            }
        }
        let result = match method {
            "initialize" => {
                let asked = params
                    .get("protocolVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let version = if HANDSHAKE_VERSIONS.contains(&asked) {
                    asked
                } else {
                    "2025-11-25"
                };
                json!({
                    "protocolVersion": version,
                    "capabilities": capabilities,
                    "serverInfo": {"name": "mcp-test-server", "version": "0.1.0"},
                })
            }
            "server/discover" if !self.handshake_only => {
                if self.fail_health {
                    return Outcome::Reply(error(id, -32603, "unhealthy on purpose"));
                }
                json!({
                    "supportedVersions": [STATELESS, "2025-11-25"],
                    "capabilities": capabilities,
                    "serverInfo": {"name": "mcp-test-server", "version": "0.1.0"},
                    "resultType": "complete",
                    // Caching hints are required on these results since 2026-07-28: the
                    // same for every caller, and not to be reused (tests change servers).
                    "ttlMs": 0,
                    "cacheScope": "public",
                })
            }
            "ping" => {
                if self.fail_health {
                    return Outcome::Reply(error(id, -32603, "unhealthy on purpose"));
                }
                json!({})
            }
            "tools/list" => json!({
                "tools": tools(),
                "resultType": "complete",
                "ttlMs": 0,
                "cacheScope": "public",
            }),
            "tools/call" => return self.call_tool(id, &params).await,
            other => {
                return Outcome::Reply(error(id, -32601, &format!("method not found: {other}")))
            }
        };
        Outcome::Reply(json!({"jsonrpc": "2.0", "id": id, "result": result}))
    }

    async fn call_tool(&self, id: Value, params: &Value) -> Outcome {
        let count = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let name = params.get("name").and_then(Value::as_str).unwrap_or("");
        let args = params.get("arguments").cloned().unwrap_or(json!({}));
        let text = match name {
            "echo" => args
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            "add" => {
                let a = args.get("a").and_then(Value::as_i64).unwrap_or(0);
                let b = args.get("b").and_then(Value::as_i64).unwrap_or(0);
                (a + b).to_string()
            }
            "sleep" => {
                let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(1000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                format!("slept {ms} ms")
            }
            "fail" => {
                let message = args
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("failed on purpose");
                return Outcome::Reply(error(id, -32000, message));
            }
            "tool_error" => {
                let message = args
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("tool error");
                return Outcome::Reply(json!({"jsonrpc": "2.0", "id": id, "result": {
                    "content": [{"type": "text", "text": message}], "isError": true}}));
            }
            "crash" => {
                let code = args.get("code").and_then(Value::as_i64).unwrap_or(1);
                std::process::exit(i32::try_from(code).unwrap_or(1));
            }
            "garbage" => return Outcome::Garbage("this is not json {{{".to_owned()),
            "huge" => {
                let bytes = args.get("bytes").and_then(Value::as_u64).unwrap_or(1 << 20);
                "x".repeat(usize::try_from(bytes).unwrap_or(0))
            }
            "whoami" => format!("{} pid={}", self.name, std::process::id()),
            "announce_change" => {
                let sender = self
                    .notify
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                if let Some(sender) = sender {
                    let note =
                        json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
                    let _ = sender.send(note.to_string()).await;
                }
                "announced".to_owned()
            }
            "progress" => {
                let steps = args.get("steps").and_then(Value::as_u64).unwrap_or(3);
                let pause = args.get("ms").and_then(Value::as_u64).unwrap_or(50);
                let token = params.pointer("/_meta/progressToken").cloned();
                let sender = self
                    .notify
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                for step in 1..=steps {
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    if let (Some(token), Some(sender)) = (&token, &sender) {
                        let note = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                            "params": {"progressToken": token, "progress": step, "total": steps,
                                       "message": format!("step {step} of {steps}")}});
                        let _ = sender.send(note.to_string()).await;
                    }
                }
                format!("done after {steps} steps")
            }
            // Lets tests prove what reached the process: a spec's env, and nothing of the
            // node's beyond what it should inherit.
            "env" => match args.get("name").and_then(Value::as_str) {
                Some(name) => std::env::var(name).unwrap_or_default(),
                None => {
                    let mut names: Vec<String> = std::env::vars_os()
                        .map(|(name, _)| name.to_string_lossy().into_owned())
                        .collect();
                    names.sort();
                    names.join("\n")
                }
            },
            "counter" => count.to_string(),
            other => return Outcome::Reply(error(id, -32602, &format!("unknown tool: {other}"))),
        };
        Outcome::Reply(json!({"jsonrpc": "2.0", "id": id, "result": {
            "content": [{"type": "text", "text": text}], "isError": false, "resultType": "complete"}}))
    }
}

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn tools() -> Value {
    let tool = |name: &str, description: &str, properties: Value| {
        json!({"name": name, "description": description,
               "inputSchema": {"type": "object", "properties": properties}})
    };
    // `MCP_TEST_ECHO_DESCRIPTION` changes echo's description: a server whose tool
    // definition changes across a restart, for the tool-pinning tests.
    let echo_description = std::env::var("MCP_TEST_ECHO_DESCRIPTION")
        .unwrap_or_else(|_| "Returns its text".to_owned());
    json!([
        tool(
            "echo",
            &echo_description,
            json!({"text": {"type": "string"}})
        ),
        tool(
            "add",
            "Adds two integers",
            json!({"a": {"type": "integer"}, "b": {"type": "integer"}})
        ),
        tool(
            "sleep",
            "Sleeps for ms milliseconds",
            json!({"ms": {"type": "integer"}})
        ),
        tool(
            "fail",
            "Answers with a JSON-RPC error",
            json!({"message": {"type": "string"}})
        ),
        tool(
            "tool_error",
            "Answers with isError: true",
            json!({"message": {"type": "string"}})
        ),
        tool(
            "crash",
            "Exits without answering",
            json!({"code": {"type": "integer"}})
        ),
        tool("garbage", "Writes a line that is not JSON", json!({})),
        tool(
            "huge",
            "Returns a text of the given size",
            json!({"bytes": {"type": "integer"}})
        ),
        tool("whoami", "Names this instance", json!({})),
        tool(
            "env",
            "Returns the value of the environment variable `name`, or without `name` the names of all, one a line",
            json!({"name": {"type": "string"}})
        ),
        tool(
            "counter",
            "Counts the tool calls this process has seen",
            json!({})
        ),
        tool(
            "announce_change",
            "Sends notifications/tools/list_changed (stdio only)",
            json!({})
        ),
        tool(
            "progress",
            "Takes `steps` steps of `ms` milliseconds, reporting progress on each",
            json!({"steps": {"type": "integer"}, "ms": {"type": "integer"}})
        ),
    ])
}
