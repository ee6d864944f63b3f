//! The gateway-session part of `ClusterService`: `RotateSessionKey` (a new key seals new
//! session ids) and `EndGatewaySession` (`DELETE /mcp` ends a session on every node). Both
//! are registry writes proposed on the leader (see [`LeaderRoute`]); the key is made by
//! the node that proposes it and travels only in the Raft log, never in a reply.

use mcp_proto::cluster::{
    EndGatewaySessionRequest, RotateSessionKeyReply, RotateSessionKeyRequest, WriteReply,
};
use mcp_raft::registry::gateway_sessions::MAX_SESSION_SERIAL;
use mcp_raft::{Command, RegistryReader};
use tonic::{Request, Response, Status};

use super::leader_route::LeaderRoute;
use super::registry_service::write_reply;
use crate::error::ClusterError;
use crate::gateway::session::{next_key_command, unix_ms};

/// Handlers of the gateway-session RPCs.
#[derive(Clone)]
pub struct SessionHandlers {
    route: LeaderRoute,
    registry: RegistryReader,
}

impl SessionHandlers {
    /// Session handlers on `route`, reading `registry`.
    pub fn new(route: LeaderRoute, registry: RegistryReader) -> Self {
        Self { route, registry }
    }

    /// The route to the leader these handlers write through.
    pub fn route(&self) -> &LeaderRoute {
        &self.route
    }

    /// The registry these handlers read.
    pub fn registry(&self) -> &RegistryReader {
        &self.registry
    }

    /// `RotateSessionKey`: a fresh key becomes the one that seals new session ids.
    pub async fn rotate_session_key(
        &self,
        request: Request<RotateSessionKeyRequest>,
    ) -> Result<Response<RotateSessionKeyReply>, Status> {
        // Built from this node's view; if another node leads, it builds its own (with its
        // own key) from the forwarded request, and this one is dropped unsent.
        let (key_id, command) = self
            .registry
            .read(|state| next_key_command(state.registry.gateway_sessions(), unix_ms()));
        let done = |(outcome, index): (mcp_raft::CommandOutcome, u64)| {
            tracing::info!(key_id, "gateway session key rotated");
            RotateSessionKeyReply {
                key_id,
                revision: outcome.revision,
                log_index: index,
            }
        };
        self.route
            .propose_or_forward(request, command, done, |mut c, r| async move {
                c.rotate_session_key(r).await
            })
            .await
    }

    /// `EndGatewaySession`: remembers on every node that a session was ended.
    pub async fn end_gateway_session(
        &self,
        request: Request<EndGatewaySessionRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let EndGatewaySessionRequest {
            session,
            expires_at_ms,
        } = request.get_ref().clone();
        if session.is_empty() || session.len() > MAX_SESSION_SERIAL {
            return Err(ClusterError::InvalidArgument(format!(
                "session must be 1 to {MAX_SESSION_SERIAL} characters"
            ))
            .into());
        }
        let command = Command::EndSession {
            session,
            expires_at_ms,
            at_ms: unix_ms(),
        };
        self.route
            .propose_or_forward(
                request,
                command,
                |done| write_reply("", done),
                |mut c, r| async move { c.end_gateway_session(r).await },
            )
            .await
    }

    /// Ends session `serial` for this node's gateway, which has checked the client's
    /// credential already: the request carries the node's own token, as a peer's would,
    /// in case it goes on to the leader. Returns the registry revision that records it.
    pub async fn end_for_gateway(&self, serial: &str, expires_at_ms: u64) -> Result<u64, Status> {
        let mut request = Request::new(EndGatewaySessionRequest {
            session: serial.to_owned(),
            expires_at_ms,
        });
        self.route.peers().authorize(request.metadata_mut());
        let reply = self.end_gateway_session(request).await?;
        Ok(reply.into_inner().revision)
    }
}
