//! Version skew between nodes: which node may join a cluster.
//!
//! Every node announces its mcpd version and the newest storage format it reads in
//! `Status` (`mcp_storage::STORAGE_FORMAT`: the Raft log, snapshots and the registry
//! encoding). A learner is added only if it reads the format this node writes, so a node
//! of an older release cannot join a cluster whose log it would misread; the operator
//! gets an error naming both versions instead of a node that fails on its first entry.
//! A node that does not answer is not judged here (adding it waits for it, as before),
//! and one that announces no format predates the field: it reads format 1.

use std::time::Duration;

use mcp_proto::cluster::StatusRequest;
use mcp_raft::NodeId;

use crate::error::ClusterError;
use crate::forward::PeerChannels;

/// How long the joining node may take to answer its status.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a node announces about its release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// mcpd version ("" from nodes before the field).
    pub version: String,
    /// Newest storage format it reads (0 from nodes before the field, meaning 1).
    pub storage_format: u32,
}

impl Release {
    /// This build.
    pub fn this() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            storage_format: mcp_storage::STORAGE_FORMAT,
        }
    }

    fn format(&self) -> u32 {
        self.storage_format.max(1)
    }

    fn shown(&self) -> &str {
        if self.version.is_empty() {
            "before 0.1.0"
        } else {
            &self.version
        }
    }
}

/// Refuses node `id` running `joiner` as a member of a cluster whose node runs `cluster`.
pub fn joinable(id: NodeId, joiner: &Release, cluster: &Release) -> Result<(), ClusterError> {
    if joiner.format() < cluster.format() {
        return Err(ClusterError::Membership(format!(
            "node {id} runs mcpd {} and reads storage format {} at most, but this cluster \
             (mcpd {}) writes format {}: upgrade node {id} before adding it",
            joiner.shown(),
            joiner.format(),
            cluster.shown(),
            cluster.format()
        )));
    }
    Ok(())
}

/// Asks the node at `addr` for its release and checks it against this build.
pub async fn check_joiner(
    peers: &PeerChannels,
    id: NodeId,
    addr: &str,
) -> Result<(), ClusterError> {
    let mut client = peers.cluster_client(addr)?;
    let mut request = tonic::Request::new(StatusRequest {});
    peers.authorize(request.metadata_mut());
    let reply = match tokio::time::timeout(PROBE_TIMEOUT, client.status(request)).await {
        Ok(Ok(reply)) => reply.into_inner(),
        // Not answering (yet): openraft's own catch-up wait decides.
        _ => return Ok(()),
    };
    let joiner = Release {
        version: reply.version,
        storage_format: reply.storage_format,
    };
    joinable(id, &joiner, &Release::this())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(version: &str, storage_format: u32) -> Release {
        Release {
            version: version.to_owned(),
            storage_format,
        }
    }

    #[test]
    fn an_older_format_may_not_join_and_the_error_names_both_releases() {
        let cluster = release("0.2.0", 2);
        let err = joinable(4, &release("0.1.0", 1), &cluster)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("node 4 runs mcpd 0.1.0")
                && err.contains("format 1")
                && err.contains("writes format 2"),
            "{err}"
        );
        // Nodes from before the field read format 1.
        assert!(joinable(4, &release("", 0), &cluster).is_err());
        assert!(joinable(4, &release("", 0), &release("0.1.0", 1)).is_ok());
        // Same or newer is fine: a newer node reads older formats.
        assert!(joinable(4, &release("0.2.0", 2), &cluster).is_ok());
        assert!(joinable(4, &release("0.3.0", 3), &cluster).is_ok());
    }
}
