//! The one gRPC client of mcp-rust, used by the CLI, the Python package, peer forwarding,
//! the fleet probe and the Raft network.
//!
//! Everything a caller of a node must agree on lives here once:
//! - [`channel`]: how a channel to a node is built (timeouts, keep-alive, TLS), by
//!   who is calling ([`channel::Profile`]);
//! - [`auth`]: the credentials a request carries; [`tls`]: the CA a caller trusts and the
//!   certificate it presents;
//! - [`retry`]: which failures provably never reached a node or a server, and which
//!   requests are safe to send twice;
//! - [`error`]: the categories a caller acts on, read from the node's typed error contract;
//! - [`cluster`]: [`ClusterClient`], which finds the leader and fails over between nodes.

pub mod auth;
pub mod channel;
pub mod cluster;
pub mod error;
pub mod retry;
pub mod tls;

pub use cluster::{CallError, ClientSettings, ClusterClient};
pub use error::{Error, ErrorKind, JsonRpcError};
