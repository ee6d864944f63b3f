//! Tool pinning in the data plane: the hash of a tool definition, the screening of every
//! `tools/list` answer against the registry's pins (withheld tools are taken out), and the
//! proposal of what a local instance presents when the registry does not know it yet (the
//! first listing pins; a change becomes pending). Each change seen is counted and written
//! to the audit target.
//!
//! Every answer is screened on the node that ran it and again on the node the caller
//! reached, so a forwarded list is withheld by both; only the node that ran the listing
//! proposes. A background watcher lists the tools of every instance that (re)connects on
//! this node, so a changed definition is caught even before anyone lists.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use mcp_raft::registry::pins::{PinPolicy, ServerPins, ToolDefinition};
use mcp_raft::RegistryReader;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::dataplane::{jsonrpc, DataPlane};

/// The fields of a tool that make its definition (what a model reads and what it sends).
pub const DEFINITION_FIELDS: [&str; 6] = [
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
];
/// The same observation is proposed at most this often by one node.
const REPROPOSE_AFTER: Duration = Duration::from_secs(5);
/// How often the watcher looks for newly connected instances.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Records observations in the registry (through the leader).
pub trait PinWriter: Send + Sync {
    /// Proposes an `ObserveTools` of `server`.
    fn observe(
        &self,
        server: String,
        tools: BTreeMap<String, ToolDefinition>,
    ) -> BoxFuture<'static, Result<(), String>>;
}

/// `value` with the keys of every object sorted, so equal definitions serialize equally.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&map[k])))
                    .collect::<Map<String, Value>>(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// A tool's name and its definition (canonical JSON of [`DEFINITION_FIELDS`] and its
/// SHA-256); `None` for an entry without a name.
pub fn definition(tool: &Value) -> Option<(String, ToolDefinition)> {
    let name = tool.get("name")?.as_str()?.to_owned();
    let fields: Map<String, Value> = DEFINITION_FIELDS
        .iter()
        .filter_map(|k| {
            tool.get(*k)
                .filter(|v| !v.is_null())
                .map(|v| ((*k).to_owned(), v.clone()))
        })
        .collect();
    let text = canonical(&Value::Object(fields)).to_string();
    let hash: String = Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some((
        name,
        ToolDefinition {
            hash,
            definition: text,
        },
    ))
}

/// What screening one listing found.
#[derive(Debug, Default)]
pub struct Screened {
    /// The definitions of the listed tools.
    pub seen: BTreeMap<String, ToolDefinition>,
    /// Names taken out of the answer.
    pub withheld: Vec<String>,
    /// The server's policy and pins at the time.
    pub policy: PinPolicy,
    /// The pins at the time (empty if none).
    pub pins: ServerPins,
}

/// Takes withheld tools out of a `tools/list` `response` of `server`.
pub fn screen(registry: &RegistryReader, server: &str, response: &mut Value) -> Screened {
    let Some(tools) = response
        .pointer_mut("/result/tools")
        .and_then(Value::as_array_mut)
    else {
        return Screened::default();
    };
    let (policy, pins) = registry.read(|state| {
        let policy = state
            .registry
            .server(server)
            .map(|r| r.spec.guards.pin)
            .unwrap_or(PinPolicy::Off);
        let pins = state
            .registry
            .tool_pins()
            .server(server)
            .cloned()
            .unwrap_or_default();
        (policy, pins)
    });
    let mut screened = Screened {
        policy,
        ..Screened::default()
    };
    tools.retain(|tool| {
        let Some((name, def)) = definition(tool) else {
            return true;
        };
        let withheld = pins.withheld(policy, &name, Some(&def.hash)).is_some();
        if withheld {
            screened.withheld.push(name.clone());
        }
        screened.seen.insert(name, def);
        !withheld
    });
    screened.pins = pins;
    screened
}

/// Proposes observations that the registry does not know yet, once per change per node.
pub struct Observer {
    node: u64,
    writer: std::sync::OnceLock<Arc<dyn PinWriter>>,
    recent: Mutex<HashMap<String, (String, Instant)>>,
    changes: Option<prometheus::IntCounterVec>,
}

impl Observer {
    /// The observer of node `node`, counting changes in `changes` if given.
    pub fn new(node: u64, changes: Option<prometheus::IntCounterVec>) -> Self {
        Self {
            node,
            writer: std::sync::OnceLock::new(),
            recent: Mutex::new(HashMap::new()),
            changes,
        }
    }

    /// Sets where observations go (once; later calls are ignored).
    pub fn set_writer(&self, writer: Arc<dyn PinWriter>) {
        let _ = self.writer.set(writer);
    }

    /// Audits the changes in `screened` and proposes it if the registry does not know it.
    pub fn observe(&self, server: &str, screened: &Screened) {
        if screened.policy == PinPolicy::Off
            || screened.seen.is_empty()
            || screened.pins.knows(screened.policy, &screened.seen)
        {
            return;
        }
        let fingerprint: String = screened
            .seen
            .iter()
            .map(|(n, d)| format!("{n}={};", d.hash))
            .collect();
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((last, at)) = recent.get(server) {
                if *last == fingerprint && at.elapsed() < REPROPOSE_AFTER {
                    return;
                }
            }
            recent.insert(server.to_owned(), (fingerprint, Instant::now()));
        }
        self.audit(server, screened);
        let Some(writer) = self.writer.get() else {
            tracing::debug!(server, "tool pins not recorded: no writer on this node");
            return;
        };
        let proposal = writer.observe(server.to_owned(), screened.seen.clone());
        let server = server.to_owned();
        tokio::spawn(async move {
            if let Err(e) = proposal.await {
                tracing::warn!(server, error = %e, "could not record tool definitions");
            }
        });
    }

    /// One audit line and one count per changed or new tool.
    fn audit(&self, server: &str, screened: &Screened) {
        let first_listing = screened.pins.pinned.is_empty() && screened.pins.pending.is_empty();
        for (tool, def) in &screened.seen {
            let pinned = screened.pins.pinned.get(tool);
            let already_pending = screened
                .pins
                .pending
                .get(tool)
                .is_some_and(|p| p.seen.hash == def.hash);
            let kind = match pinned {
                Some(pin) if pin.hash != def.hash && !already_pending => "changed",
                None if !first_listing && !already_pending => "new",
                _ => continue,
            };
            if let Some(counter) = &self.changes {
                counter.with_label_values(&[server, kind]).inc();
            }
            tracing::warn!(
                target: crate::audit::TARGET,
                event = "tool_definition_changed",
                node = self.node,
                server,
                tool = tool.as_str(),
                kind,
                pinned_hash = pinned.map_or("", |p| p.hash.as_str()),
                seen_hash = def.hash.as_str(),
                policy = screened.policy.as_str(),
                "tool definition differs from its pin"
            );
        }
    }
}

/// Lists the tools of each instance of this node once after it (re)connects, so that a
/// server restarted with changed definitions is caught before anyone lists them. Ends when
/// the data plane is gone.
pub async fn watch_instances(plane: Weak<DataPlane>) {
    let mut checked: HashSet<usize> = HashSet::new();
    loop {
        tokio::time::sleep(WATCH_INTERVAL).await;
        let Some(plane) = plane.upgrade() else { return };
        let sessions = plane.connected_sessions();
        let live: HashSet<usize> = sessions
            .iter()
            .map(|(_, s)| Arc::as_ptr(s) as usize)
            .collect();
        checked.retain(|p| live.contains(p));
        for (server, session) in sessions {
            let key = Arc::as_ptr(&session) as usize;
            if !checked.insert(key) {
                continue;
            }
            let request = jsonrpc::request(0, "tools/list", json!({}));
            let answer =
                tokio::time::timeout(Duration::from_secs(5), session.request(&request)).await;
            if let Ok(Ok(mut response)) = answer {
                plane
                    .guards()
                    .after_local_list(plane.registry(), &server, &mut response);
            }
        }
    }
}
