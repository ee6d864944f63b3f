//! What one request may see: the hook every list and every call goes through, so that
//! the same rule hides a thing from a list and refuses it when named.
//!
//! [`Everything`] is the default endpoint's scope. Views (`/mcp/v/NAME`) and, later,
//! per-principal access narrow it by implementing [`Scope`].

use serde_json::Value;

/// A filter over the cluster's servers and tools.
pub trait Scope: Send + Sync {
    /// True when `server`'s tools, resources and prompts may be seen at all.
    fn server_visible(&self, server: &str) -> bool;

    /// The tool `tool` (as its server lists it, name included) of `server` as this scope
    /// shows it, renamed or redescribed, with the exposed name it goes by; `None` when
    /// hidden. `exposed` is the default exposed name.
    fn tool(&self, server: &str, exposed: String, tool: Value) -> Option<(String, Value)>;
}

/// The scope of the default endpoint: everything, unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Everything;

impl Scope for Everything {
    fn server_visible(&self, _server: &str) -> bool {
        true
    }

    fn tool(&self, _server: &str, exposed: String, tool: Value) -> Option<(String, Value)> {
        Some((exposed, tool))
    }
}

/// Two scopes at once (a view and the caller's principal): seen only if both see it,
/// shown as the first shows it, then as the second.
pub struct Both<'a>(pub &'a dyn Scope, pub &'a dyn Scope);

impl Scope for Both<'_> {
    fn server_visible(&self, server: &str) -> bool {
        self.0.server_visible(server) && self.1.server_visible(server)
    }

    fn tool(&self, server: &str, exposed: String, tool: Value) -> Option<(String, Value)> {
        let (exposed, tool) = self.0.tool(server, exposed, tool)?;
        self.1.tool(server, exposed, tool)
    }
}
