//! The node's HTTP endpoint for operations: `/metrics` (this node), `/metrics/cluster`
//! (every member in one scrape), `/healthz` (the process is up) and `/readyz` (joined, and
//! the applied registry has caught up with the leader's).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::FutureExt;
use mcp_proto::cluster::{MetricsRequest, StatusRequest};
use mcp_raft::types::Raft;
use mcp_raft::{NodeId, RegistryReader};

use crate::dataplane::DataPlane;
use crate::forward::PeerChannels;
use crate::membership::MembershipView;
use crate::metrics::{merge_expositions, MetricsError, NodeMetrics};

/// How long the cluster view waits for each peer.
const PEER_SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a readiness check waits for the leader's (or its own Raft core's) answer.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the endpoints read.
pub struct HttpState {
    /// This node.
    pub id: NodeId,
    /// Raft, for role and membership.
    pub raft: Raft,
    /// The applied registry.
    pub registry: RegistryReader,
    /// The data plane.
    pub plane: Arc<DataPlane>,
    /// The metrics.
    pub metrics: Arc<NodeMetrics>,
    /// Channels to peers (for the cluster view).
    pub peers: PeerChannels,
}

impl HttpState {
    /// This node's exposition.
    pub async fn render(&self) -> Result<String, MetricsError> {
        self.metrics
            .render(&self.raft, &self.registry, &self.plane)
            .await
    }
}

/// What the handlers share: the node's state, and whether it has caught up once.
struct Endpoints {
    state: Arc<HttpState>,
    caught_up: AtomicBool,
}

/// Serves the endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: crate::tls::incoming::HttpListener,
    state: Arc<HttpState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let endpoints = Arc::new(Endpoints {
        state,
        caught_up: AtomicBool::new(false),
    });
    // Catching up is checked in the background too, so that readiness does not depend on
    // whether anybody asked before the leader went away.
    let watcher = tokio::spawn(watch_catch_up(Arc::clone(&endpoints)));
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/metrics/cluster", get(cluster_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(endpoints);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    watcher.abort();
    served
}

/// How often the background check looks whether the node has caught up.
const CATCH_UP_POLL: Duration = Duration::from_millis(500);

async fn watch_catch_up(endpoints: Arc<Endpoints>) {
    while readiness(&endpoints).await.is_err() {
        tokio::time::sleep(CATCH_UP_POLL).await;
    }
}

fn exposition(text: String) -> Response {
    ([(header::CONTENT_TYPE, EXPOSITION)], text).into_response()
}

async fn metrics(State(endpoints): State<Arc<Endpoints>>) -> Response {
    match endpoints.state.render().await {
        Ok(text) => exposition(text),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn cluster_metrics(State(endpoints): State<Arc<Endpoints>>) -> Response {
    let state = &endpoints.state;
    let peers = MembershipView::of(&state.raft).peers();
    let scrapes = peers.into_iter().map(|(id, addr)| {
        let peers = state.peers.clone();
        async move {
            let mut client = peers.cluster_client(&addr).ok()?;
            // Reads need a credential when the cluster has one: the node's own.
            let request = peers.credentials().request(MetricsRequest {});
            match tokio::time::timeout(PEER_SCRAPE_TIMEOUT, client.metrics(request)).await {
                Ok(Ok(reply)) => Some(reply.into_inner().text),
                Ok(Err(e)) => {
                    tracing::debug!(peer = id, error = %e, "peer metrics unavailable");
                    None
                }
                Err(_) => {
                    tracing::debug!(peer = id, "peer metrics timed out");
                    None
                }
            }
        }
        .map(move |text| (id, text))
    });
    let gathered = futures::future::join_all(scrapes).await;
    // A peer that did not answer is missing from the view; this gauge says which, so the
    // view's gaps are visible (and alertable) rather than silent.
    let answered: Vec<(NodeId, bool)> = gathered
        .iter()
        .map(|(id, text)| (*id, text.is_some()))
        .collect();
    state.metrics.record_cluster_view(&answered);
    // Rendered after the peers, so that the view carries the gauge just set.
    let own = match state.render().await {
        Ok(text) => text,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let mut texts = vec![own];
    texts.extend(gathered.into_iter().filter_map(|(_, text)| text));
    exposition(merge_expositions(&texts))
}

async fn ready(State(endpoints): State<Arc<Endpoints>>) -> Response {
    match readiness(&endpoints).await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

/// Ready = a member whose applied registry has reached what the leader had applied when
/// asked. Once reached, the node stays ready even when no leader is known: calls need no
/// quorum, and taking every node out of a load balancer during an election would turn a
/// control-plane pause into an outage.
async fn readiness(endpoints: &Endpoints) -> Result<(), String> {
    let state = &endpoints.state;
    let m = state.raft.metrics().borrow().clone();
    let view = MembershipView::from_metrics(&m);
    if !view.is_member() {
        return Err("not a cluster member yet".to_owned());
    }
    if endpoints.caught_up.load(Ordering::Acquire) {
        return Ok(());
    }
    let Some(leader) = view.leader else {
        return Err("no leader known yet".to_owned());
    };
    let applied = m.last_applied.map_or(0, |l| l.index);
    let target = if leader == state.id {
        tokio::time::timeout(
            READY_CHECK_TIMEOUT,
            state
                .raft
                .with_raft_state(|s| s.committed.map_or(0, |l| l.index)),
        )
        .await
        .map_err(|_| "Raft core busy".to_owned())?
        .map_err(|e| e.to_string())?
    } else {
        let addr = view
            .addr(leader)
            .ok_or_else(|| format!("leader {leader} has no address"))?;
        let mut client = state
            .peers
            .cluster_client(addr)
            .map_err(|e| e.to_string())?;
        let reply = tokio::time::timeout(READY_CHECK_TIMEOUT, client.status(StatusRequest {}))
            .await
            .map_err(|_| format!("leader {leader} did not answer"))?
            .map_err(|e| format!("leader {leader}: {}", e.message()))?;
        reply.into_inner().last_applied_index.unwrap_or(0)
    };
    if applied >= target {
        endpoints.caught_up.store(true, Ordering::Release);
        Ok(())
    } else {
        Err(format!("catching up: applied index {applied} of {target}"))
    }
}
