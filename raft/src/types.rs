//! The openraft type configuration of the cluster.

use std::io::Cursor;

use crate::registry::{Command, CommandResult};

/// Identifies a node in the cluster; unique and stable for the life of its data dir.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Raft types of the mcp-rust registry: log entries carry registry [`Command`]s and
    /// applying one yields a [`CommandResult`]. Nodes are addressed by their gRPC address
    /// (`BasicNode::addr`).
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = openraft::BasicNode,
);

/// The Raft handle of this crate's type configuration.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log id of this crate's type configuration.
pub type LogId = openraft::LogId<NodeId>;
/// A Raft log entry of this crate's type configuration.
pub type Entry = openraft::Entry<TypeConfig>;
