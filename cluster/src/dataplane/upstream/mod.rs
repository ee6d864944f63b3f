//! Sessions with upstream MCP servers, one module per transport.
//!
//! A [`Session`] is one live connection to one server: a child process over stdio
//! ([`stdio`]) or a Streamable HTTP endpoint ([`http`]). It negotiates the protocol era
//! on connect (the stateless 2026-07-28 era first, then the handshake era), and multiplexes
//! any number of concurrent requests: each request gets a session-unique JSON-RPC id on the
//! wire and the caller's own id back on the response. A response stays the text the
//! server sent ([`RawResponse`]): only its id is replaced.

pub mod docker;
pub mod http;
pub(crate) mod lines;
pub mod sandbox;
pub mod stdio;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mcp_raft::registry::spec::{ServerSpec, Transport as SpecTransport};
use serde_json::{json, Map, Value};

use super::jsonrpc::{self, RawResponse};

/// The stateless protocol revision.
pub const STATELESS_VERSION: &str = "2026-07-28";
/// The newest handshake-era revision we ask for.
pub const HANDSHAKE_VERSION: &str = "2025-11-25";
/// `_meta` key of the protocol version on stateless-era requests.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client capabilities on stateless-era requests.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the client identity on stateless-era requests.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";

/// Which protocol era a session speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    /// `initialize` handshake; the negotiated protocol version.
    Handshake(String),
    /// No handshake; every request carries its version in `_meta`.
    Stateless,
}

impl Era {
    /// The protocol version string of this era.
    pub fn protocol_version(&self) -> &str {
        match self {
            Era::Handshake(v) => v,
            Era::Stateless => STATELESS_VERSION,
        }
    }
}

/// Limits a session works within.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// How long connecting (spawn or TCP, plus the era negotiation) may take.
    pub connect_timeout: Duration,
    /// Largest message (stdio line or HTTP body) accepted from the server.
    pub max_message_bytes: usize,
    /// Label for logs: server name and instance id.
    pub label: String,
    /// Idle HTTP connections close after this long.
    pub idle_timeout: Duration,
    /// TCP keep-alive on HTTP connections.
    pub keepalive: bool,
    /// Time between TCP keep-alive probes when `keepalive` is on.
    pub keepalive_interval: Duration,
    /// Labels and reaping scope of the containers of docker servers.
    pub containers: docker::ContainerScope,
    /// Where the server's own list-change announcements are reported (stdio sessions).
    pub list_changes: Option<super::list_changes::ListChangeSink>,
}

/// Why a session request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The server was never reached: spawn failed, connection refused, negotiation failed.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The session ended while the request was in flight; the server may have seen it.
    #[error("session closed: {0}")]
    Closed(String),
    /// The server sent something that is not JSON-RPC; the session is unusable.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The server sent a message above the size limit; the session is unusable.
    #[error("message from server exceeds the {limit}-byte limit")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The HTTP endpoint answered with an error status.
    #[error("HTTP {status}: {body}")]
    Http {
        /// Status code.
        status: u16,
        /// Start of the body.
        body: String,
    },
}

impl UpstreamError {
    /// False when the request provably never reached the server (safe to send elsewhere).
    pub fn reached_server(&self) -> bool {
        !matches!(self, UpstreamError::Connect(_))
    }

    /// True when the session cannot carry another request (it closed, or the server broke
    /// the protocol). An HTTP error status is not: the next request may well succeed, so it
    /// counts as one failure towards the breaker's threshold like any other.
    pub fn session_broken(&self) -> bool {
        matches!(
            self,
            UpstreamError::Closed(_) | UpstreamError::Protocol(_) | UpstreamError::TooLarge { .. }
        )
    }
}

/// What each transport provides to [`Session`].
pub(crate) trait Wire: Send + Sync {
    /// Sends a request (its id already session-unique) and returns the server's response.
    fn roundtrip(
        &self,
        request: Value,
        era: Option<&Era>,
    ) -> impl std::future::Future<Output = Result<RawResponse, UpstreamError>> + Send;
    /// Sends a notification.
    fn notify(
        &self,
        message: Value,
        era: Option<&Era>,
    ) -> impl std::future::Future<Output = Result<(), UpstreamError>> + Send;
    /// False once the connection is known to be dead.
    fn is_alive(&self) -> bool;
    /// Ends the session (and, for stdio, the process).
    fn shutdown(&self) -> impl std::future::Future<Output = ()> + Send;
}

enum AnyWire {
    Stdio(stdio::StdioWire),
    Http(http::HttpWire),
    Docker(docker::DockerWire),
}

/// One live, negotiated session with an upstream server.
pub struct Session {
    wire: AnyWire,
    era: Era,
    next_id: AtomicU64,
    /// What the server said about itself when the session was negotiated: its
    /// capabilities and serverInfo (from `server/discover` or `initialize`).
    announced: Value,
}

macro_rules! on_wire {
    ($self:expr, $w:ident => $body:expr) => {
        match &$self.wire {
            AnyWire::Stdio($w) => $body,
            AnyWire::Http($w) => $body,
            AnyWire::Docker($w) => $body,
        }
    };
}

impl Session {
    /// Connects to the server of `spec` and negotiates the protocol era.
    pub async fn connect(
        spec: &ServerSpec,
        options: &SessionOptions,
    ) -> Result<Self, UpstreamError> {
        let wire = match &spec.transport {
            SpecTransport::Stdio { .. } => AnyWire::Stdio(stdio::StdioWire::spawn(spec, options)?),
            SpecTransport::Http { .. } => AnyWire::Http(http::HttpWire::new(spec, options)?),
            SpecTransport::Docker(_) => AnyWire::Docker(docker::start(spec, options).await?),
        };
        let mut session = Session {
            wire,
            era: Era::Stateless,
            next_id: AtomicU64::new(1),
            announced: Value::Null,
        };
        match tokio::time::timeout(options.connect_timeout, session.negotiate()).await {
            Ok(Ok((era, announced))) => {
                tracing::info!(target: "mcp_cluster::dataplane", instance = %options.label, era = era.protocol_version(), "session established");
                session.era = era;
                session.announced = announced;
                Ok(session)
            }
            Ok(Err(e)) => {
                session.shutdown().await;
                Err(UpstreamError::Connect(e.to_string()))
            }
            Err(_) => {
                session.shutdown().await;
                Err(UpstreamError::Connect(format!(
                    "no answer to the MCP handshake within {} ms",
                    options.connect_timeout.as_millis()
                )))
            }
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Tries the stateless era first (`server/discover`), then the `initialize` handshake.
    /// Returns the era and the result the server described itself with.
    async fn negotiate(&self) -> Result<(Era, Value), UpstreamError> {
        let discover = jsonrpc::request(self.next_id(), "server/discover", json!({}));
        let discover = with_meta(discover, &Era::Stateless);
        match on_wire!(self, w => w.roundtrip(discover, Some(&Era::Stateless)).await) {
            Ok(response) => {
                let response = response.to_value();
                let speaks_stateless = response
                    .pointer("/result/supportedVersions")
                    .and_then(Value::as_array)
                    .is_some_and(|v| v.iter().any(|v| v == STATELESS_VERSION));
                if speaks_stateless {
                    let announced = response.get("result").cloned().unwrap_or(Value::Null);
                    return Ok((Era::Stateless, announced));
                }
            }
            // A handshake-era HTTP server refuses a sessionless request; try the handshake.
            Err(UpstreamError::Http { .. }) => {}
            Err(e) => return Err(e),
        }
        let initialize = jsonrpc::request(
            self.next_id(),
            "initialize",
            json!({
                "protocolVersion": HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": client_info(),
            }),
        );
        let response = on_wire!(self, w => w.roundtrip(initialize, None).await)?.to_value();
        if let Some(error) = jsonrpc::error_of(&response) {
            return Err(UpstreamError::Protocol(format!(
                "initialize failed: {error}"
            )));
        }
        let version = response
            .pointer("/result/protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                UpstreamError::Protocol("initialize result has no protocolVersion".into())
            })?
            .to_owned();
        let era = Era::Handshake(version);
        let initialized = jsonrpc::notification("notifications/initialized", json!({}));
        on_wire!(self, w => w.notify(initialized, Some(&era)).await)?;
        let announced = response.get("result").cloned().unwrap_or(Value::Null);
        Ok((era, announced))
    }

    /// The negotiated era.
    pub fn era(&self) -> &Era {
        &self.era
    }

    /// Sends a request and returns the server's response object (result or error) with the
    /// caller's id. A notification (no id) is sent and answered with `Value::Null`.
    ///
    /// For callers that look inside the answer; a relay uses [`Session::request_raw`].
    pub async fn request(&self, request: &Value) -> Result<Value, UpstreamError> {
        Ok(self
            .request_raw(request)
            .await?
            .map_or(Value::Null, |response| response.to_value()))
    }

    /// Sends a request and returns the server's response as it sent it, with the caller's
    /// id put in place of the session's. A notification (no id) is sent and answered with
    /// `None`.
    ///
    /// `server/discover` on a handshake-era session is answered here, from what the
    /// server's `initialize` result said: so every server, of either era, tells its
    /// capabilities the same way (the gateway reads them through the data plane, from any
    /// node).
    pub async fn request_raw(&self, request: &Value) -> Result<Option<RawResponse>, UpstreamError> {
        if let (Era::Handshake(version), Some("server/discover")) =
            (&self.era, jsonrpc::method(request))
        {
            let id = request.get("id").cloned().unwrap_or(Value::Null);
            return Ok(Some(RawResponse::from_value(
                &json!({"jsonrpc": "2.0", "id": id, "result": discover_of_handshake(version, &self.announced)}),
            )));
        }
        let mut message = request.clone();
        if self.era == Era::Stateless {
            message = with_meta(message, &self.era);
        }
        if !jsonrpc::is_request(&message) {
            on_wire!(self, w => w.notify(message, Some(&self.era)).await)?;
            return Ok(None);
        }
        let mut caller_id = Value::Null;
        if let Some(object) = message.as_object_mut() {
            if let Some(id) = object.get_mut("id") {
                caller_id = std::mem::replace(id, Value::from(self.next_id()));
            }
            object
                .entry("jsonrpc")
                .or_insert_with(|| Value::from("2.0"));
        }
        let mut response = on_wire!(self, w => w.roundtrip(message, Some(&self.era)).await)?;
        response.set_id(&caller_id);
        Ok(Some(response))
    }

    /// Like [`Session::request_raw`], sending the server's `notifications/progress` for the
    /// request's `params._meta.progressToken` to `sink` while it runs. The token must be
    /// unique to the request (the gateway mints one per call). Only line sessions (stdio,
    /// and containers in stdio mode) stream progress: an HTTP server's progress travels in
    /// the response body, which the session reads whole.
    pub async fn request_with_progress(
        &self,
        request: &Value,
        sink: Option<stdio::ProgressSink>,
    ) -> Result<Option<RawResponse>, UpstreamError> {
        let lines = match &self.wire {
            AnyWire::Stdio(wire) => Some(wire.lines()),
            AnyWire::Docker(wire) => wire.lines(),
            AnyWire::Http(_) => None,
        };
        let (Some(lines), Some(sink)) = (lines, sink) else {
            return self.request_raw(request).await;
        };
        let Some(token) = request
            .pointer("/params/_meta/progressToken")
            .and_then(Value::as_str)
        else {
            return self.request_raw(request).await;
        };
        lines.watch_progress(token, sink);
        let answer = self.request_raw(request).await;
        lines.unwatch_progress(token);
        answer
    }

    /// A cheap request that proves the session works: `ping` in the handshake era,
    /// `server/discover` in the stateless era (which has no ping).
    pub async fn probe(&self) -> Result<(), UpstreamError> {
        let method = match self.era {
            Era::Handshake(_) => "ping",
            Era::Stateless => "server/discover",
        };
        let response = self
            .request(&jsonrpc::request(0, method, json!({})))
            .await?;
        match jsonrpc::error_of(&response) {
            Some(error) => Err(UpstreamError::Protocol(format!("{method} failed: {error}"))),
            None => Ok(()),
        }
    }

    /// False once the connection is known to be dead.
    pub fn is_alive(&self) -> bool {
        on_wire!(self, w => w.is_alive())
    }

    /// Ends the session: closes stdin and stops the process (stdio), or ends the HTTP
    /// session (handshake era).
    pub async fn shutdown(&self) {
        on_wire!(self, w => w.shutdown().await)
    }
}

/// A `server/discover` result describing a handshake-era server at `version` from its
/// `initialize` result.
fn discover_of_handshake(version: &str, initialized: &Value) -> Value {
    json!({
        "supportedVersions": [version],
        "capabilities": initialized.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "serverInfo": initialized.get("serverInfo").cloned().unwrap_or(Value::Null),
        "resultType": "complete",
    })
}

fn client_info() -> Value {
    json!({"name": "mcp-rust", "version": env!("CARGO_PKG_VERSION")})
}

/// Adds the stateless era's `_meta` (version, capabilities, client) to a request.
fn with_meta(mut message: Value, era: &Era) -> Value {
    let Some(object) = message.as_object_mut() else {
        return message;
    };
    let params = object
        .entry("params")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(params) = params.as_object_mut() {
        let meta = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(META_PROTOCOL_VERSION.into(), era.protocol_version().into());
            meta.entry(META_CLIENT_CAPABILITIES)
                .or_insert_with(|| json!({}));
            meta.entry(META_CLIENT_INFO).or_insert_with(client_info);
        }
    }
    message
}
