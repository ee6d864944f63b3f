//! Limits every listener applies, and the rule that a node does not serve beyond loopback
//! with authentication off unless told `insecure`.
//!
//! Authentication is on when the node has an admin token (every write, call and Raft RPC
//! needs a credential) or demands a client certificate of the cluster CA from every gRPC
//! caller. A gateway (`/mcp`) beyond loopback needs its own token, the admin token or an
//! OAuth issuer.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::NodeConfig;
use crate::error::ClusterError;
use crate::tls::ClientAuth;

/// HTTP/2 streams one gRPC connection may have open at once. A client with more requests
/// in flight queues them on its side; the Python client's 1,000 concurrent deploys fit.
pub const MAX_CONCURRENT_STREAMS: u32 = 1024;
/// Largest header block a gRPC request may carry.
pub const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;
/// Deadline added to an execute forwarded to a peer beyond the time the request itself
/// may take (room for the peer to start an on-demand instance first), so a peer that
/// stopped answering frees the caller instead of holding it forever.
pub const FORWARD_GRACE: Duration = Duration::from_secs(15);
/// The request time of a forwarded execute when none was set (the router always sets
/// one; this is only the floor of the deadline).
pub const FORWARD_DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of a write or linearizable read forwarded to the leader (the leader answers
/// "unavailable" after its own write timeout, well before this).
pub const LEADER_FORWARD_DEADLINE: Duration = Duration::from_secs(60);

/// Refuses a configuration that would let anyone who reaches a non-loopback listener run
/// every tool, unless `config.insecure` accepts it (then it is logged as a warning).
/// `grpc` is the address the gRPC listener binds (`None` for an in-process node).
pub fn check_exposure(config: &NodeConfig, grpc: Option<SocketAddr>) -> Result<(), ClusterError> {
    let token = config.admin_token.is_some();
    let client_certs = config
        .tls
        .as_ref()
        .is_some_and(|tls| tls.client_auth == ClientAuth::Required);
    let mut open = Vec::new();
    if let Some(addr) = grpc.filter(|a| !a.ip().is_loopback()) {
        if !token && !client_certs {
            open.push(format!("the gRPC API on {addr}"));
        }
    }
    if let Some(gateway) = config
        .gateway
        .as_ref()
        .filter(|g| !g.addr.ip().is_loopback())
    {
        // An OAuth issuer authenticates too: every request then needs a valid JWT.
        if gateway.token.is_none() && gateway.oauth.is_none() && !token {
            open.push(format!("the MCP gateway on {}", gateway.addr));
        }
    }
    if open.is_empty() {
        return Ok(());
    }
    let what = open.join(" and ");
    if config.insecure {
        tracing::warn!(
            "insecure: {what} is reachable beyond loopback without authentication; anyone \
             who reaches it can run every tool"
        );
        return Ok(());
    }
    Err(ClusterError::Config(format!(
        "refusing to serve {what} beyond loopback with authentication off: anyone who reaches \
         it could run every tool. Set an admin token (--admin-token), or TLS with client \
         certificates required (--tls-client-auth required), or pass --insecure to accept this"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(token: Option<&str>, insecure: bool) -> NodeConfig {
        NodeConfig {
            admin_token: token.map(str::to_owned),
            insecure,
            ..NodeConfig::new("/nonexistent")
        }
    }

    #[test]
    fn loopback_needs_no_auth() {
        let local = Some("127.0.0.1:7400".parse().unwrap());
        assert!(check_exposure(&config(None, false), local).is_ok());
        assert!(check_exposure(&config(None, false), None).is_ok());
    }

    #[test]
    fn beyond_loopback_needs_auth_or_insecure() {
        let any = Some("0.0.0.0:7400".parse().unwrap());
        let refused = check_exposure(&config(None, false), any).expect_err("refused");
        let text = refused.to_string();
        assert!(
            text.contains("0.0.0.0:7400") && text.contains("--insecure"),
            "{text}"
        );
        assert!(check_exposure(&config(Some("t"), false), any).is_ok());
        assert!(check_exposure(&config(None, true), any).is_ok());
        let mut certs = config(None, false);
        certs.tls = Some(crate::tls::TlsSettings {
            cert: "c".into(),
            key: "k".into(),
            ca: "ca".into(),
            client_auth: ClientAuth::Required,
            metrics: false,
            gateway: false,
        });
        assert!(check_exposure(&certs, any).is_ok());
        // Optional client certificates do not authenticate anybody.
        certs.tls.as_mut().unwrap().client_auth = ClientAuth::Optional;
        assert!(check_exposure(&certs, any).is_err());
    }

    #[test]
    fn an_exposed_gateway_needs_a_token() {
        let mut open = config(None, false);
        open.gateway = Some(crate::gateway::GatewayConfig {
            addr: "0.0.0.0:7480".parse().unwrap(),
            token: None,
            allowed_origins: Vec::new(),
            session_lifetime: crate::gateway::session::DEFAULT_SESSION_LIFETIME,
            oauth: None,
        });
        let local = Some("127.0.0.1:7400".parse().unwrap());
        let refused = check_exposure(&open, local).expect_err("refused");
        assert!(refused.to_string().contains("0.0.0.0:7480"), "{refused}");
        open.gateway.as_mut().unwrap().token = Some("g".into());
        assert!(check_exposure(&open, local).is_ok());
    }
}
