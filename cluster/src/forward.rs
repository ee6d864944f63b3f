//! Pooled gRPC channels to peer nodes, and the forwarding of a request to one of them.
//!
//! A follower that receives a write (or a linearizable read) re-sends the same request to
//! the leader once, marked with `x-mcpd-forwarded-by` so it is never forwarded twice, and
//! passes the leader's answer back unchanged.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
use mcp_raft::NodeId;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::error::ClusterError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// HTTP/2 pings on every peer connection, also while idle: a peer that vanished without
/// closing its connections (a network partition, a killed container) is noticed within
/// about `KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT`, and requests in flight on that connection
/// fail as unavailable instead of waiting forever. Long calls to a live peer are unaffected:
/// it answers the pings.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// One lazily connected channel per peer address, shared by every request.
#[derive(Clone, Default)]
pub struct PeerChannels {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl PeerChannels {
    /// The channel to `addr`, created on first use.
    pub fn channel(&self, addr: &str) -> Result<Channel, ClusterError> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ClusterError::Unavailable(format!("bad peer address {addr:?}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .connect_lazy();
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
    tracing::debug!(leader = addr, "forwarding request to leader");
    call(client, forwarded).await.map_err(|status| {
        if status.code() == tonic::Code::Unavailable
            && status.metadata().get(mcp_proto::ERROR_KIND).is_none()
        {
            // A transport failure (the leader is down or unreachable), not an answer.
            ClusterError::Unavailable(format!(
                "leader at {addr} is unreachable: {}",
                status.message()
            ))
        } else {
            ClusterError::Forwarded(status)
        }
    })
}
