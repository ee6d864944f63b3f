//! `mcpd dev`: a single-node cluster in a temporary directory, for trying things out.
//! Everything is deleted when it stops.

use std::collections::BTreeMap;
use std::time::Duration;

use mcp_cluster::{ClusterNode, NodeConfig, RaftTuning};

use crate::cli::DevArgs;
use crate::node::shutdown_signal;

/// Runs the dev node until Ctrl-C.
pub async fn run(args: DevArgs) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new().prefix("mcpd-dev-").tempdir()?;
    let addr = args.grpc_addr.to_string();
    let config = NodeConfig {
        id: Some(1),
        listen_addr: Some(args.grpc_addr),
        advertise_addr: None,
        data_dir: dir.path().to_path_buf(),
        initial_cluster: BTreeMap::from([(1, addr.clone())]),
        admin_token: None,
        raft: RaftTuning {
            leader_election_timeout: Duration::from_millis(300),
            heartbeat_interval: Duration::from_millis(100),
            ..RaftTuning::default()
        },
        write_timeout: Duration::from_secs(5),
        dataplane: Default::default(),
    };
    let node = ClusterNode::start(config).await?;
    let endpoint = if addr == "127.0.0.1:7400" {
        String::new()
    } else {
        format!(" --endpoint {addr}")
    };
    eprintln!(
        "\nmcpd dev: a single-node cluster is running at {addr}\n\
         data dir (deleted on exit): {}\n\n\
         Try, in another terminal:\n  \
         mcpd{endpoint} status\n  \
         echo '{{\"name\": \"time\", \"command\": \"python3\", \"args\": [\"-m\", \"mcp_server_time\"]}}' | mcpd{endpoint} deploy -f -\n  \
         mcpd{endpoint} ls\n  \
         mcpd{endpoint} scale time 2\n  \
         mcpd{endpoint} undeploy time\n\n\
         Press Ctrl-C to stop.\n",
        dir.path().display()
    );
    shutdown_signal().await;
    node.shutdown().await?;
    Ok(())
}
