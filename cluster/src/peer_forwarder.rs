//! The data plane's way to other nodes: an execute sent to a peer's `ExecuteService` over
//! the pooled peer channels ([`PeerChannels`]), with this node's token, marked
//! `x-mcpd-forwarded-by` so that the peer runs it itself.
//!
//! What a failure means for the router is decided here: only a failed connect (as the
//! client library's `retry::never_reached` reads it) proves the peer never saw the
//! request; an answer carrying `x-mcpd-error` is the peer's own and is passed on intact.

use futures::future::BoxFuture;
use mcp_proto::execute::execute_service_client::ExecuteServiceClient;
use mcp_proto::execute::{ExecuteReply, ExecuteRequest};
use mcp_raft::NodeId;
use serde_json::Value;
use tonic::metadata::MetadataValue;

use crate::dataplane::jsonrpc::{Incoming, RawResponse};
use crate::dataplane::upstream::UpstreamError;
use crate::dataplane::{ExecuteError, ExecuteOptions, Executed, PeerForwarder};
use crate::forward::PeerChannels;

/// Forwards executes to peers over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcForwarder {
    /// This node, named in `x-mcpd-forwarded-by`.
    node_id: NodeId,
    peers: PeerChannels,
    /// Largest reply accepted from a peer.
    max_reply_bytes: usize,
}

impl GrpcForwarder {
    /// Forwards as node `node_id` over `peers`; a peer's reply may be up to twice
    /// `max_message_bytes` (a server's message plus its JSON envelope, escaped).
    pub fn new(node_id: NodeId, peers: PeerChannels, max_message_bytes: usize) -> Self {
        Self {
            node_id,
            peers,
            max_reply_bytes: max_message_bytes.saturating_mul(2),
        }
    }

    async fn send(
        &self,
        addr: &str,
        server: &str,
        request: &Value,
        options: &ExecuteOptions,
    ) -> Result<Executed, ExecuteError> {
        let channel = self
            .peers
            .channel(addr)
            .map_err(|e| connection(server, UpstreamError::Connect(e.to_string())))?;
        let mut client =
            ExecuteServiceClient::new(channel).max_decoding_message_size(self.max_reply_bytes);
        let mut call = tonic::Request::new(ExecuteRequest {
            server: server.to_owned(),
            request_json: request.to_string(),
            retry_unsafe: options.retry_unsafe,
            timeout_ms: options
                .timeout
                .and_then(|t| u64::try_from(t.as_millis()).ok()),
        });
        call.metadata_mut()
            .insert(mcp_proto::FORWARDED_BY, MetadataValue::from(self.node_id));
        // A deadline on the hop: the peer drops the call when it passes, and a peer that
        // stopped answering frees this node instead of holding the caller forever.
        call.set_timeout(
            options
                .timeout
                .unwrap_or(crate::hardening::FORWARD_DEFAULT_TIMEOUT)
                .saturating_add(crate::hardening::FORWARD_GRACE),
        );
        // The peer authorizes this like any caller's execute.
        self.peers.authorize(call.metadata_mut());
        if let Ok(id) = MetadataValue::try_from(options.request_id.as_str()) {
            call.metadata_mut().insert(mcp_proto::REQUEST_ID, id);
        }
        let reply = client
            .execute(call)
            .await
            .map_err(|status| classify(addr, server, status))?
            .into_inner();
        decode(addr, server, reply)
    }
}

impl PeerForwarder for GrpcForwarder {
    fn forward<'a>(
        &'a self,
        _peer: NodeId,
        addr: &'a str,
        server: &'a str,
        request: &'a Value,
        options: &'a ExecuteOptions,
    ) -> BoxFuture<'a, Result<Executed, ExecuteError>> {
        Box::pin(self.send(addr, server, request, options))
    }
}

fn connection(server: &str, source: UpstreamError) -> ExecuteError {
    ExecuteError::Connection {
        server: server.to_owned(),
        source,
    }
}

/// The peer's answer as an execution. An answer that is not JSON came after the peer ran
/// the request, so it counts as having reached the server: never repeated elsewhere.
fn decode(addr: &str, server: &str, reply: ExecuteReply) -> Result<Executed, ExecuteError> {
    // Read for its id and error-ness only: the text goes on to the caller as it came.
    let response = match Incoming::parse(reply.response_json) {
        Ok(Incoming::Response(response)) => response,
        // A notification's answer (`null`), or anything a peer passed on as JSON.
        Ok(Incoming::Other(value)) => RawResponse::from_value(&value),
        Err(e) => {
            let message = format!("peer {addr} sent an undecodable reply: {e}");
            return Err(connection(server, UpstreamError::Protocol(message)));
        }
    };
    Ok(Executed {
        response,
        node_id: reply.node_id,
        instance_id: reply.instance_id,
    })
}

/// What a failed call to the peer at `addr` means: the peer's own error answer as it is;
/// otherwise a transport failure, which proves nothing was sent only for a failed connect.
fn classify(addr: &str, server: &str, status: tonic::Status) -> ExecuteError {
    if status.metadata().get(mcp_proto::ERROR_KIND).is_some() {
        return ExecuteError::Forwarded(status);
    }
    let message = format!("peer {addr}: {}", status.message());
    let source = if mcp_client::retry::never_reached(&status) {
        UpstreamError::Connect(message)
    } else {
        UpstreamError::Closed(message)
    };
    connection(server, source)
}

#[cfg(test)]
mod tests {
    use mcp_proto::contract::ErrorKind;

    use super::*;

    #[test]
    fn a_peers_own_error_is_passed_on_intact() {
        let status = ErrorKind::NoHealthyInstance.status("nothing here");
        let classified = classify("n2:7400", "s", status);
        assert!(matches!(&classified, ExecuteError::Forwarded(s) if s.message() == "nothing here"));
        assert_eq!(classified.kind(), ErrorKind::NoHealthyInstance);
    }

    #[test]
    fn a_transport_failure_may_have_reached_the_peer() {
        // No connect error in its chain: the request may have been sent.
        let classified = classify("n2:7400", "s", tonic::Status::unavailable("reset"));
        let ExecuteError::Connection { source, .. } = classified else {
            panic!("not a connection error: {classified:?}");
        };
        assert!(source.reached_server());
        assert!(
            source.to_string().contains("peer n2:7400: reset"),
            "{source}"
        );
    }

    #[test]
    fn an_undecodable_answer_reached_the_server() {
        let reply = ExecuteReply {
            response_json: "not json".into(),
            node_id: 2,
            instance_id: "s-0".into(),
        };
        let Err(ExecuteError::Connection { source, .. }) = decode("n2:7400", "s", reply) else {
            panic!("an undecodable reply must fail as a connection error");
        };
        assert!(source.reached_server(), "{source}");
    }

    #[test]
    fn a_refused_connect_never_reached_the_peer() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let status = tonic::Status::from_error(Box::new(refused));
        let ExecuteError::Connection { source, .. } = classify("n2:7400", "s", status) else {
            panic!("not a connection error");
        };
        assert!(!source.reached_server());
    }
}
