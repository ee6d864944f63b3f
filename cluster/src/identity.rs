//! The node's identity, pinned in its data dir.
//!
//! The first start writes `node.json` (id, listen and advertised address). Later starts
//! read it, so a node restarted with only `--data-dir` comes back as itself, and a flag that
//! contradicts the data dir is an error rather than a silent change of identity (changing a
//! node's address is a membership change, not a restart option).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mcp_raft::NodeId;
use serde::{Deserialize, Serialize};

use crate::config::NodeConfig;
use crate::error::ClusterError;

const IDENTITY_FILE: &str = "node.json";

/// Who this node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// Node id.
    pub id: NodeId,
    /// Address the gRPC server binds.
    pub listen_addr: SocketAddr,
    /// Address peers and clients dial.
    pub advertise_addr: String,
}

impl NodeIdentity {
    /// Reads the identity from `config.data_dir`, or creates it from `config` on first start.
    pub fn load_or_create(config: &NodeConfig) -> Result<Self, ClusterError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|source| ClusterError::Io {
            context: format!("create data dir {}", dir.display()),
            source,
        })?;
        let path = dir.join(IDENTITY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let stored: NodeIdentity =
                    serde_json::from_slice(&bytes).map_err(|e| identity_error(dir, e))?;
                stored.check_flags(config)?;
                Ok(stored)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Self::from_config(config)?;
                identity.write(&path)?;
                Ok(identity)
            }
            Err(source) => Err(ClusterError::Io {
                context: format!("read {}", path.display()),
                source,
            }),
        }
    }

    fn from_config(config: &NodeConfig) -> Result<Self, ClusterError> {
        let id = config.id.ok_or_else(|| {
            ClusterError::Config(format!(
                "--id is required on the first start of a node (data dir {} is empty)",
                config.data_dir.display()
            ))
        })?;
        let listen_addr = config.listen_addr.ok_or_else(|| {
            ClusterError::Config(format!(
                "--grpc-addr is required on the first start of a node (data dir {} is empty)",
                config.data_dir.display()
            ))
        })?;
        let advertise_addr = match &config.advertise_addr {
            Some(addr) => addr.clone(),
            None if listen_addr.ip().is_unspecified() => {
                return Err(ClusterError::Config(format!(
                    "listening on {listen_addr} needs --advertise-addr: peers cannot dial an unspecified address"
                )))
            }
            None => listen_addr.to_string(),
        };
        if let Some(addr) = config.initial_cluster.get(&id) {
            if *addr != advertise_addr {
                return Err(ClusterError::Config(format!(
                    "initial_cluster lists node {id} at {addr}, but this node advertises {advertise_addr}"
                )));
            }
        }
        Ok(Self {
            id,
            listen_addr,
            advertise_addr,
        })
    }

    fn check_flags(&self, config: &NodeConfig) -> Result<(), ClusterError> {
        let dir = config.data_dir.display().to_string();
        let mismatch = |what: &str, flag: String, stored: String| ClusterError::Identity {
            dir: dir.clone(),
            reason: format!(
                "belongs to node {} with {what} {stored}, but {what} {flag} was given; \
                 use another data dir, or change the address through membership",
                self.id
            ),
        };
        if let Some(id) = config.id {
            if id != self.id {
                return Err(mismatch("id", id.to_string(), self.id.to_string()));
            }
        }
        if let Some(addr) = config.listen_addr {
            if addr != self.listen_addr {
                return Err(mismatch(
                    "listen address",
                    addr.to_string(),
                    self.listen_addr.to_string(),
                ));
            }
        }
        if let Some(addr) = &config.advertise_addr {
            if *addr != self.advertise_addr {
                return Err(mismatch(
                    "advertised address",
                    addr.clone(),
                    self.advertise_addr.clone(),
                ));
            }
        }
        Ok(())
    }

    fn write(&self, path: &Path) -> Result<(), ClusterError> {
        let io = |context: String| move |source| ClusterError::Io { context, source };
        let tmp: PathBuf = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| ClusterError::Identity {
            dir: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut file =
            std::fs::File::create(&tmp).map_err(io(format!("create {}", tmp.display())))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io(format!("write {}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(io(format!("rename to {}", path.display())))?;
        Ok(())
    }
}

/// True if `data_dir` already holds a node identity (the node was started before).
pub fn exists(data_dir: &Path) -> bool {
    data_dir.join(IDENTITY_FILE).exists()
}

/// The identity pinned in `data_dir`, or None if the node was never started there.
pub fn stored(data_dir: &Path) -> Result<Option<NodeIdentity>, ClusterError> {
    let path = data_dir.join(IDENTITY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| identity_error(data_dir, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ClusterError::Io {
            context: format!("read {}", path.display()),
            source,
        }),
    }
}

fn identity_error(dir: &Path, e: serde_json::Error) -> ClusterError {
    ClusterError::Identity {
        dir: dir.display().to_string(),
        reason: format!("{IDENTITY_FILE} is unreadable: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, id: Option<u64>, addr: Option<&str>) -> NodeConfig {
        NodeConfig {
            id,
            listen_addr: addr.map(|a| a.parse().unwrap()),
            ..NodeConfig::new(dir)
        }
    }

    #[test]
    fn restart_needs_no_flags_and_rejects_contradicting_ones() {
        let dir = tempfile::tempdir().unwrap();
        let first =
            NodeIdentity::load_or_create(&config(dir.path(), Some(3), Some("127.0.0.1:7000")))
                .unwrap();
        let again = NodeIdentity::load_or_create(&config(dir.path(), None, None)).unwrap();
        assert_eq!(first, again);
        let err = NodeIdentity::load_or_create(&config(dir.path(), Some(4), None)).unwrap_err();
        assert!(err.to_string().contains("node 3"), "{err}");
    }

    #[test]
    fn first_start_needs_id() {
        let dir = tempfile::tempdir().unwrap();
        let err = NodeIdentity::load_or_create(&config(dir.path(), None, Some("127.0.0.1:1")))
            .unwrap_err();
        assert!(err.to_string().contains("--id"), "{err}");
    }
}
