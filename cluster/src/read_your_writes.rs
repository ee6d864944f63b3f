//! Read-your-writes on every node: a request that carries `x-mcpd-min-index` (the log
//! index of its client's last acknowledged write) waits, before any handler sees it, until
//! this node has applied that far. A client that deployed through one node and calls
//! through another finds its server instead of "unknown server" for the moment between
//! the leader's commit and this node hearing of it.
//!
//! The wait is short and never an error: a node cut off from the leader still serves from
//! what it has (the data plane keeps working without a quorum), as it would without the
//! header.

use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{BoxFuture, Either};
use mcp_raft::types::Raft;
use tonic::body::Body;
use tonic::codegen::http::{HeaderMap, Request, Response};
use tonic::codegen::Service;
use tower_layer::Layer;

/// Longest wait for this node to apply a client's last write.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Waits (at most [`MAX_WAIT`]) until this node has applied log `index`; false if it has
/// not by then (the write is committed either way: a node cut off from the leader goes on
/// with what it has). Also used by a node that forwarded a write, before it answers.
pub async fn wait_applied(raft: &Raft, index: u64) -> bool {
    raft.wait(Some(MAX_WAIT))
        .applied_index_at_least(Some(index), "a client's write applied here")
        .await
        .is_ok()
}

/// Holds requests back until this node has applied the index they name.
#[derive(Clone)]
pub struct ReadYourWritesLayer {
    raft: Raft,
}

impl ReadYourWritesLayer {
    /// A layer that waits on `raft`'s applied index.
    pub fn new(raft: Raft) -> Self {
        Self { raft }
    }
}

impl<S> Layer<S> for ReadYourWritesLayer {
    type Service = ReadYourWrites<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReadYourWrites {
            inner,
            raft: self.raft.clone(),
        }
    }
}

/// The service [`ReadYourWritesLayer`] builds.
#[derive(Clone)]
pub struct ReadYourWrites<S> {
    inner: S,
    raft: Raft,
}

/// The index a request asks this node to have applied, if any.
fn min_index(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(mcp_proto::MIN_INDEX)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

impl<S, B> Service<Request<B>> for ReadYourWrites<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let behind = min_index(request.headers()).filter(|wanted| {
            let applied = self.raft.metrics().borrow().last_applied.map(|l| l.index);
            applied.unwrap_or(0) < *wanted
        });
        let Some(wanted) = behind else {
            return Either::Left(self.inner.call(request));
        };
        // The service made ready by `poll_ready` is the one that must take the request.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let raft = self.raft.clone();
        Either::Right(Box::pin(async move {
            if !wait_applied(&raft, wanted).await {
                tracing::debug!(
                    wanted,
                    "a client's last write is not applied here yet; serving what this node has"
                );
            }
            inner.call(request).await
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_number_is_an_index() {
        let mut headers = HeaderMap::new();
        assert_eq!(min_index(&headers), None);
        headers.insert(mcp_proto::MIN_INDEX, "42".parse().expect("header value"));
        assert_eq!(min_index(&headers), Some(42));
        headers.insert(mcp_proto::MIN_INDEX, "soon".parse().expect("header value"));
        assert_eq!(min_index(&headers), None);
    }
}
