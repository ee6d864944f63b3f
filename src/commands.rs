//! Client subcommands: each sends one request to `--endpoint` and prints the answer.

use std::io::Read;
use std::path::Path;

use mcp_proto::cluster::{
    AddLearnerRequest, DeployRequest, DrainRequest, GetMetricsRequest, GetServerRequest,
    ListServersRequest, MembersReply, MembersRequest, PromoteVoterRequest, RemoveNodeRequest,
    RotateSessionKeyRequest, ScaleRequest, ServerInfo, ServerStats, StatusRequest, UndeployRequest,
    WriteReply,
};
use mcp_proto::execute::{ExecuteRequest, ExecuteToolRequest};
use serde_json::{json, Value};

use crate::cli::{ClientArgs, Command, ExecArgs, GatewayAction, MembersAction, OutputFormat};
use crate::client::{self, Client};
use crate::output;

/// An error reply from the cluster, shown as its message and category.
#[derive(Debug, thiserror::Error)]
#[error("{message} [{kind}]")]
pub struct RemoteError {
    message: String,
    kind: String,
}

impl From<tonic::Status> for RemoteError {
    fn from(status: tonic::Status) -> Self {
        let kind = status
            .metadata()
            .get(mcp_proto::ERROR_KIND)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{:?}", status.code()).to_lowercase());
        Self {
            message: status.message().to_owned(),
            kind,
        }
    }
}

type CmdResult = Result<(), Box<dyn std::error::Error>>;

/// Runs one client subcommand.
pub async fn run(args: &ClientArgs, command: Command) -> CmdResult {
    match command {
        Command::Call {
            server,
            tool,
            arguments,
            exec,
        } => return call(args, server, tool, arguments, exec).await,
        Command::Exec {
            server,
            request,
            exec,
        } => return exec_raw(args, server, request, exec).await,
        _ => {}
    }
    let mut client = client::connect(args).await?;
    let out = args.output;
    match command {
        Command::Deploy {
            file,
            expected_revision,
        } => {
            let spec_json = read_spec(&file)?;
            let reply = client
                .deploy(DeployRequest {
                    spec_json,
                    expected_revision,
                })
                .await
                .map_err(RemoteError::from)?;
            print_write(
                out,
                if reply.get_ref().created {
                    "created"
                } else {
                    "updated"
                },
                reply.get_ref(),
            );
        }
        Command::Scale { name, replicas } => {
            let reply = client
                .scale(ScaleRequest { name, replicas })
                .await
                .map_err(RemoteError::from)?;
            print_write(out, "scaled", reply.get_ref());
        }
        Command::Undeploy { name } => {
            let reply = client
                .undeploy(UndeployRequest { name })
                .await
                .map_err(RemoteError::from)?;
            print_write(out, "undeployed", reply.get_ref());
        }
        Command::Get { name, stale } => {
            let info = client
                .get_server(GetServerRequest { name, stale })
                .await
                .map_err(RemoteError::from)?
                .into_inner();
            match out {
                OutputFormat::Json => print!("{}", output::json(&server_json(&info))),
                OutputFormat::Table => print!("{}", output::json(&server_json(&info))),
            }
        }
        Command::Ls { stale } => {
            let reply = client
                .list_servers(ListServersRequest { stale })
                .await
                .map_err(RemoteError::from)?
                .into_inner();
            match out {
                OutputFormat::Json => {
                    let servers: Vec<Value> = reply.servers.iter().map(server_json).collect();
                    print!(
                        "{}",
                        output::json(&json!({"revision": reply.revision, "servers": servers}))
                    );
                }
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = reply
                        .servers
                        .iter()
                        .map(|s| {
                            let nodes: Vec<String> = s
                                .placements
                                .iter()
                                .map(|p| format!("{}:{}", p.node_id, p.state))
                                .collect();
                            vec![
                                s.name.clone(),
                                s.transport.clone(),
                                format!("{}/{}", s.running, s.replicas),
                                nodes.join(" "),
                                s.priority.to_string(),
                                s.tags.join(","),
                                s.mod_revision.to_string(),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        output::table(
                            &[
                                "NAME",
                                "TRANSPORT",
                                "RUNNING/DESIRED",
                                "NODE:STATE",
                                "PRIORITY",
                                "TAGS",
                                "REVISION"
                            ],
                            &rows
                        )
                    );
                }
            }
        }
        Command::Status => status(&mut client, out).await?,
        Command::Stats => stats(&mut client, out).await?,
        Command::Drain { id, undo } => {
            let reply = client
                .drain(DrainRequest {
                    id,
                    draining: !undo,
                })
                .await
                .map_err(RemoteError::from)?;
            print_write(
                out,
                if undo { "undrained" } else { "draining" },
                reply.get_ref(),
            );
        }
        Command::Members { action } => {
            let reply = match action {
                None => client.members(MembersRequest {}).await,
                Some(MembersAction::Add { id, addr }) => {
                    client.add_learner(AddLearnerRequest { id, addr }).await
                }
                Some(MembersAction::Promote { id }) => {
                    client.promote_voter(PromoteVoterRequest { id }).await
                }
                Some(MembersAction::Remove { id }) => {
                    client.remove_node(RemoveNodeRequest { id }).await
                }
            }
            .map_err(RemoteError::from)?;
            print_members(out, reply.get_ref());
        }
        Command::Gateway {
            action: GatewayAction::RotateKey,
        } => {
            let reply = client
                .rotate_session_key(RotateSessionKeyRequest {})
                .await
                .map_err(RemoteError::from)?;
            let reply = reply.get_ref();
            let json = json!({
                "key_id": reply.key_id,
                "revision": reply.revision,
                "log_index": reply.log_index,
            });
            print_reply(out, &json, || {
                format!(
                    "gateway session key {} in use (revision {}); older sessions stay valid until they expire",
                    reply.key_id, reply.revision
                )
            });
        }
        Command::Node(_) | Command::Dev(_) | Command::Call { .. } | Command::Exec { .. } => {
            return Err("not a cluster-API command".into());
        }
    }
    Ok(())
}

async fn call(
    args: &ClientArgs,
    server: String,
    tool: String,
    arguments: String,
    exec: ExecArgs,
) -> CmdResult {
    let mut client = client::connect_exec(args).await?;
    let reply = client
        .execute_tool(ExecuteToolRequest {
            server,
            tool,
            arguments_json: arguments,
            retry_unsafe: exec.retry_unsafe,
            timeout_ms: exec.timeout_ms,
        })
        .await
        .map_err(RemoteError::from)?
        .into_inner();
    let response: Value = serde_json::from_str(&reply.response_json)?;
    match args.output {
        OutputFormat::Json => print!("{}", output::json(&response)),
        OutputFormat::Table => {
            let result = &response["result"];
            let texts: Vec<&str> = result["content"]
                .as_array()
                .map(|items| items.iter().filter_map(|i| i["text"].as_str()).collect())
                .unwrap_or_default();
            if texts.is_empty() {
                print!("{}", output::json(result));
            } else {
                for text in texts {
                    println!("{text}");
                }
            }
            if result["isError"] == true {
                return Err("the tool reported an error (isError: true)".into());
            }
        }
    }
    Ok(())
}

async fn exec_raw(args: &ClientArgs, server: String, request: String, exec: ExecArgs) -> CmdResult {
    let mut message: Value =
        serde_json::from_str(&request).map_err(|e| format!("the request is not JSON: {e}"))?;
    if let Some(object) = message.as_object_mut() {
        object.entry("jsonrpc").or_insert_with(|| json!("2.0"));
        if object.contains_key("method") {
            object.entry("id").or_insert_with(|| json!(1));
        }
    }
    let mut client = client::connect_exec(args).await?;
    let reply = client
        .execute(ExecuteRequest {
            server,
            request_json: message.to_string(),
            retry_unsafe: exec.retry_unsafe,
            timeout_ms: exec.timeout_ms,
        })
        .await
        .map_err(RemoteError::from)?
        .into_inner();
    let response: Value = serde_json::from_str(&reply.response_json)?;
    print!("{}", output::json(&response));
    Ok(())
}

/// Reads a spec file (JSON or YAML; "-" is stdin) and returns it as JSON text.
fn read_spec(path: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    }
    let is_yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    if !is_yaml {
        // JSON goes to the node as written, so its parser reports errors with positions.
        return Ok(text);
    }
    let value: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| format!("malformed YAML in {}: {e}", path.display()))?;
    Ok(value.to_string())
}

fn print_write(out: OutputFormat, verb: &str, reply: &WriteReply) {
    let json = json!({
        "name": reply.name,
        "revision": reply.revision,
        "created": reply.created,
        "log_index": reply.log_index,
    });
    print_reply(out, &json, || {
        format!("{} {} (revision {})", reply.name, verb, reply.revision)
    });
}

/// Prints a reply as `json` (`-o json`) or as the one line `line` makes.
fn print_reply(out: OutputFormat, json: &Value, line: impl FnOnce() -> String) {
    match out {
        OutputFormat::Json => print!("{}", output::json(json)),
        OutputFormat::Table => println!("{}", line()),
    }
}

fn server_json(info: &ServerInfo) -> Value {
    let spec: Value = serde_json::from_str(&info.spec_json).unwrap_or(Value::Null);
    let placements: serde_json::Map<String, Value> = info
        .placements
        .iter()
        .map(|p| (p.instance_id.clone(), json!(p.node_id)))
        .collect();
    json!({
        "name": info.name,
        "transport": info.transport,
        "replicas": info.replicas,
        "priority": info.priority,
        "tags": info.tags,
        "create_revision": info.create_revision,
        "mod_revision": info.mod_revision,
        "placements": placements,
        "running": info.running,
        "instances": info.placements.iter().map(|p| json!({
            "id": p.instance_id, "node": p.node_id, "state": p.state,
        })).collect::<Vec<_>>(),
        "spec": spec,
    })
}

async fn status(client: &mut Client, out: OutputFormat) -> CmdResult {
    let s = client
        .status(StatusRequest {})
        .await
        .map_err(RemoteError::from)?
        .into_inner();
    match out {
        OutputFormat::Json => print!(
            "{}",
            output::json(&json!({
                "node_id": s.node_id,
                "grpc_addr": s.grpc_addr,
                "role": s.role,
                "leader_id": s.leader_id,
                "term": s.term,
                "last_log_index": s.last_log_index,
                "last_applied_index": s.last_applied_index,
                "snapshot_index": s.snapshot_index,
                "purged_index": s.purged_index,
                "revision": s.revision,
                "server_count": s.server_count,
                "members": s.members.iter().map(|m| json!({"id": m.id, "addr": m.addr, "voter": m.voter, "draining": m.draining})).collect::<Vec<_>>(),
                "instances": s.instances.iter().map(|i| json!({
                    "id": i.id, "server": i.server, "state": i.state, "breaker": i.breaker,
                    "in_flight": i.in_flight, "restarts": i.restarts, "protocol_version": i.protocol_version,
                })).collect::<Vec<_>>(),
            }))
        ),
        OutputFormat::Table => {
            let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            let rows = vec![
                vec![
                    "node".to_owned(),
                    format!("{} ({})", s.node_id, s.grpc_addr),
                ],
                vec!["role".to_owned(), s.role.clone()],
                vec!["leader".to_owned(), opt(s.leader_id)],
                vec!["term".to_owned(), s.term.to_string()],
                vec!["last log index".to_owned(), opt(s.last_log_index)],
                vec!["last applied".to_owned(), opt(s.last_applied_index)],
                vec!["snapshot index".to_owned(), opt(s.snapshot_index)],
                vec!["purged index".to_owned(), opt(s.purged_index)],
                vec!["registry revision".to_owned(), s.revision.to_string()],
                vec!["servers".to_owned(), s.server_count.to_string()],
                vec!["members".to_owned(), s.members.len().to_string()],
            ];
            print!("{}", output::table(&["FIELD", "VALUE"], &rows));
            if !s.instances.is_empty() {
                let rows: Vec<Vec<String>> = s
                    .instances
                    .iter()
                    .map(|i| {
                        vec![
                            i.id.clone(),
                            i.server.clone(),
                            i.state.clone(),
                            i.breaker.clone(),
                            i.in_flight.to_string(),
                            i.restarts.to_string(),
                        ]
                    })
                    .collect();
                println!();
                print!(
                    "{}",
                    output::table(
                        &[
                            "INSTANCE",
                            "SERVER",
                            "STATE",
                            "BREAKER",
                            "IN FLIGHT",
                            "RESTARTS"
                        ],
                        &rows
                    )
                );
            }
        }
    }
    Ok(())
}

async fn stats(client: &mut Client, out: OutputFormat) -> CmdResult {
    let reply = client
        .get_metrics(GetMetricsRequest {})
        .await
        .map_err(RemoteError::from)?
        .into_inner();
    let row = |s: &ServerStats| {
        json!({
            "server": s.server,
            "total_requests": s.total_requests,
            "successful_requests": s.successful_requests,
            "success_rate": s.success_rate,
            "avg_latency_ms": s.avg_latency_ms,
            "p99_latency_ms": s.p99_latency_ms,
        })
    };
    let total = reply.total.unwrap_or_default();
    match out {
        OutputFormat::Json => print!(
            "{}",
            output::json(&json!({
                "node_id": reply.node_id,
                "total": row(&total),
                "servers": reply.servers.iter().map(row).collect::<Vec<_>>(),
            }))
        ),
        OutputFormat::Table => {
            let cells = |name: &str, s: &ServerStats| {
                vec![
                    name.to_owned(),
                    s.total_requests.to_string(),
                    format!("{:.1}%", 100.0 * s.success_rate),
                    format!("{:.2}", s.avg_latency_ms),
                    format!("{:.2}", s.p99_latency_ms),
                ]
            };
            let mut rows: Vec<Vec<String>> =
                reply.servers.iter().map(|s| cells(&s.server, s)).collect();
            rows.push(cells("(all)", &total));
            print!(
                "{}",
                output::table(
                    &["SERVER", "REQUESTS", "SUCCESS", "AVG MS", "P99 MS"],
                    &rows
                )
            );
        }
    }
    Ok(())
}

fn print_members(out: OutputFormat, reply: &MembersReply) {
    match out {
        OutputFormat::Json => print!(
            "{}",
            output::json(&json!({
                "leader_id": reply.leader_id,
                "members": reply.members.iter().map(|m| json!({
                    "id": m.id, "addr": m.addr, "voter": m.voter, "draining": m.draining,
                    "reachable": m.reachable,
                })).collect::<Vec<_>>(),
            }))
        ),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = reply
                .members
                .iter()
                .map(|m| {
                    let role = if reply.leader_id == Some(m.id) {
                        "leader"
                    } else if m.voter {
                        "voter"
                    } else {
                        "learner"
                    };
                    let state = match (m.reachable, m.draining) {
                        (Some(false), _) => "unreachable",
                        (_, true) => "draining",
                        _ => "up",
                    };
                    vec![
                        m.id.to_string(),
                        m.addr.clone(),
                        role.to_owned(),
                        state.to_owned(),
                    ]
                })
                .collect();
            print!(
                "{}",
                output::table(&["ID", "ADDRESS", "ROLE", "STATE"], &rows)
            );
        }
    }
}
