//! `mcpd node`: runs a cluster node until SIGINT or SIGTERM, or until its Raft stops on
//! a fatal error (a full disk, say): the process then exits with that error, so that a
//! supervisor restarts it once the cause is gone, instead of leaving a node that answers
//! but can never write again.

use mcp_cluster::ClusterNode;

use crate::cli::NodeArgs;
use crate::settings;

/// Starts the node described by `args` and serves until a shutdown signal.
pub async fn run(args: NodeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = settings::node_config(args.clone())?;
    crate::reload::apply_log_level(&args);
    let node = ClusterNode::start(config.clone()).await?;
    // SIGHUP and config-file changes reload settings (see `reload`); ends with the node.
    let reloader = tokio::spawn(crate::reload::watch(
        args,
        config,
        std::sync::Arc::clone(node.dataplane()),
    ));
    let _reloader = AbortOnDrop(reloader);
    let raft = node.raft().clone();
    tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutdown signal received");
            node.shutdown().await?;
            Ok(())
        }
        reason = raft_stopped(&raft) => {
            tracing::error!(%reason, "Raft stopped on a fatal error; exiting");
            let _ = node.shutdown().await;
            Err(format!("Raft stopped: {reason}").into())
        }
    }
}

/// Resolves with the reason once this node's Raft has stopped on a fatal error (storage
/// failures such as a full disk are fatal to openraft).
async fn raft_stopped(raft: &mcp_raft::types::Raft) -> String {
    let mut metrics = raft.metrics();
    loop {
        if let Err(fatal) = &metrics.borrow_and_update().running_state {
            return fatal.to_string();
        }
        if metrics.changed().await.is_err() {
            return "the Raft core ended".to_owned();
        }
    }
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

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
