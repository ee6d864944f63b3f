//! Channels to nodes. A channel is built from an address, a [`Profile`] that says who
//! is calling, and optionally [`ClientTls`]; nothing else in the workspace sets connect
//! timeouts, keep-alive or TLS.

use std::time::Duration;

use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::{Error, ErrorKind};
use crate::tls::ClientTls;

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
    endpoint_for(addr, profile, false)
}

fn endpoint_for(addr: &str, profile: Profile, tls: bool) -> Result<Endpoint, Error> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else if tls {
        format!("https://{addr}")
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

/// A plaintext channel to `addr` that dials on first use (and again after the connection
/// drops).
pub fn lazy(addr: &str, profile: Profile) -> Result<Channel, Error> {
    lazy_with(addr, profile, None)
}

/// A channel to `addr` that dials on first use, over TLS when `tls` is given.
pub fn lazy_with(addr: &str, profile: Profile, tls: Option<&ClientTls>) -> Result<Channel, Error> {
    let endpoint = endpoint_for(addr, profile, tls.is_some())?;
    Ok(match tls {
        Some(tls) => endpoint.connect_with_connector_lazy(connector(tls)),
        None => endpoint.connect_lazy(),
    })
}

/// A plaintext channel to `addr`, connected now: for one-shot commands that should fail at
/// once, naming the node, when it cannot be reached.
pub async fn connect(addr: &str, profile: Profile) -> Result<Channel, Error> {
    connect_with(addr, profile, None).await
}

/// A channel to `addr`, connected now, over TLS when `tls` is given.
pub async fn connect_with(
    addr: &str,
    profile: Profile,
    tls: Option<&ClientTls>,
) -> Result<Channel, Error> {
    let endpoint = endpoint_for(addr, profile, tls.is_some())?;
    let connected = match tls {
        Some(tls) => endpoint.connect_with_connector(connector(tls)).await,
        None => endpoint.connect().await,
    };
    connected.map_err(|e| {
        // The handshake's own words (unknown issuer, wrong name) are what the user needs.
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(err) = source {
            detail = format!("{detail}: {err}");
            source = err.source();
        }
        Error::new(
            ErrorKind::ClusterUnavailable,
            format!("cannot connect to {addr}: {detail}"),
        )
    })
}

/// The connector of TLS channels: TCP, then the rustls handshake (the endpoint's connect
/// timeout covers both).
fn connector(
    tls: &ClientTls,
) -> impl tower::Service<
    Uri,
    Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    Error = Box<dyn std::error::Error + Send + Sync>,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    let tls = tls.clone();
    tower::service_fn(move |uri: Uri| crate::tls::connect(tls.clone(), uri))
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
