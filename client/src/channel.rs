//! Channels to nodes. A channel is built from an address and a [`Profile`] that says who
//! is calling; nothing else in the workspace sets connect timeouts or keep-alive.

use std::time::Duration;

use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::{Error, ErrorKind};

/// Who opens the channel, which decides its timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Node to node: Raft RPCs, forwarded writes and executes, fleet probes. Peers are
    /// close, so a connect that takes longer than half a second means "unreachable"; and
    /// HTTP/2 pings on every connection, also while idle, notice a peer cut off without its
    /// connections being closed (a partition, a killed container) within about three
    /// seconds, instead of leaving requests queued on a dead connection until TCP gives up.
    Peer,
    /// A client of the cluster (the CLI, the Python package): may sit farther away. Pings
    /// notice a node that vanished while a long call was in flight; a live node answers
    /// them, so long calls are unaffected.
    Client,
}

impl Profile {
    /// How long connecting may take before the node counts as unreachable.
    pub fn connect_timeout(self) -> Duration {
        match self {
            Profile::Peer => Duration::from_millis(500),
            Profile::Client => Duration::from_secs(2),
        }
    }

    /// Interval between HTTP/2 pings and how long a ping may go unanswered.
    pub fn keepalive(self) -> (Duration, Duration) {
        match self {
            Profile::Peer => (Duration::from_secs(1), Duration::from_secs(2)),
            Profile::Client => (Duration::from_secs(10), Duration::from_secs(5)),
        }
    }
}

/// The endpoint for `addr` (`HOST:PORT`, or a URL with a scheme).
pub fn endpoint(addr: &str, profile: Profile) -> Result<Endpoint, Error> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let (interval, timeout) = profile.keepalive();
    Ok(Endpoint::from_shared(uri)
        .map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("node address {addr:?} is not HOST:PORT: {e}"),
            )
            .with_field("address")
        })?
        .connect_timeout(profile.connect_timeout())
        .tcp_nodelay(true)
        .http2_keep_alive_interval(interval)
        .keep_alive_timeout(timeout)
        .keep_alive_while_idle(true))
}

/// A channel to `addr` that dials on first use (and again after the connection drops).
pub fn lazy(addr: &str, profile: Profile) -> Result<Channel, Error> {
    Ok(endpoint(addr, profile)?.connect_lazy())
}

/// A channel to `addr`, connected now: for one-shot commands that should fail at once,
/// naming the node, when it cannot be reached.
pub async fn connect(addr: &str, profile: Profile) -> Result<Channel, Error> {
    endpoint(addr, profile)?.connect().await.map_err(|e| {
        Error::new(
            ErrorKind::ClusterUnavailable,
            format!("cannot connect to {addr}: {e}"),
        )
    })
}

/// Buffer of each in-process connection, each way.
const IN_PROCESS_BUFFER: usize = 256 * 1024;

/// A channel to a node served in this process without any socket: each connection is an
/// in-memory pipe whose server end is handed to the node through `connections` (see
/// `ClusterNode::in_process_channel`). Nothing outside the process can reach such a node.
pub fn in_process(connections: mpsc::Sender<DuplexStream>) -> Channel {
    let connector = tower::service_fn(move |_: Uri| {
        let connections = connections.clone();
        async move {
            let (client, server) = tokio::io::duplex(IN_PROCESS_BUFFER);
            connections.send(server).await.map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "the node stopped")
            })?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(client))
        }
    });
    // The URI is never resolved: the connector above is the only way in.
    Endpoint::from_static("http://in-process.invalid").connect_with_connector_lazy(connector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_and_without_scheme() {
        assert!(endpoint("127.0.0.1:7400", Profile::Peer).is_ok());
        assert!(endpoint("http://127.0.0.1:7400", Profile::Client).is_ok());
        let bad = endpoint("not an address", Profile::Client).expect_err("refused");
        assert_eq!(bad.kind, ErrorKind::Config);
        assert!(bad.message.contains("not an address"), "{bad}");
    }
}
