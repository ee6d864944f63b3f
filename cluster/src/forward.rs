//! Pooled gRPC channels to peer nodes, and the forwarding of a request to one of them.
//!
//! A follower that receives a write (or a linearizable read) re-sends the same request to
//! the leader once, marked with `x-mcpd-forwarded-by` so it is never forwarded twice, and
//! passes the leader's answer back unchanged. Requests a node makes on its own behalf (an
//! execute passed to a peer) carry the node's admin token, see [`PeerChannels::authorize`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use mcp_client::auth::Credentials;
use mcp_client::channel::{self, Profile};
use mcp_client::retry;
use mcp_client::tls::ClientTls;
use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
use mcp_raft::NodeId;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::Channel;

use crate::error::ClusterError;

/// One lazily connected channel per peer address (built by the client library's peer
/// profile: its keep-alive notices a vanished peer within seconds), shared by every
/// request, and the credentials this node presents to its peers.
#[derive(Clone, Debug, Default)]
pub struct PeerChannels {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// The admin token, if the cluster has one (its `Debug` hides it).
    credentials: Credentials,
    /// How peers are dialed when the cluster speaks TLS (this node's certificate,
    /// the cluster CA).
    tls: Option<ClientTls>,
}

impl PeerChannels {
    /// Channels whose requests can carry `admin_token` (none when `None` or empty).
    pub fn with_token(admin_token: Option<&str>) -> Result<Self, ClusterError> {
        let credentials =
            Credentials::bearer(admin_token).map_err(|e| ClusterError::Config(e.message))?;
        Ok(Self {
            channels: Arc::default(),
            credentials,
            tls: None,
        })
    }

    /// Dials peers over TLS with `tls` (set before the first channel is made).
    pub fn with_tls(mut self, tls: Option<ClientTls>) -> Self {
        self.tls = tls;
        self
    }

    /// How peers are dialed over TLS, if they are (also used by the Raft network).
    pub fn tls(&self) -> Option<&ClientTls> {
        self.tls.as_ref()
    }

    /// The credentials this node presents to its peers (also used by its Raft network).
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Adds this node's admin token to a request it sends a peer on its own behalf.
    pub fn authorize(&self, metadata: &mut MetadataMap) {
        self.credentials.apply(metadata);
    }

    /// Reaches `addr` through `channel` from now on instead of dialing it. An in-process
    /// node's own address names no socket (resolving it would send a DNS query for a
    /// made-up name on every fleet report), so its in-memory channel is pinned under it.
    pub fn pin(&self, addr: &str, channel: Channel) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.insert(addr.to_owned(), channel);
    }

    /// The channel to `addr`, created on first use.
    pub fn channel(&self, addr: &str) -> Result<Channel, ClusterError> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = channel::lazy_with(addr, Profile::Peer, self.tls.as_ref())
            .map_err(|e| ClusterError::Unavailable(format!("bad peer address: {e}")))?;
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    /// A cluster-service client for `addr`.
    pub fn cluster_client(
        &self,
        addr: &str,
    ) -> Result<ClusterServiceClient<Channel>, ClusterError> {
        Ok(ClusterServiceClient::new(self.channel(addr)?)
            .max_decoding_message_size(mcp_proto::MAX_MESSAGE_BYTES))
    }
}

/// True if another node already forwarded this request to us.
pub fn was_forwarded<T>(request: &tonic::Request<T>) -> bool {
    request.metadata().contains_key(mcp_proto::FORWARDED_BY)
}

/// Re-sends `request` to the node at `addr` with `call`, keeping the caller's token.
pub async fn forward<T, R, F, Fut>(
    peers: &PeerChannels,
    from: NodeId,
    addr: &str,
    request: tonic::Request<T>,
    call: F,
) -> Result<tonic::Response<R>, ClusterError>
where
    F: FnOnce(ClusterServiceClient<Channel>, tonic::Request<T>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
{
    let client = peers.cluster_client(addr)?;
    let auth = request.metadata().get(mcp_proto::AUTHORIZATION).cloned();
    let mut forwarded = tonic::Request::new(request.into_inner());
    if let Some(auth) = auth {
        forwarded
            .metadata_mut()
            .insert(mcp_proto::AUTHORIZATION, auth);
    }
    forwarded
        .metadata_mut()
        .insert(mcp_proto::FORWARDED_BY, MetadataValue::from(from));
    // A leader that stopped answering must not hold the caller forever.
    forwarded.set_timeout(crate::hardening::LEADER_FORWARD_DEADLINE);
    tracing::debug!(leader = addr, "forwarding request to leader");
    call(client, forwarded).await.map_err(|status| {
        if retry::is_transport_failure(&status) {
            // A transport failure (the leader is down or unreachable), not an answer.
            ClusterError::LeaderUnreachable {
                addr: addr.to_owned(),
                detail: status.message().to_owned(),
                sent: !retry::never_reached(&status),
            }
        } else {
            ClusterError::Forwarded(status)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_requests_carry_the_admin_token() {
        let peers = PeerChannels::with_token(Some("s3cret")).expect("valid token");
        let mut metadata = MetadataMap::new();
        peers.authorize(&mut metadata);
        assert_eq!(
            metadata
                .get(mcp_proto::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
            Some("Bearer s3cret")
        );
        assert!(!format!("{peers:?}").contains("s3cret"));
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_a_config_error() {
        let refused = PeerChannels::with_token(Some("line\nbreak"));
        assert!(matches!(refused, Err(ClusterError::Config(_))));
    }
}
