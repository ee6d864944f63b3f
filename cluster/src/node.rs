//! Assembles and runs one cluster node.
//!
//! Start order: identity from the data dir, sled, log store and state machine, Raft, then
//! the gRPC listener (bound before anything is announced, so a taken port fails the start;
//! an `in_process` node binds nothing and is reached through memory), and finally, on a
//! pristine node listed in `initial_cluster`, the cluster bootstrap.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use mcp_proto::cluster::cluster_service_server::ClusterServiceServer;
use mcp_proto::execute::execute_service_server::ExecuteServiceServer;
use mcp_proto::raft::raft_service_server::RaftServiceServer;
use mcp_raft::network::GrpcNetworkFactory;
use mcp_raft::types::Raft;
use mcp_raft::{Command, NodeId, RegistryReader, RegistryStateMachine};
use mcp_storage::SledLogStore;
use openraft::error::{InitializeError, RaftError};
use openraft::BasicNode;
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;

use crate::auth::{AuthLayer, Authenticator};
use crate::batcher::ProposalBatcher;
use crate::config::NodeConfig;
use crate::dataplane::DataPlane;
use crate::error::ClusterError;
use crate::forward::PeerChannels;
use crate::grpc::{ClusterApi, ExecuteApi, RaftApi};
use crate::http::HttpState;
use crate::identity::NodeIdentity;
use crate::metrics::NodeMetrics;
use crate::peer_forwarder::GrpcForwarder;
use crate::proposer::{Proposed, Proposer};
use crate::read_your_writes::ReadYourWritesLayer;
use crate::tls::incoming::HttpListener;
use crate::tls::peer_layer::PeerCertLayer;
use crate::tls::NodeTls;

/// sled page cache per node; the registry is small, the default 1 GiB would be waste.
const SLED_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// A running node: Raft plus its gRPC server.
pub struct ClusterNode {
    identity: NodeIdentity,
    local_addr: SocketAddr,
    raft: Raft,
    registry: RegistryReader,
    stop_server: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    leader_duties: JoinHandle<()>,
    scheduler: JoinHandle<()>,
    /// Reloads the TLS files when they change (TLS nodes only).
    tls_watch: Option<JoinHandle<()>>,
    dataplane: Arc<DataPlane>,
    /// The proposer with the write timeout, for commands proposed by the program that runs
    /// the node (counted like every other proposal).
    proposer: Proposer,
    stop_http: tokio::sync::watch::Sender<bool>,
    /// Where in-process connections are handed to the server (in-process nodes only).
    in_process: Option<mpsc::Sender<DuplexStream>>,
}

/// Connections waiting to be accepted by an in-process server.
const IN_PROCESS_BACKLOG: usize = 64;

/// Where the gRPC server's connections come from.
enum Incoming {
    Tcp(tokio::net::TcpListener),
    InProcess(mpsc::Sender<DuplexStream>, mpsc::Receiver<DuplexStream>),
}

impl ClusterNode {
    /// Starts a node from `config`.
    pub async fn start(config: NodeConfig) -> Result<Self, ClusterError> {
        // Before anything is written: no serving beyond loopback without authentication,
        // and the TLS files read and checked.
        let grpc = match config.listen_addr {
            _ if config.in_process => None,
            Some(addr) => Some(addr),
            None => crate::identity::stored(&config.data_dir)?.map(|stored| stored.listen_addr),
        };
        crate::hardening::check_exposure(&config, grpc)?;
        let tls = config.tls.clone().map(NodeTls::load).transpose()?;
        let identity = NodeIdentity::load_or_create(&config)?;
        // Peers authorize like any client: executes forwarded to them carry the token. Built
        // first so a token that cannot be sent as a header fails the start before anything.
        let peers = PeerChannels::with_token(config.admin_token.as_deref())?
            .with_tls(tls.as_ref().map(NodeTls::peer_client).transpose()?);
        let raft_config = Arc::new(config.raft.to_openraft()?);

        let db = mcp_storage::open_db(&config.data_dir.join("raft.db"), SLED_CACHE_BYTES)?;
        let log_store = SledLogStore::open(&db)?;
        let metrics = Arc::new(
            NodeMetrics::new(identity.id).map_err(|e| ClusterError::Fatal {
                node: identity.id,
                reason: e.to_string(),
            })?,
        );
        let state_machine =
            RegistryStateMachine::open(&db)?.with_apply_observer(metrics.apply_observer());
        let registry = state_machine.reader();
        let network =
            GrpcNetworkFactory::new(peers.credentials().clone()).with_tls(peers.tls().cloned());
        let raft = Raft::new(identity.id, raft_config, network, log_store, state_machine)
            .await
            .map_err(|e| ClusterError::Fatal {
                node: identity.id,
                reason: e.to_string(),
            })?;

        let incoming = if config.in_process {
            let (connections, accepted) = mpsc::channel(IN_PROCESS_BACKLOG);
            // The node reaches itself (fleet reports) through memory, like its clients.
            let own = mcp_client::channel::in_process(connections.clone());
            peers.pin(&identity.advertise_addr, own);
            Incoming::InProcess(connections, accepted)
        } else {
            let listener = tokio::net::TcpListener::bind(identity.listen_addr)
                .await
                .map_err(|source| ClusterError::Io {
                    context: format!("bind gRPC address {}", identity.listen_addr),
                    source,
                })?;
            Incoming::Tcp(listener)
        };
        let local_addr = match &incoming {
            Incoming::Tcp(listener) => {
                listener.local_addr().map_err(|source| ClusterError::Io {
                    context: "read bound address".to_owned(),
                    source,
                })?
            }
            Incoming::InProcess(..) => identity.listen_addr,
        };

        let mut plane_config = config.dataplane.clone();
        plane_config.containers = crate::dataplane::upstream::docker::ContainerScope::for_node(
            "mcp-rust",
            identity.id,
            &config.data_dir,
        )
        .map_err(|source| ClusterError::Io {
            context: "read or write the container scope in the data dir".to_owned(),
            source,
        })?;
        let guard_metrics = crate::guards::GuardMetrics::register(metrics.prometheus_registry())
            .map_err(|e| ClusterError::Fatal {
                node: identity.id,
                reason: e.to_string(),
            })?;
        let guards = Arc::new(crate::guards::Guards::new(
            identity.id,
            config.secrets_keyring.clone(),
            Some(guard_metrics),
        ));
        let dataplane = DataPlane::start_with_guards(
            identity.id,
            plane_config,
            registry.clone(),
            Arc::new(GrpcForwarder::new(
                identity.id,
                peers.clone(),
                config.dataplane.max_message_bytes,
                registry.clone(),
            )),
            Arc::clone(metrics.dataplane()),
            Arc::clone(&guards),
        );
        let authenticator = Authenticator::new(config.admin_token.clone(), Some(registry.clone()));
        let audit = Arc::new(crate::audit::Audit::new(
            identity.id,
            config.audit_log.as_deref(),
        )?);
        let raft_api = RaftApi::new(raft.clone());
        let proposer = Proposer::new(raft.clone(), Arc::clone(metrics.proposals()));
        let timed_proposer = proposer.clone().with_timeout(config.write_timeout);
        let cluster_api = ClusterApi::new(
            identity.id,
            raft.clone(),
            registry.clone(),
            peers.clone(),
            config.write_timeout,
            ProposalBatcher::start(timed_proposer.clone()),
        )
        .with_dataplane(Arc::clone(&dataplane), Arc::clone(&metrics))
        .with_node_tags(config.tags.clone())
        .with_auth(authenticator.enabled())
        .with_secrets_keyring(config.secrets_keyring.clone());
        guards
            .observer()
            .set_writer(Arc::new(cluster_api.guard_handlers()));
        dataplane.set_demand_writer(Arc::new(cluster_api.demand_handlers()));
        dataplane.set_list_change_writer(Arc::new(cluster_api.view_handlers()));
        crate::guards::spawn_share_watch(Arc::clone(&guards), raft.clone(), registry.clone());
        let http_state = Arc::new(HttpState {
            id: identity.id,
            raft: raft.clone(),
            registry: registry.clone(),
            plane: Arc::clone(&dataplane),
            metrics: Arc::clone(&metrics),
            peers: peers.clone(),
        });
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stop_rx.await;
        };
        let router = tonic::transport::Server::builder()
            .max_concurrent_streams(Some(crate::hardening::MAX_CONCURRENT_STREAMS))
            .http2_max_header_list_size(Some(crate::hardening::MAX_HEADER_LIST_BYTES))
            // Under TLS, Raft RPCs need a node certificate of the cluster CA.
            .layer(PeerCertLayer::new(tls.is_some()))
            // Every RPC of every service is authorized here, before any handler runs.
            .layer(AuthLayer::new(authenticator.clone()).with_audit(Arc::clone(&audit)))
            // A client's request waits here until this node has applied its last write.
            .layer(ReadYourWritesLayer::new(raft.clone()))
            .add_service(
                RaftServiceServer::new(raft_api)
                    .max_decoding_message_size(mcp_proto::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(mcp_proto::MAX_MESSAGE_BYTES),
            )
            .add_service(
                ClusterServiceServer::new(cluster_api.clone())
                    .max_decoding_message_size(mcp_proto::MAX_MESSAGE_BYTES),
            )
            .add_service(
                ExecuteServiceServer::new(ExecuteApi::new(
                    Arc::clone(&dataplane),
                    Arc::clone(&audit),
                ))
                .max_decoding_message_size(mcp_proto::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(mcp_proto::MAX_MESSAGE_BYTES),
            );
        let (server, in_process) = match incoming {
            Incoming::Tcp(listener) => match &tls {
                Some(tls) => {
                    let config = tls.server_config(&[mcp_client::tls::ALPN_H2])?;
                    let accepted = crate::tls::incoming::accept(listener, config, tls.clone());
                    let incoming = ReceiverStream::new(accepted).map(Ok::<_, std::io::Error>);
                    let server = router.serve_with_incoming_shutdown(incoming, shutdown);
                    (tokio::spawn(server), None)
                }
                None => {
                    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
                    let server = router.serve_with_incoming_shutdown(incoming, shutdown);
                    (tokio::spawn(server), None)
                }
            },
            Incoming::InProcess(connections, accepted) => {
                let incoming = ReceiverStream::new(accepted).map(Ok::<_, std::io::Error>);
                let server = router.serve_with_incoming_shutdown(incoming, shutdown);
                (tokio::spawn(server), Some(connections))
            }
        };
        let (stop_http, mut http_stopped) = tokio::sync::watch::channel(false);
        if let Some(addr) = config.metrics_addr {
            let metrics_tls = tls.as_ref().filter(|t| t.settings().metrics);
            let listener = HttpListener::bind(addr, metrics_tls, "metrics").await?;
            tracing::info!(%addr, scheme = listener.scheme(), "serving /metrics, /healthz and /readyz");
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = http_stopped.changed().await;
                };
                if let Err(e) = crate::http::serve(listener, http_state, shutdown).await {
                    tracing::warn!(error = %e, "metrics endpoint stopped");
                }
            });
        }
        if let Some(gateway) = &config.gateway {
            let addr = gateway.addr;
            let gateway_tls = tls.as_ref().filter(|t| t.settings().gateway);
            let listener = HttpListener::bind(addr, gateway_tls, "MCP gateway").await?;
            // Clients present the gateway's own token, a cluster token (admin or API) or,
            // with OAuth configured, a JWT access token.
            let auth = crate::gateway::authn::GatewayAuth::new(
                gateway.token.clone(),
                authenticator.clone(),
                gateway
                    .oauth
                    .clone()
                    .map(|c| Arc::new(crate::gateway::oauth::JwtValidator::new(c))),
            );
            tracing::info!(url = %format!("{}://{addr}/mcp", listener.scheme()), token = auth.enabled(), oauth = gateway.oauth.is_some(), "serving the MCP gateway");
            let mut stopped = stop_http.subscribe();
            let parts = crate::gateway::GatewayParts {
                auth,
                audit: Arc::clone(&audit),
                allowed_origins: gateway.allowed_origins.clone(),
                session_lifetime: gateway.session_lifetime,
                plane: Arc::clone(&dataplane),
                registry: registry.clone(),
                sessions: cluster_api.session_handlers(),
                metrics: Arc::clone(metrics.gateway()),
            };
            let serving = crate::gateway::serve(listener, parts, async move {
                let _ = stopped.changed().await;
            });
            tokio::spawn(async move {
                if let Err(e) = serving.await {
                    tracing::warn!(error = %e, "MCP gateway stopped");
                }
            });
        }
        tracing::info!(
            node = identity.id,
            listen = %if in_process.is_some() { "in-process".to_owned() } else { local_addr.to_string() },
            advertise = %identity.advertise_addr,
            "node started"
        );

        bootstrap(&raft, &identity, &config.initial_cluster).await?;
        let leader_duties = crate::leader::spawn(raft.clone(), proposer.clone(), registry.clone());
        let scheduler = crate::scheduler::spawn(
            identity.id,
            raft.clone(),
            proposer,
            registry.clone(),
            peers.clone(),
            config.node_grace,
        );

        Ok(Self {
            identity,
            local_addr,
            raft,
            registry,
            stop_server: Some(stop_tx),
            server,
            leader_duties,
            scheduler,
            tls_watch: tls.as_ref().map(NodeTls::watch),
            dataplane,
            proposer: timed_proposer,
            stop_http,
            in_process,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.identity.id
    }

    /// The address the gRPC server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address peers and clients dial.
    pub fn advertise_addr(&self) -> &str {
        &self.identity.advertise_addr
    }

    /// A channel to this node's gRPC API through memory, when it was started with
    /// `in_process` (`None` otherwise: dial [`Self::advertise_addr`]).
    pub fn in_process_channel(&self) -> Option<tonic::transport::Channel> {
        self.in_process.clone().map(mcp_client::channel::in_process)
    }

    /// The Raft handle.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// A read handle on the applied registry.
    pub fn registry(&self) -> &RegistryReader {
        &self.registry
    }

    /// The data plane.
    pub fn dataplane(&self) -> &Arc<DataPlane> {
        &self.dataplane
    }

    /// Proposes `command` on this node, as the API's writes are (counted in
    /// `mcp_raft_proposals_total`), waiting at most the write timeout for its commit. A
    /// follower answers [`Proposed::NotLeader`]: nothing is forwarded.
    pub async fn propose(&self, command: Command) -> Proposed {
        self.proposer.propose(command).await
    }

    /// Stops serving, stops every local instance and shuts Raft down.
    pub async fn shutdown(mut self) -> Result<(), ClusterError> {
        self.leader_duties.abort();
        self.scheduler.abort();
        if let Some(watch) = &self.tls_watch {
            watch.abort();
        }
        let _ = self.stop_http.send(true);
        // The gRPC server stops first, gracefully: it takes no new connection (clients with
        // an endpoint list move on to the next node) and finishes the requests it holds,
        // which may still need the data plane (a call forwarded to a peer, say).
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        match (&mut self.server).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "gRPC server ended with an error"),
            Err(e) => tracing::warn!(error = %e, "gRPC server task failed"),
        }
        self.dataplane.shutdown().await;
        self.raft
            .shutdown()
            .await
            .map_err(|e| ClusterError::Fatal {
                node: self.identity.id,
                reason: format!("raft shutdown: {e}"),
            })?;
        tracing::info!(node = self.identity.id, "node stopped");
        Ok(())
    }
}

/// On a pristine node listed in `initial_cluster`, writes the founding membership.
///
/// Every founding member does this with the same membership; openraft accepts identical
/// initial configs on all of them, so no node has to be special. A node that already has
/// state ignores `initial_cluster`: membership then changes only through the API.
async fn bootstrap(
    raft: &Raft,
    identity: &NodeIdentity,
    initial_cluster: &BTreeMap<NodeId, String>,
) -> Result<(), ClusterError> {
    let fatal = |reason: String| ClusterError::Fatal {
        node: identity.id,
        reason,
    };
    if raft
        .is_initialized()
        .await
        .map_err(|e| fatal(e.to_string()))?
    {
        if !initial_cluster.is_empty() {
            tracing::info!("node has state: initial_cluster is ignored");
        }
        return Ok(());
    }
    if initial_cluster.is_empty() {
        tracing::info!(
            node = identity.id,
            "pristine node without initial_cluster: waiting to be added to a cluster"
        );
        return Ok(());
    }
    if !initial_cluster.contains_key(&identity.id) {
        return Err(ClusterError::Config(format!(
            "initial_cluster does not list this node ({}); omit it to join an existing cluster",
            identity.id
        )));
    }
    let members: BTreeMap<NodeId, BasicNode> = initial_cluster
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr.clone())))
        .collect();
    match raft.initialize(members).await {
        Ok(()) => {
            tracing::info!(members = ?initial_cluster, "bootstrapped cluster membership");
            Ok(())
        }
        // Another founding member's membership reached us first: same config, nothing to do.
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(fatal(format!("bootstrap failed: {e}"))),
    }
}
