//! The gRPC services a node serves, one module per service; `ClusterService` hands its
//! RPCs to one module per concern (registry, membership, status, gateway sessions), and everything that must
//! run on the leader goes through `leader_route`.

pub mod backup_service;
pub mod cluster_service;
pub mod demand_service;
pub mod execute_service;
pub mod guard_service;
pub mod leader_route;
pub mod membership_service;
pub mod raft_service;
pub mod registry_service;
pub mod session_service;
pub mod status_service;
pub mod token_service;
pub mod view_service;

pub use cluster_service::ClusterApi;
pub use execute_service::ExecuteApi;
pub use raft_service::RaftApi;
