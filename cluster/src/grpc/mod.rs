//! The gRPC services a node serves, one module per service.

pub mod cluster_service;
pub mod execute_service;
pub mod raft_service;

pub use cluster_service::ClusterApi;
pub use execute_service::ExecuteApi;
pub use raft_service::RaftApi;
