//! The node's HTTP endpoint for operations: `/metrics` (this node), `/metrics/cluster`
//! (every member in one scrape), `/healthz` (the process is up) and `/readyz` (joined,
//! a leader is known, the registry is applied).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mcp_proto::cluster::MetricsRequest;
use mcp_raft::types::Raft;
use mcp_raft::{NodeId, RegistryReader};

use crate::dataplane::DataPlane;
use crate::forward::PeerChannels;
use crate::metrics::{merge_expositions, Metrics};

/// How long the cluster view waits for each peer.
const PEER_SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
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
    pub metrics: Arc<Metrics>,
    /// Channels to peers (for the cluster view).
    pub peers: PeerChannels,
}

impl HttpState {
    /// This node's exposition.
    pub fn render(&self) -> Result<String, crate::metrics::MetricsError> {
        self.metrics.render(&self.raft, &self.registry, &self.plane)
    }
}

/// Serves the endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/metrics/cluster", get(cluster_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

fn exposition(text: String) -> Response {
    ([(header::CONTENT_TYPE, EXPOSITION)], text).into_response()
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    match state.render() {
        Ok(text) => exposition(text),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn cluster_metrics(State(state): State<Arc<HttpState>>) -> Response {
    let own = match state.render() {
        Ok(text) => text,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let peers: Vec<(NodeId, String)> = {
        let metrics = state.raft.metrics().borrow().clone();
        metrics
            .membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != state.id)
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect()
    };
    let scrapes = peers.into_iter().map(|(id, addr)| {
        let peers = state.peers.clone();
        async move {
            let mut client = peers.cluster_client(&addr).ok()?;
            match tokio::time::timeout(PEER_SCRAPE_TIMEOUT, client.metrics(MetricsRequest {})).await
            {
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
    });
    let mut texts = vec![own];
    texts.extend(
        futures::future::join_all(scrapes)
            .await
            .into_iter()
            .flatten(),
    );
    exposition(merge_expositions(&texts))
}

async fn ready(State(state): State<Arc<HttpState>>) -> Response {
    let m = state.raft.metrics().borrow().clone();
    let member = m
        .membership_config
        .membership()
        .get_node(&state.id)
        .is_some();
    let reason = if !member {
        Some("not a cluster member yet")
    } else if m.current_leader.is_none() {
        Some("no leader known")
    } else if m.last_applied.is_none() {
        Some("registry not applied yet")
    } else {
        None
    };
    match reason {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}
