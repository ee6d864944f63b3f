//! The aggregated MCP endpoint: every registered server's tools as one MCP server,
//! served over Streamable HTTP at `/mcp` on its own listen address (`--mcp-addr`).
//!
//! A request flows one way: [`guard`] (Host, Origin, token) -> [`protocol`] (era, then
//! [`session`] in the handshake era or [`conformance`] in the stateless one, and the
//! methods the gateway answers itself, with [`caching`] hints and the [`capabilities`]
//! the servers have) -> [`catalog`] (tools) or [`content`] (resources, prompts,
//! completions; names per [`names`], pages per [`cursor`]), both filtered by a
//! [`scope`] -> [`DataPlane::execute`]. Changes are pushed by [`notify`] on the
//! [`streams`] clients open. Only the JSON-RPC body travels on: the
//! client's headers, its `Authorization` above all, never reach an upstream server.
//! [`session`] seals handshake-era sessions so that any node serves them. See
//! docs/gateway.md.

pub mod authn;
pub mod caching;
pub mod calls;
pub mod capabilities;
pub mod catalog;
pub mod conformance;
pub mod content;
pub mod cursor;
pub mod error;
pub mod guard;
pub mod names;
pub mod notify;
pub mod oauth;
pub mod protocol;
pub mod scope;
pub mod session;
pub mod streams;
pub mod views;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mcp_raft::registry::GatewaySessions;
use mcp_raft::RegistryReader;
use serde_json::{json, Value};

use crate::dataplane::{DataPlane, ExecuteOptions};
use crate::grpc::session_service::SessionHandlers;
use capabilities::Capabilities;
use catalog::Catalog;
use content::{Content, ListKind};
use guard::{GatewayMetrics, Guard};
use protocol::Era;
use session::{OpenSession, SessionError};

/// Largest request body accepted (413 beyond it).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// The session header of the handshake era.
const SESSION_HEADER: &str = "mcp-session-id";
/// Longest wait, after `DELETE`, for this node to apply the end it proposed, so the next
/// request here already sees it (other nodes follow within a heartbeat or so).
const END_APPLY_WAIT: Duration = Duration::from_secs(2);

/// How the gateway is set up.
#[derive(Clone)]
pub struct GatewayConfig {
    /// Where `/mcp` is served.
    pub addr: SocketAddr,
    /// The gateway's own token (`--mcp-token`): its holder may call every tool. The
    /// cluster's tokens are accepted too (see [`authn`]).
    pub token: Option<String>,
    /// Browser origins allowed besides loopback ones (`*` allows any).
    pub allowed_origins: Vec<String>,
    /// How long a handshake-era session lasts from its `initialize`, used or not (at most
    /// [`session::MAX_SESSION_LIFETIME`]).
    pub session_lifetime: Duration,
    /// Accept JWT access tokens of this issuer (see [`oauth`]); `None`: no OAuth.
    pub oauth: Option<oauth::OAuthConfig>,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("addr", &self.addr)
            .field("token", &self.token.is_some())
            .field("allowed_origins", &self.allowed_origins)
            .field("session_lifetime", &self.session_lifetime)
            .field("oauth", &self.oauth)
            .finish()
    }
}

/// What a gateway is served with, besides its listener.
pub struct GatewayParts {
    /// Who may call it, and as what (see [`authn`]).
    pub auth: authn::GatewayAuth,
    /// Where tool calls are audited.
    pub audit: Arc<crate::audit::Audit>,
    /// Browser origins allowed besides loopback ones.
    pub allowed_origins: Vec<String>,
    /// Lifetime of a handshake-era session.
    pub session_lifetime: Duration,
    /// Where calls run.
    pub plane: Arc<DataPlane>,
    /// The registry: servers for the catalog, session keys and ended sessions.
    pub registry: RegistryReader,
    /// Where `DELETE /mcp` proposes the end of a session.
    pub sessions: SessionHandlers,
    /// Where refusals are counted.
    pub metrics: Arc<GatewayMetrics>,
}

/// What the handlers share.
struct Gateway {
    guard: Guard,
    auth: authn::GatewayAuth,
    audit: Arc<crate::audit::Audit>,
    metrics: Arc<GatewayMetrics>,
    session_lifetime: Duration,
    registry: RegistryReader,
    sessions: SessionHandlers,
    catalog: Catalog,
    capabilities: Arc<Capabilities>,
    content: Content,
    notifier: Arc<notify::Notifier>,
    calls: calls::Calls,
    plane: Arc<DataPlane>,
}

impl Gateway {
    /// The principal of a request, or the 401/403 answer (counted as a refusal).
    async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<crate::principal::Principal, Response> {
        self.auth.principal(headers).await.map_err(|failure| {
            tracing::debug!(?failure, "gateway request refused");
            self.metrics.count_auth_rejection(failure.reason());
            self.auth.refusal(&failure, Value::Null)
        })
    }

    /// Writes the audit line of a tool call through the gateway.
    fn audit_call(
        &self,
        principal: &crate::principal::Principal,
        route: &catalog::Route,
        outcome: &str,
        started: std::time::Instant,
    ) {
        self.audit_call_with(principal, route, outcome, started, None);
    }

    /// [`Self::audit_call`], with the call's `params.arguments` when the server's spec
    /// turns `audit_arguments` on.
    fn audit_call_with(
        &self,
        principal: &crate::principal::Principal,
        route: &catalog::Route,
        outcome: &str,
        started: std::time::Instant,
        params: Option<&Value>,
    ) {
        let arguments = params
            .filter(|_| {
                crate::grpc::execute_service::audit_arguments_of(
                    self.plane.registry(),
                    &route.server,
                )
            })
            .and_then(|p| p.get("arguments"));
        let mut record =
            crate::audit::AuditRecord::new(principal, "tools/call", crate::audit::Via::Mcp);
        record.server = Some(&route.server);
        record.tool = Some(&route.tool);
        record.outcome = outcome;
        record.duration = started.elapsed();
        record.arguments = arguments;
        self.audit.record(&record);
    }

    /// Runs `f` on the registry's session state, with the principal of `headers` and the
    /// time now. A session of a view's endpoint is bound to the view too: its id opens on
    /// that endpoint only, so a view's session cannot be carried to the default endpoint
    /// (or another view) to see what the view hides.
    fn with_sessions<R>(
        &self,
        headers: &HeaderMap,
        view: Option<&str>,
        f: impl FnOnce(&GatewaySessions, Option<String>, u64) -> R,
    ) -> R {
        let mut principal = session::principal(self.guard.credential(headers));
        if let Some(view) = view {
            principal = Some(format!("{}@view:{view}", principal.unwrap_or_default()));
        }
        self.registry.read(|state| {
            f(
                state.registry.gateway_sessions(),
                principal,
                session::unix_ms(),
            )
        })
    }

    /// Seals a new session at `version` for the credential of `headers` (on `view`'s
    /// endpoint, if any).
    fn seal_session(
        &self,
        version: &str,
        headers: &HeaderMap,
        view: Option<&str>,
    ) -> Result<String, SessionError> {
        self.with_sessions(headers, view, |sessions, principal, now| {
            session::seal(sessions, version, principal, self.session_lifetime, now)
        })
    }

    /// Opens session `id`, presented with the credential of `headers` (on `view`'s
    /// endpoint, if any).
    fn open_session(
        &self,
        id: &str,
        headers: &HeaderMap,
        view: Option<&str>,
    ) -> Result<OpenSession, SessionError> {
        self.with_sessions(headers, view, |sessions, principal, now| {
            session::open(sessions, id, principal.as_deref(), now)
        })
    }
}

/// Serves `/mcp` on `listener` until `shutdown` resolves; refusals count in
/// `parts.metrics`.
pub async fn serve(
    listener: crate::tls::incoming::HttpListener,
    parts: GatewayParts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let guard = Guard::new(addr, parts.auth.enabled(), parts.allowed_origins);
    if !addr.ip().is_loopback() && !guard.requires_token() {
        tracing::warn!(%addr, "the MCP gateway is reachable beyond loopback without a token");
    }
    let capabilities = Arc::new(Capabilities::new(
        Arc::clone(&parts.plane),
        parts.registry.clone(),
    ));
    let gateway = Arc::new(Gateway {
        guard,
        auth: parts.auth,
        audit: parts.audit,
        metrics: parts.metrics,
        session_lifetime: parts.session_lifetime.min(session::MAX_SESSION_LIFETIME),
        registry: parts.registry.clone(),
        sessions: parts.sessions,
        catalog: Catalog::new(Arc::clone(&parts.plane), parts.registry.clone()),
        capabilities: Arc::clone(&capabilities),
        notifier: notify::Notifier::start(parts.registry.clone()),
        calls: calls::Calls::default(),
        content: Content::new(Arc::clone(&parts.plane), parts.registry, capabilities),
        plane: parts.plane,
    });
    let app = axum::Router::new()
        .route(
            "/mcp",
            post(handle_post).get(handle_get).delete(handle_delete),
        )
        .route(
            "/mcp/v/{view}",
            post(handle_view_post)
                .get(handle_view_get)
                .delete(handle_view_delete),
        )
        // RFC 9728: the metadata of resource `/mcp` is at the well-known path with the
        // resource's path appended; the bare one serves clients that try it first.
        .route(oauth::METADATA_PATH, get(handle_metadata))
        .route(
            &format!("{}/mcp", oauth::METADATA_PATH),
            get(handle_metadata),
        )
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(gateway);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn refused(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &protocol::error(Value::Null, protocol::INVALID_REQUEST, message, None),
    )
}

/// Runs the guard; the refusal response if it says no.
fn refusal(gateway: &Gateway, headers: &HeaderMap) -> Option<Response> {
    gateway.guard.check(headers).err().map(|e| {
        tracing::debug!(error = %e, "gateway request refused");
        gateway.metrics.count_rejection(&e);
        let mut response = refused(e.status(), &e.to_string());
        if e.status() == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    })
}

fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok())
}

/// `GET /mcp`: the handshake era's stream of server messages (list changes) for a
/// session. Without a session there is nothing to stream (the 2026-07-28 era has no GET
/// stream: it uses `subscriptions/listen`), so 405 as the transport asks.
async fn handle_get(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    serve_get(gateway, None, headers).await
}

/// `GET` of the default endpoint (`view` is `None`) or of a view's.
async fn serve_get(gateway: Arc<Gateway>, view: Option<String>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refusal(&gateway, &headers) {
        return refusal;
    }
    if let Err(refusal) = gateway.authenticate(&headers).await {
        return refusal;
    }
    let Some(id) = session_id(&headers) else {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST, DELETE")],
        )
            .into_response();
    };
    let accepts_sse = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"));
    if !accepts_sse {
        return refused(
            StatusCode::NOT_ACCEPTABLE,
            "GET /mcp is a text/event-stream; send Accept: text/event-stream",
        );
    }
    if let Err(e) = gateway.open_session(id, &headers, view.as_deref()) {
        return unknown_session(&e);
    }
    let (id, check_headers, check) = (id.to_owned(), headers.clone(), Arc::clone(&gateway));
    streams::response(
        gateway.notifier.subscribe(),
        streams::Filter::everything(),
        move || {
            check
                .open_session(&id, &check_headers, view.as_deref())
                .is_ok()
        },
    )
}

async fn handle_delete(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    serve_delete(gateway, None, headers).await
}

/// `DELETE` on the default endpoint (`view` is `None`) or on a view's.
async fn serve_delete(gateway: Arc<Gateway>, view: Option<String>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refusal(&gateway, &headers) {
        return refusal;
    }
    if let Err(refusal) = gateway.authenticate(&headers).await {
        return refusal;
    }
    let Some(id) = session_id(&headers) else {
        return refused(StatusCode::BAD_REQUEST, "Mcp-Session-Id header is required");
    };
    let session = match gateway.open_session(id, &headers, view.as_deref()) {
        Ok(session) => session,
        Err(e) => return unknown_session(&e),
    };
    let revision = match gateway
        .sessions
        .end_for_gateway(&session.serial, session.expires_at_ms)
        .await
    {
        Ok(revision) => revision,
        Err(status) => {
            tracing::warn!(error = %status.message(), "could not end a gateway session");
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("could not end the session: {}", status.message()),
            );
        }
    };
    let mut applied = gateway.registry.subscribe();
    let _ = tokio::time::timeout(END_APPLY_WAIT, applied.wait_for(|r| *r >= revision)).await;
    StatusCode::NO_CONTENT.into_response()
}

/// The answer to a session id that did not open: 404, so the client initializes again as
/// the transport asks. Why is only logged (at debug: any client can provoke it).
fn unknown_session(why: &SessionError) -> Response {
    tracing::debug!(reason = %why, "gateway session refused");
    refused(StatusCode::NOT_FOUND, "unknown session: initialize again")
}

/// The answer to a request for a view that does not exist.
fn unknown_view(view: &str) -> Response {
    refused(StatusCode::NOT_FOUND, &format!("unknown view {view:?}"))
}

/// `POST /mcp/v/NAME`: as `POST /mcp`, seeing what view NAME shows.
async fn handle_view_post(
    State(gateway): State<Arc<Gateway>>,
    axum::extract::Path(view): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve_post(gateway, Some(view), headers, body).await
}

/// `GET /mcp/v/NAME`: the same stream as `GET /mcp` (list changes), for a view that
/// exists.
async fn handle_view_get(
    State(gateway): State<Arc<Gateway>>,
    axum::extract::Path(view): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    match views::scope_of(&gateway.registry, Some(&view)) {
        Some(_) => serve_get(gateway, Some(view), headers).await,
        None => unknown_view(&view),
    }
}

/// `DELETE /mcp/v/NAME`: ends the session, as `DELETE /mcp`.
async fn handle_view_delete(
    State(gateway): State<Arc<Gateway>>,
    axum::extract::Path(view): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    match views::scope_of(&gateway.registry, Some(&view)) {
        Some(_) => serve_delete(gateway, Some(view), headers).await,
        None => unknown_view(&view),
    }
}

async fn handle_post(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve_post(gateway, None, headers, body).await
}

/// One POST, to the default endpoint (`view` is `None`) or to a view's.
async fn serve_post(
    gateway: Arc<Gateway>,
    view: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = refusal(&gateway, &headers) {
        return refusal;
    }
    let Some(scope) = views::scope_of(&gateway.registry, view.as_deref()) else {
        return unknown_view(view.as_deref().unwrap_or_default());
    };
    let is_view = view.is_some();
    let principal = match gateway.authenticate(&headers).await {
        Ok(principal) => principal,
        Err(refusal) => return refusal,
    };
    let message: Value = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(e) => {
            let error = protocol::error(
                Value::Null,
                protocol::PARSE_ERROR,
                format!("body is not JSON: {e}"),
                None,
            );
            return json_response(StatusCode::BAD_REQUEST, &error);
        }
    };
    if let Err(why) = crate::dataplane::jsonrpc::validate_request(&message) {
        // A response from the client (we never ask it anything) is accepted and dropped.
        if crate::dataplane::jsonrpc::is_response(&message) {
            return StatusCode::ACCEPTED.into_response();
        }
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        let error = protocol::error(id, protocol::INVALID_REQUEST, why, None);
        return json_response(StatusCode::BAD_REQUEST, &error);
    }
    let method = crate::dataplane::jsonrpc::method(&message)
        .unwrap_or_default()
        .to_owned();
    let params = message.get("params").cloned().unwrap_or(Value::Null);
    let version_header = headers
        .get(conformance::VERSION_HEADER)
        .and_then(|v| v.to_str().ok());
    let era = protocol::era_of(&method, &params, version_header);
    let id = message.get("id").cloned().filter(|id| !id.is_null());
    let refusal = match &era {
        Era::Stateless(_) => stateless_refusal(&headers, &method, &params, id.as_ref()),
        Era::Handshake => handshake_refusal(&gateway, &headers, &method, view.as_deref()),
    };
    if let Some(refusal) = refusal {
        return refusal;
    }
    // Whose calls this request may name: its principal's, in its session.
    let owner = format!("{}/{}", principal.name, session_id(&headers).unwrap_or("-"));
    if method == "notifications/cancelled" {
        if let Some(request_id) = params.get("requestId") {
            gateway.calls.cancel(&calls::key(&owner, request_id));
        }
    }
    // Notifications (initialized, cancelled, ...) need no answer.
    let Some(id) = id else {
        return StatusCode::ACCEPTED.into_response();
    };
    if let ("subscriptions/listen", Era::Stateless(_)) = (method.as_str(), &era) {
        let filter = streams::Filter::listen(id, &params);
        return streams::response(gateway.notifier.subscribe(), filter, || true);
    }
    let mut new_session = None;
    let reply = match (method.as_str(), &era) {
        ("initialize", Era::Handshake) => {
            let asked = params.get("protocolVersion").and_then(Value::as_str);
            let version = protocol::negotiate(asked);
            match gateway.seal_session(version, &headers, view.as_deref()) {
                Ok(session) => new_session = Some(session),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open a gateway session");
                    let error = protocol::error(id, protocol::INTERNAL_ERROR, e.to_string(), None);
                    return json_response(StatusCode::SERVICE_UNAVAILABLE, &error);
                }
            }
            let capabilities = gateway.capabilities.announced().await;
            protocol::result(id, protocol::initialize_result(version, capabilities), &era)
        }
        ("server/discover", Era::Stateless(_)) => {
            let capabilities = gateway.capabilities.announced().await;
            protocol::result(id, protocol::discover_result(capabilities), &era)
        }
        ("ping", Era::Handshake) => protocol::result(id, json!({}), &era),
        ("tools/list", _) => {
            let (tools, routes) = gateway.catalog.list().await;
            let (tools, routes) = views::scoped_tools(&*scope, tools, &routes);
            let tools = authn::visible_tools(&principal, tools, &routes);
            protocol::tools_list_result(id, tools, &era)
        }
        ("tools/call", _) => {
            let started = std::time::Instant::now();
            let name = params.get("name").and_then(Value::as_str).unwrap_or("");
            let route = views::resolve(&gateway.catalog, &*scope, is_view, name).await;
            if let Some(route) = &route {
                if !principal.may_call_tool(&route.server, &route.tool) {
                    gateway.audit_call(&principal, route, "denied", started);
                    let why = format!("{} may not call {name}", principal.name);
                    return gateway
                        .auth
                        .refusal(&authn::AuthFailure::InsufficientScope(why), id);
                }
                // The caller's own rate limits (issue 16), before the server's.
                let admitted = gateway.plane.guards().admit_caller(
                    gateway.plane.registry(),
                    &principal,
                    &route.server,
                );
                if let Err(refused) = admitted {
                    let e = crate::dataplane::ExecuteError::Refused(refused);
                    gateway.audit_call(&principal, route, e.kind().as_str(), started);
                    return json_response(StatusCode::OK, &error::execute_error(id, name, &e));
                }
            }
            let job = (
                Arc::clone(&gateway),
                route.clone(),
                params.clone(),
                era.clone(),
            );
            if let Some(token) = calls::progress_token(&params) {
                if let Some(route) = &route {
                    gateway.audit_call(&principal, route, "streamed", started);
                }
                let (gateway, route, params, era) = job;
                return calls::streamed(token, move |sink| async move {
                    let progress = Some((calls::mint_token(), sink));
                    call_tool(&gateway, route, id, &params, &era, progress).await
                });
            }
            let call = {
                let (gateway, route, params, era) = job;
                let id = id.clone();
                async move { call_tool(&gateway, route, id, &params, &era, None).await }
            };
            let reply = gateway
                .calls
                .run(calls::key(&owner, &id), id.clone(), call)
                .await;
            if let Some(route) = &route {
                let outcome = if reply.get("error").is_some() {
                    "error"
                } else {
                    "ok"
                };
                gateway.audit_call_with(&principal, route, outcome, started, Some(&params));
            }
            reply
        }
        (list, _) if ListKind::of_method(list).is_some() => {
            let kind = ListKind::of_method(list).unwrap_or(ListKind::Prompts);
            let both = scope::Both(&*scope, &principal);
            match gateway.content.list(kind, &params, &both).await {
                Ok(page) => protocol::list_result(id, page, &era),
                Err(e) => e.response(id),
            }
        }
        ("resources/read" | "prompts/get" | "completion/complete", _) => {
            let scope = &scope::Both(&*scope, &principal);
            let answer = match method.as_str() {
                "resources/read" => gateway.content.read(&params, scope).await,
                "prompts/get" => gateway.content.get_prompt(&params, scope).await,
                _ => gateway.content.complete(&params, scope).await,
            };
            match answer {
                Ok(result) => protocol::result(id, result, &era),
                Err(e) => e.response(id),
            }
        }
        _ => {
            let error = protocol::error(
                id,
                protocol::METHOD_NOT_FOUND,
                format!("method {method:?} is not served by the mcpd gateway"),
                None,
            );
            return json_response(protocol::method_not_found_status(&era), &error);
        }
    };
    let mut response = json_response(StatusCode::OK, &reply);
    if let Some(session) = new_session {
        if let Ok(value) = HeaderValue::from_str(&session) {
            response.headers_mut().insert(SESSION_HEADER, value);
        }
    }
    response
}

/// The refusal of a stateless-era request that breaks a rule of [`conformance`], if any.
/// Notifications are let through: the era defines no header rules for them.
fn stateless_refusal(
    headers: &HeaderMap,
    method: &str,
    params: &Value,
    id: Option<&Value>,
) -> Option<Response> {
    let id = id?;
    let e = conformance::check(headers, method, params).err()?;
    tracing::debug!(error = %e, method, "stateless request refused");
    Some(json_response(e.status(), &e.response(id.clone())))
}

/// The refusal of a handshake-era message, if any: an `MCP-Protocol-Version` we do not
/// speak is 400; every message but `initialize` needs a session that opens (400 without
/// one, 404 for one that does not open, so the client initializes again).
fn handshake_refusal(
    gateway: &Gateway,
    headers: &HeaderMap,
    method: &str,
    view: Option<&str>,
) -> Option<Response> {
    let version = headers
        .get(conformance::VERSION_HEADER)
        .and_then(|v| v.to_str().ok());
    if let Some(version) = version.filter(|v| !protocol::known_version(v)) {
        return Some(refused(
            StatusCode::BAD_REQUEST,
            &format!("unsupported MCP-Protocol-Version {version:?}"),
        ));
    }
    if method == "initialize" {
        return None;
    }
    let Some(session) = session_id(headers) else {
        return Some(refused(
            StatusCode::BAD_REQUEST,
            "Mcp-Session-Id header is required (send initialize first, or use the \
             2026-07-28 protocol with _meta)",
        ));
    };
    let e = gateway.open_session(session, headers, view).err()?;
    Some(unknown_session(&e))
}

/// `tools/call` of `SERVER__TOOL`: the tool's call on its server, through the data plane.
async fn call_tool(
    gateway: &Gateway,
    route: Option<catalog::Route>,
    id: Value,
    params: &Value,
    era: &Era,
    progress: Option<(String, crate::dataplane::upstream::stdio::ProgressSink)>,
) -> Value {
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return protocol::error(
            id,
            protocol::INVALID_PARAMS,
            "tools/call needs params.name",
            None,
        );
    };
    let Some(route) = route else {
        return protocol::error(
            id,
            protocol::INVALID_PARAMS,
            format!("unknown tool {name:?}"),
            Some(json!({"tool": name})),
        );
    };
    // Only the name and the arguments go on: the client's `_meta` describes its own
    // connection to us (version, capabilities), not ours to the server.
    let mut upstream_params = json!({"name": route.tool});
    if let Some(arguments) = params.get("arguments") {
        upstream_params["arguments"] = arguments.clone();
    }
    // The 2026-07-28 multi-round-trip fields go on: they answer the server's own
    // input-required result.
    for key in ["inputResponses", "requestState"] {
        if let Some(value) = params.get(key) {
            upstream_params[key] = value.clone();
        }
    }
    let (minted, sink) = progress.unzip();
    if let Some(token) = minted {
        upstream_params["_meta"] = json!({"progressToken": token});
    }
    let request = json!({"jsonrpc": "2.0", "id": id.clone(), "method": "tools/call", "params": upstream_params});
    let options = ExecuteOptions {
        request_id: format!("mcp-{}", ExecuteOptions::new_request_id()),
        progress: sink,
        ..ExecuteOptions::default()
    };
    match gateway.plane.execute(&route.server, request, options).await {
        Ok(executed) => match executed.response.to_value().get_mut("result") {
            Some(result) => protocol::result(id, result.take(), era),
            None => {
                let error = executed.response.error().unwrap_or_else(
                    || json!({"code": protocol::INTERNAL_ERROR, "message": "empty response"}),
                );
                json!({"jsonrpc": "2.0", "id": id, "error": error})
            }
        },
        Err(e) => error::execute_error(id, name, &e),
    }
}

/// `GET /.well-known/oauth-protected-resource[/mcp]`: the RFC 9728 metadata, when the
/// gateway accepts OAuth access tokens (404 otherwise).
async fn handle_metadata(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.auth.oauth() {
        Some(oauth) => json_response(StatusCode::OK, &oauth.config().metadata()),
        None => refused(
            StatusCode::NOT_FOUND,
            "this gateway accepts no OAuth tokens",
        ),
    }
}
