//! The aggregated tool list: every registered server's `tools/list`, fetched through the
//! data plane, with each tool renamed `SERVER__TOOL`.
//!
//! Each server's tools are cached until the registry revision changes (a deploy, scale,
//! undeploy or placement move). A server whose list could not be fetched (no instance
//! yet, down, timing out) is left out of the answer and not cached, so it appears on the
//! next list once it answers; one broken server never fails the whole list.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_raft::RegistryReader;
use serde_json::{json, Value};

use crate::dataplane::{DataPlane, ExecuteOptions};

pub use super::names::SEPARATOR;
/// Longest exposed name; longer ones are shortened (the 2025-11-25 spec asks clients to
/// accept 1–128 characters, and some refuse more).
pub const MAX_NAME_LEN: usize = 128;
/// How long fetching one server's tool list may take before it is left out.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most `nextCursor` pages followed per server (a guard against a server that loops).
const MAX_PAGES: usize = 20;

/// Where an exposed tool name leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Registry name of the server.
    pub server: String,
    /// The tool's name on that server.
    pub tool: String,
}

#[derive(Default)]
struct Cache {
    revision: u64,
    /// Server -> its tools as the server listed them.
    tools: BTreeMap<String, Vec<Value>>,
    /// Exposed name -> where it leads, as of the last list.
    routes: HashMap<String, Route>,
}

/// The aggregated catalog of one gateway.
pub struct Catalog {
    plane: Arc<DataPlane>,
    registry: RegistryReader,
    cache: Mutex<Cache>,
}

impl Catalog {
    /// A catalog reading `registry` and fetching through `plane`.
    pub fn new(plane: Arc<DataPlane>, registry: RegistryReader) -> Self {
        Self {
            plane,
            registry,
            cache: Mutex::new(Cache::default()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // Every change is a clear or an insert: a poisoned lock holds consistent data.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registry revision and the registered server names, sorted.
    fn registered(&self) -> (u64, Vec<String>) {
        self.registry.read(|state| {
            let mut names: Vec<String> = state
                .registry
                .servers()
                .map(|s| s.spec.name.clone())
                .collect();
            names.sort();
            (state.registry.revision(), names)
        })
    }

    /// Every tool of every server that answers, renamed, plus where each name leads.
    pub async fn list(&self) -> (Vec<Value>, HashMap<String, Route>) {
        let (revision, servers) = self.registered();
        let missing: Vec<String> = {
            let mut cache = self.cache();
            if cache.revision != revision {
                cache.revision = revision;
                cache.tools.clear();
                cache.routes.clear();
            }
            servers
                .iter()
                .filter(|s| !cache.tools.contains_key(*s))
                .cloned()
                .collect()
        };
        let fetched =
            futures::future::join_all(missing.iter().map(|server| self.fetch(server))).await;
        let mut cache = self.cache();
        for (server, tools) in missing.into_iter().zip(fetched) {
            // A revision that moved on while fetching may have changed the server: its
            // list is still the best answer now, but is not kept.
            if let (Some(tools), true) = (tools, cache.revision == revision) {
                cache.tools.insert(server, tools);
            }
        }
        let per_server: Vec<(String, Vec<Value>)> = servers
            .iter()
            .filter_map(|s| cache.tools.get(s).map(|t| (s.clone(), t.clone())))
            .collect();
        let (tools, routes) = expose(per_server);
        if cache.revision == revision {
            cache.routes.clone_from(&routes);
        }
        (tools, routes)
    }

    /// Where `name` leads: from the catalog, or (for a server left out of the list,
    /// say because it is down) by splitting at the first `__` when that names a
    /// registered server, so the call reaches the data plane and its real error. A name
    /// that a listed server does not have is unknown: `None`.
    pub async fn resolve(&self, name: &str) -> Option<Route> {
        // Fast path: a name from the current catalog needs no listing.
        let revision = self.registry.read(|state| state.registry.revision());
        {
            let cache = self.cache();
            if cache.revision == revision {
                if let Some(route) = cache.routes.get(name) {
                    return Some(route.clone());
                }
            }
        }
        let (_, routes) = self.list().await;
        if let Some(route) = routes.get(name) {
            return Some(route.clone());
        }
        let (server, tool) = name.split_once(SEPARATOR)?;
        // A tool withheld by pinning (issue 16) is not listed, but its call goes on to the
        // data plane, whose refusal says why.
        let withheld = self.registry.read(|state| {
            state
                .registry
                .tool_pins()
                .server(server)
                .is_some_and(|pins| pins.pending.contains_key(tool))
        });
        if self.cache().tools.contains_key(server) && !withheld {
            return None;
        }
        let registered = self
            .registry
            .read(|state| state.registry.server(server).is_some());
        (registered && !tool.is_empty()).then(|| Route {
            server: server.to_owned(),
            tool: tool.to_owned(),
        })
    }

    /// One server's tools, following `nextCursor`; `None` if it could not be listed.
    async fn fetch(&self, server: &str) -> Option<Vec<Value>> {
        let mut tools = Vec::new();
        let mut cursor: Option<Value> = None;
        for page in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let request =
                json!({"jsonrpc": "2.0", "id": page, "method": "tools/list", "params": params});
            let options = ExecuteOptions {
                timeout: Some(LIST_TIMEOUT),
                request_id: format!("gateway-list-{server}"),
                ..ExecuteOptions::default()
            };
            let response = match self.plane.execute(server, request, options).await {
                Ok(executed) => executed.response.to_value(),
                Err(e) => {
                    tracing::debug!(server, error = %e, "left out of the gateway's tool list");
                    return None;
                }
            };
            let Some(result) = response.get("result") else {
                tracing::debug!(server, response = %response, "tools/list failed; left out");
                return None;
            };
            if let Some(page) = result.get("tools").and_then(Value::as_array) {
                tools.extend(page.iter().cloned());
            }
            cursor = result.get("nextCursor").filter(|c| !c.is_null()).cloned();
            if cursor.is_none() {
                return Some(tools);
            }
        }
        tracing::warn!(
            server,
            "tools/list kept paging; kept the first {MAX_PAGES} pages"
        );
        Some(tools)
    }
}

/// The exposed name of `tool` on `server`: `SERVER__TOOL`, shortened to
/// [`MAX_NAME_LEN`] by keeping a prefix and appending `_` and a hash of the whole name
/// (stable across nodes and restarts, so clients can keep using it).
pub fn exposed_name(server: &str, tool: &str) -> String {
    let full = format!("{server}{SEPARATOR}{tool}");
    if full.len() <= MAX_NAME_LEN {
        return full;
    }
    let suffix = format!("_{:016x}", fnv1a(full.as_bytes()));
    let mut keep = MAX_NAME_LEN - suffix.len();
    while !full.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &full[..keep])
}

/// FNV-1a, 64 bits: tiny, and its output never changes between builds.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Renames every tool and builds the routes. Servers come in name order, tools in the
/// server's order; a name already taken (possible since server names may contain `__`)
/// keeps its first owner and the later tool is left out, with a warning.
fn expose(per_server: Vec<(String, Vec<Value>)>) -> (Vec<Value>, HashMap<String, Route>) {
    let mut tools = Vec::new();
    let mut routes: HashMap<String, Route> = HashMap::new();
    for (server, list) in per_server {
        for mut tool in list {
            let Some(original) = tool.get("name").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let name = exposed_name(&server, &original);
            if let Some(taken) = routes.get(&name) {
                tracing::warn!(
                    name,
                    server,
                    tool = original,
                    owner = taken.server,
                    "gateway tool name already taken; this tool is left out"
                );
                continue;
            }
            if let Some(object) = tool.as_object_mut() {
                object.insert("name".into(), Value::String(name.clone()));
            }
            routes.insert(
                name,
                Route {
                    server: server.clone(),
                    tool: original,
                },
            );
            tools.push(tool);
        }
    }
    (tools, routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            exposed_name("time", "get_current_time"),
            "time__get_current_time"
        );
        let long = exposed_name("s", &"x".repeat(200));
        assert_eq!(long.len(), MAX_NAME_LEN);
        assert_eq!(long, exposed_name("s", &"x".repeat(200)));
        assert_ne!(long, exposed_name("s", &"x".repeat(201)));
    }

    #[test]
    fn collisions_keep_the_first() {
        let (tools, routes) = expose(vec![
            ("a".into(), vec![json!({"name": "b__c"})]),
            (
                "a__b".into(),
                vec![json!({"name": "c"}), json!({"name": "d"})],
            ),
        ]);
        let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(names, ["a__b__c", "a__b__d"]);
        assert_eq!(routes["a__b__c"].server, "a");
        assert_eq!(routes["a__b__d"].tool, "d");
    }
}
