//! The server registry: the replicated state of the cluster.
//!
//! [`Registry`] is plain data plus [`Registry::apply`], a deterministic function from a
//! [`Command`] to a new state; every node applies the same commands in the same order and
//! ends in the same state. Each successful change bumps the registry revision by one.

mod command;
pub mod spec;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use command::{Command, CommandError, CommandOutcome, CommandResult};
pub use spec::{ServerSpec, SpecError};

use crate::types::NodeId;

/// A registered server: its spec, where its instances run, and its revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    /// The validated spec; `spec.replicas` is the desired replica count.
    pub spec: ServerSpec,
    /// Registry revision that created the server.
    pub create_revision: u64,
    /// Registry revision of the server's last change (spec, scale or placement).
    pub mod_revision: u64,
    /// Instance id -> node that runs it.
    pub placements: BTreeMap<String, NodeId>,
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
}

/// The replicated registry state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    revision: u64,
    servers: BTreeMap<String, ServerRecord>,
    nodes: BTreeMap<NodeId, NodeRecord>,
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

    /// Applies one command. On success the revision grows by one; on error nothing changes.
    pub fn apply(&mut self, command: &Command) -> CommandResult {
        let next = self.revision + 1;
        let created = match command {
            Command::PutServer {
                spec,
                expected_revision,
            } => {
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
                record.mod_revision = next;
                false
            }
            Command::PutNode { node } => {
                self.nodes.insert(node.id, node.clone());
                false
            }
            Command::DeleteNode { id } => {
                if self.nodes.remove(id).is_none() {
                    return Err(CommandError::NodeNotFound { id: *id });
                }
                false
            }
        };
        self.revision = next;
        Ok(CommandOutcome {
            revision: next,
            created,
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
