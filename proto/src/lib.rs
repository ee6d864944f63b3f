//! Generated protobuf messages and tonic clients/servers for mcp-rust.
//!
//! One module per .proto file in `proto/proto/`: `raft` (internal node-to-node
//! Raft RPCs), `cluster` (the public cluster API) and `execute` (the data plane).

pub mod contract;

/// Internal Raft RPCs (`proto/raft.proto`).
pub mod raft {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("mcp.raft.v1");
}

/// The public cluster API (`proto/cluster.proto`).
pub mod cluster {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("mcp.cluster.v1");
}

/// The data plane (`proto/execute.proto`).
pub mod execute {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("mcp.execute.v1");
}

/// gRPC metadata key carrying the admin token as `Bearer <token>`.
pub const AUTHORIZATION: &str = "authorization";

/// gRPC metadata key set on a request one node forwards to another, so that a request is
/// forwarded at most once (no loops while leadership moves).
pub const FORWARDED_BY: &str = "x-mcpd-forwarded-by";

/// gRPC metadata key on a write's reply carrying the log index the write was committed at.
/// A node that forwarded the write waits until it has applied that index itself before
/// passing the reply on, so the caller's next request to the same node sees its write.
pub const LOG_INDEX: &str = "x-mcpd-log-index";

/// The [`LOG_INDEX`] a write's reply carries, if it is there and a number.
pub fn log_index(metadata: &tonic::metadata::MetadataMap) -> Option<u64> {
    metadata.get(LOG_INDEX)?.to_str().ok()?.parse().ok()
}

/// gRPC metadata key a client puts on its requests once it has written: the highest
/// [`LOG_INDEX`] it was answered. A node that has applied less waits (briefly) until it
/// has, so a client reads its own writes whichever node answers.
pub const MIN_INDEX: &str = "x-mcpd-min-index";

/// gRPC metadata key carrying a request id across forwarding hops (logged on every node
/// that handles the request).
pub const REQUEST_ID: &str = "x-request-id";

/// gRPC metadata key on error replies naming the error category (`invalid_spec`,
/// `not_found`, `unauthorized`, ...), for clients that map errors to types.
pub const ERROR_KIND: &str = "x-mcpd-error";

/// Binary gRPC metadata key carrying a server's JSON-RPC `error` object, intact, on
/// `server_error` replies.
pub const JSONRPC_ERROR: &str = "x-mcpd-jsonrpc-error-bin";

/// gRPC metadata key on `invalid_spec` replies naming the spec field at fault (dotted for
/// nested fields), so clients need not parse the message.
pub const ERROR_FIELD: &str = "x-mcpd-field";

/// Largest gRPC message a node accepts (snapshots and log batches travel in one message).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
