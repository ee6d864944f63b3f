//! `mcpd node`: runs a cluster node until SIGINT or SIGTERM.

use mcp_cluster::ClusterNode;

use crate::cli::NodeArgs;
use crate::settings;

/// Starts the node described by `args` and serves until a shutdown signal.
pub async fn run(args: NodeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = settings::node_config(args)?;
    let node = ClusterNode::start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutdown signal received");
    node.shutdown().await?;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
