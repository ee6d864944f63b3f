//! Views: named subsets of the cluster's tools, resources and prompts, each served by the
//! MCP gateway at its own endpoint (`/mcp/v/NAME`).
//!
//! A view picks servers (by name or by tag; none named: every server), then filters the
//! picked servers' tools by globs over their gateway names (`SERVER__TOOL`), and may
//! rename a tool or give it another description. What a view hides is neither listed nor
//! callable through it. Views are replicated like everything else in the registry, so
//! every node serves the same ones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::principals::glob_matches;

/// Longest view name.
pub const MAX_VIEW_NAME_LEN: usize = 64;
/// Most entries in any one list or map of a view.
pub const MAX_VIEW_ENTRIES: usize = 1024;
/// Longest tool name a view may give (clients are asked to accept 1–128 characters).
pub const MAX_TOOL_NAME_LEN: usize = 128;
/// Longest description a view may give a tool.
pub const MAX_DESCRIPTION_LEN: usize = 8 * 1024;

/// One view, as written by `mcpd view apply`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewSpec {
    /// The view's name: its endpoint is `/mcp/v/NAME`.
    pub name: String,
    /// Servers included by registry name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// Servers included because they carry at least one of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Globs over `SERVER__TOOL`: when any is given, only matching tools are shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_tools: Vec<String>,
    /// Globs over `SERVER__TOOL`: matching tools are hidden (deny wins over allow).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_tools: Vec<String>,
    /// `SERVER__TOOL` -> the name the view shows it under.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rename: BTreeMap<String, String>,
    /// `SERVER__TOOL` -> the description the view shows.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub descriptions: BTreeMap<String, String>,
}

/// Why a view was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid view: {0}")]
pub struct ViewError(pub String);

fn invalid(reason: impl Into<String>) -> ViewError {
    ViewError(reason.into())
}

/// Checks a view name: 1–64 of `a-z 0-9 . _ -`, starting and ending with a letter or
/// digit (it is a URL path segment).
pub fn validate_view_name(name: &str) -> Result<(), ViewError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    let ok_ends = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > MAX_VIEW_NAME_LEN || !ok_chars || !ok_ends {
        return Err(invalid(format!(
            "name {name:?} must be 1-{MAX_VIEW_NAME_LEN} of a-z, 0-9, '.', '_', '-', \
             starting and ending with a letter or digit"
        )));
    }
    Ok(())
}

fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOOL_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl ViewSpec {
    /// Reads a view from JSON (what the CLI sends after reading YAML), checked.
    pub fn from_json(json: &str) -> Result<Self, ViewError> {
        let view: ViewSpec = serde_json::from_str(json).map_err(|e| invalid(format!("{e}")))?;
        view.validate()?;
        Ok(view)
    }

    /// Checks every field; the first problem found is the error.
    pub fn validate(&self) -> Result<(), ViewError> {
        validate_view_name(&self.name)?;
        let sizes = [
            ("servers", self.servers.len()),
            ("tags", self.tags.len()),
            ("allow_tools", self.allow_tools.len()),
            ("deny_tools", self.deny_tools.len()),
            ("rename", self.rename.len()),
            ("descriptions", self.descriptions.len()),
        ];
        if let Some((field, _)) = sizes.iter().find(|(_, n)| *n > MAX_VIEW_ENTRIES) {
            return Err(invalid(format!(
                "{field} has more than {MAX_VIEW_ENTRIES} entries"
            )));
        }
        for (field, list) in [
            ("servers", &self.servers),
            ("tags", &self.tags),
            ("allow_tools", &self.allow_tools),
            ("deny_tools", &self.deny_tools),
        ] {
            if list.iter().any(|s| s.trim().is_empty()) {
                return Err(invalid(format!("{field} has an empty entry")));
            }
        }
        let mut shown: BTreeMap<&str, &str> = BTreeMap::new();
        for (from, to) in &self.rename {
            if !valid_tool_name(to) {
                return Err(invalid(format!(
                    "rename of {from:?}: {to:?} is not a tool name (1-{MAX_TOOL_NAME_LEN} of \
                     A-Z, a-z, 0-9, '_', '-', '.')"
                )));
            }
            if let Some(other) = shown.insert(to, from) {
                return Err(invalid(format!(
                    "rename gives {other:?} and {from:?} the same name {to:?}"
                )));
            }
        }
        if let Some((tool, _)) = self
            .descriptions
            .iter()
            .find(|(_, d)| d.len() > MAX_DESCRIPTION_LEN)
        {
            return Err(invalid(format!(
                "the description of {tool:?} is longer than {MAX_DESCRIPTION_LEN} bytes"
            )));
        }
        Ok(())
    }

    /// True if the view includes `server`, which carries `tags`.
    pub fn includes_server(&self, server: &str, tags: &[String]) -> bool {
        (self.servers.is_empty() && self.tags.is_empty())
            || self.servers.iter().any(|s| s == server)
            || self.tags.iter().any(|t| tags.contains(t))
    }

    /// True if the view shows the tool whose gateway name is `exposed`.
    pub fn shows_tool(&self, exposed: &str) -> bool {
        let allowed = self.allow_tools.is_empty()
            || self.allow_tools.iter().any(|g| glob_matches(g, exposed));
        allowed && !self.deny_tools.iter().any(|g| glob_matches(g, exposed))
    }
}

/// Every view of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Views {
    views: BTreeMap<String, ViewSpec>,
}

impl Views {
    /// Creates or replaces a view.
    pub fn put(&mut self, view: &ViewSpec) {
        self.views.insert(view.name.clone(), view.clone());
    }

    /// Removes a view; removing one that is not there changes nothing.
    pub fn delete(&mut self, name: &str) {
        self.views.remove(name);
    }

    /// A view by name.
    pub fn get(&self, name: &str) -> Option<&ViewSpec> {
        self.views.get(name)
    }

    /// Every view, by name.
    pub fn iter(&self) -> impl Iterator<Item = &ViewSpec> {
        self.views.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(json: &str) -> Result<ViewSpec, ViewError> {
        ViewSpec::from_json(json)
    }

    #[test]
    fn a_view_picks_servers_then_tools() {
        let v = view(
            r#"{"name": "ops", "servers": ["time"], "tags": ["prod"],
                "allow_tools": ["time__*", "git__git_log"], "deny_tools": ["time__convert_*"]}"#,
        )
        .unwrap();
        assert!(v.includes_server("time", &[]));
        assert!(v.includes_server("git", &["prod".into()]));
        assert!(!v.includes_server("demo", &["dev".into()]));
        assert!(v.shows_tool("time__get_current_time"));
        assert!(!v.shows_tool("time__convert_time"));
        assert!(v.shows_tool("git__git_log"));
        assert!(!v.shows_tool("git__git_commit"));
        let all = view(r#"{"name": "all"}"#).unwrap();
        assert!(all.includes_server("anything", &[]));
        assert!(all.shows_tool("anything__at_all"));
    }

    #[test]
    fn bad_views_are_refused_with_the_reason() {
        for (json, reason) in [
            (r#"{"name": "Bad Name"}"#, "name"),
            (r#"{"name": "v", "unknown": 1}"#, "unknown field"),
            (r#"{"name": "v", "servers": [""]}"#, "empty entry"),
            (
                r#"{"name": "v", "rename": {"a__b": "has space"}}"#,
                "not a tool name",
            ),
            (
                r#"{"name": "v", "rename": {"a__b": "x", "a__c": "x"}}"#,
                "the same name",
            ),
        ] {
            let e = view(json).unwrap_err();
            assert!(e.to_string().contains(reason), "{json}: {e}");
        }
    }

    #[test]
    fn put_replaces_and_delete_is_idempotent() {
        let mut views = Views::default();
        views.put(&view(r#"{"name": "v", "servers": ["a"]}"#).unwrap());
        views.put(&view(r#"{"name": "v", "servers": ["b"]}"#).unwrap());
        assert_eq!(views.get("v").unwrap().servers, ["b"]);
        views.delete("v");
        views.delete("v");
        assert!(views.get("v").is_none());
    }
}
