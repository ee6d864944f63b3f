//! `mcpd view apply|ls|get|rm`: views of the MCP gateway (virtual servers at
//! `/mcp/v/NAME`), replicated by Raft. See docs/gateway.md, Views.

use std::path::Path;

use mcp_proto::cluster::{DeleteViewRequest, ListViewsRequest, PutViewRequest};
use serde_json::Value;

use crate::cli::{OutputFormat, ViewAction};
use crate::client::{Cluster, Op};
use crate::output;

type CmdResult = Result<(), Box<dyn std::error::Error>>;

/// The views of a reply, parsed (each was serialized by the node).
fn parse(views_json: &[String]) -> Vec<Value> {
    views_json
        .iter()
        .filter_map(|v| serde_json::from_str(v).ok())
        .collect()
}

fn print_views(out: OutputFormat, views: &[Value]) {
    match out {
        OutputFormat::Json => println!("{}", output::json(&Value::Array(views.to_vec()))),
        OutputFormat::Yaml => match serde_yaml_ng::to_string(views) {
            Ok(text) => print!("{text}"),
            Err(_) => println!("{}", output::json(&Value::Array(views.to_vec()))),
        },
        OutputFormat::Table => {
            let list = |v: &Value, key: &str| {
                let items: Vec<String> = v[key]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                if items.is_empty() {
                    "-".to_owned()
                } else {
                    items.join(",")
                }
            };
            let rows: Vec<Vec<String>> = views
                .iter()
                .map(|v| {
                    vec![
                        v["name"].as_str().unwrap_or_default().to_owned(),
                        list(v, "servers"),
                        list(v, "tags"),
                        list(v, "allow_tools"),
                        list(v, "deny_tools"),
                        v["rename"].as_object().map_or(0, |m| m.len()).to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                output::table(
                    &["NAME", "SERVERS", "TAGS", "ALLOW", "DENY", "RENAMES"],
                    &rows
                )
            );
        }
    }
}

/// Runs one `mcpd view` action.
pub async fn run(cluster: &Cluster, out: OutputFormat, action: ViewAction) -> CmdResult {
    match action {
        ViewAction::Apply { file } => {
            let view_json = crate::commands::read_spec(Path::new(&file))?;
            let request = PutViewRequest { view_json };
            let reply = cluster
                .cluster("apply view", Op::Write, |mut c| {
                    let r = request.clone();
                    async move { c.put_view(r).await }
                })
                .await?;
            match out {
                OutputFormat::Table => println!(
                    "view {:?} applied (revision {}): served at /mcp/v/{}",
                    reply.name, reply.revision, reply.name
                ),
                _ => println!(
                    "{}",
                    output::json(
                        &serde_json::json!({"name": reply.name, "revision": reply.revision})
                    )
                ),
            }
        }
        ViewAction::Ls => {
            let reply = cluster
                .cluster("list views", Op::Read, |mut c| async move {
                    c.list_views(ListViewsRequest::default()).await
                })
                .await?;
            print_views(out, &parse(&reply.views_json));
        }
        ViewAction::Get { name } => {
            let request = ListViewsRequest { name };
            let reply = cluster
                .cluster("get view", Op::Read, |mut c| {
                    let r = request.clone();
                    async move { c.list_views(r).await }
                })
                .await?;
            let views = parse(&reply.views_json);
            match (out, views.first()) {
                (OutputFormat::Table, Some(view)) => match serde_yaml_ng::to_string(view) {
                    Ok(text) => print!("{text}"),
                    Err(_) => println!("{}", output::json(view)),
                },
                (OutputFormat::Json, Some(view)) => println!("{}", output::json(view)),
                _ => print_views(out, &views),
            }
        }
        ViewAction::Rm { name } => {
            let request = DeleteViewRequest { name: name.clone() };
            let reply = cluster
                .cluster("remove view", Op::Write, |mut c| {
                    let r = request.clone();
                    async move { c.delete_view(r).await }
                })
                .await?;
            match out {
                OutputFormat::Table => {
                    println!("view {name:?} removed (revision {})", reply.revision)
                }
                _ => println!(
                    "{}",
                    output::json(
                        &serde_json::json!({"name": name, "removed": true, "revision": reply.revision})
                    )
                ),
            }
        }
    }
    Ok(())
}
