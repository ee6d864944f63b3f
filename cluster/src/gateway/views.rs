//! Views (virtual servers) at `/mcp/v/NAME`: the [`Scope`] of a view stored in the
//! registry (`mcp_raft::registry::views`), and the tool list and routes as a scope shows
//! them.
//!
//! One function, [`scoped_tools`], makes both the list and the routes a call is resolved
//! with, so a tool a view hides is neither listed nor callable through it, and a renamed
//! tool is called by its new name only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use mcp_raft::registry::ViewSpec;
use mcp_raft::RegistryReader;
use serde_json::Value;

use super::catalog::{Catalog, Route};
use super::scope::{Everything, Scope};

/// The scope of one view, with the tags of the servers as the registry had them.
#[derive(Debug, Clone)]
pub struct ViewScope {
    view: ViewSpec,
    server_tags: BTreeMap<String, Vec<String>>,
}

impl ViewScope {
    /// The scope of view `name`; `None` if there is no such view.
    pub fn load(registry: &RegistryReader, name: &str) -> Option<Self> {
        registry.read(|state| {
            let view = state.registry.views().get(name)?.clone();
            let server_tags = state
                .registry
                .servers()
                .map(|s| (s.spec.name.clone(), s.spec.tags.clone()))
                .collect();
            Some(Self { view, server_tags })
        })
    }
}

impl Scope for ViewScope {
    fn server_visible(&self, server: &str) -> bool {
        let tags = self
            .server_tags
            .get(server)
            .map(Vec::as_slice)
            .unwrap_or_default();
        self.view.includes_server(server, tags)
    }

    fn tool(&self, server: &str, exposed: String, mut tool: Value) -> Option<(String, Value)> {
        if !self.server_visible(server) || !self.view.shows_tool(&exposed) {
            return None;
        }
        if let (Some(description), Some(object)) =
            (self.view.descriptions.get(&exposed), tool.as_object_mut())
        {
            object.insert("description".into(), description.clone().into());
        }
        let shown = self.view.rename.get(&exposed).cloned().unwrap_or(exposed);
        Some((shown, tool))
    }
}

/// The scope of a request to the default endpoint (`None`) or to view `view`; `None` if
/// the view does not exist.
pub fn scope_of(registry: &RegistryReader, view: Option<&str>) -> Option<Arc<dyn Scope>> {
    match view {
        None => Some(Arc::new(Everything)),
        Some(name) => ViewScope::load(registry, name).map(|s| Arc::new(s) as Arc<dyn Scope>),
    }
}

/// The tools (as the catalog lists them, under their default names) and their routes as
/// `scope` shows them. A name a rename makes collide with another keeps its first owner.
pub fn scoped_tools(
    scope: &dyn Scope,
    tools: Vec<Value>,
    routes: &HashMap<String, Route>,
) -> (Vec<Value>, HashMap<String, Route>) {
    let mut shown_tools = Vec::with_capacity(tools.len());
    let mut shown_routes = HashMap::with_capacity(tools.len());
    for tool in tools {
        let Some(name) = tool.get("name").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        let Some(route) = routes.get(&name) else {
            continue;
        };
        let Some((shown, mut tool)) = scope.tool(&route.server, name, tool) else {
            continue;
        };
        if shown_routes.contains_key(&shown) {
            tracing::warn!(name = shown, "a view's tool name is taken; left out");
            continue;
        }
        if let Some(object) = tool.as_object_mut() {
            object.insert("name".into(), shown.clone().into());
        }
        shown_routes.insert(shown, route.clone());
        shown_tools.push(tool);
    }
    (shown_tools, shown_routes)
}

/// Where tool `name` leads under `scope`. The default endpoint keeps the catalog's own
/// resolution (which also reaches a registered server that could not be listed, for its
/// real error); a view resolves through what it shows, nothing else.
pub async fn resolve(
    catalog: &Catalog,
    scope: &dyn Scope,
    is_view: bool,
    name: &str,
) -> Option<Route> {
    if !is_view {
        return catalog.resolve(name).await;
    }
    let (tools, routes) = catalog.list().await;
    let (_, shown) = scoped_tools(scope, tools, &routes);
    shown.get(name).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(json: &str) -> ViewScope {
        ViewScope {
            view: ViewSpec::from_json(json).expect("a valid view"),
            server_tags: BTreeMap::from([
                ("time".into(), vec!["prod".into()]),
                ("demo".into(), vec![]),
            ]),
        }
    }

    fn catalog() -> (Vec<Value>, HashMap<String, Route>) {
        let mut routes = HashMap::new();
        let mut tools = Vec::new();
        for (server, tool) in [("time", "now"), ("time", "convert"), ("demo", "echo")] {
            let name = format!("{server}__{tool}");
            routes.insert(
                name.clone(),
                Route {
                    server: server.into(),
                    tool: tool.into(),
                },
            );
            tools.push(json!({"name": name, "description": "d"}));
        }
        (tools, routes)
    }

    #[test]
    fn a_view_hides_renames_and_redescribes() {
        let scope = view(
            r#"{"name": "v", "tags": ["prod"], "deny_tools": ["*__convert"],
                "rename": {"time__now": "clock"}, "descriptions": {"time__now": "What time it is"}}"#,
        );
        let (tools, routes) = catalog();
        let (shown, shown_routes) = scoped_tools(&scope, tools, &routes);
        assert_eq!(
            shown,
            vec![json!({"name": "clock", "description": "What time it is"})]
        );
        assert_eq!(shown_routes["clock"].tool, "now");
        assert!(!shown_routes.contains_key("time__convert"));
        assert!(!shown_routes.contains_key("demo__echo"));
        assert!(!scope.server_visible("demo"));
        // Everything shows everything, unchanged.
        let (tools, routes) = catalog();
        let (all, _) = scoped_tools(&Everything, tools.clone(), &routes);
        assert_eq!(all, tools);
    }
}
