//! Who may talk to the gateway: a DNS-rebinding check on `Host` and `Origin`. Who the
//! caller is, from its bearer credential, is [`super::authn`]'s part.
//!
//! A browser page on a foreign site can make requests to a loopback port; checking `Host`
//! (when bound to loopback) and `Origin` is what stops such a page from using the
//! cluster's tools. Refusals are counted by reason ([`GatewayMetrics`]).

use std::net::{IpAddr, SocketAddr};

use axum::http::{header, HeaderMap, StatusCode};
use prometheus::{register_int_counter_vec_with_registry, IntCounterVec, Registry};

/// What the gateway measures: the requests its guard refused (calls it lets through are
/// the data plane's to count).
pub struct GatewayMetrics {
    /// `mcp_gateway_rejections_total{reason}`.
    rejections: IntCounterVec,
}

impl GatewayMetrics {
    /// Creates the gateway's metrics in `registry` (whether or not a gateway is served,
    /// so that every node exposes the same families).
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            rejections: register_int_counter_vec_with_registry!(
                "mcp_gateway_rejections_total",
                "Requests refused by the MCP gateway's guard, by reason (host, origin, unauthorized).",
                &["reason"],
                registry
            )?,
        })
    }

    /// Counts a refusal.
    pub fn count_rejection(&self, refused: &GuardError) {
        self.rejections.with_label_values(&[refused.reason()]).inc();
    }

    /// Counts a refusal of the credential (`unauthorized` or `forbidden`).
    pub fn count_auth_rejection(&self, reason: &'static str) {
        self.rejections.with_label_values(&[reason]).inc();
    }
}

/// Why a request was refused before its body was read.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// `Host` is not a loopback name or the listen address.
    #[error("Host header {0:?} is not allowed on this loopback endpoint")]
    Host(String),
    /// `Origin` is neither loopback nor allowed by `--mcp-allowed-origins`.
    #[error("Origin {0:?} is not allowed (see --mcp-allowed-origins)")]
    Origin(String),
}

impl GuardError {
    /// The `reason` label of `mcp_gateway_rejections_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            GuardError::Host(_) => "host",
            GuardError::Origin(_) => "origin",
        }
    }

    /// The HTTP status of the refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            GuardError::Host(_) | GuardError::Origin(_) => StatusCode::FORBIDDEN,
        }
    }
}

/// The checks of one gateway listener.
#[derive(Clone)]
pub struct Guard {
    listen: SocketAddr,
    /// Requests need a credential (so sessions bind to it).
    authenticated: bool,
    allowed_origins: Vec<String>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("listen", &self.listen)
            .field("authenticated", &self.authenticated)
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

impl Guard {
    /// Checks for a listener bound to `listen`; `authenticated`: requests need a
    /// credential.
    pub fn new(listen: SocketAddr, authenticated: bool, allowed_origins: Vec<String>) -> Self {
        Self {
            listen,
            authenticated,
            allowed_origins: allowed_origins
                .into_iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty())
                .collect(),
        }
    }

    /// True when a credential is required.
    pub fn requires_token(&self) -> bool {
        self.authenticated
    }

    /// The credential a request was let in with: its bearer token when one is required,
    /// `None` on an open endpoint (what a client sends there proves nothing). Sessions are
    /// bound to it.
    pub fn credential<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        self.authenticated.then(|| bearer(headers)).flatten()
    }

    /// Allows or refuses a request by its headers.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), GuardError> {
        if self.listen.ip().is_loopback() {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !self.host_allowed(host) {
                return Err(GuardError::Host(host.to_owned()));
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
            if !self.origin_allowed(&origin) {
                return Err(GuardError::Origin(origin));
            }
        }
        Ok(())
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        host == self.listen.to_string() || is_loopback_authority(&host)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        if self.allowed_origins.iter().any(|o| o == "*" || o == origin) {
            return true;
        }
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(is_loopback_authority)
    }
}

/// True for `localhost`, a loopback IP, with or without a port (`[::1]:80` included).
fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        // Bracketed IPv6, optionally followed by `:port`.
        match rest.split_once(']') {
            Some((ip, tail)) if tail.is_empty() || is_port_suffix(tail) => ip,
            _ => return false,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, tail)) if is_port_suffix(&format!(":{tail}")) => host,
            Some(_) => return false,
            None => authority,
        }
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_port_suffix(tail: &str) -> bool {
    tail.strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(name.clone(), HeaderValue::from_static(value));
        }
        h
    }

    fn loopback() -> Guard {
        Guard::new(
            "127.0.0.1:7480".parse().unwrap(),
            false,
            vec!["https://app.example.com".into()],
        )
    }

    #[test]
    fn hosts() {
        let g = loopback();
        for ok in [
            "127.0.0.1:7480",
            "localhost:7480",
            "localhost",
            "[::1]:7480",
        ] {
            let h = headers(&[(header::HOST, ok)]);
            assert!(g.check(&h).is_ok(), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:7480",
            "localhost.evil.com",
            "127.0.0.1:x",
            "",
        ] {
            let h = headers(&[(header::HOST, bad)]);
            assert!(matches!(g.check(&h), Err(GuardError::Host(_))), "{bad}");
        }
        // Not bound to loopback: Host is not checked (the token is the gate there).
        let open = Guard::new("0.0.0.0:7480".parse().unwrap(), false, vec![]);
        assert!(open
            .check(&headers(&[(header::HOST, "mcp.internal")]))
            .is_ok());
    }

    #[test]
    fn origins() {
        let g = loopback();
        let with = |o: &'static str| headers(&[(header::HOST, "localhost"), (header::ORIGIN, o)]);
        assert!(g.check(&with("http://localhost:3000")).is_ok());
        assert!(g.check(&with("http://127.0.0.1")).is_ok());
        assert!(g.check(&with("https://app.example.com")).is_ok());
        assert!(matches!(
            g.check(&with("https://evil.example.com")),
            Err(GuardError::Origin(_))
        ));
        assert!(matches!(g.check(&with("null")), Err(GuardError::Origin(_))));
    }

    #[test]
    fn sessions_bind_to_the_credential_only_when_one_is_required() {
        let g = Guard::new("127.0.0.1:1".parse().unwrap(), true, vec![]);
        let right = (header::AUTHORIZATION, "Bearer s3cret");
        let with = headers(&[(header::HOST, "localhost"), right.clone()]);
        assert!(g.check(&with).is_ok());
        assert_eq!(g.credential(&with), Some("s3cret"));
        // On an open endpoint a bearer proves nothing, so sessions bind to none.
        let open = Guard::new("127.0.0.1:1".parse().unwrap(), false, vec![]);
        assert_eq!(open.credential(&headers(&[right])), None);
    }
}
