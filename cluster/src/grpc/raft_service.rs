//! Server side of the node-to-node Raft RPCs: decode, hand to openraft, encode the result.

use mcp_proto::raft::raft_service_server::RaftService;
use mcp_proto::raft::RaftPayload;
use mcp_raft::types::Raft;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

/// The `RaftService` implementation of a node.
#[derive(Clone)]
pub struct RaftApi {
    raft: Raft,
}

impl RaftApi {
    /// Serves Raft RPCs for `raft`. Callers are authorized before they get here (see
    /// [`crate::auth`]).
    pub fn new(raft: Raft) -> Self {
        Self { raft }
    }

    fn decode<T: DeserializeOwned>(&self, request: &Request<RaftPayload>) -> Result<T, Status> {
        serde_json::from_slice(&request.get_ref().data)
            .map_err(|e| Status::invalid_argument(format!("undecodable raft payload: {e}")))
    }
}

fn encode<T: Serialize>(reply: &T) -> Result<Response<RaftPayload>, Status> {
    serde_json::to_vec(reply)
        .map(|data| Response::new(RaftPayload { data }))
        .map_err(|e| Status::internal(format!("cannot encode raft reply: {e}")))
}

#[tonic::async_trait]
impl RaftService for RaftApi {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let req = self.decode(&request)?;
        encode(&self.raft.append_entries(req).await)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let req = self.decode(&request)?;
        encode(&self.raft.vote(req).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let req = self.decode(&request)?;
        encode(&self.raft.install_snapshot(req).await)
    }
}
