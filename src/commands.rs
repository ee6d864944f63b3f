//! Client subcommands: each sends one request to the cluster (the first node of the
//! endpoint list that can be reached, or the leader for writes) and prints the answer.

use std::io::Read;
use std::path::Path;

use mcp_client::retry::{is_repeatable_request, Repeat};
use mcp_proto::cluster::{
    AddLearnerRequest, DeployRequest, DrainRequest, GetMetricsRequest, GetServerRequest,
    ListServersRequest, MembersReply, MembersRequest, PromoteVoterRequest, RemoveNodeRequest,
    RotateSessionKeyRequest, ScaleRequest, ServerInfo, ServerStats, StatusRequest, UndeployRequest,
    WriteReply,
};
use mcp_proto::execute::{ExecuteRequest, ExecuteToolRequest};
use serde_json::{json, Value};

use crate::cli::{ClientArgs, Command, ExecArgs, GatewayAction, MembersAction, OutputFormat};
use crate::client::{Cluster, Op};
use crate::output;

/// An error reply from the cluster, shown as its message and category.
#[derive(Debug, thiserror::Error)]
#[error("{message} [{kind}]")]
pub struct RemoteError {
    message: String,
    kind: String,
}

impl RemoteError {
    /// An error with `message`, of category `kind`.
    pub fn new(message: impl Into<String>, kind: &str) -> Self {
        Self {
            message: message.into(),
            kind: kind.to_owned(),
        }
    }
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
    let cluster = Cluster::new(args)?;
    let out = args.output;
    match command {
        Command::Deploy {
            file,
            expected_revision,
        } => {
            let request = DeployRequest {
                spec_json: read_spec(&file)?,
                expected_revision,
            };
            let reply = cluster
                .cluster("deploy", Op::Write, |mut c| {
                    let r = request.clone();
                    async move { c.deploy(r).await }
                })
                .await?;
            print_write(
                out,
                if reply.created { "created" } else { "updated" },
                &reply,
            );
        }
        Command::Apply(apply) => crate::apply::run(&cluster, apply, out).await?,
        Command::Scale { name, replicas } => {
            let request = ScaleRequest { name, replicas };
            let reply = cluster
                .cluster("scale", Op::Write, |mut c| {
                    let r = request.clone();
                    async move { c.scale(r).await }
                })
                .await?;
            print_write(out, "scaled", &reply);
        }
        Command::Undeploy { name } => {
            let request = UndeployRequest { name };
            let reply = cluster
                .cluster("undeploy", Op::Write, |mut c| {
                    let r = request.clone();
                    async move { c.undeploy(r).await }
                })
                .await?;
            print_write(out, "undeployed", &reply);
        }
        Command::Get { name, stale } => {
            let request = GetServerRequest { name, stale };
            let info = cluster
                .cluster("get", Op::Read, |mut c| {
                    let r = request.clone();
                    async move { c.get_server(r).await }
                })
                .await?;
            match out {
                OutputFormat::Yaml => print!("{}", crate::apply::spec_yaml(&info)?),
                OutputFormat::Json => print!("{}", output::json(&server_json(&info))),
                OutputFormat::Table => print!("{}", output::json(&server_json(&info))),
            }
        }
        Command::Ls { stale } => {
            let request = ListServersRequest { stale };
            let reply = cluster
                .cluster("list servers", Op::Read, |mut c| {
                    let r = request;
                    async move { c.list_servers(r).await }
                })
                .await?;
            match out {
                OutputFormat::Json | OutputFormat::Yaml => {
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
        Command::Status => status(&cluster, out).await?,
        Command::Stats => stats(&cluster, out).await?,
        Command::Drain { id, undo } => {
            let request = DrainRequest {
                id,
                draining: !undo,
            };
            let reply = cluster
                .cluster("drain", Op::Write, |mut c| {
                    let r = request;
                    async move { c.drain(r).await }
                })
                .await?;
            print_write(out, if undo { "undrained" } else { "draining" }, &reply);
        }
        Command::Members { action } => {
            let reply = match action {
                None => {
                    cluster
                        .cluster("members", Op::Read, |mut c| async move {
                            c.members(MembersRequest {}).await
                        })
                        .await?
                }
                Some(MembersAction::Add { id, addr }) => {
                    let request = AddLearnerRequest { id, addr };
                    cluster
                        .cluster("add learner", Op::SlowWrite, |mut c| {
                            let r = request.clone();
                            async move { c.add_learner(r).await }
                        })
                        .await?
                }
                Some(MembersAction::Promote { id }) => {
                    cluster
                        .cluster("promote voter", Op::Write, |mut c| async move {
                            c.promote_voter(PromoteVoterRequest { id }).await
                        })
                        .await?
                }
                Some(MembersAction::Remove { id }) => {
                    cluster
                        .cluster("remove node", Op::Write, |mut c| async move {
                            c.remove_node(RemoveNodeRequest { id }).await
                        })
                        .await?
                }
            };
            print_members(out, &reply);
        }
        Command::Gateway {
            action: GatewayAction::RotateKey,
        } => {
            let reply = cluster
                .cluster("rotate key", Op::Write, |mut c| async move {
                    c.rotate_session_key(RotateSessionKeyRequest {}).await
                })
                .await?;
            let reply = &reply;
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
        Command::Token { action } => crate::tokens::run(&cluster, out, action).await?,
        Command::View { action } => crate::views::run(&cluster, out, action).await?,
        Command::Tools { action } => crate::guards::tools(&cluster, out, action).await?,
        Command::Secret { action } => crate::guards::secret(&cluster, out, action).await?,
        Command::Limit { action } => crate::guards::limit(&cluster, out, action).await?,
        Command::Node(_)
        | Command::Dev(_)
        | Command::Certs { .. }
        | Command::Snapshot { .. }
        | Command::Recover(_)
        | Command::Call { .. }
        | Command::Exec { .. } => {
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
    let cluster = Cluster::new(args)?;
    let request = ExecuteToolRequest {
        server,
        tool,
        arguments_json: arguments,
        retry_unsafe: exec.retry_unsafe,
        timeout_ms: exec.timeout_ms,
    };
    // A tools/call goes to another node only when it provably never reached the first,
    // unless --retry-unsafe allows more.
    let repeat = if exec.retry_unsafe {
        Repeat::Safe
    } else {
        Repeat::Unsafe
    };
    let reply = cluster
        .execute(
            repeat,
            exec.timeout_ms.map(std::time::Duration::from_millis),
            |mut c| {
                let r = request.clone();
                async move { c.execute_tool(r).await }
            },
        )
        .await?;
    let response: Value = serde_json::from_str(&reply.response_json)?;
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => print!("{}", output::json(&response)),
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
    let cluster = Cluster::new(args)?;
    let request_json = message.to_string();
    let repeat = if exec.retry_unsafe || is_repeatable_request(&request_json) {
        Repeat::Safe
    } else {
        Repeat::Unsafe
    };
    let request = ExecuteRequest {
        server,
        request_json,
        retry_unsafe: exec.retry_unsafe,
        timeout_ms: exec.timeout_ms,
    };
    let reply = cluster
        .execute(
            repeat,
            exec.timeout_ms.map(std::time::Duration::from_millis),
            |mut c| {
                let r = request.clone();
                async move { c.execute(r).await }
            },
        )
        .await?;
    let response: Value = serde_json::from_str(&reply.response_json)?;
    print!("{}", output::json(&response));
    Ok(())
}

/// Reads a spec file (JSON or YAML; "-" is stdin) and returns it as JSON text.
pub(crate) fn read_spec(path: &Path) -> Result<String, Box<dyn std::error::Error>> {
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
        OutputFormat::Json | OutputFormat::Yaml => print!("{}", output::json(json)),
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

async fn status(cluster: &Cluster, out: OutputFormat) -> CmdResult {
    let s = cluster
        .cluster("status", Op::Read, |mut c| async move {
            c.status(StatusRequest {}).await
        })
        .await?;
    match out {
        OutputFormat::Json | OutputFormat::Yaml => print!(
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

async fn stats(cluster: &Cluster, out: OutputFormat) -> CmdResult {
    let reply = cluster
        .cluster("stats", Op::Read, |mut c| async move {
            c.get_metrics(GetMetricsRequest {}).await
        })
        .await?;
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
        OutputFormat::Json | OutputFormat::Yaml => print!(
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
        OutputFormat::Json | OutputFormat::Yaml => print!(
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
