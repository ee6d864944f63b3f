//! `mcpd dev`: a single-node cluster in a temporary directory, for trying things out.
//! Everything is deleted when it stops.

use std::collections::BTreeMap;
use std::time::Duration;

use mcp_cluster::proposer::Proposed;
use mcp_cluster::{ClusterNode, NodeConfig, RaftTuning};

use crate::cli::DevArgs;
use crate::node::shutdown_signal;

/// Deploys the bundled `mcp-test-server` (found next to this binary) as server `demo`,
/// and returns the lines that tell the user how to call it.
async fn deploy_demo(node: &ClusterNode) -> String {
    let Some(server) = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("mcp-test-server"))
        .filter(|path| path.exists())
    else {
        return String::new();
    };
    let spec = serde_json::json!({"name": "demo", "command": server, "replicas": 1});
    let Ok(spec) = mcp_raft::registry::spec::from_value(spec) else {
        return String::new();
    };
    let command = mcp_raft::Command::PutServer {
        spec,
        expected_revision: None,
    };
    // The single node elects itself at once; proposing before that would only be refused.
    let elected = node
        .raft()
        .wait(Some(Duration::from_secs(5)))
        .current_leader(node.id(), "dev node elects itself")
        .await;
    if let Err(e) = elected {
        tracing::warn!(error = %e, "could not deploy the demo server: no leader");
        return String::new();
    }
    // Through the proposer, so the demo deploy is counted like any other write.
    match node.propose(command).await {
        Proposed::Applied { result: Ok(_), .. } => {
            "  mcpd call demo echo '{\"text\": \"hello\"}'\n  mcpd exec demo '{\"method\": \"tools/list\"}'\n".to_owned()
        }
        other => {
            tracing::warn!(fate = ?other, "could not deploy the demo server");
            String::new()
        }
    }
}

/// `mcpd dev --tls`: a CA, the node's and a client's certificates in `<data dir>/certs`,
/// and the line that points the CLI at the CA.
fn dev_tls(
    data_dir: &std::path::Path,
) -> Result<(mcp_cluster::tls::TlsSettings, String), crate::certs::CertsError> {
    let dir = data_dir.join("certs");
    let written = crate::certs::init(&dir, &["dev".to_owned()], &[], 1)?;
    let settings = mcp_cluster::tls::TlsSettings {
        cert: crate::certs::node_cert_path(&dir, "dev"),
        key: crate::certs::node_key_path(&dir, "dev"),
        ca: written.ca.clone(),
        client_auth: mcp_cluster::tls::ClientAuth::Optional,
        metrics: false,
        gateway: false,
    };
    let line = format!("  export MCPD_CA_FILE={}\n", written.ca.display());
    Ok((settings, line))
}

/// Runs the dev node until Ctrl-C.
pub async fn run(args: DevArgs) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new().prefix("mcpd-dev-").tempdir()?;
    let addr = args.grpc_addr.to_string();
    let metrics_addr = match args.metrics_addr {
        Some(addr) => addr,
        None => crate::settings::derived_metrics_addr(args.grpc_addr)?,
    };
    let config = NodeConfig {
        id: Some(1),
        listen_addr: Some(args.grpc_addr),
        initial_cluster: BTreeMap::from([(1, addr.clone())]),
        raft: RaftTuning {
            leader_election_timeout: Duration::from_millis(300),
            heartbeat_interval: Duration::from_millis(100),
            ..RaftTuning::default()
        },
        metrics_addr: Some(metrics_addr),
        gateway: Some(mcp_cluster::gateway::GatewayConfig {
            addr: args.mcp_addr,
            token: None,
            allowed_origins: Vec::new(),
            session_lifetime: mcp_cluster::gateway::session::DEFAULT_SESSION_LIFETIME,
            oauth: None,
        }),
        ..NodeConfig::new(dir.path())
    };
    let (config, tls_line) = if args.tls {
        let (tls, line) = dev_tls(dir.path())?;
        (
            NodeConfig {
                tls: Some(tls),
                ..config
            },
            line,
        )
    } else {
        (config, String::new())
    };
    let node = ClusterNode::start(config).await?;
    let demo = deploy_demo(&node).await;
    let endpoint = if addr == "127.0.0.1:7400" {
        String::new()
    } else {
        format!(" --endpoint {addr}")
    };
    eprintln!(
        "\nmcpd dev: a single-node cluster is running at {addr}\n\
         metrics: http://{}/metrics\n\
         MCP endpoint (all tools as one server): http://{}/mcp\n\
         data dir (deleted on exit): {}\n\n\
         Try, in another terminal:\n{tls_line}  \
         mcpd{endpoint} status\n{demo}  \
         echo '{{\"name\": \"time\", \"command\": \"python3\", \"args\": [\"-m\", \"mcp_server_time\"]}}' | mcpd{endpoint} deploy -f -\n  \
         mcpd{endpoint} ls\n  \
         mcpd{endpoint} scale time 2\n  \
         mcpd{endpoint} undeploy time\n\n\
         Press Ctrl-C to stop.\n",
        metrics_addr,
        args.mcp_addr,
        dir.path().display()
    );
    shutdown_signal().await;
    node.shutdown().await?;
    Ok(())
}
