//! Who decides where a server's instances run. This is the one home of the rule "stdio
//! and docker servers are placed by the leader's scheduler, remote HTTP servers run on
//! every node":
//! the scheduler, the data plane, metrics and listings read it here, and the Python package
//! reads it from `ServerInfo.scheduled`.

use super::spec::{ServerSpec, Transport};

/// Where the instances of a server run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementMode {
    /// The leader's scheduler places `replicas` instances on chosen nodes (stdio servers: a
    /// child process lives on one node).
    Scheduled,
    /// Every node keeps its own sessions to the server (remote HTTP endpoints: any node can
    /// reach them, so nothing needs placing).
    Everywhere,
}

impl ServerSpec {
    /// How this server's instances are placed.
    pub fn placement_mode(&self) -> PlacementMode {
        match self.transport {
            // A container, like a child process, lives on one node.
            Transport::Stdio { .. } | Transport::Docker(_) => PlacementMode::Scheduled,
            Transport::Http { .. } => PlacementMode::Everywhere,
        }
    }

    /// True if the leader's scheduler places this server's instances.
    pub fn is_scheduled(&self) -> bool {
        self.placement_mode() == PlacementMode::Scheduled
    }

    /// The instances the scheduler must place: `replicas` for a scheduled server, none for
    /// one that runs everywhere (its `replicas` only sizes each node's session pool).
    pub fn scheduled_replicas(&self) -> u32 {
        if self.is_scheduled() {
            self.replicas
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::spec::parse_json;

    #[test]
    fn stdio_servers_are_scheduled_and_http_servers_run_everywhere() {
        let stdio = parse_json(r#"{"name": "s", "command": "x", "replicas": 3}"#).unwrap();
        assert_eq!(stdio.placement_mode(), PlacementMode::Scheduled);
        assert_eq!(stdio.scheduled_replicas(), 3);

        let http = parse_json(r#"{"name": "h", "url": "http://h/mcp", "replicas": 3}"#).unwrap();
        assert_eq!(http.placement_mode(), PlacementMode::Everywhere);
        assert!(!http.is_scheduled());
        assert_eq!(http.scheduled_replicas(), 0);
    }
}
