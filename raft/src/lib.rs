//! The replicated core of mcp-rust: what goes through the Raft log and how it is applied.
//!
//! - [`types`]: the openraft type configuration shared by every node.
//! - [`registry`]: the server registry (specs, desired replicas, placement, nodes) and the
//!   commands that change it. Pure, deterministic logic with no I/O.
//! - [`state_machine`]: the openraft state machine that applies commands to the registry and
//!   persists snapshots through `mcp-storage`.
//! - [`network`]: the tonic client side of the node-to-node Raft RPCs.

pub mod network;
pub mod registry;
pub mod state_machine;
pub mod types;

pub use registry::{Command, CommandError, CommandOutcome, CommandResult, Registry};
pub use state_machine::{ApplyObserver, RegistryReader, RegistryStateMachine};
pub use types::{NodeId, TypeConfig};
