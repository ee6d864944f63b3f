//! Property test of the state machine: any sequence of registry commands (valid and
//! invalid, compare-and-set with right and wrong revisions, batches, nested batches)
//! applied to [`Registry`] matches a simple model of the rules: a successful change bumps
//! the revision by one, a failed precondition changes nothing, compare-and-set compares
//! against the server's `mod_revision`, placements never touch `mod_revision`, every
//! server has `create_revision <= mod_revision <= revision`; replaying the same commands
//! gives the same registry, and the registry survives its snapshot encoding.

use std::collections::BTreeMap;

use mcp_raft::registry::spec::parse_json;
use mcp_raft::registry::{NodeRecord, ServerSpec};
use mcp_raft::{Command, Registry};
use proptest::prelude::*;
use serde_json::json;

fn cases() -> u32 {
    std::env::var("MCPD_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

const NAMES: [&str; 3] = ["a", "b", "c"];

fn spec(name: &str, replicas: u32, tag: u8) -> ServerSpec {
    parse_json(
        &json!({"name": name, "command": "/bin/echo", "args": [tag.to_string()], "replicas": replicas})
            .to_string(),
    )
    .expect("valid spec")
}

fn name() -> impl Strategy<Value = String> {
    proptest::sample::select(NAMES.to_vec()).prop_map(String::from)
}

fn simple_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => (name(), 0u32..4, any::<u8>(), proptest::option::of(0u64..12))
            .prop_map(|(n, r, tag, expected)| Command::PutServer { spec: spec(&n, r, tag), expected_revision: expected }),
        2 => name().prop_map(|name| Command::DeleteServer { name }),
        2 => (name(), 0u32..5).prop_map(|(name, replicas)| Command::Scale { name, replicas }),
        2 => (name(), proptest::collection::btree_map("i[0-3]", 1u64..4, 0..3), proptest::collection::vec("i[0-3]", 0..2))
            .prop_map(|(name, assign, unassign)| Command::Place { name, assign, unassign }),
        1 => (1u64..4, proptest::collection::vec("[a-c]", 0..2), any::<bool>()).prop_map(|(id, tags, draining)| Command::PutNode {
            node: NodeRecord { id, addr: format!("127.0.0.1:{id}"), tags, draining },
        }),
        1 => (1u64..4, any::<bool>()).prop_map(|(id, draining)| Command::SetDraining { id, draining }),
        1 => (1u64..4, proptest::collection::vec("[a-c]", 0..2)).prop_map(|(id, tags)| Command::SetNodeTags { id, tags }),
        1 => (1u64..4).prop_map(|id| Command::DeleteNode { id }),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        8 => simple_command(),
        1 => proptest::collection::vec(simple_command(), 0..4).prop_map(|commands| Command::Batch { commands }),
        1 => proptest::collection::vec(simple_command(), 0..2).prop_map(|inner| Command::Batch {
            commands: vec![Command::Batch { commands: inner }],
        }),
    ]
}

/// The rules, written plainly.
#[derive(Default, Clone)]
struct Model {
    revision: u64,
    /// name -> (spec, create_revision, mod_revision, placements)
    servers: BTreeMap<String, (ServerSpec, u64, u64, BTreeMap<String, u64>)>,
    nodes: BTreeMap<u64, NodeRecord>,
}

impl Model {
    /// Applies `c`; false when its precondition fails (and nothing changed).
    fn apply(&mut self, c: &Command) -> bool {
        let next = self.revision + 1;
        let ok = match c {
            Command::PutServer {
                spec,
                expected_revision,
            } => {
                let actual = self.servers.get(&spec.name).map_or(0, |s| s.2);
                if expected_revision.is_some_and(|e| e != actual) {
                    return false;
                }
                let entry = self
                    .servers
                    .entry(spec.name.clone())
                    .or_insert_with(|| (spec.clone(), next, next, BTreeMap::new()));
                entry.0 = spec.clone();
                entry.2 = next;
                true
            }
            Command::DeleteServer { name } => self.servers.remove(name).is_some(),
            Command::Scale { name, replicas } => match self.servers.get_mut(name) {
                Some(s) => {
                    s.0.replicas = *replicas;
                    s.2 = next;
                    true
                }
                None => false,
            },
            Command::Place {
                name,
                assign,
                unassign,
            } => match self.servers.get_mut(name) {
                Some(s) => {
                    for i in unassign {
                        s.3.remove(i);
                    }
                    s.3.extend(assign.iter().map(|(i, n)| (i.clone(), *n)));
                    true
                }
                None => false,
            },
            Command::PutNode { node } => {
                self.nodes.insert(node.id, node.clone());
                true
            }
            Command::SetDraining { id, draining } => match self.nodes.get_mut(id) {
                Some(n) => {
                    n.draining = *draining;
                    true
                }
                None => false,
            },
            Command::SetNodeTags { id, tags } => match self.nodes.get_mut(id) {
                Some(n) => {
                    n.tags = tags.clone();
                    true
                }
                None => false,
            },
            Command::DeleteNode { id } => self.nodes.remove(id).is_some(),
            Command::Batch { commands } => {
                for inner in commands {
                    if !matches!(inner, Command::Batch { .. }) {
                        self.apply(inner);
                    }
                }
                return true;
            }
            _ => unreachable!("not generated"),
        };
        if ok {
            self.revision = next;
        }
        ok
    }
}

fn same(registry: &Registry, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(registry.revision(), model.revision);
    prop_assert_eq!(registry.server_count(), model.servers.len());
    for (name, (spec, create, modified, placements)) in &model.servers {
        let record = registry
            .server(name)
            .ok_or_else(|| TestCaseError::fail(format!("{name} missing")))?;
        prop_assert_eq!(&record.spec, spec);
        prop_assert_eq!(record.create_revision, *create);
        prop_assert_eq!(record.mod_revision, *modified);
        prop_assert_eq!(&record.placements, placements);
        prop_assert!(
            record.create_revision <= record.mod_revision
                && record.mod_revision <= registry.revision()
        );
    }
    let nodes: Vec<&NodeRecord> = registry.nodes().collect();
    let want: Vec<&NodeRecord> = model.nodes.values().collect();
    prop_assert_eq!(nodes, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_command_sequence_keeps_the_registry_rules(commands in proptest::collection::vec(command(), 0..30)) {
        let mut registry = Registry::default();
        let mut model = Model::default();
        for c in &commands {
            let before = registry.clone();
            let result = registry.apply(c);
            let ok = model.apply(c);
            match (&result, c) {
                (Ok(outcome), Command::Batch { commands }) => {
                    prop_assert_eq!(outcome.batch.len(), commands.len());
                    prop_assert_eq!(outcome.revision, registry.revision());
                }
                (Ok(outcome), _) => {
                    prop_assert!(ok, "applied {c:?}, which the rules refuse");
                    prop_assert_eq!(outcome.revision, before.revision() + 1);
                }
                (Err(e), _) => {
                    prop_assert!(!ok, "refused {c:?} ({e}), which the rules allow");
                    prop_assert_eq!(&registry, &before, "a refused command changed the registry");
                    prop_assert!(!e.to_string().is_empty());
                }
            }
            same(&registry, &model)?;
        }
        // Deterministic: a replay ends in the same state.
        let mut replay = Registry::default();
        for c in &commands {
            let _ = replay.apply(c);
        }
        prop_assert_eq!(&replay, &registry);
        // Snapshots carry everything.
        let encoded = serde_json::to_vec(&registry).expect("encode");
        let decoded: Registry = serde_json::from_slice(&encoded).expect("decode");
        prop_assert_eq!(decoded, registry);
    }
}
