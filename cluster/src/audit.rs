//! The audit log: one JSON line per write, token change and tool call, saying who did
//! what, where, with what outcome, how long it took and under which request id.
//!
//! Lines go to the tracing target [`TARGET`] (so log filters can route or silence them)
//! and, with `--audit-log FILE`, are appended to that file. A line names the principal,
//! never its credential; tool arguments appear only for servers whose spec sets
//! `audit_arguments`, since they may hold anything the caller typed.
//!
//! Requests forwarded by another node are not recorded again: the node the client reached
//! writes the line, with the outcome it got back.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp_raft::NodeId;
use serde::Serialize;
use serde_json::Value;

use crate::error::ClusterError;
use crate::principal::Principal;

/// The tracing target of audit lines.
pub const TARGET: &str = "mcpd::audit";

/// Through which door a request came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The gRPC API (CLI, Python client, peers' clients).
    Grpc,
    /// The MCP gateway at `/mcp`.
    Mcp,
}

/// One audited action.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord<'a> {
    /// The principal's name (`anonymous` on a node without authentication).
    pub principal: &'a str,
    /// Its role.
    pub role: &'static str,
    /// The gRPC method (`Deploy`, `CreateToken`, `ExecuteTool`) or MCP method
    /// (`tools/call`).
    pub method: &'a str,
    /// The server acted on, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<&'a str>,
    /// The tool called, for tool calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<&'a str>,
    /// The API token created or revoked, for token changes (its name, never the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'a str>,
    /// `ok`, `denied`, or the error category.
    pub outcome: &'a str,
    /// How long the request took.
    #[serde(serialize_with = "as_ms", rename = "duration_ms")]
    pub duration: Duration,
    /// The request id, when the request has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
    /// Through which door it came.
    pub via: Via,
    /// The tool arguments, only for servers that turn it on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<&'a Value>,
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1_000_000.0).round() / 1000.0)
}

impl<'a> AuditRecord<'a> {
    /// A record of `method` by `principal`, with the other fields empty.
    pub fn new(principal: &'a Principal, method: &'a str, via: Via) -> Self {
        Self {
            principal: &principal.name,
            role: principal.role.as_str(),
            method,
            server: None,
            tool: None,
            token: None,
            outcome: "ok",
            duration: Duration::ZERO,
            request_id: None,
            via,
            arguments: None,
        }
    }
}

/// What a write acted on, put by its handler into the response's extensions for the
/// auth layer's audit line (the layer sees no message bodies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSubject {
    /// The server written.
    pub server: Option<String>,
    /// The API token created or revoked (its name).
    pub token: Option<String>,
}

impl AuditSubject {
    /// A write to server `name`.
    pub fn server(name: impl Into<String>) -> Self {
        Self {
            server: Some(name.into()),
            token: None,
        }
    }

    /// A change to the API token named `name`.
    pub fn token(name: impl Into<String>) -> Self {
        Self {
            server: None,
            token: Some(name.into()),
        }
    }

    /// `result` with this subject in its response's extensions.
    pub fn attach<T>(
        self,
        result: Result<tonic::Response<T>, tonic::Status>,
    ) -> Result<tonic::Response<T>, tonic::Status> {
        result.map(|mut response| {
            response.extensions_mut().insert(self);
            response
        })
    }
}

/// The full line: the record plus when and where.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    node: NodeId,
    #[serde(flatten)]
    record: &'a AuditRecord<'a>,
}

/// Where one node's audit lines go.
#[derive(Debug)]
pub struct Audit {
    node: NodeId,
    file: Option<Mutex<std::fs::File>>,
}

impl Audit {
    /// The audit log of node `node`, also appended to `file` when given (created if
    /// missing, owner-only permissions).
    pub fn new(node: NodeId, file: Option<&Path>) -> Result<Self, ClusterError> {
        let file = match file {
            None => None,
            Some(path) => {
                let mut options = std::fs::OpenOptions::new();
                options.create(true).append(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let file = options.open(path).map_err(|source| ClusterError::Io {
                    context: format!("open audit log {}", path.display()),
                    source,
                })?;
                Some(Mutex::new(file))
            }
        };
        Ok(Self { node, file })
    }

    /// An audit log for tests and in-process nodes: tracing only.
    pub fn tracing_only(node: NodeId) -> Self {
        Self { node, file: None }
    }

    /// Writes one line.
    pub fn record(&self, record: &AuditRecord<'_>) {
        let line = Line {
            time: rfc3339(SystemTime::now()),
            node: self.node,
            record,
        };
        let Ok(text) = serde_json::to_string(&line) else {
            return;
        };
        tracing::info!(target: TARGET, "{text}");
        if let Some(file) = &self.file {
            // One short append per line: O_APPEND keeps lines whole, and the write is a
            // single syscall, cheap next to the request it records.
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = file.write_all(format!("{text}\n").as_bytes()) {
                tracing::warn!(error = %e, "could not append to the audit log");
            }
        }
    }
}

/// `time` as an RFC 3339 UTC timestamp with milliseconds.
fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::Role;
    use mcp_raft::registry::principals::AllowRules;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.789Z");
    }

    #[test]
    fn lines_go_to_the_file_without_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = Audit::new(3, Some(&path)).unwrap();
        let principal = Principal::new("ci", Role::Caller, AllowRules::default());
        let mut record = AuditRecord::new(&principal, "ExecuteTool", Via::Grpc);
        record.server = Some("time");
        record.tool = Some("get_current_time");
        record.duration = Duration::from_micros(1500);
        record.request_id = Some("r-1");
        audit.record(&record);
        record.outcome = "denied";
        audit.record(&record);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["principal"], "ci");
        assert_eq!(lines[0]["role"], "caller");
        assert_eq!(lines[0]["node"], 3);
        assert_eq!(lines[0]["tool"], "get_current_time");
        assert_eq!(lines[0]["duration_ms"], 1.5);
        assert_eq!(lines[0]["via"], "grpc");
        assert!(lines[0].get("arguments").is_none());
        assert_eq!(lines[1]["outcome"], "denied");
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    }
}
