//! The data plane's way to other nodes: an execute sent to a peer's `ExecuteService` over
//! the pooled peer channels ([`PeerChannels`]), with this node's token, marked
//! `x-mcpd-forwarded-by` so that the peer runs it itself.
//!
//! The call names the log index this node has applied (`x-mcpd-min-index`): the peer was
//! chosen from this node's registry, so the peer serves it only once it knows as much
//! (see `read_your_writes`), instead of answering "unknown server" for a server this node
//! has just seen deployed and placed there.
//!
//! What a failure means for the router is decided here: only a failed connect (as the
//! client library's `retry::never_reached` reads it) proves the peer never saw the
//! request; an answer carrying `x-mcpd-error` is the peer's own and is passed on intact.

use futures::future::BoxFuture;
use mcp_proto::execute::execute_service_client::ExecuteServiceClient;
use mcp_proto::execute::{ExecuteReply, ExecuteRequest};
use mcp_raft::{NodeId, RegistryReader};
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
    /// This node's applied registry, whose log index each call names.
    registry: RegistryReader,
}

impl GrpcForwarder {
    /// Forwards as node `node_id` over `peers`; a peer's reply may be up to twice
    /// `max_message_bytes` (a server's message plus its JSON envelope, escaped).
    pub fn new(
        node_id: NodeId,
        peers: PeerChannels,
        max_message_bytes: usize,
        registry: RegistryReader,
    ) -> Self {
        Self {
            node_id,
            peers,
            max_reply_bytes: max_message_bytes.saturating_mul(2),
            registry,
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
        let applied = self
            .registry
            .read(|state| state.last_applied.map(|l| l.index));
        if let Some(applied) = applied {
            call.metadata_mut()
                .insert(mcp_proto::MIN_INDEX, MetadataValue::from(applied));
        }
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
    use std::sync::{Arc, Mutex};

    use mcp_proto::contract::ErrorKind;

    use super::*;

    /// The in-memory connections handed to a test server, as a stream of them.
    fn async_stream_of(
        mut accepted: tokio::sync::mpsc::Receiver<tokio::io::DuplexStream>,
    ) -> impl futures::Stream<Item = Result<tokio::io::DuplexStream, std::io::Error>> {
        futures::stream::poll_fn(move |cx| accepted.poll_recv(cx).map(|c| c.map(Ok)))
    }

    /// A peer that records the `x-mcpd-min-index` of each execute it gets.
    #[derive(Default, Clone)]
    struct RecordingPeer {
        seen: Arc<Mutex<Vec<Option<String>>>>,
    }

    #[tonic::async_trait]
    impl mcp_proto::execute::execute_service_server::ExecuteService for RecordingPeer {
        async fn execute(
            &self,
            request: tonic::Request<ExecuteRequest>,
        ) -> Result<tonic::Response<ExecuteReply>, tonic::Status> {
            let index = request
                .metadata()
                .get(mcp_proto::MIN_INDEX)
                .and_then(|v| v.to_str().ok().map(str::to_owned));
            self.seen.lock().unwrap().push(index);
            Ok(tonic::Response::new(ExecuteReply {
                response_json: r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.into(),
                node_id: 2,
                instance_id: "s-0".into(),
            }))
        }

        async fn execute_tool(
            &self,
            _request: tonic::Request<mcp_proto::execute::ExecuteToolRequest>,
        ) -> Result<tonic::Response<ExecuteReply>, tonic::Status> {
            Err(tonic::Status::unimplemented("not used"))
        }
    }

    /// A registry applied up to log index 7.
    async fn registry_at_index_7(dir: &std::path::Path) -> RegistryReader {
        use openraft::storage::RaftStateMachine;
        use openraft::{CommittedLeaderId, EntryPayload, LogId};

        let db = mcp_storage::open_db(dir, 1 << 20).unwrap();
        let mut machine = mcp_raft::RegistryStateMachine::open(&db).unwrap();
        let entries = (1..=7).map(|index| mcp_raft::types::Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Blank,
        });
        machine.apply(entries).await.unwrap();
        machine.reader()
    }

    #[tokio::test]
    async fn a_forwarded_call_names_the_index_this_node_has_applied() {
        let peer = RecordingPeer::default();
        let (connections, accepted) = tokio::sync::mpsc::channel(4);
        let server = tonic::transport::Server::builder()
            .add_service(
                mcp_proto::execute::execute_service_server::ExecuteServiceServer::new(peer.clone()),
            )
            .serve_with_incoming(async_stream_of(accepted));
        let serving = tokio::spawn(server);

        let dir = tempfile::tempdir().unwrap();
        let peers = PeerChannels::default();
        peers.pin("n2:7400", mcp_client::channel::in_process(connections));
        let forwarder =
            GrpcForwarder::new(1, peers, 1 << 20, registry_at_index_7(dir.path()).await);
        let request = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
        forwarder
            .send("n2:7400", "s", &request, &ExecuteOptions::default())
            .await
            .unwrap();
        serving.abort();
        assert_eq!(*peer.seen.lock().unwrap(), [Some("7".to_owned())]);
    }

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
