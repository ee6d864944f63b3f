//! `mcpd apply -f FILE|DIR`: makes the registry match spec files kept in git.
//!
//! Every document of every file (YAML, several per file with `---`, or JSON, one object or
//! an array of them) is validated here first, with the node's own spec rules, so a bad
//! file changes nothing. The plan compares each spec with the registry's (both in the
//! redacted flat form listings show, so secret values are compared by presence only) and
//! prints creates, updates (field by field) and, with `--prune`, deletes of servers this
//! command manages (they carry the tag [`MANAGED_TAG`]) that no file names any more.
//! Writes are compare-and-set on the revision the plan read: a server changed meanwhile
//! makes apply stop with an error instead of overwriting the change.
//!
//! Exit status: 0 when nothing differs or everything was applied, 1 on an error, 2 when
//! `--dry-run --exit-code` found differences.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mcp_proto::cluster::{
    DeployRequest, GetServerRequest, ListServersRequest, ServerInfo, UndeployRequest,
};
use mcp_raft::registry::spec::{self, REDACTED};
use serde_json::{json, Value};

use crate::cli::{ApplyArgs, OutputFormat};
use crate::client::{Cluster, Op};
use crate::output;

/// The tag every server applied by `mcpd apply` carries; `--prune` removes only these.
pub const MANAGED_TAG: &str = "managed-by=mcpd-apply";
/// Exit status of `--dry-run --exit-code` when something would change.
const EXIT_DIFF: i32 = 2;
/// Tests only: after planning, apply waits until the file this variable names exists, so
/// a test can change the registry between apply's read and its writes deterministically.
const BARRIER_ENV: &str = "MCPD_APPLY_TEST_BARRIER";

type Error = Box<dyn std::error::Error>;

/// One spec read from a file.
struct Desired {
    /// `file` or `file#N` (N-th document, from 1).
    source: String,
    spec: spec::ServerSpec,
}

/// What apply does to one server.
enum Change {
    Create {
        desired: Desired,
    },
    Update {
        desired: Desired,
        revision: u64,
        fields: Vec<(String, Value, Value)>,
    },
    Delete {
        name: String,
        revision: u64,
    },
}

impl Change {
    fn name(&self) -> &str {
        match self {
            Change::Create { desired } | Change::Update { desired, .. } => &desired.spec.name,
            Change::Delete { name, .. } => name,
        }
    }

    fn action(&self) -> &'static str {
        match self {
            Change::Create { .. } => "create",
            Change::Update { .. } => "update",
            Change::Delete { .. } => "delete",
        }
    }

    fn to_json(&self) -> Value {
        let mut out = json!({"action": self.action(), "name": self.name()});
        match self {
            Change::Create { desired } => out["source"] = desired.source.clone().into(),
            Change::Update {
                desired, fields, ..
            } => {
                out["source"] = desired.source.clone().into();
                out["fields"] = fields
                    .iter()
                    .map(|(f, old, new)| json!({"field": f, "from": old, "to": new}))
                    .collect();
            }
            Change::Delete { .. } => {}
        }
        out
    }

    fn to_text(&self) -> String {
        match self {
            Change::Create { desired } => {
                format!("+ create {} ({})", desired.spec.name, desired.source)
            }
            Change::Update {
                desired, fields, ..
            } => {
                let mut text = format!("~ update {} ({})", desired.spec.name, desired.source);
                for (field, old, new) in fields {
                    text.push_str(&format!("\n    {field}: {} -> {}", shown(old), shown(new)));
                }
                text
            }
            Change::Delete { name, .. } => format!("- delete {name} (no file names it)"),
        }
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::Null => "(none)".to_owned(),
        other => other.to_string(),
    }
}

/// Runs `mcpd apply`.
pub async fn run(cluster: &Cluster, args: ApplyArgs, out: OutputFormat) -> Result<(), Error> {
    let desired = read_all(&args.file)?;
    let live = list(cluster).await?;
    let changes = plan(desired, &live, args.prune)?;
    let report = |applied: bool| {
        let json = json!({
            "changes": changes.iter().map(Change::to_json).collect::<Vec<_>>(),
            "dry_run": args.dry_run,
            "applied": applied,
        });
        match out {
            OutputFormat::Table => {
                if changes.is_empty() {
                    println!("no changes");
                }
                for change in &changes {
                    println!("{}", change.to_text());
                }
            }
            _ => print!("{}", output::json(&json)),
        }
    };
    if args.dry_run {
        report(false);
        if args.exit_code && !changes.is_empty() {
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            std::process::exit(EXIT_DIFF);
        }
        return Ok(());
    }
    if let Some(barrier) = std::env::var_os(BARRIER_ENV) {
        eprintln!(
            "apply: planned {} changes; waiting for {}",
            changes.len(),
            Path::new(&barrier).display()
        );
        while !Path::new(&barrier).exists() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    for change in &changes {
        apply_one(cluster, change).await?;
    }
    report(true);
    Ok(())
}

/// The spec files named by `path`: the file, or the `.yaml`, `.yml` and `.json` files of
/// the directory (and its subdirectories), in name order.
fn spec_files(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)
            .map_err(|e| format!("cannot read directory {}: {e}", dir.display()))?
        {
            let entry = entry?;
            let p = entry.path();
            if entry.file_type()?.is_dir() {
                dirs.push(p);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The documents of one file as JSON values (null documents skipped).
fn documents(path: &Path) -> Result<Vec<Value>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let is_json = path.extension().and_then(|e| e.to_str()) == Some("json");
    let values: Vec<Value> = if is_json {
        match serde_json::from_str::<Value>(&text)
            .map_err(|e| format!("malformed JSON in {}: {e}", path.display()))?
        {
            Value::Array(items) => items,
            other => vec![other],
        }
    } else {
        let mut values = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = <Value as serde::Deserialize>::deserialize(doc)
                .map_err(|e| format!("malformed YAML in {}: {e}", path.display()))?;
            values.push(value);
        }
        values
    };
    Ok(values.into_iter().filter(|v| !v.is_null()).collect())
}

/// Every spec of `path`, validated, with the managed tag added; names must be unique.
fn read_all(path: &Path) -> Result<Vec<Desired>, Error> {
    let mut out: Vec<Desired> = Vec::new();
    let files = spec_files(path)?;
    if files.is_empty() {
        return Err(format!("no .yaml, .yml or .json files in {}", path.display()).into());
    }
    for file in files {
        let docs = documents(&file)?;
        let many = docs.len() > 1;
        for (i, mut doc) in docs.into_iter().enumerate() {
            let source = if many {
                format!("{}#{}", file.display(), i + 1)
            } else {
                file.display().to_string()
            };
            add_managed_tag(&mut doc);
            let spec = spec::from_value(doc).map_err(|e| format!("{source}: {e}"))?;
            if let Some(other) = out.iter().find(|d| d.spec.name == spec.name) {
                return Err(format!(
                    "{source}: server {:?} is also defined in {}",
                    spec.name, other.source
                )
                .into());
            }
            out.push(Desired { source, spec });
        }
    }
    Ok(out)
}

fn add_managed_tag(doc: &mut Value) {
    let Some(object) = doc.as_object_mut() else {
        return;
    };
    let tags = object
        .entry("tags")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(items) = tags {
        if !items.iter().any(|t| t == MANAGED_TAG) {
            items.push(MANAGED_TAG.into());
        }
    }
}

/// The registry's servers by name, read through the leader (a linearizable read).
async fn list(cluster: &Cluster) -> Result<BTreeMap<String, ServerInfo>, Error> {
    let reply = cluster
        .cluster("list servers", Op::Read, |mut c| async move {
            c.list_servers(ListServersRequest { stale: false }).await
        })
        .await?;
    Ok(reply
        .servers
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect())
}

/// True if `value` holds the redacted placeholder anywhere (a spec printed by `get`).
fn has_placeholder(value: &Value) -> bool {
    match value {
        Value::String(s) => s == REDACTED,
        Value::Array(items) => items.iter().any(has_placeholder),
        Value::Object(map) => map.values().any(has_placeholder),
        _ => false,
    }
}

/// The top-level fields whose values differ, with the old and new value.
fn field_diff(live: &Value, desired: &Value) -> Vec<(String, Value, Value)> {
    let empty = serde_json::Map::new();
    let live = live.as_object().unwrap_or(&empty);
    let desired = desired.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = live.keys().chain(desired.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let old = live.get(k).cloned().unwrap_or(Value::Null);
            let new = desired.get(k).cloned().unwrap_or(Value::Null);
            (old != new).then(|| (k.clone(), old, new))
        })
        .collect()
}

/// What makes the registry match `desired` (and, with `prune`, drops managed servers no
/// file names).
fn plan(
    desired: Vec<Desired>,
    live: &BTreeMap<String, ServerInfo>,
    prune: bool,
) -> Result<Vec<Change>, Error> {
    let mut changes = Vec::new();
    let names: Vec<String> = desired.iter().map(|d| d.spec.name.clone()).collect();
    for d in desired {
        let shown = d.spec.redacted();
        let change = match live.get(&d.spec.name) {
            None => Change::Create { desired: d },
            Some(info) => {
                let current: Value = serde_json::from_str(&info.spec_json)
                    .map_err(|e| format!("the node sent an unreadable spec: {e}"))?;
                let fields = field_diff(&current, &shown);
                if fields.is_empty() {
                    continue;
                }
                Change::Update {
                    desired: d,
                    revision: info.mod_revision,
                    fields,
                }
            }
        };
        if let Change::Create { desired } | Change::Update { desired, .. } = &change {
            // A spec printed by `mcpd get` shows secrets as placeholders: writing it would
            // replace the real values with the placeholder.
            if has_placeholder(&desired.spec.to_flat_json()) {
                return Err(format!(
                    "{}: {:?} holds {REDACTED:?} where a secret goes and differs from the registry; put the real values (or secret references) in the file",
                    desired.source, desired.spec.name
                )
                .into());
            }
        }
        changes.push(change);
    }
    if prune {
        for (name, info) in live {
            if !names.contains(name) && info.tags.iter().any(|t| t == MANAGED_TAG) {
                changes.push(Change::Delete {
                    name: name.clone(),
                    revision: info.mod_revision,
                });
            }
        }
    }
    Ok(changes)
}

async fn apply_one(cluster: &Cluster, change: &Change) -> Result<(), Error> {
    let conflict = |name: &str, e: &dyn std::fmt::Display| -> Error {
        format!(
            "{name}: changed by someone else since apply read it; nothing of it was overwritten (re-run apply to see the new difference): {e}"
        )
        .into()
    };
    match change {
        Change::Create { desired } | Change::Update { desired, .. } => {
            let expected = match change {
                Change::Update { revision, .. } => *revision,
                // 0: the server must not exist yet.
                _ => 0,
            };
            let request = DeployRequest {
                spec_json: desired.spec.to_flat_json().to_string(),
                expected_revision: Some(expected),
            };
            cluster
                .cluster("apply", Op::Write, |mut c| {
                    let r = request.clone();
                    async move { c.deploy(r).await }
                })
                .await
                .map_err(|e| {
                    if e.to_string().contains("revision") {
                        conflict(&desired.spec.name, &e)
                    } else {
                        format!("{}: {e}", desired.spec.name).into()
                    }
                })?;
        }
        Change::Delete { name, revision } => {
            // Undeploy has no compare-and-set: check the revision right before it.
            let current = cluster
                .cluster("get", Op::Read, |mut c| {
                    let r = GetServerRequest {
                        name: name.clone(),
                        stale: false,
                    };
                    async move { c.get_server(r).await }
                })
                .await?;
            if current.mod_revision != *revision {
                return Err(conflict(
                    name,
                    &format!("revision {} is now {}", revision, current.mod_revision),
                ));
            }
            cluster
                .cluster("undeploy", Op::Write, |mut c| {
                    let r = UndeployRequest { name: name.clone() };
                    async move { c.undeploy(r).await }
                })
                .await?;
        }
    }
    Ok(())
}

/// A server's spec as `mcpd get NAME -o yaml` prints it: the redacted flat form, which
/// `mcpd apply` reads back as unchanged.
pub fn spec_yaml(info: &ServerInfo) -> Result<String, Error> {
    let spec: Value = serde_json::from_str(&info.spec_json)?;
    Ok(format!(
        "# {} at revision {}\n{}",
        info.name,
        info.mod_revision,
        serde_yaml_ng::to_string(&spec)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(spec: &spec::ServerSpec, revision: u64) -> ServerInfo {
        ServerInfo {
            name: spec.name.clone(),
            spec_json: spec.redacted().to_string(),
            mod_revision: revision,
            tags: spec.tags.clone(),
            ..Default::default()
        }
    }

    fn desired(value: Value) -> Desired {
        let mut value = value;
        add_managed_tag(&mut value);
        Desired {
            source: "f.yaml".into(),
            spec: spec::from_value(value).unwrap(),
        }
    }

    #[test]
    fn unchanged_specs_make_no_change_and_secrets_compare_by_presence() {
        let d = desired(json!({"name": "a", "command": "x", "env": {"K": "v"}}));
        let live = BTreeMap::from([("a".to_owned(), info(&d.spec, 3))]);
        let again = desired(json!({"name": "a", "command": "x", "env": {"K": "v"}}));
        assert!(plan(vec![again], &live, true).unwrap().is_empty());
        // What `get` printed (placeholders) applies as no change too.
        let printed: Value = serde_json::from_str(&live["a"].spec_json).unwrap();
        let round_trip = Desired {
            source: "get.yaml".into(),
            spec: spec::from_value(printed).unwrap(),
        };
        assert!(plan(vec![round_trip], &live, true).unwrap().is_empty());
    }

    #[test]
    fn creates_updates_and_prunes_only_managed_servers() {
        let kept = desired(json!({"name": "a", "command": "x"}));
        let gone = desired(json!({"name": "b", "command": "x"}));
        let foreign = spec::from_value(json!({"name": "c", "command": "x"})).unwrap();
        let live = BTreeMap::from([
            ("a".to_owned(), info(&kept.spec, 3)),
            ("b".to_owned(), info(&gone.spec, 4)),
            ("c".to_owned(), info(&foreign, 5)),
        ]);
        let changed = desired(json!({"name": "a", "command": "y", "replicas": 2}));
        let new = desired(json!({"name": "d", "url": "http://h/mcp"}));
        let changes = plan(vec![changed, new], &live, true).unwrap();
        let summary: Vec<(String, String)> = changes
            .iter()
            .map(|c| (c.action().to_owned(), c.name().to_owned()))
            .collect();
        assert_eq!(
            summary,
            [
                ("update".to_owned(), "a".to_owned()),
                ("create".to_owned(), "d".to_owned()),
                ("delete".to_owned(), "b".to_owned()),
            ]
        );
        let Change::Update {
            fields, revision, ..
        } = &changes[0]
        else {
            panic!()
        };
        assert_eq!(*revision, 3);
        let names: Vec<&str> = fields.iter().map(|(f, _, _)| f.as_str()).collect();
        assert_eq!(names, ["command", "replicas"]);
        // Without --prune nothing is deleted.
        let changes = plan(
            vec![desired(json!({"name": "a", "command": "x"}))],
            &live,
            false,
        )
        .unwrap();
        assert!(changes.is_empty());
    }

    #[test]
    fn placeholders_in_a_changed_spec_are_refused() {
        let live_spec = desired(json!({"name": "a", "command": "x", "env": {"K": "v"}}));
        let live = BTreeMap::from([("a".to_owned(), info(&live_spec.spec, 3))]);
        let edited = desired(json!({"name": "a", "command": "y", "env": {"K": REDACTED}}));
        let err = plan(vec![edited], &live, false).err().unwrap();
        assert!(err.to_string().contains("redacted"), "{err}");
    }

    #[test]
    fn yaml_files_hold_several_documents_and_json_files_arrays() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "name: a\ncommand: x\n---\nname: b\nurl: http://h/mcp\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("c.json"),
            r#"[{"name": "c", "command": "x"}]"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a spec").unwrap();
        let all = read_all(dir.path()).unwrap();
        let names: Vec<&str> = all.iter().map(|d| d.spec.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(all[0].source.ends_with("a.yaml#1"));
        assert!(all
            .iter()
            .all(|d| d.spec.tags.contains(&MANAGED_TAG.to_owned())));

        std::fs::write(dir.path().join("d.yaml"), "name: a\ncommand: y\n").unwrap();
        let err = read_all(dir.path()).err().unwrap().to_string();
        assert!(err.contains("also defined"), "{err}");
        std::fs::write(dir.path().join("d.yaml"), "name: d\ncomand: y\n").unwrap();
        let err = read_all(dir.path()).err().unwrap().to_string();
        assert!(err.contains("d.yaml") && err.contains("comand"), "{err}");
    }
}
