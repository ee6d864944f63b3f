//! What each server offers (its announced capabilities), and so what the gateway offers.
//!
//! Every server's capabilities come from `server/discover` through the data plane (which
//! answers it for handshake-era servers from their `initialize` result, see
//! `dataplane::upstream::Session::request`), so any node learns them wherever the server
//! runs. They are cached until the registry revision changes. The gateway announces a
//! capability when at least one server has it (tools always: the tool list is the
//! gateway's own), and a list method asks only the servers that have its capability, so a
//! server without resources is simply absent from `resources/list`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_raft::RegistryReader;
use serde_json::{json, Map, Value};

use crate::dataplane::{DataPlane, ExecuteOptions};

/// How long asking one server for its capabilities may take before it counts as having
/// none for this request (it is asked again on the next).
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// A server capability the gateway relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// `tools/list`, `tools/call`.
    Tools,
    /// `resources/list`, `resources/templates/list`, `resources/read`.
    Resources,
    /// `prompts/list`, `prompts/get`.
    Prompts,
    /// `completion/complete`.
    Completions,
}

impl Capability {
    /// Every capability, in the order they are announced.
    pub const ALL: [Capability; 4] = [
        Capability::Tools,
        Capability::Resources,
        Capability::Prompts,
        Capability::Completions,
    ];

    /// The key in a `capabilities` object.
    pub fn key(self) -> &'static str {
        match self {
            Capability::Tools => "tools",
            Capability::Resources => "resources",
            Capability::Prompts => "prompts",
            Capability::Completions => "completions",
        }
    }

    /// The gateway's announcement of it: the lists announce `listChanged`, since the
    /// gateway pushes list changes (see `notify`).
    fn announced(self) -> Value {
        match self {
            Capability::Completions => json!({}),
            _ => json!({"listChanged": true}),
        }
    }
}

/// True when a `capabilities` object announces `capability`.
pub fn has(capabilities: &Value, capability: Capability) -> bool {
    capabilities
        .get(capability.key())
        .is_some_and(|c| !c.is_null())
}

#[derive(Default)]
struct Cache {
    revision: u64,
    /// Server -> its capabilities object, for the servers that answered.
    servers: BTreeMap<String, Value>,
}

/// The capability cache of one gateway.
pub struct Capabilities {
    plane: Arc<DataPlane>,
    registry: RegistryReader,
    cache: Mutex<Cache>,
}

impl Capabilities {
    /// A cache reading `registry`, asking through `plane`.
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

    /// Every registered server (sorted) with its capabilities; `None` for a server that
    /// could not be asked (no instance yet, down).
    pub async fn all(&self) -> Vec<(String, Option<Value>)> {
        let (revision, servers) = self.registry.read(|state| {
            let mut names: Vec<String> = state
                .registry
                .servers()
                .map(|s| s.spec.name.clone())
                .collect();
            names.sort();
            (state.registry.revision(), names)
        });
        let missing: Vec<String> = {
            let mut cache = self.cache();
            if cache.revision != revision {
                cache.revision = revision;
                cache.servers.clear();
            }
            servers
                .iter()
                .filter(|s| !cache.servers.contains_key(*s))
                .cloned()
                .collect()
        };
        let fetched = futures::future::join_all(missing.iter().map(|s| self.fetch(s))).await;
        let mut cache = self.cache();
        let mut answered: BTreeMap<String, Value> = BTreeMap::new();
        for (server, capabilities) in missing.into_iter().zip(fetched) {
            if let Some(capabilities) = capabilities {
                if cache.revision == revision {
                    cache.servers.insert(server.clone(), capabilities.clone());
                }
                answered.insert(server, capabilities);
            }
        }
        servers
            .into_iter()
            .map(|s| {
                let capabilities = answered
                    .remove(&s)
                    .or_else(|| cache.servers.get(&s).cloned());
                (s, capabilities)
            })
            .collect()
    }

    /// The servers (sorted) that announce `capability`.
    pub async fn servers_with(&self, capability: Capability) -> Vec<String> {
        self.all()
            .await
            .into_iter()
            .filter(|(_, c)| c.as_ref().is_some_and(|c| has(c, capability)))
            .map(|(s, _)| s)
            .collect()
    }

    /// The capabilities of `server`, if it answered.
    pub async fn of(&self, server: &str) -> Option<Value> {
        self.all()
            .await
            .into_iter()
            .find(|(s, _)| s == server)
            .and_then(|(_, c)| c)
    }

    /// The gateway's own `capabilities`: tools, and each other capability at least one
    /// server has.
    pub async fn announced(&self) -> Value {
        let all = self.all().await;
        let mut announced = Map::new();
        for capability in Capability::ALL {
            let offered = capability == Capability::Tools
                || all
                    .iter()
                    .any(|(_, c)| c.as_ref().is_some_and(|c| has(c, capability)));
            if offered {
                announced.insert(capability.key().into(), capability.announced());
            }
        }
        Value::Object(announced)
    }

    async fn fetch(&self, server: &str) -> Option<Value> {
        let request = json!({"jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": {}});
        let options = ExecuteOptions {
            timeout: Some(DISCOVER_TIMEOUT),
            request_id: format!("gateway-discover-{server}"),
            ..ExecuteOptions::default()
        };
        match self.plane.execute(server, request, options).await {
            Ok(executed) => {
                let capabilities = executed
                    .response
                    .to_value()
                    .pointer("/result/capabilities")
                    .cloned();
                if capabilities.is_none() {
                    tracing::debug!(server, response = %executed.response, "no capabilities announced");
                }
                capabilities
            }
            Err(e) => {
                tracing::debug!(server, error = %e, "capabilities unknown for now");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capability_is_there_when_its_key_is() {
        let caps = json!({"tools": {}, "prompts": {"listChanged": false}, "resources": null});
        assert!(has(&caps, Capability::Tools));
        assert!(has(&caps, Capability::Prompts));
        assert!(!has(&caps, Capability::Resources));
        assert!(!has(&caps, Capability::Completions));
    }
}
