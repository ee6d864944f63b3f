//! Node assembly: everything one `mcpd node` process runs.
//!
//! - [`config`]: what a node is told (flags, env, file are merged by the binary).
//! - [`identity`]: the node's id and addresses, pinned in its data dir on first start.
//! - [`node`]: opens storage, starts Raft and the gRPC server, bootstraps the cluster.
//! - [`grpc`]: one module per gRPC service (`raft_service`, `cluster_service`, split by
//!   concern into `registry_service`, `membership_service`, `status_service`;
//!   `leader_route` proposes here or forwards once to the leader).
//! - [`leader`]: duties of the current leader (node records follow membership);
//!   [`scheduler`]: the leader places instances on live nodes.
//! - [`proposer`]: the one way registry commands reach Raft, counted by outcome;
//!   [`batcher`]: concurrent registry writes share Raft entries.
//! - [`membership`]: membership and leadership as read from Raft's metrics.
//! - [`fleet`]: what each member actually runs (scheduler heartbeat, running replicas).
//! - [`auth`]: who may call which RPC, enforced by one layer on the gRPC server.
//! - [`forward`]: pooled channels to peers, used to forward writes to the leader;
//!   [`peer_forwarder`]: the data plane's executes sent to the peer that hosts a server.
//! - [`metrics`]: the node's one registry, its rendering and the cluster view's merge (each
//!   subsystem defines its own metrics: [`dataplane::metrics`], [`proposer`],
//!   [`raft_metrics`], [`gateway::guard`]); [`latency`]: their histogram buckets;
//!   [`http`]: /metrics, /healthz, /readyz.
//! - [`gateway`]: `/mcp`, every server's tools as one MCP server (`--mcp-addr`).
//! - [`guards`]: cluster-wide guards: pinned tool definitions, secrets, rate limits and
//!   concurrency quotas, applied by the data plane.
//! - [`error`]: the node's typed errors and their gRPC status mapping.
//! - [`tls`]: the node's certificate, the cluster CA and TLS listeners, reloaded from
//!   their files; [`hardening`]: the refusal to serve beyond loopback without auth.

pub mod audit;
pub mod auth;
pub mod backup;
pub mod batcher;
pub mod compat;
pub mod config;
pub mod dataplane;
pub mod error;
pub mod fleet;
pub mod forward;
pub mod gateway;
pub mod grpc;
pub mod guards;
pub mod hardening;
pub mod http;
pub mod identity;
pub mod latency;
pub mod leader;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod peer_forwarder;
pub mod principal;
pub mod proposer;
pub mod raft_metrics;
pub mod read_your_writes;
pub mod scheduler;
#[cfg(test)]
mod testing;
pub mod tls;

pub use config::{NodeConfig, RaftTuning};
pub use error::ClusterError;
pub use node::ClusterNode;
