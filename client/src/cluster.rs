//! [`ClusterClient`]: a client of every node of one cluster. It finds the leader itself and
//! fails over to another node when one stops answering.
//!
//! Every operation goes through [`ClusterClient::run`], which decides per failure whether
//! the next node may be tried:
//! - the node was never reached (connection refused, connect timeout): always;
//! - the connection broke while the request was in flight: only when the operation may
//!   be repeated (reads, deploy and scale, safe JSON-RPC methods, `retry_unsafe`), since a
//!   `tools/call` may already have run;
//! - the node answered "unavailable" (no leader elected yet, write not committed in time):
//!   wait briefly, refresh the leader, and try again until the failover window closes.
//!
//! Any other answer from a node is final and goes back to the caller as its category.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
use mcp_proto::cluster::{
    AddLearnerRequest, DeployRequest, GetMetricsReply, GetMetricsRequest, ListServersRequest,
    MembersReply, MembersRequest, MetricsRequest, PromoteVoterRequest, RemoveNodeRequest,
    ScaleRequest, ServerInfo, StatusReply, StatusRequest, UndeployRequest, WriteReply,
};
use mcp_proto::contract::ErrorKind as WireKind;
use mcp_proto::execute::execute_service_client::ExecuteServiceClient;
use mcp_proto::execute::{ExecuteReply, ExecuteRequest, ExecuteToolRequest};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::auth::Credentials;
use crate::channel::{self, Profile};
use crate::error::{Error, ErrorKind};
use crate::retry::{is_repeatable_request, is_transport_failure, never_reached, Repeat};
use crate::tls::ClientTls;

/// How long one attempt of a cluster operation may take.
const CONTROL_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Extra time an execute attempt gets beyond the request timeout (the node answers
/// `timeout` itself; this only bounds a node that stopped answering).
const EXECUTE_GRACE: Duration = Duration::from_secs(5);
/// How long a status probe of one node may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How the client reaches the cluster.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Node addresses to start from (`HOST:PORT`).
    pub seeds: Vec<String>,
    /// Sent as `authorization: Bearer ...` with every request.
    pub admin_token: Option<String>,
    /// How long an operation keeps trying other nodes and waiting for a leader.
    pub failover_window: Duration,
    /// The default request timeout, bounding how long an execute attempt may take.
    pub request_timeout: Duration,
}

/// What the client does after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Give the caller this error.
    Fail,
    /// Try the next node now.
    OtherNode,
    /// Wait for a leader, then try again.
    Later,
}

#[derive(Clone)]
struct Peer {
    addr: String,
    channel: Channel,
}

/// A client of every node of one cluster.
pub struct ClusterClient {
    peers: RwLock<Vec<Peer>>,
    /// Index in `peers` of the node that answered last (tried first).
    preferred: AtomicUsize,
    /// Address of the leader, when known (writes go there first, saving a forward hop).
    leader: RwLock<Option<String>>,
    credentials: Credentials,
    settings: ClientSettings,
    /// A short-lived client (one CLI command): see [`ClusterClient::one_shot`].
    one_shot: bool,
    /// The log index of the latest write this client saw acknowledged (0: none yet).
    written: AtomicU64,
    /// TLS towards the nodes, when they speak it (see [`ClusterClient::with_tls`]).
    tls: Option<ClientTls>,
}

/// Why an operation sent through [`ClusterClient::call`] failed.
#[derive(Debug)]
pub enum CallError {
    /// A node's final answer, or a transport failure that ends the operation, as received
    /// from node `node`.
    Status {
        /// Address of the node that answered.
        node: String,
        /// Its answer.
        status: Status,
    },
    /// The client gave up on its own: no node reachable, no leader in time, no answer.
    Client(Error),
}

impl CallError {
    /// The failure in the client's categories.
    pub fn into_error(self) -> Error {
        match self {
            CallError::Status { status, .. } => Error::from_status(&status),
            CallError::Client(e) => e,
        }
    }
}

impl ClusterClient {
    /// A client starting from `settings.seeds`; nothing is dialed until the first call.
    pub fn new(settings: ClientSettings) -> Result<Self, Error> {
        Self::with_channels(settings, Vec::new())
    }

    /// A client that reaches the nodes in `known` (address, channel) through the given
    /// channels (an in-process node, say) and dials the other seeds lazily.
    pub fn with_channels(
        settings: ClientSettings,
        known: Vec<(String, Channel)>,
    ) -> Result<Self, Error> {
        if settings.seeds.is_empty() && known.is_empty() {
            return Err(Error::config(
                "cluster_nodes",
                "cluster_nodes: at least one node address is needed",
            ));
        }
        let credentials = Credentials::bearer(settings.admin_token.as_deref())?;
        let mut peers: Vec<Peer> = known
            .into_iter()
            .map(|(addr, channel)| Peer { addr, channel })
            .collect();
        for addr in &settings.seeds {
            if !peers.iter().any(|p: &Peer| p.addr == *addr) {
                peers.push(Peer {
                    addr: addr.clone(),
                    channel: peer_channel(addr, None)?,
                });
            }
        }
        Ok(Self {
            peers: RwLock::new(peers),
            preferred: AtomicUsize::new(0),
            leader: RwLock::new(None),
            credentials,
            settings,
            one_shot: false,
            written: AtomicU64::new(0),
            tls: None,
        })
    }

    /// Speaks TLS with `tls` to every node (the ones given and the ones learned later).
    /// Nothing has been dialed yet, so the seeds' channels are simply made again.
    pub fn with_tls(mut self, tls: ClientTls) -> Result<Self, Error> {
        {
            let peers = self.peers.get_mut().unwrap_or_else(|e| e.into_inner());
            for peer in peers.iter_mut() {
                if self.settings.seeds.contains(&peer.addr) {
                    peer.channel = peer_channel(&peer.addr, Some(&tls))?;
                }
            }
        }
        self.tls = Some(tls);
        Ok(self)
    }

    /// Marks the client as short-lived (one CLI command): it gives up as soon as one pass
    /// over the nodes reached none of them (instead of waiting out the failover window for
    /// one to come back), and does not ask every node for the leader after a write it will
    /// never repeat. Waiting for an election still happens.
    pub fn one_shot(mut self) -> Self {
        self.one_shot = true;
        self
    }

    /// The credentials every request of this client carries.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Runs one RPC against the cluster with failover (see the module docs): `call` gets
    /// a channel to one node at a time; `leader_first` sends it to the leader first when
    /// known (writes); `repeat` says whether it may go to another node after a failure that
    /// may have reached the first. The node's final answer comes back untouched.
    pub async fn call<T, F, Fut>(
        &self,
        what: &str,
        leader_first: bool,
        repeat: Repeat,
        attempt_timeout: Duration,
        call: F,
    ) -> Result<T, CallError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        self.run_raw(what, leader_first, repeat, attempt_timeout, call)
            .await
    }

    /// The addresses the client knows (seeds and discovered members).
    pub fn addresses(&self) -> Vec<String> {
        self.peers_snapshot().into_iter().map(|p| p.addr).collect()
    }

    /// The leader's address, when known.
    pub fn leader(&self) -> Option<String> {
        self.leader
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn peers_snapshot(&self) -> Vec<Peer> {
        self.peers.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `message` as a request with this client's credentials and, once it has written,
    /// the log index of its last write: a node that has not applied that far waits until
    /// it has (briefly), so this client reads its own writes on every node.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = self.credentials.request(message);
        let written = self.written.load(Ordering::Relaxed);
        if written > 0 {
            request
                .metadata_mut()
                .insert(mcp_proto::MIN_INDEX, MetadataValue::from(written));
        }
        request
    }

    /// Remembers the log index a write was committed at (from its reply).
    fn note_write(&self, metadata: &MetadataMap) {
        if let Some(index) = mcp_proto::log_index(metadata) {
            self.written.fetch_max(index, Ordering::Relaxed);
        }
    }

    /// The nodes to try, in order: the leader first for writes, then the node that
    /// answered last, then the rest.
    fn order(&self, leader_first: bool) -> Vec<Peer> {
        let peers = self.peers_snapshot();
        let n = peers.len();
        let start = self.preferred.load(Ordering::Relaxed) % n.max(1);
        let mut ordered: Vec<Peer> = (0..n).map(|i| peers[(start + i) % n].clone()).collect();
        if leader_first {
            if let Some(leader) = self.leader() {
                if let Some(pos) = ordered.iter().position(|p| p.addr == leader) {
                    let peer = ordered.remove(pos);
                    ordered.insert(0, peer);
                }
            }
        }
        ordered
    }

    fn prefer(&self, addr: &str) {
        let peers = self.peers.read().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = peers.iter().position(|p| p.addr == addr) {
            self.preferred.store(pos, Ordering::Relaxed);
        }
    }

    /// Runs `call` against the cluster with failover (see the module docs).
    async fn run<T, F, Fut>(
        &self,
        what: &str,
        leader_first: bool,
        repeat: Repeat,
        attempt_timeout: Duration,
        call: F,
    ) -> Result<T, Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        match self
            .run_raw(what, leader_first, repeat, attempt_timeout, call)
            .await
        {
            Ok(value) => Ok(value),
            Err(CallError::Client(e)) => Err(e),
            Err(CallError::Status { node, status }) => {
                let mut err = Error::from_status(&status);
                if err.kind == ErrorKind::Connection && is_transport_failure(&status) {
                    err.message = format!(
                        "{what}: the connection to node {node} broke while the request was in flight, so it may have run; not repeated (pass retry_unsafe=True to allow it): {}",
                        err.message
                    );
                }
                Err(err)
            }
        }
    }

    async fn run_raw<T, F, Fut>(
        &self,
        what: &str,
        leader_first: bool,
        repeat: Repeat,
        attempt_timeout: Duration,
        mut call: F,
    ) -> Result<T, CallError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let deadline = Instant::now() + self.settings.failover_window;
        let mut pause = Duration::from_millis(50);
        let mut last: Option<Error> = None;
        loop {
            let mut wait_for_leader = false;
            // Whether any node of this pass was reached at all.
            let mut reached = false;
            for peer in self.order(leader_first) {
                let outcome =
                    tokio::time::timeout(attempt_timeout, call(peer.channel.clone())).await;
                let status = match outcome {
                    Ok(Ok(reply)) => {
                        self.prefer(&peer.addr);
                        self.note_write(reply.metadata());
                        if leader_first && !self.one_shot && self.leader().is_none() {
                            // The node forwarded to a leader this client has not met yet
                            // (after a failover, say): learn it, so the next write goes
                            // there directly.
                            self.discover().await;
                        }
                        return Ok(reply.into_inner());
                    }
                    Ok(Err(status)) => status,
                    Err(_) => {
                        // The node accepted the request and then said nothing: it may have
                        // run it, so only a repeatable operation moves on.
                        let err = Error::new(
                            ErrorKind::Timeout,
                            format!(
                                "{what}: node {} did not answer within {} ms",
                                peer.addr,
                                attempt_timeout.as_millis()
                            ),
                        );
                        reached = true;
                        if repeat == Repeat::Safe {
                            last = Some(err);
                            continue;
                        }
                        return Err(CallError::Client(err));
                    }
                };
                if !never_reached(&status) {
                    reached = true;
                }
                match next_step(&status, repeat) {
                    Next::Fail => {
                        return Err(CallError::Status {
                            node: peer.addr,
                            status,
                        });
                    }
                    Next::OtherNode => {
                        tracing::debug!(node = %peer.addr, %what, error = %status.message(), "trying another node");
                        if self.leader().as_deref() == Some(peer.addr.as_str()) {
                            *self.leader.write().unwrap_or_else(|e| e.into_inner()) = None;
                        }
                        // A plaintext client of a TLS node sees its connection closed,
                        // not refused: say what is probably missing.
                        let hint = if self.tls.is_none() && !status.message().contains("connect") {
                            " (if the node serves TLS, give its CA: --ca-file, MCPD_CA_FILE or tls_ca_file)"
                        } else {
                            ""
                        };
                        last = Some(Error::new(
                            ErrorKind::ClusterUnavailable,
                            format!("node {} unreachable: {}{hint}", peer.addr, status.message()),
                        ));
                    }
                    Next::Later => {
                        last = Some(Error::from_status(&status));
                        wait_for_leader = true;
                        break;
                    }
                }
            }
            if self.one_shot && !reached && !wait_for_leader {
                let detail = last
                    .map(|e| e.message)
                    .unwrap_or_else(|| "no node answered".to_owned());
                return Err(CallError::Client(Error::new(
                    ErrorKind::ClusterUnavailable,
                    format!(
                        "{what}: no node could be reached ({}); last error: {detail}",
                        self.addresses().join(", ")
                    ),
                )));
            }
            if Instant::now() >= deadline {
                let detail = last
                    .map(|e| e.message)
                    .unwrap_or_else(|| "no node answered".to_owned());
                return Err(CallError::Client(Error::new(
                    ErrorKind::ClusterUnavailable,
                    format!(
                        "{what}: no node of the cluster could serve the request within {} ms ({}); last error: {detail}",
                        self.settings.failover_window.as_millis(),
                        self.addresses().join(", ")
                    ),
                )));
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(Duration::from_millis(500));
            if wait_for_leader || leader_first {
                self.discover().await;
            }
        }
    }

    /// Asks every known node for its status, learns the members' addresses and the
    /// leader. Returns the replies of the nodes that answered.
    pub async fn discover(&self) -> Vec<StatusReply> {
        let peers = self.peers_snapshot();
        let probes = peers.iter().map(|peer| {
            let mut client = cluster_client(peer.channel.clone());
            let request = self.request(StatusRequest {});
            async move {
                tokio::time::timeout(PROBE_TIMEOUT, client.status(request))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(tonic::Response::into_inner)
            }
        });
        let replies: Vec<StatusReply> = futures::future::join_all(probes)
            .await
            .into_iter()
            .flatten()
            .collect();
        // Members first, so that a leader that is not a seed is dialable.
        let mut members: BTreeMap<u64, String> = BTreeMap::new();
        for reply in &replies {
            for member in &reply.members {
                members.insert(member.id, member.addr.clone());
            }
        }
        self.learn(members.values());
        // The leader in the highest term anyone reports (a deposed leader may still
        // believe in itself for a moment).
        let leader = replies
            .iter()
            .filter_map(|r| r.leader_id.map(|id| (r.term, id)))
            .max()
            .and_then(|(_, id)| members.get(&id).cloned());
        if leader.is_some() {
            *self.leader.write().unwrap_or_else(|e| e.into_inner()) = leader;
        }
        replies
    }

    fn learn<'a>(&self, addrs: impl Iterator<Item = &'a String>) {
        let mut peers = self.peers.write().unwrap_or_else(|e| e.into_inner());
        for addr in addrs {
            if !peers.iter().any(|p| p.addr == *addr) {
                match peer_channel(addr, self.tls.as_ref()) {
                    Ok(channel) => peers.push(Peer {
                        addr: addr.clone(),
                        channel,
                    }),
                    Err(e) => tracing::warn!(%addr, error = %e, "ignoring a member address"),
                }
            }
        }
    }

    /// Waits until some node reports a leader (or the failover window closes).
    pub async fn wait_for_leader(&self) -> Result<(), Error> {
        let deadline = Instant::now() + self.settings.failover_window;
        loop {
            let replies = self.discover().await;
            if self.leader().is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let reached = replies.len();
                return Err(Error::new(
                    ErrorKind::ClusterUnavailable,
                    format!(
                        "no leader elected within {} ms ({reached} of {} nodes answered: {})",
                        self.settings.failover_window.as_millis(),
                        self.addresses().len(),
                        self.addresses().join(", ")
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until at least one node answers (or the failover window closes). Enough for
    /// a client: executes are served without a leader, writes wait for one themselves.
    pub async fn wait_for_any_node(&self) -> Result<(), Error> {
        let deadline = Instant::now() + self.settings.failover_window;
        loop {
            if !self.discover().await.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::ClusterUnavailable,
                    format!(
                        "no node answered within {} ms ({})",
                        self.settings.failover_window.as_millis(),
                        self.addresses().join(", ")
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Deploys (creates or replaces) a server from its spec JSON.
    pub async fn deploy(&self, spec_json: &str) -> Result<WriteReply, Error> {
        self.run(
            "deploy",
            true,
            Repeat::Unsafe,
            CONTROL_ATTEMPT_TIMEOUT,
            |ch| {
                let request = self.request(DeployRequest {
                    spec_json: spec_json.to_owned(),
                    expected_revision: None,
                });
                async move { cluster_client(ch).deploy(request).await }
            },
        )
        .await
    }

    /// Removes a server.
    pub async fn undeploy(&self, name: &str) -> Result<WriteReply, Error> {
        self.run(
            "undeploy",
            true,
            Repeat::Unsafe,
            CONTROL_ATTEMPT_TIMEOUT,
            |ch| {
                let request = self.request(UndeployRequest {
                    name: name.to_owned(),
                });
                async move { cluster_client(ch).undeploy(request).await }
            },
        )
        .await
    }

    /// Sets a server's replica count.
    pub async fn scale(&self, name: &str, replicas: u32) -> Result<WriteReply, Error> {
        self.run(
            "scale",
            true,
            Repeat::Unsafe,
            CONTROL_ATTEMPT_TIMEOUT,
            |ch| {
                let request = self.request(ScaleRequest {
                    name: name.to_owned(),
                    replicas,
                });
                async move { cluster_client(ch).scale(request).await }
            },
        )
        .await
    }

    /// Every server in the registry. `stale` reads the answering node's applied state
    /// (works without a quorum).
    pub async fn list_servers(&self, stale: bool) -> Result<Vec<ServerInfo>, Error> {
        self.run(
            "list servers",
            !stale,
            Repeat::Safe,
            CONTROL_ATTEMPT_TIMEOUT,
            |ch| {
                let request = self.request(ListServersRequest { stale });
                async move { cluster_client(ch).list_servers(request).await }
            },
        )
        .await
        .map(|reply| reply.servers)
    }

    /// The membership as the answering node sees it.
    pub async fn members(&self) -> Result<MembersReply, Error> {
        self.run(
            "members",
            false,
            Repeat::Safe,
            CONTROL_ATTEMPT_TIMEOUT,
            |ch| {
                let request = self.request(MembersRequest {});
                async move { cluster_client(ch).members(request).await }
            },
        )
        .await
    }

    /// Adds a node as a learner (returns once it has caught up).
    pub async fn add_learner(&self, id: u64, addr: &str) -> Result<MembersReply, Error> {
        self.run(
            "add learner",
            true,
            Repeat::Unsafe,
            Duration::from_secs(90),
            |ch| {
                let request = self.request(AddLearnerRequest {
                    id,
                    addr: addr.to_owned(),
                });
                async move { cluster_client(ch).add_learner(request).await }
            },
        )
        .await
    }

    /// Makes a learner a voter.
    pub async fn promote_voter(&self, id: u64) -> Result<MembersReply, Error> {
        self.run(
            "promote voter",
            true,
            Repeat::Unsafe,
            CONTROL_ATTEMPT_TIMEOUT,
            |ch| {
                let request = self.request(PromoteVoterRequest { id });
                async move { cluster_client(ch).promote_voter(request).await }
            },
        )
        .await
    }

    /// Removes a node from the membership.
    pub async fn remove_node(&self, id: u64) -> Result<MembersReply, Error> {
        self.run(
            "remove node",
            true,
            Repeat::Unsafe,
            CONTROL_ATTEMPT_TIMEOUT,
            |ch| {
                let request = self.request(RemoveNodeRequest { id });
                async move { cluster_client(ch).remove_node(request).await }
            },
        )
        .await
    }

    /// Sends a JSON-RPC request to a server; returns the reply (the server's response
    /// object, error or result).
    pub async fn execute(
        &self,
        server: &str,
        request_json: &str,
        timeout: Option<Duration>,
        retry_unsafe: bool,
    ) -> Result<ExecuteReply, Error> {
        let repeat = if retry_unsafe || is_repeatable_request(request_json) {
            Repeat::Safe
        } else {
            Repeat::Unsafe
        };
        let attempt = timeout.unwrap_or(self.settings.request_timeout) + EXECUTE_GRACE;
        let timeout_ms = timeout.map(duration_ms);
        self.run("execute", false, repeat, attempt, |ch| {
            let request = self.request(ExecuteRequest {
                server: server.to_owned(),
                request_json: request_json.to_owned(),
                retry_unsafe,
                timeout_ms,
            });
            async move { execute_client(ch).execute(request).await }
        })
        .await
    }

    /// Calls one tool; a JSON-RPC error from the server is an `Err` of kind `ServerError`.
    pub async fn execute_tool(
        &self,
        server: &str,
        tool: &str,
        arguments_json: &str,
        timeout: Option<Duration>,
        retry_unsafe: bool,
    ) -> Result<ExecuteReply, Error> {
        let repeat = if retry_unsafe {
            Repeat::Safe
        } else {
            Repeat::Unsafe
        };
        let attempt = timeout.unwrap_or(self.settings.request_timeout) + EXECUTE_GRACE;
        let timeout_ms = timeout.map(duration_ms);
        self.run("execute tool", false, repeat, attempt, |ch| {
            let request = self.request(ExecuteToolRequest {
                server: server.to_owned(),
                tool: tool.to_owned(),
                arguments_json: arguments_json.to_owned(),
                retry_unsafe,
                timeout_ms,
            });
            async move { execute_client(ch).execute_tool(request).await }
        })
        .await
    }

    /// Status of every node that answers (instances, indexes, role), keyed by address.
    pub async fn status_of_all(&self) -> Vec<StatusReply> {
        self.discover().await
    }

    /// Request statistics of every node that answers.
    pub async fn metrics_of_all(&self) -> Vec<GetMetricsReply> {
        let peers = self.peers_snapshot();
        let calls = peers.iter().map(|peer| {
            let mut client = cluster_client(peer.channel.clone());
            let request = self.request(GetMetricsRequest {});
            async move {
                tokio::time::timeout(PROBE_TIMEOUT, client.get_metrics(request))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(tonic::Response::into_inner)
            }
        });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// The Prometheus exposition of every node that answers.
    pub async fn expositions(&self) -> Vec<String> {
        let peers = self.peers_snapshot();
        let calls = peers.iter().map(|peer| {
            let mut client = cluster_client(peer.channel.clone());
            let request = self.request(MetricsRequest {});
            async move {
                tokio::time::timeout(PROBE_TIMEOUT, client.metrics(request))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(|r| r.into_inner().text)
            }
        });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A lazily dialed channel to a node; a bad address is a config error on `cluster_nodes`.
fn peer_channel(addr: &str, tls: Option<&ClientTls>) -> Result<Channel, Error> {
    channel::lazy_with(addr, Profile::Client, tls).map_err(|e| e.with_field("cluster_nodes"))
}

fn cluster_client(channel: Channel) -> ClusterServiceClient<Channel> {
    ClusterServiceClient::new(channel).max_decoding_message_size(mcp_proto::MAX_MESSAGE_BYTES)
}

fn execute_client(channel: Channel) -> ExecuteServiceClient<Channel> {
    ExecuteServiceClient::new(channel)
        .max_decoding_message_size(mcp_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(mcp_proto::MAX_MESSAGE_BYTES)
}

fn next_step(status: &Status, repeat: Repeat) -> Next {
    // A word this build does not know is still the node's own answer, not a transport
    // failure.
    let answered = status.metadata().contains_key(mcp_proto::ERROR_KIND);
    match WireKind::of(status) {
        // No leader right now: a new leader is being elected. A read may simply be sent
        // again; a write may already have been applied (the node waited through the
        // election itself before giving up), so it is not.
        Some(WireKind::Unavailable) if repeat == Repeat::Safe => Next::Later,
        Some(_) => Next::Fail,
        None if answered => Next::Fail,
        None if is_transport_failure(status) => {
            if never_reached(status) || repeat == Repeat::Safe {
                Next::OtherNode
            } else {
                Next::Fail
            }
        }
        None => Next::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_answers_are_final_except_unavailable() {
        let status = WireKind::Unavailable.status("no leader");
        assert_eq!(next_step(&status, Repeat::Safe), Next::Later);
        assert_eq!(next_step(&status, Repeat::Unsafe), Next::Fail);
        let timeout = WireKind::Timeout.status("slow");
        assert_eq!(next_step(&timeout, Repeat::Safe), Next::Fail);
    }

    #[test]
    fn broken_connections_move_on_only_when_repeatable() {
        let broken = Status::unavailable("connection reset");
        assert_eq!(next_step(&broken, Repeat::Safe), Next::OtherNode);
        assert_eq!(next_step(&broken, Repeat::Unsafe), Next::Fail);
    }

    #[tokio::test]
    async fn a_refused_connection_moves_on_even_when_not_repeatable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut client =
            cluster_client(peer_channel(&format!("127.0.0.1:{port}"), None).expect("channel"));
        let status = client
            .status(StatusRequest {})
            .await
            .expect_err("nothing listens there");
        assert!(never_reached(&status), "{status:?}");
        assert_eq!(next_step(&status, Repeat::Unsafe), Next::OtherNode);
    }

    #[tokio::test]
    async fn requests_name_the_last_write_once_there_is_one() {
        let client = ClusterClient::new(ClientSettings {
            seeds: vec!["127.0.0.1:1".to_owned()],
            admin_token: None,
            failover_window: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
        })
        .expect("client");
        let min_index = |client: &ClusterClient| {
            client
                .request(())
                .metadata()
                .get(mcp_proto::MIN_INDEX)
                .and_then(|v| v.to_str().ok().map(str::to_owned))
        };
        assert_eq!(min_index(&client), None, "no write yet");
        for (seen, expected) in [(7, "7"), (5, "7"), (9, "9")] {
            let mut reply = MetadataMap::new();
            reply.insert(mcp_proto::LOG_INDEX, MetadataValue::from(seen as u64));
            client.note_write(&reply);
            assert_eq!(
                min_index(&client).as_deref(),
                Some(expected),
                "after {seen}"
            );
        }
    }
}
