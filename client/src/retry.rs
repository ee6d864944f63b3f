//! What may be sent again. Two questions, answered once for every caller:
//! - did a failed request provably never reach its target ([`never_reached`])? Then any
//!   request may go to another node, since nothing ran;
//! - is the request harmless to repeat ([`is_repeatable_method`])? Then it may go again
//!   even after a failure that may have reached the server.
//!
//! A `tools/call` whose connection broke mid-flight fits neither, and is never repeated
//! silently.

use tonic::{Code, Status};

/// JSON-RPC methods that change nothing on an MCP server, so sending one twice is
/// harmless: the data plane's retries and the clients' failover use this one list.
pub const REPEATABLE_METHODS: [&str; 10] = [
    "ping",
    "initialize",
    "server/discover",
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
];

/// True for a JSON-RPC method that is safe to send twice.
pub fn is_repeatable_method(method: &str) -> bool {
    REPEATABLE_METHODS.contains(&method)
}

/// True when `request_json` is a JSON-RPC request whose method is safe to send twice.
pub fn is_repeatable_request(request_json: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(request_json)
        .ok()
        .and_then(|v| v.get("method").and_then(|m| m.as_str()).map(str::to_owned))
        .is_some_and(|method| is_repeatable_method(&method))
}

/// Whether an operation may be sent again after its connection broke mid-flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Repeating has no effect beyond the first (reads, safe JSON-RPC methods).
    Safe,
    /// It may have run already: every registry write and a `tools/call`. Even a write
    /// that is idempotent alone (a plain deploy, a scale) is not sent again once it may
    /// have reached a node: another client's write may have landed after the first apply,
    /// and a second apply would undo it (the nemesis suite saw an acknowledged undeploy
    /// undone that way). Such a request goes to another node only when it provably never
    /// reached the first.
    Unsafe,
}

/// A status the node did not produce itself (no `x-mcpd-error` category): the transport
/// failed, before or during the request.
pub fn is_transport_failure(status: &Status) -> bool {
    !status.metadata().contains_key(mcp_proto::ERROR_KIND)
        && matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal
        )
}

/// True when the request provably never left this process: the connection could not be
/// opened (refused, timed out, no route, name not found), or hyper gave the request back
/// unsent. Walks the error's source chain.
pub fn never_reached(status: &Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = source {
        // hyper hands a request back with `Canceled` when its connection closed (or was
        // not ready) before the request was written.
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_canceled)
        {
            return true;
        }
        // A refused TLS handshake: the connection never opened.
        if err.is::<crate::tls::HandshakeError>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused
                    | TimedOut
                    | AddrNotAvailable
                    | HostUnreachable
                    | NetworkUnreachable
                    | NotFound
            ) {
                return true;
            }
        }
        // tonic wraps connect failures in errors of its own whose only mark is the text.
        let text = err.to_string();
        if text.contains("tcp connect error")
            || text.contains("error trying to connect")
            || text.contains("dns error")
        {
            return true;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{self, Profile};
    use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
    use mcp_proto::cluster::StatusRequest;

    #[test]
    fn only_safe_methods_repeat() {
        assert!(is_repeatable_request(r#"{"method": "tools/list"}"#));
        assert!(!is_repeatable_request(r#"{"method": "tools/call"}"#));
        assert!(!is_repeatable_request("not json"));
        assert!(!is_repeatable_method("tools/call"));
    }

    #[test]
    fn a_node_answer_is_not_a_transport_failure() {
        let answered = mcp_proto::contract::ErrorKind::Unavailable.status("no leader");
        assert!(!is_transport_failure(&answered));
        assert!(is_transport_failure(&Status::unavailable(
            "connection reset"
        )));
        assert!(!never_reached(&Status::unavailable("connection reset")));
    }

    #[tokio::test]
    async fn a_refused_connection_was_never_reached() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let channel =
            channel::lazy(&format!("127.0.0.1:{port}"), Profile::Client).expect("channel");
        let status = ClusterServiceClient::new(channel)
            .status(StatusRequest {})
            .await
            .expect_err("nothing listens there");
        assert!(is_transport_failure(&status), "{status:?}");
        assert!(never_reached(&status), "{status:?}");
    }
}
