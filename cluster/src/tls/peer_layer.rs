//! The rule of a TLS node for Raft RPCs: they come from a peer, and a peer proves it with a
//! node certificate of the cluster CA ([`PeerCert::node`], which tonic puts in the
//! request's extensions). A token alone is not enough: whoever holds only a token, or a
//! client certificate, cannot append to the log or call an election. Every other path is
//! left to the auth layer.

use std::task::{Context, Poll};

use futures::future::{Either, Ready};
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::Service;
use tower_layer::Layer;

use super::PeerCert;
use crate::auth::{policy, Access};
use crate::error::ClusterError;

/// Requires a node certificate for [`Access::Peer`] paths when `required`.
#[derive(Debug, Clone, Copy)]
pub struct PeerCertLayer {
    required: bool,
}

impl PeerCertLayer {
    /// `required`: the node serves TLS under a cluster CA.
    pub fn new(required: bool) -> Self {
        Self { required }
    }
}

impl<S> Layer<S> for PeerCertLayer {
    type Service = RequirePeerCert<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequirePeerCert {
            inner,
            required: self.required,
        }
    }
}

/// The service [`PeerCertLayer`] builds.
#[derive(Debug, Clone)]
pub struct RequirePeerCert<S> {
    inner: S,
    required: bool,
}

/// True when a request for `path` over a connection that proved `peer` may go on.
fn admitted(required: bool, path: &str, peer: Option<&PeerCert>) -> bool {
    !required || policy(path) != Some(Access::Peer) || peer.is_some_and(|p| p.node)
}

impl<S, B> Service<Request<B>> for RequirePeerCert<S>
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
        let path = request.uri().path();
        if admitted(self.required, path, request.extensions().get::<PeerCert>()) {
            return Either::Right(self.inner.call(request));
        }
        tracing::debug!(path, "refused: a Raft RPC without a node certificate");
        let status = tonic::Status::from(ClusterError::Unauthorized);
        Either::Left(futures::future::ready(Ok(status.into_http())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOTE: &str = "/mcp.raft.v1.RaftService/Vote";
    const DEPLOY: &str = "/mcp.cluster.v1.ClusterService/Deploy";

    #[test]
    fn raft_rpcs_need_a_node_certificate_under_tls() {
        let node = PeerCert {
            client_cert: true,
            node: true,
        };
        let client = PeerCert {
            client_cert: true,
            node: false,
        };
        assert!(admitted(true, VOTE, Some(&node)));
        assert!(!admitted(true, VOTE, Some(&client)));
        assert!(!admitted(true, VOTE, Some(&PeerCert::default())));
        assert!(!admitted(true, VOTE, None));
        // Other paths, and nodes without TLS, are the auth layer's business.
        assert!(admitted(true, DEPLOY, None));
        assert!(admitted(false, VOTE, None));
    }
}
