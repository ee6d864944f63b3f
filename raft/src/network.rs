//! The client side of node-to-node Raft RPCs, over tonic.
//!
//! openraft asks [`GrpcNetworkFactory`] for a client per peer; each [`PeerNetwork`] holds a
//! lazily connected channel to that peer's `RaftService` and sends openraft's requests as
//! serde_json payloads. When the cluster has an admin token, every Raft RPC carries it:
//! a log append is a write like any other.
//!
//! openraft reports every failed RPC to an unreachable peer itself (as errors, on each
//! retry); `mcpd` filters those out and this module logs the changes instead: a peer that
//! answered before and stops answering is a warning, its return is info, and a peer that
//! has never answered (still starting, while the cluster bootstraps) is only debug.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mcp_client::auth::Credentials;
use mcp_client::channel::{self, Profile};
use mcp_client::tls::ClientTls;
use mcp_proto::raft::raft_service_client::RaftServiceClient;
use mcp_proto::raft::RaftPayload;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;

use crate::types::{NodeId, TypeConfig};

/// Whether each peer answered its last RPC; a peer absent here has never answered.
#[derive(Clone, Default)]
struct Reachability(Arc<Mutex<BTreeMap<NodeId, bool>>>);

impl Reachability {
    /// Records the outcome of one RPC to `peer` and logs when it changes.
    fn record(&self, peer: NodeId, addr: &str, error: Option<&TransportError>) {
        let before = {
            // A poisoned map only means another thread panicked while logging; keep going.
            let mut peers = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let before = peers.get(&peer).copied();
            // A peer that never answered stays absent, so its first answer is no news.
            if before.is_some() || error.is_none() {
                peers.insert(peer, error.is_none());
            }
            before
        };
        match (before, error) {
            (Some(true), Some(error)) => {
                tracing::warn!(peer, addr, %error, "peer unreachable; retrying")
            }
            (Some(false), None) => tracing::info!(peer, addr, "peer reachable again"),
            (None, Some(error)) => {
                tracing::debug!(peer, addr, %error, "peer not reachable yet")
            }
            _ => {}
        }
    }
}

/// Creates [`PeerNetwork`] clients for openraft.
#[derive(Clone, Default)]
pub struct GrpcNetworkFactory {
    credentials: Credentials,
    tls: Option<ClientTls>,
    reachability: Reachability,
}

impl GrpcNetworkFactory {
    /// A factory whose clients present `credentials` with every RPC.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            tls: None,
            reachability: Reachability::default(),
        }
    }

    /// Dials peers over TLS with `tls` (the node's certificate, the cluster CA).
    pub fn with_tls(mut self, tls: Option<ClientTls>) -> Self {
        self.tls = tls;
        self
    }
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerNetwork {
            target,
            addr: node.addr.clone(),
            client: None,
            credentials: self.credentials.clone(),
            tls: self.tls.clone(),
            reachability: self.reachability.clone(),
        }
    }
}

/// A Raft RPC client for one peer.
pub struct PeerNetwork {
    target: NodeId,
    addr: String,
    client: Option<RaftServiceClient<Channel>>,
    credentials: Credentials,
    tls: Option<ClientTls>,
    reachability: Reachability,
}

/// Why one RPC failed before a reply was decoded.
#[derive(Debug, thiserror::Error)]
enum TransportError {
    #[error("invalid peer address: {0}")]
    Address(mcp_client::Error),
    #[error("peer unreachable: {0}")]
    Unreachable(tonic::Status),
    #[error("rpc failed: {0}")]
    Rpc(tonic::Status),
    #[error("cannot encode or decode raft payload: {0}")]
    Codec(#[from] serde_json::Error),
}

impl PeerNetwork {
    fn client(&mut self) -> Result<RaftServiceClient<Channel>, TransportError> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let channel = channel::lazy_with(&self.addr, Profile::Peer, self.tls.as_ref())
            .map_err(TransportError::Address)?;
        let client = RaftServiceClient::new(channel)
            .max_decoding_message_size(mcp_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(mcp_proto::MAX_MESSAGE_BYTES);
        self.client = Some(client.clone());
        Ok(client)
    }

    fn request<Req: Serialize>(
        &self,
        req: &Req,
        option: &RPCOption,
    ) -> Result<tonic::Request<RaftPayload>, TransportError> {
        let mut request = self.credentials.request(RaftPayload {
            data: serde_json::to_vec(req)?,
        });
        request.set_timeout(option.hard_ttl());
        Ok(request)
    }

    /// Sends one RPC and decodes the peer's `Result<Resp, RaftError<E>>`.
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let result = self.send(rpc, req, option).await;
        let payload = match result {
            Ok(payload) => {
                self.reachability.record(self.target, &self.addr, None);
                payload
            }
            Err(e @ TransportError::Unreachable(_)) => {
                self.reachability.record(self.target, &self.addr, Some(&e));
                // Stop reusing a channel to a peer that went away; reconnect next time.
                self.client = None;
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
            Err(e) => return Err(RPCError::Network(NetworkError::new(&e))),
        };
        let reply: Result<Resp, RaftError<NodeId, E>> = serde_json::from_slice(&payload.data)
            .map_err(|e| RPCError::Network(NetworkError::new(&TransportError::Codec(e))))?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn send<Req: Serialize>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<RaftPayload, TransportError> {
        let mut client = self.client()?;
        let request = self.request(req, option)?;
        let reply = match rpc {
            Rpc::AppendEntries => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::InstallSnapshot => client.install_snapshot(request).await,
        };
        match reply {
            Ok(reply) => Ok(reply.into_inner()),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                Err(TransportError::Unreachable(status))
            }
            Err(status) => Err(TransportError::Rpc(status)),
        }
    }
}

#[derive(Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Rpc::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}
