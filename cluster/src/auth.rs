//! Authorization of every gRPC request, in one place.
//!
//! [`POLICY`] is the table: the [`Access`] each RPC needs, keyed by its full gRPC path.
//! [`AuthLayer`] wraps the node's whole tonic server and enforces the table before any
//! handler runs, so a new service or method cannot forget its check: a path without a
//! policy is refused, and a test walks the proto files to make sure none is missing.
//!
//! [`Authenticator`] turns the `authorization: Bearer` credential into a [`Principal`]:
//! the bootstrap admin token (`--admin-token`, compared in constant time so it cannot be
//! guessed byte by byte from response timing), or an API token of the registry (looked up
//! by its SHA-256; expired and revoked ones are refused). With no admin token configured
//! the node has no authentication and every request is the [`Principal::anonymous`]
//! admin. The principal goes into the request's extensions; `Execute`/`ExecuteTool`
//! handlers then check the server and tool inside the request against it, which a layer
//! that sees only headers cannot.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use mcp_raft::RegistryReader;
use tonic::body::Body;
use tonic::codegen::http::{HeaderMap, Request, Response};
use tonic::codegen::Service;
use tower_layer::Layer;

use crate::audit::{Audit, AuditRecord, AuditSubject, Via};
use crate::error::ClusterError;
use crate::principal::{hash_token, Principal, Role};

/// What an RPC may do, and so what it takes to be allowed to call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Liveness and discovery (`Status`): clients find the leader with it and peers
    /// gather the fleet report with it, so it stays open whatever credentials arrive.
    Open,
    /// Reads the registry, membership or metrics: a reader at least.
    Read,
    /// Changes servers or drains nodes: an operator at least.
    Write,
    /// Token, membership and key management: an admin.
    Admin,
    /// Runs a request on an MCP server: an operator, or a caller whose allow rules name
    /// the server and tool (checked by the handler, which sees them).
    Execute,
    /// Node-to-node Raft traffic; a forged one could rewrite the log: the cluster's own
    /// credential only.
    Peer,
}

impl Access {
    /// True if `principal` may make a request needing this access (for
    /// [`Access::Execute`], to some server: the handler narrows it down).
    pub fn allows(self, principal: &Principal) -> bool {
        match self {
            Access::Open => true,
            Access::Read => principal.role >= Role::Reader,
            Access::Write => principal.role >= Role::Operator,
            Access::Admin => principal.role >= Role::Admin,
            Access::Execute => principal.role >= Role::Caller,
            Access::Peer => principal.peer,
        }
    }
}

/// The table: every RPC a node serves and the access it needs. A linear scan of a few
/// dozen short strings costs nothing next to a gRPC call, and a flat list reads as policy.
pub const POLICY: &[(&str, Access)] = &[
    ("/mcp.cluster.v1.ClusterService/Status", Access::Open),
    ("/mcp.cluster.v1.ClusterService/GetServer", Access::Read),
    ("/mcp.cluster.v1.ClusterService/ListServers", Access::Read),
    ("/mcp.cluster.v1.ClusterService/Members", Access::Read),
    ("/mcp.cluster.v1.ClusterService/Metrics", Access::Read),
    ("/mcp.cluster.v1.ClusterService/GetMetrics", Access::Read),
    ("/mcp.cluster.v1.ClusterService/Deploy", Access::Write),
    ("/mcp.cluster.v1.ClusterService/Undeploy", Access::Write),
    ("/mcp.cluster.v1.ClusterService/Scale", Access::Write),
    ("/mcp.cluster.v1.ClusterService/Drain", Access::Write),
    // Guards (issue 16): approving a tool is a change to what callers can run; secrets
    // are admin business; a tool observation comes from a node's data plane.
    ("/mcp.cluster.v1.ClusterService/ListToolPins", Access::Read),
    ("/mcp.cluster.v1.ClusterService/ApproveTools", Access::Write),
    ("/mcp.cluster.v1.ClusterService/ObserveTools", Access::Peer),
    ("/mcp.cluster.v1.ClusterService/SetSecret", Access::Admin),
    ("/mcp.cluster.v1.ClusterService/ListSecrets", Access::Read),
    ("/mcp.cluster.v1.ClusterService/DeleteSecret", Access::Admin),
    (
        "/mcp.cluster.v1.ClusterService/RotateSecrets",
        Access::Admin,
    ),
    (
        "/mcp.cluster.v1.ClusterService/SetCallerLimit",
        Access::Admin,
    ),
    (
        "/mcp.cluster.v1.ClusterService/ListCallerLimits",
        Access::Read,
    ),
    // Scale to zero (issue 17): a node's data plane wakes an on-demand server for a call
    // it already authorized, or lets an idle one sleep.
    (
        "/mcp.cluster.v1.ClusterService/SetServerAwake",
        Access::Peer,
    ),
    // Views of the gateway (issue 13): which tools a view shows is a change to what its
    // callers can see, like a deploy.
    ("/mcp.cluster.v1.ClusterService/PutView", Access::Write),
    ("/mcp.cluster.v1.ClusterService/ListViews", Access::Read),
    ("/mcp.cluster.v1.ClusterService/DeleteView", Access::Write),
    // A node reports what its instance announced, on its own credential.
    (
        "/mcp.cluster.v1.ClusterService/AnnounceListsChanged",
        Access::Peer,
    ),
    ("/mcp.cluster.v1.ClusterService/AddLearner", Access::Admin),
    ("/mcp.cluster.v1.ClusterService/PromoteVoter", Access::Admin),
    ("/mcp.cluster.v1.ClusterService/RemoveNode", Access::Admin),
    (
        "/mcp.cluster.v1.ClusterService/RotateSessionKey",
        Access::Admin,
    ),
    ("/mcp.cluster.v1.ClusterService/CreateToken", Access::Admin),
    ("/mcp.cluster.v1.ClusterService/ListTokens", Access::Admin),
    ("/mcp.cluster.v1.ClusterService/RevokeToken", Access::Admin),
    // A backup holds every spec and the registry's ciphertext: an admin's.
    ("/mcp.cluster.v1.ClusterService/SaveSnapshot", Access::Admin),
    // Ending a session is part of using tools through the gateway, whose node sends it
    // with its own token after checking the client's.
    (
        "/mcp.cluster.v1.ClusterService/EndGatewaySession",
        Access::Execute,
    ),
    ("/mcp.execute.v1.ExecuteService/Execute", Access::Execute),
    (
        "/mcp.execute.v1.ExecuteService/ExecuteTool",
        Access::Execute,
    ),
    ("/mcp.raft.v1.RaftService/AppendEntries", Access::Peer),
    ("/mcp.raft.v1.RaftService/Vote", Access::Peer),
    ("/mcp.raft.v1.RaftService/InstallSnapshot", Access::Peer),
];

/// The access the RPC at `path` (`/package.Service/Method`) needs; `None` for a path with
/// no policy, which must be refused.
pub fn policy(path: &str) -> Option<Access> {
    POLICY
        .iter()
        .find(|(known, _)| *known == path)
        .map(|(_, access)| *access)
}

/// Resolves credentials to principals and checks them against an access.
#[derive(Clone, Default)]
pub struct Authenticator {
    /// The bootstrap admin token; `None`: no authentication at all.
    admin: Option<String>,
    /// Where API tokens are looked up (`None`: only the admin token is known).
    registry: Option<RegistryReader>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token itself.
        f.debug_struct("Authenticator")
            .field("enabled", &self.admin.is_some())
            .field("api_tokens", &self.registry.is_some())
            .finish()
    }
}

/// The token of an `authorization: Bearer` header, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(mcp_proto::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
}

/// Milliseconds since the Unix epoch, on this node's clock (token expiry).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Authenticator {
    /// Authentication with `admin_token` as the bootstrap admin and the API tokens of
    /// `registry`; no admin token (or an empty one) turns authentication off.
    pub fn new(admin_token: Option<String>, registry: Option<RegistryReader>) -> Self {
        Self {
            admin: admin_token.filter(|t| !t.is_empty()),
            registry,
        }
    }

    /// True when credentials are checked.
    pub fn enabled(&self) -> bool {
        self.admin.is_some()
    }

    /// The principal holding `token`, or [`ClusterError::Unauthorized`] for a missing,
    /// unknown, expired or revoked one. Without authentication, everyone is
    /// [`Principal::anonymous`].
    pub fn resolve(&self, token: Option<&str>) -> Result<Principal, ClusterError> {
        let Some(admin) = &self.admin else {
            return Ok(Principal::anonymous());
        };
        let token = token.ok_or(ClusterError::Unauthorized)?;
        if constant_time_eq(token.as_bytes(), admin.as_bytes()) {
            return Ok(Principal::bootstrap_admin());
        }
        let registry = self.registry.as_ref().ok_or(ClusterError::Unauthorized)?;
        let hash = hash_token(token);
        registry
            .read(|state| {
                state
                    .registry
                    .principals()
                    .by_hash(&hash)
                    .filter(|record| !record.expired(now_ms()))
                    .map(|record| Principal::new(&record.name, record.role, record.allow.clone()))
            })
            .ok_or(ClusterError::Unauthorized)
    }

    /// The principal of a request with `headers`, if it may make a request needing
    /// `access`: [`ClusterError::Unauthorized`] without a valid credential,
    /// [`ClusterError::Forbidden`] with one whose role falls short. An open request with
    /// no valid credential passes with no principal.
    pub fn check(
        &self,
        access: Access,
        headers: &HeaderMap,
    ) -> Result<Option<Principal>, ClusterError> {
        let resolved = self.resolve(bearer(headers));
        if access == Access::Open {
            return Ok(resolved.ok());
        }
        let principal = resolved?;
        if access.allows(&principal) {
            Ok(Some(principal))
        } else {
            Err(ClusterError::Forbidden(format!(
                "{} ({}) may not make this request",
                principal.name, principal.role
            )))
        }
    }

    /// The verdict on a request for `path`: the principal to hand on, or the refusal.
    fn authorize(
        &self,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Option<Principal>, tonic::Status> {
        let Some(access) = policy(path) else {
            // Exactly what tonic answers for a path it does not serve, so a method added
            // without a policy looks absent rather than half-protected.
            tracing::debug!(path, "refused: no access policy");
            return Err(tonic::Status::unimplemented(format!(
                "{path} has no access policy"
            )));
        };
        self.check(access, headers).map_err(|e| {
            tracing::debug!(path, ?access, error = %e, "refused");
            tonic::Status::from(e)
        })
    }
}

/// Enforces [`policy`] on every request to the server it wraps, and writes the audit
/// line of every write and admin request (tool calls are audited by their handlers, which
/// know the server and tool).
#[derive(Clone, Debug)]
pub struct AuthLayer {
    auth: Authenticator,
    audit: Option<Arc<Audit>>,
}

impl AuthLayer {
    /// A layer that checks credentials with `auth` where the policy says so.
    pub fn new(auth: Authenticator) -> Self {
        Self { auth, audit: None }
    }

    /// Audits writes, admin requests and refused calls to `audit`.
    pub fn with_audit(mut self, audit: Arc<Audit>) -> Self {
        self.audit = Some(audit);
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            auth: self.auth.clone(),
            audit: self.audit.clone(),
        }
    }
}

/// The service [`AuthLayer`] builds: refuses, or hands the request on with its
/// [`Principal`] in the extensions.
#[derive(Clone, Debug)]
pub struct Authorize<S> {
    inner: S,
    auth: Authenticator,
    audit: Option<Arc<Audit>>,
}

/// What the audit line of one request needs once its answer is known.
struct Pending {
    audit: Arc<Audit>,
    principal: Principal,
    method: String,
    request_id: Option<String>,
    started: Instant,
}

impl Pending {
    fn finish(self, response: &Response<Body>) {
        // Errors answered before a body travel in the headers (trailers-only responses);
        // a successful unary answer has no grpc-status header.
        let status = response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .filter(|code| *code != "0");
        let outcome = match status {
            None => "ok",
            Some(_) => response
                .headers()
                .get(mcp_proto::ERROR_KIND)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("error"),
        };
        let subject = response.extensions().get::<AuditSubject>();
        let mut record = AuditRecord::new(&self.principal, &self.method, Via::Grpc);
        record.server = subject.and_then(|s| s.server.as_deref());
        record.token = subject.and_then(|s| s.token.as_deref());
        record.outcome = outcome;
        record.duration = self.started.elapsed();
        record.request_id = self.request_id.as_deref();
        self.audit.record(&record);
    }
}

/// The method name of a gRPC path (`Deploy` of `/mcp.cluster.v1.ClusterService/Deploy`).
fn method_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl<S, B> Service<Request<B>> for Authorize<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // Whatever a client put there, only the layer's verdict may sit in the extensions.
        request.extensions_mut().remove::<Principal>();
        let path = request.uri().path().to_owned();
        let access = policy(&path);
        // Forwarded requests are audited by the node the client reached.
        let audited = self
            .audit
            .clone()
            .filter(|_| !request.headers().contains_key(mcp_proto::FORWARDED_BY));
        let request_id = request
            .headers()
            .get(mcp_proto::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // A node certificate of the cluster CA, verified in the TLS handshake, is a peer's
        // identity: it satisfies Raft RPCs without a token (`tls::peer_layer` demands it).
        if access == Some(Access::Peer)
            && request
                .extensions()
                .get::<crate::tls::PeerCert>()
                .is_some_and(|peer| peer.node)
        {
            return Box::pin(self.inner.call(request));
        }
        match self.auth.authorize(&path, request.headers()) {
            Ok(principal) => {
                let pending = match (&principal, access, audited) {
                    (Some(principal), Some(Access::Write | Access::Admin), Some(audit)) => {
                        Some(Pending {
                            audit,
                            principal: principal.clone(),
                            method: method_of(&path).to_owned(),
                            request_id,
                            started: Instant::now(),
                        })
                    }
                    _ => None,
                };
                if let Some(principal) = principal {
                    request.extensions_mut().insert(principal);
                }
                let answer = self.inner.call(request);
                Box::pin(async move {
                    let response = answer.await?;
                    if let Some(pending) = pending {
                        pending.finish(&response);
                    }
                    Ok(response)
                })
            }
            Err(status) => {
                if let (Some(audit), Some(Access::Write | Access::Admin | Access::Execute)) =
                    (audited, access)
                {
                    // Who was refused: the principal if the credential was valid.
                    let who = self
                        .auth
                        .resolve(bearer(request.headers()))
                        .unwrap_or_else(|_| Principal::unauthenticated());
                    let mut record = AuditRecord::new(&who, method_of(&path), Via::Grpc);
                    record.outcome = "denied";
                    record.request_id = request_id.as_deref();
                    audit.record(&record);
                }
                // A gRPC error travels in the response headers: answer without a body.
                Box::pin(futures::future::ready(Ok(status.into_http())))
            }
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::Ready;
    use std::collections::BTreeSet;
    use tonic::codegen::http::HeaderValue;

    fn with_auth(value: &'static str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(mcp_proto::AUTHORIZATION, HeaderValue::from_static(value));
        m
    }

    /// Every `/package.Service/Method` path declared in the proto files.
    fn proto_paths() -> BTreeSet<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/proto");
        let mut paths = BTreeSet::new();
        let entries = std::fs::read_dir(&dir).expect("proto dir");
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.extension().is_none_or(|e| e != "proto") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read proto");
            let mut package = None;
            let mut service = None;
            for line in text
                .lines()
                .map(|l| l.split("//").next().unwrap_or("").trim())
            {
                let words: Vec<&str> = line
                    .split(|c: char| c.is_whitespace() || "({;".contains(c))
                    .filter(|w| !w.is_empty())
                    .collect();
                match words.as_slice() {
                    ["package", name, ..] => package = Some(name.to_string()),
                    ["service", name, ..] => service = Some(name.to_string()),
                    ["rpc", method, ..] => {
                        let package = package.as_deref().expect("package before rpc");
                        let service = service.as_deref().expect("rpc outside a service");
                        paths.insert(format!("/{package}.{service}/{method}"));
                    }
                    _ => {}
                }
            }
        }
        paths
    }

    #[test]
    fn every_rpc_in_the_protos_has_a_policy() {
        let paths = proto_paths();
        // The parser must have found the services, or this test proves nothing.
        assert!(paths.contains("/mcp.execute.v1.ExecuteService/ExecuteTool"));
        assert!(paths.contains("/mcp.raft.v1.RaftService/Vote"));
        let missing: Vec<&String> = paths.iter().filter(|p| policy(p).is_none()).collect();
        assert!(
            missing.is_empty(),
            "add these RPCs to auth::policy: {missing:?}"
        );
    }

    #[test]
    fn every_policy_names_an_rpc_in_the_protos() {
        let paths = proto_paths();
        let stale: Vec<&str> = POLICY
            .iter()
            .map(|(path, _)| *path)
            .filter(|path| !paths.contains(*path))
            .collect();
        assert!(stale.is_empty(), "policies for no RPC: {stale:?}");
        let unique: BTreeSet<&str> = POLICY.iter().map(|(path, _)| *path).collect();
        assert_eq!(unique.len(), POLICY.len(), "a path is listed twice");
    }

    #[test]
    fn the_generated_service_names_match_the_table() {
        use mcp_proto::cluster::cluster_service_server::SERVICE_NAME as CLUSTER;
        use mcp_proto::execute::execute_service_server::SERVICE_NAME as EXECUTE;
        use mcp_proto::raft::raft_service_server::SERVICE_NAME as RAFT;
        assert_eq!(policy(&format!("/{CLUSTER}/Status")), Some(Access::Open));
        assert_eq!(
            policy(&format!("/{EXECUTE}/Execute")),
            Some(Access::Execute)
        );
        assert_eq!(
            policy(&format!("/{RAFT}/AppendEntries")),
            Some(Access::Peer)
        );
    }

    #[test]
    fn the_table_names_the_access_of_each_kind() {
        assert_eq!(
            policy("/mcp.cluster.v1.ClusterService/Deploy"),
            Some(Access::Write)
        );
        assert_eq!(
            policy("/mcp.cluster.v1.ClusterService/RemoveNode"),
            Some(Access::Admin)
        );
        assert_eq!(
            policy("/mcp.cluster.v1.ClusterService/RevokeToken"),
            Some(Access::Admin)
        );
        assert_eq!(
            policy("/mcp.cluster.v1.ClusterService/ListServers"),
            Some(Access::Read)
        );
        assert_eq!(
            policy("/mcp.execute.v1.ExecuteService/ExecuteTool"),
            Some(Access::Execute)
        );
        assert_eq!(
            policy("/mcp.raft.v1.RaftService/InstallSnapshot"),
            Some(Access::Peer)
        );
        // Unknown methods, other packages and near misses have no policy.
        for path in [
            "/mcp.cluster.v1.ClusterService/Nuke",
            "/mcp.cluster.v2.ClusterService/Deploy",
            "/mcp.cluster.v1.ClusterService/deploy",
            "/mcp.cluster.v1.ClusterService/Deploy/",
            "/grpc.health.v1.Health/Check",
            "/",
            "",
        ] {
            assert_eq!(policy(path), None, "{path}");
        }
    }

    /// A token of the test registry: name, token, role, allow rules, expiry.
    type TestToken<'a> = (&'a str, &'a str, Role, &'a [&'a str], Option<u64>);

    fn registry_with(tokens: &[TestToken<'_>]) -> RegistryReader {
        use mcp_raft::registry::principals::AllowRules;
        use mcp_raft::registry::TokenRecord;
        let mut registry = mcp_raft::Registry::default();
        for (name, token, role, allow, expires_at_ms) in tokens {
            let record = TokenRecord {
                name: (*name).to_owned(),
                role: *role,
                allow: AllowRules::new(allow.iter().map(|g| (*g).to_owned()).collect())
                    .expect("rules"),
                hash: hash_token(token),
                created_at_ms: 1,
                expires_at_ms: *expires_at_ms,
            };
            registry
                .apply(&mcp_raft::Command::PutToken { record })
                .expect("put token");
        }
        RegistryReader::detached(registry)
    }

    fn auth(admin: Option<&str>) -> Authenticator {
        let registry = registry_with(&[
            ("ops", "op-token", Role::Operator, &[], None),
            ("app", "call-token", Role::Caller, &["time__*"], None),
            ("ro", "read-token", Role::Reader, &[], None),
            ("old", "old-token", Role::Admin, &[], Some(1)),
        ]);
        Authenticator::new(admin.map(str::to_owned), Some(registry))
    }

    #[test]
    fn open_without_admin_token() {
        for guard in [auth(None), auth(Some(""))] {
            assert!(!guard.enabled());
            for access in [Access::Write, Access::Admin, Access::Execute, Access::Peer] {
                let principal = guard.check(access, &HeaderMap::new()).unwrap().unwrap();
                assert_eq!(principal, Principal::anonymous());
            }
        }
    }

    #[test]
    fn each_role_gets_its_access_and_no_more() {
        let guard = auth(Some("s3cret"));
        let allowed = |token: &'static str| {
            let headers = with_auth(token);
            [
                Access::Open,
                Access::Read,
                Access::Write,
                Access::Admin,
                Access::Execute,
                Access::Peer,
            ]
            .into_iter()
            .filter(|a| guard.check(*a, &headers).is_ok())
            .collect::<Vec<_>>()
        };
        use Access::*;
        assert_eq!(
            allowed("Bearer s3cret"),
            [Open, Read, Write, Admin, Execute, Peer]
        );
        assert_eq!(allowed("Bearer op-token"), [Open, Read, Write, Execute]);
        assert_eq!(allowed("Bearer call-token"), [Open, Read, Execute]);
        assert_eq!(allowed("Bearer read-token"), [Open, Read]);
        // Expired, unknown, malformed or missing: only what is open.
        for bad in ["Bearer old-token", "Bearer nope", "call-token", "Bearer "] {
            assert_eq!(allowed(bad), [Open], "{bad}");
        }
        assert!(matches!(
            guard.check(Read, &HeaderMap::new()),
            Err(ClusterError::Unauthorized)
        ));
        assert!(matches!(
            guard.check(Write, &with_auth("Bearer read-token")),
            Err(ClusterError::Forbidden(_))
        ));
        let caller = guard
            .check(Execute, &with_auth("Bearer call-token"))
            .unwrap()
            .unwrap();
        assert_eq!((caller.name.as_str(), caller.role), ("app", Role::Caller));
        assert!(caller.may_call_tool("time", "x") && !caller.may_call_tool("notes", "x"));
    }

    #[test]
    fn the_admin_token_must_match_exactly() {
        let guard = auth(Some("s3cret"));
        for access in [Access::Write, Access::Execute, Access::Peer, Access::Read] {
            assert!(guard.check(access, &HeaderMap::new()).is_err());
            assert!(guard.check(access, &with_auth("Bearer s3cre")).is_err());
            assert!(guard.check(access, &with_auth("Bearer s3cret2")).is_err());
            assert!(guard.check(access, &with_auth("s3cret")).is_err());
            assert!(guard.check(access, &with_auth("Bearer s3cret")).is_ok());
        }
        // An open path lets a wrong credential through, without a principal.
        assert_eq!(
            guard
                .check(Access::Open, &with_auth("Bearer nope"))
                .unwrap(),
            None
        );
    }

    #[test]
    fn refusals_carry_the_error_kind() {
        let guard = auth(Some("s3cret"));
        let refused = guard
            .authorize("/mcp.execute.v1.ExecuteService/Execute", &HeaderMap::new())
            .expect_err("execute without token");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert_eq!(
            mcp_proto::contract::ErrorKind::of(&refused),
            Some(mcp_proto::contract::ErrorKind::Unauthorized)
        );
        let forbidden = guard
            .authorize(
                "/mcp.cluster.v1.ClusterService/CreateToken",
                &with_auth("Bearer op-token"),
            )
            .expect_err("operator managing tokens");
        assert_eq!(forbidden.code(), tonic::Code::PermissionDenied);
        assert!(!forbidden.message().contains("op-token"));
        // An unknown path is refused even on a node without a token.
        let unknown = auth(None)
            .authorize("/mcp.cluster.v1.ClusterService/Nuke", &HeaderMap::new())
            .expect_err("unknown path");
        assert_eq!(unknown.code(), tonic::Code::Unimplemented);
    }

    /// Stands in for the tonic routes: counts the requests that reach a handler.
    #[derive(Clone, Default)]
    struct Handler(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Service<Request<()>> for Handler {
        type Response = Response<Body>;
        type Error = std::convert::Infallible;
        type Future = Ready<Result<Response<Body>, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            futures::future::ready(Ok(Response::new(Body::empty())))
        }
    }

    #[tokio::test]
    async fn a_node_certificate_satisfies_raft_rpcs_without_a_token() {
        for (node, answered) in [(true, true), (false, false)] {
            let handler = Handler::default();
            let mut service = AuthLayer::new(Authenticator::new(Some("s3cret".into()), None))
                .layer(handler.clone());
            let mut request = Request::builder()
                .uri("http://node/mcp.raft.v1.RaftService/Vote")
                .body(())
                .expect("request");
            request.extensions_mut().insert(crate::tls::PeerCert {
                client_cert: true,
                node,
            });
            let response = service.call(request).await.expect("infallible");
            let refused = response.headers().contains_key("grpc-status");
            assert_eq!(refused, !answered, "node certificate: {node}");
            assert_eq!(
                handler.0.load(std::sync::atomic::Ordering::SeqCst) > 0,
                answered
            );
        }
    }

    /// Sends a request for `path` through the layer; the response's `grpc-status` (absent
    /// when the handler answered) and `x-mcpd-error`, and whether the handler ran.
    async fn send(
        token: Option<&str>,
        path: &str,
        auth: Option<&'static str>,
    ) -> (Option<String>, Option<String>, bool) {
        let handler = Handler::default();
        let mut service = AuthLayer::new(Authenticator::new(token.map(str::to_owned), None))
            .layer(handler.clone());
        let mut request = Request::builder().uri(format!("http://node{path}"));
        if let Some(auth) = auth {
            request = request.header(mcp_proto::AUTHORIZATION, auth);
        }
        let response = service
            .call(request.body(()).expect("request"))
            .await
            .expect("infallible");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let ran = handler.0.load(std::sync::atomic::Ordering::SeqCst) > 0;
        (header("grpc-status"), header(mcp_proto::ERROR_KIND), ran)
    }

    #[tokio::test]
    async fn the_layer_refuses_before_the_handler_runs() {
        let token = Some("s3cret");
        let execute = "/mcp.execute.v1.ExecuteService/ExecuteTool";
        // Unauthenticated is grpc-status 16.
        assert_eq!(
            send(token, execute, None).await,
            (Some("16".into()), Some("unauthorized".into()), false)
        );
        assert_eq!(
            send(token, execute, Some("Bearer wrong!")).await,
            (Some("16".into()), Some("unauthorized".into()), false)
        );
        assert_eq!(
            send(token, execute, Some("Bearer s3cret")).await,
            (None, None, true)
        );
        assert_eq!(
            send(token, "/mcp.cluster.v1.ClusterService/ListServers", None).await,
            (Some("16".into()), Some("unauthorized".into()), false)
        );
        assert_eq!(
            send(token, "/mcp.cluster.v1.ClusterService/Status", None).await,
            (None, None, true)
        );
        // Unimplemented is grpc-status 12, with or without a token configured.
        for token in [None, token] {
            let (status, _, ran) = send(token, "/mcp.cluster.v1.ClusterService/Nuke", None).await;
            assert_eq!((status.as_deref(), ran), (Some("12"), false));
        }
    }

    #[test]
    fn debug_hides_token() {
        let guard = auth(Some("s3cret"));
        assert!(!format!("{guard:?}").contains("s3cret"));
        assert!(!format!("{:?}", AuthLayer::new(guard)).contains("s3cret"));
    }
}
