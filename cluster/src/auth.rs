//! Authorization of every gRPC request, in one place.
//!
//! [`POLICY`] is the table: the [`Access`] each RPC needs, keyed by its full gRPC path.
//! [`AuthLayer`] wraps the node's whole tonic server and enforces the table before any
//! handler runs, so a new service or method cannot forget its check: a path without a
//! policy is refused, and a test walks the proto files to make sure none is missing.
//!
//! Today the only credential is the admin token. With one configured, [`Access::Write`],
//! [`Access::Execute`] and [`Access::Peer`] need `authorization: Bearer <token>`;
//! [`Access::Open`] and [`Access::Read`] stay open until roles arrive. The comparison runs
//! in constant time so the token cannot be guessed byte by byte from response timing.

use std::task::{Context, Poll};

use futures::future::{Either, Ready};
use tonic::body::Body;
use tonic::codegen::http::{HeaderMap, Request, Response};
use tonic::codegen::Service;
use tower_layer::Layer;

use crate::error::ClusterError;

/// What an RPC may do, and so what it takes to be allowed to call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Liveness and discovery (`Status`): clients find the leader with it and peers
    /// gather the fleet report with it, so it stays open whatever credentials arrive.
    Open,
    /// Reads the registry, membership or metrics. Open while the admin token is the only
    /// credential (peers scrape each other's metrics without one).
    Read,
    /// Changes the registry or the membership.
    Write,
    /// Runs a request on an MCP server: tools have side effects, so this is not a read.
    Execute,
    /// Node-to-node Raft traffic; a forged one could rewrite the log.
    Peer,
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
    ("/mcp.cluster.v1.ClusterService/AddLearner", Access::Write),
    ("/mcp.cluster.v1.ClusterService/PromoteVoter", Access::Write),
    ("/mcp.cluster.v1.ClusterService/RemoveNode", Access::Write),
    (
        "/mcp.cluster.v1.ClusterService/RotateSessionKey",
        Access::Write,
    ),
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

/// Checks requests against the configured admin token.
#[derive(Clone, Default)]
pub struct AdminGuard {
    token: Option<String>,
}

impl std::fmt::Debug for AdminGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token itself.
        f.debug_struct("AdminGuard")
            .field("enabled", &self.token.is_some())
            .finish()
    }
}

impl AdminGuard {
    /// A guard for `token`; `None` lets every request through.
    pub fn new(token: Option<String>) -> Self {
        Self {
            token: token.filter(|t| !t.is_empty()),
        }
    }

    /// Allows a request needing `access` if no token is configured, the access is open
    /// to everyone, or `headers` carry the right token.
    pub fn check(&self, access: Access, headers: &HeaderMap) -> Result<(), ClusterError> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        if matches!(access, Access::Open | Access::Read) {
            return Ok(());
        }
        let presented = headers
            .get(mcp_proto::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(ClusterError::Unauthorized)
        }
    }

    /// The verdict on a request for `path`: the refusal to send back, if any.
    fn authorize(&self, path: &str, headers: &HeaderMap) -> Result<(), tonic::Status> {
        let Some(access) = policy(path) else {
            // Exactly what tonic answers for a path it does not serve, so a method added
            // without a policy looks absent rather than half-protected.
            tracing::debug!(path, "refused: no access policy");
            return Err(tonic::Status::unimplemented(format!(
                "{path} has no access policy"
            )));
        };
        self.check(access, headers).map_err(|e| {
            tracing::debug!(path, ?access, "refused: admin token missing or wrong");
            tonic::Status::from(e)
        })
    }
}

/// Enforces [`policy`] on every request to the server it wraps.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    guard: AdminGuard,
}

impl AuthLayer {
    /// A layer requiring `token` (if any) where the policy says so.
    pub fn new(token: Option<String>) -> Self {
        Self {
            guard: AdminGuard::new(token),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            guard: self.guard.clone(),
        }
    }
}

/// The service [`AuthLayer`] builds: refuses, or hands the request on untouched.
#[derive(Clone, Debug)]
pub struct Authorize<S> {
    inner: S,
    guard: AdminGuard,
}

impl<S, B> Service<Request<B>> for Authorize<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self
            .guard
            .authorize(request.uri().path(), request.headers())
        {
            Ok(()) => Either::Right(self.inner.call(request)),
            // A gRPC error travels in the response headers: answer without a body.
            Err(status) => Either::Left(futures::future::ready(Ok(status.into_http()))),
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
            Some(Access::Write)
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

    #[test]
    fn open_without_token() {
        let guard = AdminGuard::new(None);
        for access in [Access::Write, Access::Execute, Access::Peer] {
            assert!(guard.check(access, &HeaderMap::new()).is_ok());
        }
        assert!(AdminGuard::new(Some(String::new()))
            .check(Access::Write, &HeaderMap::new())
            .is_ok());
    }

    #[test]
    fn reads_stay_open_with_a_token() {
        let guard = AdminGuard::new(Some("s3cret".into()));
        assert!(guard.check(Access::Open, &HeaderMap::new()).is_ok());
        assert!(guard.check(Access::Read, &with_auth("Bearer nope")).is_ok());
    }

    #[test]
    fn writes_executes_and_raft_require_exact_token() {
        let guard = AdminGuard::new(Some("s3cret".into()));
        for access in [Access::Write, Access::Execute, Access::Peer] {
            assert!(guard.check(access, &HeaderMap::new()).is_err());
            assert!(guard.check(access, &with_auth("Bearer s3cre")).is_err());
            assert!(guard.check(access, &with_auth("Bearer s3cret2")).is_err());
            assert!(guard.check(access, &with_auth("s3cret")).is_err());
            assert!(guard.check(access, &with_auth("Bearer s3cret")).is_ok());
        }
    }

    #[test]
    fn refusals_carry_the_error_kind() {
        let guard = AdminGuard::new(Some("s3cret".into()));
        let refused = guard
            .authorize("/mcp.execute.v1.ExecuteService/Execute", &HeaderMap::new())
            .expect_err("execute without token");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert_eq!(
            mcp_proto::contract::ErrorKind::of(&refused),
            Some(mcp_proto::contract::ErrorKind::Unauthorized)
        );
        // An unknown path is refused even on a node without a token.
        let unknown = AdminGuard::new(None)
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

    /// Sends a request for `path` through the layer; the response's `grpc-status` (absent
    /// when the handler answered) and `x-mcpd-error`, and whether the handler ran.
    async fn send(
        token: Option<&str>,
        path: &str,
        auth: Option<&'static str>,
    ) -> (Option<String>, Option<String>, bool) {
        let handler = Handler::default();
        let mut service = AuthLayer::new(token.map(str::to_owned)).layer(handler.clone());
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
        let guard = AdminGuard::new(Some("s3cret".into()));
        assert!(!format!("{guard:?}").contains("s3cret"));
        assert!(!format!("{:?}", AuthLayer::new(Some("s3cret".into()))).contains("s3cret"));
    }
}
