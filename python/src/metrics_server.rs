//! The manager's own Prometheus endpoint (`metrics_port`, `metrics_path`): every node's
//! exposition merged into one scrape, served over plain HTTP on loopback by default.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::errors::ClientError;
use mcp_client::ClusterClient;

const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Where to serve.
#[derive(Debug, Clone)]
pub struct MetricsEndpoint {
    /// Listen address (`metrics_host`, default 127.0.0.1, and `metrics_port`; port 0
    /// picks a free one).
    pub addr: SocketAddr,
    /// URL path (`metrics_path`), starting with `/`.
    pub path: String,
}

/// A running endpoint.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds and serves.
    pub async fn start(
        endpoint: MetricsEndpoint,
        client: Arc<ClusterClient>,
    ) -> Result<Self, ClientError> {
        let listener = tokio::net::TcpListener::bind(endpoint.addr)
            .await
            .map_err(|e| {
                ClientError::config(
                    "metrics_port",
                    format!("cannot serve metrics on {}: {e}", endpoint.addr),
                )
            })?;
        let addr = listener.local_addr().map_err(|e| {
            ClientError::config(
                "metrics_port",
                format!("cannot read the metrics address: {e}"),
            )
        })?;
        let app = axum::Router::new()
            .route(&endpoint.path, get(scrape))
            .with_state(client);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %e, "metrics endpoint stopped");
            }
        });
        tracing::info!(%addr, path = %endpoint.path, "serving Prometheus metrics");
        Ok(Self { addr, stop, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn scrape(State(client): State<Arc<ClusterClient>>) -> Response {
    match crate::backend::prometheus_text(&client).await {
        Ok(text) => ([(header::CONTENT_TYPE, EXPOSITION)], text).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}
