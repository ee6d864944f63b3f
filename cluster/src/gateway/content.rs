//! Resources, resource templates, prompts and completions of every server, as one server.
//!
//! Lists walk the servers that announce the capability, in name order, one upstream page
//! at a time ([`cursor`](super::cursor) says where the walk stands), renaming each item
//! ([`names`](super::names)). A server that fails while listed is left out of that page
//! and the walk goes on, so one broken server never fails the list. `resources/read`,
//! `prompts/get` and `completion/complete` find the server from the exposed name or URI
//! and send it the server's own.

use std::sync::Arc;
use std::time::Duration;

use mcp_raft::RegistryReader;
use serde_json::{json, Map, Value};

use super::capabilities::{self, Capabilities, Capability};
use super::cursor::{Cursor, CursorError};
use super::error::MethodError;
use super::names;
use super::scope::Scope;
use crate::dataplane::{DataPlane, ExecuteOptions};

/// How long one upstream page may take before its server is left out of the page.
const PAGE_TIMEOUT: Duration = Duration::from_secs(5);
/// A page stops taking further servers once it holds this many items (a server's own
/// page is never cut).
const PAGE_TARGET: usize = 100;

/// A list the gateway merges across servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// `resources/list`.
    Resources,
    /// `resources/templates/list`.
    ResourceTemplates,
    /// `prompts/list`.
    Prompts,
}

impl ListKind {
    /// The list of `method`, if it is one of these.
    pub fn of_method(method: &str) -> Option<Self> {
        match method {
            "resources/list" => Some(ListKind::Resources),
            "resources/templates/list" => Some(ListKind::ResourceTemplates),
            "prompts/list" => Some(ListKind::Prompts),
            _ => None,
        }
    }

    /// The method.
    pub fn method(self) -> &'static str {
        match self {
            ListKind::Resources => "resources/list",
            ListKind::ResourceTemplates => "resources/templates/list",
            ListKind::Prompts => "prompts/list",
        }
    }

    /// The result field holding the items.
    fn field(self) -> &'static str {
        match self {
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
            ListKind::Prompts => "prompts",
        }
    }

    /// The capability a server needs to be asked.
    pub fn capability(self) -> Capability {
        match self {
            ListKind::Resources | ListKind::ResourceTemplates => Capability::Resources,
            ListKind::Prompts => Capability::Prompts,
        }
    }

    /// Renames one item of `server` in place; false for an item without the field that
    /// names it (left out).
    fn expose(self, server: &str, item: &mut Value) -> bool {
        let key = match self {
            ListKind::Resources => "uri",
            ListKind::ResourceTemplates => "uriTemplate",
            ListKind::Prompts => "name",
        };
        let Some(Value::String(value)) = item.get_mut(key) else {
            return false;
        };
        *value = match self {
            ListKind::Prompts => names::prefixed(server, value),
            _ => names::wrap_uri(server, value),
        };
        true
    }
}

/// The cross-server methods of one gateway.
pub struct Content {
    plane: Arc<DataPlane>,
    registry: RegistryReader,
    capabilities: Arc<Capabilities>,
}

impl Content {
    /// Methods run through `plane`, on the servers of `registry`.
    pub fn new(
        plane: Arc<DataPlane>,
        registry: RegistryReader,
        capabilities: Arc<Capabilities>,
    ) -> Self {
        Self {
            plane,
            registry,
            capabilities,
        }
    }

    /// One page of a merged list: `{FIELD: [...], nextCursor?}`.
    pub async fn list(
        &self,
        kind: ListKind,
        params: &Value,
        scope: &dyn Scope,
    ) -> Result<Value, MethodError> {
        let servers: Vec<String> = self
            .capabilities
            .servers_with(kind.capability())
            .await
            .into_iter()
            .filter(|s| scope.server_visible(s))
            .collect();
        let start = match params.get("cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(raw)) => Some(Cursor::decode(raw, kind.method())?),
            Some(_) => return Err(CursorError::Malformed.into()),
        };
        // Resume at the cursor's server, or the first after it if it has gone.
        let (first, mut upstream_cursor) = match start {
            None => (0, None),
            Some(cursor) => (
                servers.partition_point(|s| *s < cursor.server),
                servers
                    .binary_search(&cursor.server)
                    .ok()
                    .and(cursor.upstream),
            ),
        };
        let mut items = Vec::new();
        let mut next = None;
        for server in servers.iter().skip(first) {
            if items.len() >= PAGE_TARGET {
                next = Some(Cursor {
                    method: kind.method().into(),
                    server: server.clone(),
                    upstream: None,
                });
                break;
            }
            let mut params = Map::new();
            if let Some(c) = upstream_cursor.take() {
                params.insert("cursor".into(), c);
            }
            let page = match self
                .run(
                    server,
                    kind.method(),
                    Value::Object(params),
                    Some(PAGE_TIMEOUT),
                )
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::debug!(server, method = kind.method(), error = %e, "left out of the gateway's list");
                    continue;
                }
            };
            if let Some(list) = page.get(kind.field()).and_then(Value::as_array) {
                items.extend(
                    list.iter()
                        .cloned()
                        .filter_map(|mut item| kind.expose(server, &mut item).then_some(item)),
                );
            }
            if let Some(c) = page.get("nextCursor").filter(|c| !c.is_null()) {
                next = Some(Cursor {
                    method: kind.method().into(),
                    server: server.clone(),
                    upstream: Some(c.clone()),
                });
                break;
            }
        }
        let mut result = Map::new();
        result.insert(kind.field().into(), Value::Array(items));
        if let Some(next) = next {
            result.insert("nextCursor".into(), next.encode().into());
        }
        Ok(Value::Object(result))
    }

    /// `resources/read` of an exposed URI.
    pub async fn read(&self, params: &Value, scope: &dyn Scope) -> Result<Value, MethodError> {
        let exposed = params
            .get("uri")
            .and_then(Value::as_str)
            .ok_or(MethodError::MissingParam("uri"))?;
        let not_found = || MethodError::ResourceNotFound(exposed.to_owned());
        let (server, uri) = names::unwrap_uri(exposed).ok_or_else(not_found)?;
        if !self.registered(server) || !scope.server_visible(server) {
            return Err(not_found());
        }
        let mut upstream = json!({"uri": uri});
        pass_round_trip_fields(params, &mut upstream);
        let mut result = self.run(server, "resources/read", upstream, None).await?;
        names::wrap_content_uris(server, &mut result);
        Ok(result)
    }

    /// `prompts/get` of an exposed prompt name.
    pub async fn get_prompt(
        &self,
        params: &Value,
        scope: &dyn Scope,
    ) -> Result<Value, MethodError> {
        let exposed = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or(MethodError::MissingParam("name"))?;
        let (server, name) = names::split_prefixed(exposed, &self.servers())
            .filter(|(s, _)| scope.server_visible(s))
            .ok_or_else(|| MethodError::UnknownName {
                kind: "prompt",
                name: exposed.to_owned(),
            })?;
        let mut upstream = json!({"name": name});
        if let Some(arguments) = params.get("arguments") {
            upstream["arguments"] = arguments.clone();
        }
        pass_round_trip_fields(params, &mut upstream);
        let mut result = self.run(&server, "prompts/get", upstream, None).await?;
        names::wrap_content_uris(&server, &mut result);
        Ok(result)
    }

    /// `completion/complete` for a prompt argument or a resource template variable. A
    /// server without completions answers with no values, as the spec lets a server that
    /// has none.
    pub async fn complete(&self, params: &Value, scope: &dyn Scope) -> Result<Value, MethodError> {
        let reference = params
            .get("ref")
            .and_then(Value::as_object)
            .ok_or(MethodError::MissingParam("ref"))?;
        let kind = reference.get("type").and_then(Value::as_str).unwrap_or("");
        let mut upstream_ref = reference.clone();
        let server =
            match kind {
                "ref/prompt" => {
                    let exposed = reference
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or(MethodError::MissingParam("ref.name"))?;
                    let (server, name) = names::split_prefixed(exposed, &self.servers())
                        .ok_or_else(|| MethodError::UnknownName {
                            kind: "prompt",
                            name: exposed.to_owned(),
                        })?;
                    upstream_ref.insert("name".into(), name.into());
                    server
                }
                "ref/resource" => {
                    let exposed = reference
                        .get("uri")
                        .and_then(Value::as_str)
                        .ok_or(MethodError::MissingParam("ref.uri"))?;
                    let (server, uri) = names::unwrap_uri(exposed)
                        .filter(|(s, _)| self.registered(s))
                        .ok_or_else(|| MethodError::ResourceNotFound(exposed.to_owned()))?;
                    upstream_ref.insert("uri".into(), uri.into());
                    server.to_owned()
                }
                other => {
                    return Err(MethodError::InvalidParams(format!(
                        "ref.type {other:?} is neither \"ref/prompt\" nor \"ref/resource\""
                    )))
                }
            };
        if !scope.server_visible(&server) {
            return Err(MethodError::UnknownName {
                kind: "completion target",
                name: server,
            });
        }
        let completes = self
            .capabilities
            .of(&server)
            .await
            .is_none_or(|c| capabilities::has(&c, Capability::Completions));
        if !completes {
            return Ok(json!({"completion": {"values": [], "hasMore": false}}));
        }
        let mut upstream = json!({"ref": upstream_ref});
        for key in ["argument", "context"] {
            if let Some(value) = params.get(key) {
                upstream[key] = value.clone();
            }
        }
        self.run(&server, "completion/complete", upstream, None)
            .await
    }

    /// The registered server names, sorted.
    fn servers(&self) -> Vec<String> {
        let mut names: Vec<String> = self.registry.read(|state| {
            state
                .registry
                .servers()
                .map(|s| s.spec.name.clone())
                .collect()
        });
        names.sort();
        names
    }

    fn registered(&self, server: &str) -> bool {
        self.registry
            .read(|state| state.registry.server(server).is_some())
    }

    /// Runs `method` with `params` on `server`: its result, or why not.
    pub async fn run(
        &self,
        server: &str,
        method: &str,
        params: Value,
        timeout: Option<Duration>,
    ) -> Result<Value, MethodError> {
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let options = ExecuteOptions {
            timeout,
            request_id: format!("mcp-{}", ExecuteOptions::new_request_id()),
            ..ExecuteOptions::default()
        };
        let executed = self
            .plane
            .execute(server, request, options)
            .await
            .map_err(|error| MethodError::Execute {
                target: server.to_owned(),
                error,
            })?;
        let response = executed.response.to_value();
        match response.get("result") {
            Some(result) => Ok(result.clone()),
            None => Err(MethodError::Upstream(
                crate::dataplane::jsonrpc::error_of(&response)
                    .cloned()
                    .unwrap_or_else(|| json!({"code": -32603, "message": "empty response"})),
            )),
        }
    }
}

/// Copies the 2026-07-28 multi-round-trip fields (the client's answers to a server's
/// input-required result, and the server's own state) from `params` to `upstream`.
fn pass_round_trip_fields(params: &Value, upstream: &mut Value) {
    for key in ["inputResponses", "requestState"] {
        if let Some(value) = params.get(key) {
            upstream[key] = value.clone();
        }
    }
}
