//! `mcpd tools list|diff|approve` (pinned tool definitions) and `mcpd secret
//! set|ls|rm|rotate|gen-key` (cluster secrets). Secret values go to the node once, in
//! `set`, and are never printed by any command.

use std::io::Read;

use mcp_client::retry::Repeat;
use mcp_cluster::guards::secrets::Keyring;
use mcp_proto::cluster::{
    ApproveToolsRequest, DeleteSecretRequest, ListSecretsRequest, ListToolPinsReply,
    ListToolPinsRequest, RotateSecretsRequest, SetSecretRequest,
};
use mcp_proto::cluster::{CallerLimit, ListCallerLimitsRequest, SetCallerLimitRequest};
use mcp_proto::execute::ExecuteRequest;
use serde_json::{json, Value};

use crate::cli::{LimitAction, LimitSubjectArgs, OutputFormat, SecretAction, ToolsAction};
use crate::client::{Cluster, Op};
use crate::output;

type CmdResult = Result<(), Box<dyn std::error::Error>>;

async fn pins(
    cluster: &Cluster,
    server: &str,
) -> Result<ListToolPinsReply, Box<dyn std::error::Error>> {
    let request = ListToolPinsRequest {
        server: server.to_owned(),
    };
    Ok(cluster
        .cluster("tools diff", Op::Read, |mut c| {
            let r = request.clone();
            async move { c.list_tool_pins(r).await }
        })
        .await?)
}

/// Runs one `mcpd tools` action.
pub async fn tools(cluster: &Cluster, out: OutputFormat, action: ToolsAction) -> CmdResult {
    match action {
        ToolsAction::List { server } => {
            let request = ExecuteRequest {
                server: server.clone(),
                request_json:
                    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})
                        .to_string(),
                retry_unsafe: false,
                timeout_ms: None,
            };
            let reply = cluster
                .execute(Repeat::Safe, None, |mut c| {
                    let r = request.clone();
                    async move { c.execute(r).await }
                })
                .await?;
            let response: Value = serde_json::from_str(&reply.response_json)?;
            let tools = response
                .pointer("/result/tools")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let pinned = pins(cluster, &server).await?;
            let withheld: Vec<&str> = pinned
                .tools
                .iter()
                .filter(|t| t.state != "pinned")
                .map(|t| t.tool.as_str())
                .collect();
            match out {
                OutputFormat::Json | OutputFormat::Yaml => print!(
                    "{}",
                    output::json(&json!({"tools": tools, "withheld": withheld}))
                ),
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = tools
                        .iter()
                        .map(|t| {
                            let text = |k: &str| {
                                t.get(k)
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            vec![text("name"), text("description")]
                        })
                        .collect();
                    print!("{}", output::table(&["TOOL", "DESCRIPTION"], &rows));
                    if !withheld.is_empty() {
                        println!(
                            "withheld until approved: {} (see `mcpd tools diff {server}`)",
                            withheld.join(", ")
                        );
                    }
                }
            }
        }
        ToolsAction::Diff { server } => {
            let reply = pins(cluster, &server).await?;
            match out {
                OutputFormat::Json | OutputFormat::Yaml => {
                    let tools: Vec<Value> = reply
                        .tools
                        .iter()
                        .map(|t| {
                            json!({
                                "tool": t.tool, "state": t.state,
                                "pinned_hash": t.pinned_hash, "pending_hash": t.pending_hash,
                                "pinned": parse(&t.pinned_definition),
                                "pending": parse(&t.pending_definition),
                                "seen_by": t.seen_by, "seen_at_ms": t.seen_at_ms,
                            })
                        })
                        .collect();
                    print!(
                        "{}",
                        output::json(
                            &json!({"server": reply.server, "pin": reply.policy, "tools": tools})
                        )
                    );
                }
                OutputFormat::Table => {
                    println!("server {} (pin: {})", reply.server, reply.policy);
                    let mut pending = 0;
                    for t in &reply.tools {
                        if t.state == "pinned" {
                            continue;
                        }
                        pending += 1;
                        println!("\n{} {} (seen by node {}):", t.state, t.tool, t.seen_by);
                        for line in diff_lines(
                            &pretty(&t.pinned_definition),
                            &pretty(&t.pending_definition),
                        ) {
                            println!("  {line}");
                        }
                    }
                    if pending == 0 {
                        println!("no pending changes; {} tools pinned", reply.tools.len());
                    } else {
                        println!("\napprove with `mcpd tools approve {server} [TOOL...]`");
                    }
                }
            }
        }
        ToolsAction::Approve { server, tools } => {
            let request = ApproveToolsRequest {
                server: server.clone(),
                tools,
            };
            let reply = cluster
                .cluster("tools approve", Op::Write, |mut c| {
                    let r = request.clone();
                    async move { c.approve_tools(r).await }
                })
                .await?;
            let json =
                json!({"server": server, "revision": reply.revision, "log_index": reply.log_index});
            match out {
                OutputFormat::Json | OutputFormat::Yaml => print!("{}", output::json(&json)),
                OutputFormat::Table => println!(
                    "approved the pending tool definitions of {server} (revision {})",
                    reply.revision
                ),
            }
        }
    }
    Ok(())
}

fn parse(definition: &str) -> Value {
    serde_json::from_str(definition).unwrap_or(Value::Null)
}

fn pretty(definition: &str) -> Vec<String> {
    if definition.is_empty() {
        return Vec::new();
    }
    serde_json::to_string_pretty(&parse(definition))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A line diff (longest common subsequence): `  ` kept, `- ` pinned only, `+ ` new only.
fn diff_lines(old: &[String], new: &[String]) -> Vec<String> {
    let (n, m) = (old.len(), new.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            out.push(format!("  {}", old[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+ {}", new[j]));
            j += 1;
        } else {
            out.push(format!("- {}", old[i]));
            i += 1;
        }
    }
    out
}

/// Runs one `mcpd secret` action.
pub async fn secret(cluster: &Cluster, out: OutputFormat, action: SecretAction) -> CmdResult {
    match action {
        SecretAction::Set { name, file } => {
            let value = match file {
                Some(path) => std::fs::read(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                None => {
                    let mut text = Vec::new();
                    std::io::stdin().read_to_end(&mut text)?;
                    if text.ends_with(b"\n") {
                        text.pop();
                        if text.ends_with(b"\r") {
                            text.pop();
                        }
                    }
                    text
                }
            };
            let request = SetSecretRequest {
                name: name.clone(),
                value,
            };
            let reply = cluster
                .cluster("secret set", Op::Write, |mut c| {
                    let r = request.clone();
                    async move { c.set_secret(r).await }
                })
                .await?;
            let json = json!({"name": name, "revision": reply.revision});
            match out {
                OutputFormat::Json | OutputFormat::Yaml => print!("{}", output::json(&json)),
                OutputFormat::Table => println!("secret {name} set (revision {})", reply.revision),
            }
        }
        SecretAction::Ls => {
            let reply = cluster
                .cluster("secret ls", Op::Read, |mut c| async move {
                    c.list_secrets(ListSecretsRequest {}).await
                })
                .await?;
            match out {
                OutputFormat::Json | OutputFormat::Yaml => {
                    let secrets: Vec<Value> = reply
                        .secrets
                        .iter()
                        .map(|s| json!({"name": s.name, "key_id": s.key_id, "revision": s.mod_revision}))
                        .collect();
                    print!(
                        "{}",
                        output::json(
                            &json!({"secrets": secrets, "current_key_id": reply.current_key_id})
                        )
                    );
                }
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = reply
                        .secrets
                        .iter()
                        .map(|s| {
                            let stale = if !reply.current_key_id.is_empty()
                                && s.key_id != reply.current_key_id
                            {
                                " (old key: run `mcpd secret rotate`)"
                            } else {
                                ""
                            };
                            vec![
                                s.name.clone(),
                                format!("{}{stale}", s.key_id),
                                s.mod_revision.to_string(),
                            ]
                        })
                        .collect();
                    print!("{}", output::table(&["NAME", "KEY", "REVISION"], &rows));
                }
            }
        }
        SecretAction::Rm { name } => {
            let request = DeleteSecretRequest { name: name.clone() };
            let reply = cluster
                .cluster("secret rm", Op::Write, |mut c| {
                    let r = request.clone();
                    async move { c.delete_secret(r).await }
                })
                .await?;
            match out {
                OutputFormat::Json | OutputFormat::Yaml => print!(
                    "{}",
                    output::json(&json!({"name": name, "revision": reply.revision}))
                ),
                OutputFormat::Table => {
                    println!("secret {name} removed (revision {})", reply.revision)
                }
            }
        }
        SecretAction::Rotate => {
            let reply = cluster
                .cluster("secret rotate", Op::Write, |mut c| async move {
                    c.rotate_secrets(RotateSecretsRequest {}).await
                })
                .await?;
            match out {
                OutputFormat::Json | OutputFormat::Yaml => print!(
                    "{}",
                    output::json(
                        &json!({"resealed": reply.resealed, "key_id": reply.key_id, "revision": reply.revision})
                    )
                ),
                OutputFormat::Table => println!(
                    "{} secrets resealed under key {} (revision {})",
                    reply.resealed, reply.key_id, reply.revision
                ),
            }
        }
        SecretAction::GenKey => println!("{}", Keyring::generate_key_text()),
    }
    Ok(())
}

fn subject(args: LimitSubjectArgs) -> (String, String) {
    match (args.principal, args.role) {
        (Some(name), _) => ("principal".to_owned(), name),
        (None, Some(role)) => ("role".to_owned(), role),
        // clap requires one of the two.
        (None, None) => ("principal".to_owned(), String::new()),
    }
}

/// Runs one `mcpd limit` action.
pub async fn limit(cluster: &Cluster, out: OutputFormat, action: LimitAction) -> CmdResult {
    let set = |kind: String, name: String, per_second: u32, burst: u32| SetCallerLimitRequest {
        limit: Some(CallerLimit {
            kind,
            name,
            per_second,
            burst,
        }),
    };
    let request = match action {
        LimitAction::Ls => {
            let reply = cluster
                .cluster("limit ls", Op::Read, |mut c| async move {
                    c.list_caller_limits(ListCallerLimitsRequest {}).await
                })
                .await?;
            match out {
                OutputFormat::Json => {
                    let limits: Vec<Value> = reply
                        .limits
                        .iter()
                        .map(|l| json!({"kind": l.kind, "name": l.name, "per_second": l.per_second, "burst": l.burst}))
                        .collect();
                    print!("{}", output::json(&json!({ "limits": limits })));
                }
                _ => {
                    let rows: Vec<Vec<String>> = reply
                        .limits
                        .iter()
                        .map(|l| {
                            vec![
                                l.kind.clone(),
                                l.name.clone(),
                                l.per_second.to_string(),
                                l.burst.to_string(),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        output::table(&["KIND", "NAME", "PER_SECOND", "BURST"], &rows)
                    );
                }
            }
            return Ok(());
        }
        LimitAction::Set {
            subject: who,
            per_second,
            burst,
        } => {
            if per_second == 0 {
                return Err(
                    "--per-second must be at least 1 (use `mcpd limit rm` to remove)".into(),
                );
            }
            let (kind, name) = subject(who);
            set(kind, name, per_second, burst.unwrap_or(per_second))
        }
        LimitAction::Rm { subject: who } => {
            let (kind, name) = subject(who);
            set(kind, name, 0, 0)
        }
    };
    let reply = cluster
        .cluster("limit set", Op::Write, |mut c| {
            let r = request.clone();
            async move { c.set_caller_limit(r).await }
        })
        .await?;
    let limit = request.limit.unwrap_or_default();
    match out {
        OutputFormat::Json => print!(
            "{}",
            output::json(
                &json!({"kind": limit.kind, "name": limit.name, "revision": reply.revision})
            )
        ),
        _ => println!(
            "{} {}: {} (revision {})",
            limit.kind,
            limit.name,
            if limit.per_second == 0 {
                "no limit".to_owned()
            } else {
                format!("{}/s, burst {}", limit.per_second, limit.burst)
            },
            reply.revision
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::diff_lines;

    #[test]
    fn diff_marks_changed_lines() {
        let old: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let new: Vec<String> = ["a", "x", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(diff_lines(&old, &new), ["  a", "+ x", "- b", "  c", "+ d"]);
    }
}
