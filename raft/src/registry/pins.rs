//! Pinned tool definitions: the defence against a server that changes what a tool says it
//! does after it was trusted (a "rug pull").
//!
//! The first listing of a server's tools pins each definition (its hash and canonical JSON,
//! computed by the node that saw it). A later listing that shows a pinned tool with another
//! hash, or (under [`PinPolicy::Strict`]) a tool never pinned, records it as pending: every
//! node withholds a pending tool, from `tools/list` and from calls, until an operator
//! approves it. All of it is registry state, so every node decides the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::CommandError;
use crate::types::NodeId;

/// Longest canonical definition kept for `mcpd tools diff` (a tool's JSON is small; this
/// bounds what one server can make the log carry).
pub const MAX_DEFINITION_BYTES: usize = 64 * 1024;
/// Most tools recorded per server.
pub const MAX_TOOLS_PER_SERVER: usize = 1024;

/// What a server's `pin` setting lets through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinPolicy {
    /// Changed definitions and tools added after the first listing wait for approval.
    Strict,
    /// Changed definitions wait for approval; tools added later are pinned as first seen.
    #[default]
    NewToolsAllowed,
    /// Nothing is pinned or withheld.
    Off,
}

impl PinPolicy {
    /// Every policy, in the order docs list them.
    pub const ALL: [PinPolicy; 3] = [
        PinPolicy::Strict,
        PinPolicy::NewToolsAllowed,
        PinPolicy::Off,
    ];

    /// The word a spec uses.
    pub fn as_str(self) -> &'static str {
        match self {
            PinPolicy::Strict => "strict",
            PinPolicy::NewToolsAllowed => "new-tools-allowed",
            PinPolicy::Off => "off",
        }
    }

    /// Parses the word a spec uses.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == word)
    }

    /// True for the default (left out of rendered specs).
    pub fn is_default(&self) -> bool {
        *self == PinPolicy::default()
    }
}

/// One tool definition as a node saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Hex SHA-256 of `definition`.
    pub hash: String,
    /// The definition's canonical JSON (name, description, schemas, annotations).
    pub definition: String,
}

/// A definition waiting for approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTool {
    /// What the server now presents.
    pub seen: ToolDefinition,
    /// The node that saw it first.
    pub seen_by: NodeId,
    /// When (ms since the Unix epoch, that node's clock).
    pub seen_at_ms: u64,
}

/// Why a tool is withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// Its definition differs from the pinned one.
    Changed,
    /// It was never pinned and the server's policy is strict.
    NotApproved,
}

impl Withheld {
    /// A sentence for the error a refused call gets.
    pub fn reason(self) -> &'static str {
        match self {
            Withheld::Changed => {
                "its definition changed since it was pinned; an operator must review it \
                 (mcpd tools diff) and approve it (mcpd tools approve)"
            }
            Withheld::NotApproved => {
                "it is new and the server's pin policy is strict; an operator must approve it \
                 (mcpd tools approve)"
            }
        }
    }
}

/// The pins and pending changes of one server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerPins {
    /// Tool name -> its approved definition.
    pub pinned: BTreeMap<String, ToolDefinition>,
    /// Tool name -> the definition waiting for approval.
    #[serde(default)]
    pub pending: BTreeMap<String, PendingTool>,
}

/// What one observation changed, for the audit log of the node that proposed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// Tools pinned as first seen.
    pub pinned: usize,
    /// Tools that became (or changed while) pending.
    pub pending: usize,
}

impl ServerPins {
    /// Whether `tool`, presented with `hash` (None: not known, as for a call), is withheld
    /// under `policy`.
    pub fn withheld(&self, policy: PinPolicy, tool: &str, hash: Option<&str>) -> Option<Withheld> {
        if policy == PinPolicy::Off {
            return None;
        }
        match (self.pinned.get(tool), hash) {
            _ if self.pending.contains_key(tool) => Some(if self.pinned.contains_key(tool) {
                Withheld::Changed
            } else {
                Withheld::NotApproved
            }),
            (Some(pin), Some(hash)) if pin.hash != hash => Some(Withheld::Changed),
            (Some(_), _) => None,
            (None, _) if policy == PinPolicy::Strict && !self.pinned.is_empty() => {
                Some(Withheld::NotApproved)
            }
            (None, _) => None,
        }
    }

    /// True if `tools` hold nothing this state does not already record.
    pub fn knows(&self, policy: PinPolicy, tools: &BTreeMap<String, ToolDefinition>) -> bool {
        policy == PinPolicy::Off
            || tools.iter().all(|(name, def)| {
                self.pinned.get(name).is_some_and(|p| p.hash == def.hash)
                    || self
                        .pending
                        .get(name)
                        .is_some_and(|p| p.seen.hash == def.hash)
            })
    }

    /// Records what a node saw: the first listing pins everything; later, a changed pinned
    /// tool becomes pending, and so does a new tool under [`PinPolicy::Strict`] (otherwise it
    /// is pinned).
    fn observe(
        &mut self,
        policy: PinPolicy,
        tools: &BTreeMap<String, ToolDefinition>,
        node: NodeId,
        at_ms: u64,
    ) -> Observed {
        let mut observed = Observed::default();
        if policy == PinPolicy::Off {
            return observed;
        }
        let first_listing = self.pinned.is_empty() && self.pending.is_empty();
        for (name, def) in tools {
            let pending = PendingTool {
                seen: def.clone(),
                seen_by: node,
                seen_at_ms: at_ms,
            };
            match self.pinned.get(name) {
                Some(pin) if pin.hash == def.hash => {}
                Some(_) => {
                    if self.pending.get(name).map(|p| &p.seen.hash) != Some(&def.hash) {
                        self.pending.insert(name.clone(), pending);
                        observed.pending += 1;
                    }
                }
                None if first_listing || policy == PinPolicy::NewToolsAllowed => {
                    if !self.pending.contains_key(name) {
                        self.pinned.insert(name.clone(), def.clone());
                        observed.pinned += 1;
                    }
                }
                None => {
                    if self.pending.get(name).map(|p| &p.seen.hash) != Some(&def.hash) {
                        self.pending.insert(name.clone(), pending);
                        observed.pending += 1;
                    }
                }
            }
        }
        observed
    }
}

/// Pins of every server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolPins {
    servers: BTreeMap<String, ServerPins>,
}

impl ToolPins {
    /// The pins of `server` (empty if it has none).
    pub fn server(&self, server: &str) -> Option<&ServerPins> {
        self.servers.get(server)
    }

    /// Records an observation of `server`'s tools under `policy` (see [`ServerPins`]).
    pub(super) fn observe(
        &mut self,
        server: &str,
        policy: PinPolicy,
        tools: &BTreeMap<String, ToolDefinition>,
        node: NodeId,
        at_ms: u64,
    ) -> Result<Observed, CommandError> {
        let oversized = tools.len() > MAX_TOOLS_PER_SERVER
            || tools
                .iter()
                .any(|(name, d)| name.is_empty() || d.definition.len() > MAX_DEFINITION_BYTES);
        if oversized {
            return Err(CommandError::InvalidToolObservation {
                server: server.to_owned(),
            });
        }
        let pins = self.servers.entry(server.to_owned()).or_default();
        let observed = pins.observe(policy, tools, node, at_ms);
        if pins.pinned.is_empty() && pins.pending.is_empty() {
            self.servers.remove(server);
        }
        Ok(observed)
    }

    /// Approves the pending definitions of `tools` (all pending ones if empty): they become
    /// the pinned ones. Refused if one named is not pending, or nothing is.
    pub(super) fn approve(&mut self, server: &str, tools: &[String]) -> Result<(), CommandError> {
        let nothing = || CommandError::NothingToApprove {
            server: server.to_owned(),
            tool: tools.iter().find(|_| true).cloned(),
        };
        let pins = self.servers.get_mut(server).ok_or_else(nothing)?;
        let names: Vec<String> = if tools.is_empty() {
            pins.pending.keys().cloned().collect()
        } else {
            if let Some(missing) = tools.iter().find(|t| !pins.pending.contains_key(*t)) {
                return Err(CommandError::NothingToApprove {
                    server: server.to_owned(),
                    tool: Some(missing.clone()),
                });
            }
            tools.to_vec()
        };
        if names.is_empty() {
            return Err(nothing());
        }
        for name in names {
            if let Some(pending) = pins.pending.remove(&name) {
                pins.pinned.insert(name, pending.seen);
            }
        }
        Ok(())
    }

    /// Forgets a server's pins (it was undeployed).
    pub(super) fn remove(&mut self, server: &str) {
        self.servers.remove(server);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(defs: &[(&str, &str)]) -> BTreeMap<String, ToolDefinition> {
        defs.iter()
            .map(|(name, hash)| {
                (
                    (*name).to_owned(),
                    ToolDefinition {
                        hash: (*hash).to_owned(),
                        definition: format!("{{\"name\":\"{name}\",\"v\":\"{hash}\"}}"),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn first_listing_pins_and_a_change_is_withheld_until_approved() {
        let mut pins = ToolPins::default();
        let policy = PinPolicy::NewToolsAllowed;
        let seen = pins
            .observe("s", policy, &tools(&[("a", "1"), ("b", "1")]), 1, 10)
            .unwrap();
        assert_eq!(
            seen,
            Observed {
                pinned: 2,
                pending: 0
            }
        );
        let s = pins.server("s").unwrap();
        assert_eq!(s.withheld(policy, "a", Some("1")), None);
        assert_eq!(s.withheld(policy, "a", Some("2")), Some(Withheld::Changed));
        assert!(!s.knows(policy, &tools(&[("a", "2")])));

        let seen = pins
            .observe("s", policy, &tools(&[("a", "2")]), 2, 20)
            .unwrap();
        assert_eq!(
            seen,
            Observed {
                pinned: 0,
                pending: 1
            }
        );
        // The same change seen again (by another node) records nothing new.
        let again = pins
            .observe("s", policy, &tools(&[("a", "2")]), 3, 30)
            .unwrap();
        assert_eq!(again, Observed::default());
        let s = pins.server("s").unwrap();
        // Withheld whatever a listing shows, and for calls (no hash).
        for hash in [Some("1"), Some("2"), None] {
            assert_eq!(s.withheld(policy, "a", hash), Some(Withheld::Changed));
        }
        assert_eq!(s.pending["a"].seen_by, 2);
        assert_eq!(s.withheld(policy, "b", None), None);

        pins.approve("s", &[]).unwrap();
        let s = pins.server("s").unwrap();
        assert_eq!(s.withheld(policy, "a", Some("2")), None);
        assert_eq!(s.withheld(policy, "a", Some("1")), Some(Withheld::Changed));
        assert!(pins.approve("s", &[]).is_err(), "nothing left to approve");
    }

    #[test]
    fn new_tools_follow_the_policy() {
        let mut strict = ToolPins::default();
        strict
            .observe("s", PinPolicy::Strict, &tools(&[("a", "1")]), 1, 0)
            .unwrap();
        strict
            .observe(
                "s",
                PinPolicy::Strict,
                &tools(&[("a", "1"), ("n", "1")]),
                1,
                0,
            )
            .unwrap();
        let s = strict.server("s").unwrap();
        assert_eq!(
            s.withheld(PinPolicy::Strict, "n", Some("1")),
            Some(Withheld::NotApproved)
        );
        // A tool no listing showed yet is refused for calls too under strict.
        assert_eq!(
            s.withheld(PinPolicy::Strict, "other", None),
            Some(Withheld::NotApproved)
        );
        assert!(matches!(
            strict.approve("s", &["a".into()]),
            Err(CommandError::NothingToApprove { .. })
        ));
        strict.approve("s", &["n".into()]).unwrap();
        assert_eq!(
            strict
                .server("s")
                .unwrap()
                .withheld(PinPolicy::Strict, "n", Some("1")),
            None
        );

        let mut open = ToolPins::default();
        for listing in [&[("a", "1")][..], &[("a", "1"), ("n", "1")]] {
            open.observe("s", PinPolicy::NewToolsAllowed, &tools(listing), 1, 0)
                .unwrap();
        }
        let s = open.server("s").unwrap();
        assert_eq!(s.withheld(PinPolicy::NewToolsAllowed, "n", Some("1")), None);
        assert!(s.pinned.contains_key("n"));
        // Off: nothing recorded, nothing withheld.
        let mut off = ToolPins::default();
        off.observe("s", PinPolicy::Off, &tools(&[("a", "1")]), 1, 0)
            .unwrap();
        assert!(off.server("s").is_none());
        assert_eq!(s.withheld(PinPolicy::Off, "a", Some("9")), None);
    }

    #[test]
    fn the_registry_applies_observations_per_the_spec_policy() {
        use crate::registry::{spec::parse_json, Command, Registry};
        let mut r = Registry::default();
        let observe = |tools| Command::ObserveTools {
            server: "s".into(),
            tools,
            node: 1,
            at_ms: 5,
        };
        assert!(matches!(
            r.apply(&observe(super::tests::tools(&[("a", "1")]))),
            Err(CommandError::ServerNotFound { .. })
        ));
        r.apply(&Command::PutServer {
            spec: parse_json(r#"{"name": "s", "command": "x", "pin": "strict"}"#).unwrap(),
            expected_revision: None,
        })
        .unwrap();
        r.apply(&observe(tools(&[("a", "1")]))).unwrap();
        r.apply(&observe(tools(&[("a", "2"), ("b", "1")]))).unwrap();
        let pins = r.tool_pins().server("s").unwrap();
        assert_eq!(pins.pending.len(), 2);
        r.apply(&Command::ApproveTools {
            server: "s".into(),
            tools: vec!["a".into()],
        })
        .unwrap();
        let pins = r.tool_pins().server("s").unwrap();
        assert_eq!(pins.pinned["a"].hash, "2");
        assert!(pins.pending.contains_key("b"));
        // Undeploying forgets the pins.
        r.apply(&Command::DeleteServer { name: "s".into() })
            .unwrap();
        assert!(r.tool_pins().server("s").is_none());
    }

    #[test]
    fn policy_words_round_trip() {
        for p in PinPolicy::ALL {
            assert_eq!(PinPolicy::parse(p.as_str()), Some(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
        assert_eq!(PinPolicy::parse("lenient"), None);
    }
}
