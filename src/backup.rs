//! `mcpd snapshot save|status|restore` and `mcpd recover`: backups of the registry and
//! the offline operations that found a cluster from one (the work is in
//! `mcp_cluster::backup`; this module reads the flags and prints).

use std::time::{SystemTime, UNIX_EPOCH};

use mcp_cluster::backup::file::{self, SnapshotFile, SnapshotHeader};
use mcp_cluster::backup::seed::{self, Seeded};
use mcp_cluster::config::parse_initial_cluster;
use mcp_proto::cluster::SaveSnapshotRequest;
use serde_json::{json, Value};

use crate::cli::{ClientArgs, OutputFormat, RecoverArgs, SnapshotAction};
use crate::client::{Cluster, Op};
use crate::output;

type CmdResult = Result<(), Box<dyn std::error::Error>>;

/// Runs one `mcpd snapshot` subcommand.
pub async fn snapshot(args: &ClientArgs, action: SnapshotAction) -> CmdResult {
    let out = args.output;
    match action {
        SnapshotAction::Save { file: path } => {
            let cluster = Cluster::new(args)?;
            let reply = cluster
                .cluster("snapshot save", Op::Read, |mut c| async move {
                    c.save_snapshot(SaveSnapshotRequest {}).await
                })
                .await?;
            let registry: mcp_raft::Registry = serde_json::from_slice(&reply.registry_json)
                .map_err(|e| format!("the node sent a registry this mcpd cannot read: {e}"))?;
            let header = SnapshotHeader {
                format: file::MAGIC.to_owned(),
                format_version: file::FORMAT_VERSION,
                mcpd_version: reply.version.clone(),
                storage_format: reply.storage_format,
                node_id: reply.node_id,
                revision: reply.revision,
                last_log_index: reply.last_log_index,
                last_log_term: reply.last_log_term,
                server_count: registry.server_count(),
                taken_at_unix_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                bytes: reply.registry_json.len() as u64,
                sha256: file::sha256_hex(&reply.registry_json),
            };
            SnapshotFile::write(&path, &header, &reply.registry_json)?;
            print_header(out, &header, &path.display().to_string(), "saved");
        }
        SnapshotAction::Status { file: path } => {
            let snapshot = SnapshotFile::read(&path)?;
            print_header(out, &snapshot.header, &path.display().to_string(), "valid");
        }
        SnapshotAction::Restore {
            file: path,
            data_dir,
            id,
            initial_cluster,
            grpc_addr,
        } => {
            let members = parse_initial_cluster(&initial_cluster)?;
            let snapshot = SnapshotFile::read(&path)?;
            let seeded = seed::restore(&snapshot, &data_dir, id, grpc_addr, &members).await?;
            print_seeded(out, &seeded, &data_dir.display().to_string(), "restored");
        }
    }
    Ok(())
}

/// Runs `mcpd recover`.
pub async fn recover(args: &ClientArgs, recover: RecoverArgs) -> CmdResult {
    let dir = recover.data_dir.display().to_string();
    let seeded = if recover.dry_run {
        seed::inspect(&recover.data_dir).await?
    } else {
        seed::recover(&recover.data_dir).await?
    };
    let verb = if recover.dry_run {
        "would recover"
    } else {
        "recovered"
    };
    print_seeded(args.output, &seeded, &dir, verb);
    Ok(())
}

fn print_header(out: OutputFormat, h: &SnapshotHeader, path: &str, verb: &str) {
    match out {
        OutputFormat::Json | OutputFormat::Yaml => print!(
            "{}",
            output::json(&json!({
                "file": path,
                "format_version": h.format_version,
                "mcpd_version": h.mcpd_version,
                "storage_format": h.storage_format,
                "node_id": h.node_id,
                "revision": h.revision,
                "last_log_index": h.last_log_index,
                "last_log_term": h.last_log_term,
                "server_count": h.server_count,
                "taken_at_unix_ms": h.taken_at_unix_ms,
                "bytes": h.bytes,
                "sha256": h.sha256,
            }))
        ),
        OutputFormat::Table => {
            let rows = vec![
                vec!["file".to_owned(), format!("{path} ({verb})")],
                vec!["revision".to_owned(), h.revision.to_string()],
                vec!["servers".to_owned(), h.server_count.to_string()],
                vec![
                    "last log entry".to_owned(),
                    format!("index {} term {}", h.last_log_index, h.last_log_term),
                ],
                vec![
                    "taken from".to_owned(),
                    format!("node {} (mcpd {})", h.node_id, h.mcpd_version),
                ],
                vec!["format".to_owned(), h.format_version.to_string()],
                vec!["bytes".to_owned(), h.bytes.to_string()],
                vec!["sha256".to_owned(), h.sha256.clone()],
            ];
            print!("{}", output::table(&["FIELD", "VALUE"], &rows));
        }
    }
}

fn print_seeded(out: OutputFormat, s: &Seeded, dir: &str, verb: &str) {
    let members: Value = s
        .members
        .iter()
        .map(|(id, addr)| json!({"id": id, "addr": addr}))
        .collect();
    match out {
        OutputFormat::Json | OutputFormat::Yaml => print!(
            "{}",
            output::json(&json!({
                "data_dir": dir,
                "node_id": s.node_id,
                "members": members,
                "revision": s.revision,
                "log_index": s.log_index,
                "server_count": s.server_count,
                "replayed_entries": s.replayed,
            }))
        ),
        OutputFormat::Table => println!(
            "{verb} node {} in {dir}: revision {}, {} servers, log index {}, members {}",
            s.node_id,
            s.revision,
            s.server_count,
            s.log_index,
            s.members
                .iter()
                .map(|(id, addr)| format!("{id}={addr}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}
