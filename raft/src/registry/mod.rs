//! The server registry: the replicated state of the cluster.
//!
//! [`Registry`] is plain data plus [`Registry::apply`], a deterministic function from a
//! [`Command`] to a new state; every node applies the same commands in the same order and
//! ends in the same state. Each successful change bumps the registry revision by one.

mod command;
pub mod gateway_sessions;
pub mod limits;
pub mod list_changes;
mod on_demand;
pub mod pins;
mod placement_mode;
pub mod principals;
pub mod secrets;
pub mod spec;
pub mod views;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use command::{Command, CommandError, CommandOutcome, CommandResult};
pub use gateway_sessions::{GatewaySessions, SecretKey, SessionKey};
pub use pins::{PinPolicy, ServerPins, ToolDefinition, ToolPins, Withheld};
pub use placement_mode::PlacementMode;
pub use principals::{Principals, Role, TokenRecord};
pub use secrets::{SealedSecret, Secrets};
pub use spec::{ServerSpec, SpecError};
pub use views::{ViewSpec, Views};

use crate::types::NodeId;

/// A registered server: its spec, where its instances run, and its revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    /// The validated spec; `spec.replicas` is the desired replica count.
    pub spec: ServerSpec,
    /// Registry revision that created the server.
    pub create_revision: u64,
    /// Registry revision of the server's last change by a user (spec or scale). Placement
    /// changes, made by the scheduler, leave it alone, so compare-and-set by users is not
    /// disturbed by the system moving instances.
    pub mod_revision: u64,
    /// Instance id -> node that runs it.
    pub placements: BTreeMap<String, NodeId>,
    /// An on-demand server woken by a call (see `on_demand.rs`); absent from entries
    /// written before scale to zero, which read as asleep.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awake: bool,
}

/// A cluster node as the registry knows it (placement reads this).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Node id.
    pub id: NodeId,
    /// The node's advertised gRPC address.
    pub addr: String,
    /// Free-form labels used by placement constraints.
    #[serde(default)]
    pub tags: Vec<String>,
    /// A draining node gets no instances; the scheduler moves its instances away.
    #[serde(default)]
    pub draining: bool,
}

/// The replicated registry state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    revision: u64,
    servers: BTreeMap<String, ServerRecord>,
    nodes: BTreeMap<NodeId, NodeRecord>,
    /// Session keys and ended sessions of the MCP gateways; absent from snapshots taken
    /// before gateways shared sessions.
    #[serde(default)]
    gateway_sessions: GatewaySessions,
    /// API tokens (hashes only); absent from snapshots taken before tokens existed.
    #[serde(default)]
    principals: Principals,
    /// Pinned tool definitions (issue 16 guards); absent from older snapshots.
    #[serde(default)]
    tool_pins: ToolPins,
    /// Sealed cluster secrets; absent from older snapshots.
    #[serde(default)]
    secrets: Secrets,
    /// Rate limits of principals and roles; absent from older snapshots.
    #[serde(default)]
    caller_limits: limits::CallerLimits,
    /// The MCP gateway's views; absent from snapshots taken before views existed.
    #[serde(default)]
    views: Views,
    /// List changes servers announced; absent from snapshots taken before.
    #[serde(default)]
    list_epochs: list_changes::ListEpochs,
}

impl Registry {
    /// The registry revision: the number of successful changes since the cluster began.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// A server by name.
    pub fn server(&self, name: &str) -> Option<&ServerRecord> {
        self.servers.get(name)
    }

    /// All servers, ordered by name.
    pub fn servers(&self) -> impl Iterator<Item = &ServerRecord> {
        self.servers.values()
    }

    /// Number of registered servers.
    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// All known nodes, ordered by id.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeRecord> {
        self.nodes.values()
    }

    /// What the MCP gateways share about handshake-era sessions.
    pub fn gateway_sessions(&self) -> &GatewaySessions {
        &self.gateway_sessions
    }

    /// The API tokens.
    pub fn principals(&self) -> &Principals {
        &self.principals
    }

    /// The pinned tool definitions.
    pub fn tool_pins(&self) -> &ToolPins {
        &self.tool_pins
    }

    /// The sealed secrets.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The rate limits of principals and roles.
    pub fn caller_limits(&self) -> &limits::CallerLimits {
        &self.caller_limits
    }

    /// The MCP gateway's views.
    pub fn views(&self) -> &Views {
        &self.views
    }

    /// The list changes servers announced.
    pub fn list_epochs(&self) -> &list_changes::ListEpochs {
        &self.list_epochs
    }

    /// Applies one command. On success the revision grows by one; on error nothing changes.
    pub fn apply(&mut self, command: &Command) -> CommandResult {
        if let Command::Batch { commands } = command {
            let batch = commands
                .iter()
                .map(|c| match c {
                    Command::Batch { .. } => Err(CommandError::NestedBatch),
                    c => self.apply(c),
                })
                .collect();
            return Ok(CommandOutcome {
                revision: self.revision,
                created: false,
                batch,
            });
        }
        let next = self.revision + 1;
        let created = match command {
            Command::PutServer {
                spec,
                expected_revision,
            } => {
                self.secrets.check_references(spec)?;
                let current = self.servers.get(&spec.name);
                if let Some(expected) = *expected_revision {
                    let actual = current.map_or(0, |s| s.mod_revision);
                    if actual != expected {
                        return Err(CommandError::RevisionMismatch {
                            name: spec.name.clone(),
                            expected,
                            actual,
                        });
                    }
                }
                match self.servers.get_mut(&spec.name) {
                    Some(record) => {
                        record.spec = spec.clone();
                        record.mod_revision = next;
                        false
                    }
                    None => {
                        self.servers.insert(
                            spec.name.clone(),
                            ServerRecord {
                                spec: spec.clone(),
                                create_revision: next,
                                mod_revision: next,
                                placements: BTreeMap::new(),
                                awake: false,
                            },
                        );
                        true
                    }
                }
            }
            Command::DeleteServer { name } => {
                if self.servers.remove(name).is_none() {
                    return Err(CommandError::ServerNotFound { name: name.clone() });
                }
                self.tool_pins.remove(name);
                false
            }
            Command::Scale { name, replicas } => {
                let record = self.server_mut(name)?;
                record.spec.replicas = *replicas;
                record.mod_revision = next;
                false
            }
            Command::Place {
                name,
                assign,
                unassign,
            } => {
                let record = self.server_mut(name)?;
                for instance in unassign {
                    record.placements.remove(instance);
                }
                for (instance, node) in assign {
                    record.placements.insert(instance.clone(), *node);
                }
                false
            }
            Command::PutNode { node } => {
                self.nodes.insert(node.id, node.clone());
                false
            }
            Command::SetDraining { id, draining } => {
                let Some(node) = self.nodes.get_mut(id) else {
                    return Err(CommandError::NodeNotFound { id: *id });
                };
                node.draining = *draining;
                false
            }
            Command::SetNodeTags { id, tags } => {
                let Some(node) = self.nodes.get_mut(id) else {
                    return Err(CommandError::NodeNotFound { id: *id });
                };
                node.tags = tags.clone();
                false
            }
            Command::DeleteNode { id } => {
                if self.nodes.remove(id).is_none() {
                    return Err(CommandError::NodeNotFound { id: *id });
                }
                false
            }
            Command::PutSessionKey {
                id,
                key,
                at_ms,
                retain_ms,
            } => {
                self.gateway_sessions
                    .put_key(*id, key, *at_ms, *retain_ms)?;
                false
            }
            Command::EndSession {
                session,
                expires_at_ms,
                at_ms,
            } => {
                self.gateway_sessions.end(session, *expires_at_ms, *at_ms)?;
                false
            }
            Command::PutToken { record } => {
                self.principals.put(record)?;
                false
            }
            Command::RevokeToken { name } => {
                self.principals.revoke(name)?;
                false
            }
            Command::ObserveTools {
                server,
                tools,
                node,
                at_ms,
            } => {
                let policy = self.server_mut(server)?.spec.guards.pin;
                self.tool_pins
                    .observe(server, policy, tools, *node, *at_ms)?;
                false
            }
            Command::ApproveTools { server, tools } => {
                self.server_mut(server)?;
                self.tool_pins.approve(server, tools)?;
                false
            }
            Command::PutSecret { name, sealed } => {
                self.secrets.put(name, sealed, next)?;
                false
            }
            Command::ResealSecret {
                name,
                previous,
                sealed,
            } => {
                self.secrets.reseal(name, previous, sealed, next)?;
                false
            }
            Command::DeleteSecret { name } => {
                self.secrets
                    .remove(name, self.servers.values().map(|r| &r.spec))?;
                false
            }
            Command::SetAwake { name, awake } => {
                self.server_mut(name)?.awake = *awake;
                false
            }
            Command::PutView { view } => {
                self.views.put(view);
                false
            }
            Command::DeleteView { name } => {
                self.views.delete(name);
                false
            }
            Command::ServerListsChanged { name } => {
                self.server_mut(name)?;
                self.list_epochs.bump(name);
                false
            }
            Command::SetCallerLimit { subject, limit } => {
                self.caller_limits.set(subject, *limit)?;
                false
            }
            Command::Batch { .. } => return Err(CommandError::NestedBatch),
        };
        self.revision = next;
        Ok(CommandOutcome {
            revision: next,
            created,
            batch: Vec::new(),
        })
    }

    fn server_mut(&mut self, name: &str) -> Result<&mut ServerRecord, CommandError> {
        self.servers
            .get_mut(name)
            .ok_or_else(|| CommandError::ServerNotFound {
                name: name.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> ServerSpec {
        spec::parse_json(&format!(r#"{{"name": "{name}", "command": "true"}}"#)).unwrap()
    }

    fn put(name: &str, expected_revision: Option<u64>) -> Command {
        Command::PutServer {
            spec: spec(name),
            expected_revision,
        }
    }

    #[test]
    fn successful_changes_bump_the_revision() {
        let mut r = Registry::default();
        assert_eq!(
            r.apply(&put("a", None)).unwrap(),
            CommandOutcome {
                revision: 1,
                created: true,
                batch: vec![]
            }
        );
        assert_eq!(
            r.apply(&put("a", None)).unwrap(),
            CommandOutcome {
                revision: 2,
                created: false,
                batch: vec![]
            }
        );
        let a = r.server("a").unwrap();
        assert_eq!((a.create_revision, a.mod_revision), (1, 2));
        r.apply(&Command::Scale {
            name: "a".into(),
            replicas: 4,
        })
        .unwrap();
        assert_eq!(r.server("a").unwrap().spec.replicas, 4);
        r.apply(&Command::DeleteServer { name: "a".into() })
            .unwrap();
        assert_eq!((r.revision(), r.server_count()), (4, 0));
    }

    #[test]
    fn failed_preconditions_change_nothing() {
        let mut r = Registry::default();
        r.apply(&put("a", Some(0))).unwrap();
        let before = r.clone();
        assert_eq!(
            r.apply(&put("a", Some(0))),
            Err(CommandError::RevisionMismatch {
                name: "a".into(),
                expected: 0,
                actual: 1
            })
        );
        assert!(matches!(
            r.apply(&Command::Scale {
                name: "b".into(),
                replicas: 1
            }),
            Err(CommandError::ServerNotFound { .. })
        ));
        assert!(matches!(
            r.apply(&Command::DeleteNode { id: 9 }),
            Err(CommandError::NodeNotFound { id: 9 })
        ));
        assert_eq!(r, before);
        r.apply(&put("a", Some(1))).unwrap();
        assert_eq!(r.revision(), 2);
    }

    #[test]
    fn batch_applies_each_command_on_its_own() {
        let mut r = Registry::default();
        let outcome = r
            .apply(&Command::Batch {
                commands: vec![
                    put("a", None),
                    Command::Scale {
                        name: "missing".into(),
                        replicas: 1,
                    },
                    put("b", Some(0)),
                    Command::Batch { commands: vec![] },
                ],
            })
            .unwrap();
        assert_eq!(outcome.revision, 2);
        assert!(outcome.batch[0].is_ok() && outcome.batch[2].is_ok());
        assert!(matches!(
            outcome.batch[1],
            Err(CommandError::ServerNotFound { .. })
        ));
        assert_eq!(outcome.batch[3], Err(CommandError::NestedBatch));
        assert_eq!(r.server_count(), 2);
    }

    #[test]
    fn placement_assigns_and_unassigns_instances() {
        let mut r = Registry::default();
        r.apply(&put("a", None)).unwrap();
        r.apply(&Command::Place {
            name: "a".into(),
            assign: BTreeMap::from([("a-0".into(), 1), ("a-1".into(), 2)]),
            unassign: vec![],
        })
        .unwrap();
        r.apply(&Command::Place {
            name: "a".into(),
            assign: BTreeMap::from([("a-1".into(), 3)]),
            unassign: vec!["a-0".into()],
        })
        .unwrap();
        assert_eq!(
            r.server("a").unwrap().placements,
            BTreeMap::from([("a-1".into(), 3)])
        );
    }

    #[test]
    fn session_state_is_replicated_in_snapshots_and_old_snapshots_still_load() {
        let mut r = Registry::default();
        r.apply(&Command::PutSessionKey {
            id: 1,
            key: SecretKey::new([7; gateway_sessions::SESSION_KEY_BYTES]),
            at_ms: 1_000,
            retain_ms: 60_000,
        })
        .unwrap();
        r.apply(&Command::EndSession {
            session: "00ff".into(),
            expires_at_ms: 9_000,
            at_ms: 2_000,
        })
        .unwrap();
        assert_eq!(r.revision(), 2);
        let restored: Registry = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(restored, r);
        assert!(restored.gateway_sessions().is_ended("00ff"));
        // A snapshot written before sessions were shared has no such field.
        let old: Registry =
            serde_json::from_str(r#"{"revision": 3, "servers": {}, "nodes": {}}"#).unwrap();
        assert!(old.gateway_sessions().current_key().is_none());
        // A conflicting key id changes nothing, not even the revision.
        let before = r.clone();
        assert!(r
            .apply(&Command::PutSessionKey {
                id: 1,
                key: SecretKey::new([8; gateway_sessions::SESSION_KEY_BYTES]),
                at_ms: 3_000,
                retain_ms: 60_000,
            })
            .is_err());
        assert_eq!(r, before);
    }

    #[test]
    fn drain_mark_and_tags_change_only_their_field() {
        let mut r = Registry::default();
        let node = NodeRecord {
            id: 1,
            addr: "n1:1".into(),
            tags: vec!["gpu".into()],
            draining: false,
        };
        r.apply(&Command::PutNode { node: node.clone() }).unwrap();
        r.apply(&Command::SetDraining {
            id: 1,
            draining: true,
        })
        .unwrap();
        r.apply(&Command::SetNodeTags {
            id: 1,
            tags: vec!["ssd".into()],
        })
        .unwrap();
        let stored = r.nodes().find(|n| n.id == 1).unwrap();
        assert!(stored.draining);
        assert_eq!(stored.tags, vec!["ssd".to_owned()]);
        assert_eq!(stored.addr, node.addr);

        let before = r.clone();
        assert_eq!(
            r.apply(&Command::SetDraining {
                id: 9,
                draining: true
            }),
            Err(CommandError::NodeNotFound { id: 9 })
        );
        assert_eq!(r, before);
    }
}
