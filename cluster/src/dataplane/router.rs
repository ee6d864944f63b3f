//! Routes one execute request: to a local instance, with retries where they are safe, or
//! to a node that hosts one.
//!
//! Retry rule: a request is sent again (to another instance, after a backoff with jitter)
//! only if it provably never reached a server (connect failure, open breaker, saturated
//! instance), or if its method is safe to repeat (`ping`, `tools/list`, `resources/read`,
//! ...), or if the caller opted in. A `tools/call` that timed out is never sent twice
//! silently.
//!
//! Hop rule: only "nothing here could take it" sends a request to a node that hosts the
//! server, through the [`PeerForwarder`]; the next host is tried only if the last one
//! provably never gave it to a server, or if repeating it is harmless. Hosts are tried in
//! random order, except that one whose last forwarded call failed in transport goes last
//! for a while (see [`super::peer_health`]).

use std::time::Duration;

use futures::future::BoxFuture;
use mcp_client::retry::is_repeatable_method;
use mcp_proto::contract::ErrorKind;
use mcp_raft::NodeId;
use rand::seq::SliceRandom;
use serde_json::Value;

use super::error::ExecuteError;
use super::instance::InstanceState;
use super::jsonrpc::RawResponse;
use super::pool::NoChoice;
use super::{jsonrpc, placement, DataPlane};

/// How often a call waiting for a cold start it began elsewhere looks again.
const COLD_START_POLL: Duration = Duration::from_millis(50);
/// How many times in a row a call is retried at once because an instance became usable
/// just after an attempt found none.
const MAX_RETRIES_NOW: u32 = 2;

/// What a call that found no instance may expect (see `DataPlane::outlook`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outlook {
    /// An instance is usable now: try again at once.
    Usable,
    /// One may become usable: wait for it.
    ComingUp,
    /// None will without someone's help: the error is the answer.
    Nothing,
}

/// How the router hands a request to another node's data plane (the node sends it over
/// gRPC; tests answer for the peers).
pub trait PeerForwarder: Send + Sync {
    /// Sends `request` for `server` to node `peer` at `addr`, marked as forwarded so that
    /// it travels no further. `options.timeout` is the one the request runs with.
    ///
    /// A failure that provably never reached the peer is [`ExecuteError::Connection`] with
    /// [`super::upstream::UpstreamError::Connect`]; one that may have reached it, with
    /// another source; the peer's own error answer, [`ExecuteError::Forwarded`].
    fn forward<'a>(
        &'a self,
        peer: NodeId,
        addr: &'a str,
        server: &'a str,
        request: &'a Value,
        options: &'a ExecuteOptions,
    ) -> BoxFuture<'a, Result<Executed, ExecuteError>>;
}

/// Per-request options.
#[derive(Debug, Clone, Default)]
pub struct ExecuteOptions {
    /// Allow re-sending a non-idempotent request after a failure that may have reached
    /// the server.
    pub retry_unsafe: bool,
    /// Overrides the request timeout.
    pub timeout: Option<Duration>,
    /// Set when another node forwarded this request: it must not travel further.
    pub forwarded: bool,
    /// Carried across forwarding hops and logged on each node that handles the request.
    pub request_id: String,
    /// Where the server's progress notifications for this request go, when it runs on
    /// this node (see `upstream::Session::request_with_progress`); a forwarded request
    /// reports none.
    pub progress: Option<super::upstream::stdio::ProgressSink>,
}

impl ExecuteOptions {
    /// A fresh request id for a call that arrives without one: 64 random bits, hex.
    pub fn new_request_id() -> String {
        format!("{:016x}", rand::random::<u64>())
    }
}

/// A successful execution.
#[derive(Debug, Clone)]
pub struct Executed {
    /// The server's JSON-RPC response (result or error) with the caller's id, as the
    /// server wrote it.
    pub response: RawResponse,
    /// Node that answered.
    pub node_id: NodeId,
    /// Instance that answered.
    pub instance_id: String,
}

impl DataPlane {
    /// Executes `request` against `server`.
    pub async fn execute(
        &self,
        server: &str,
        request: Value,
        options: ExecuteOptions,
    ) -> Result<Executed, ExecuteError> {
        let method = metric_method(jsonrpc::method(&request));
        let result = self.guarded_route(server, request, options).await;
        // Each request is counted once: by the node that ran it, or by the node that
        // answered with an error of its own (a peer's error was counted by the peer).
        let outcome = match &result {
            // The server answered, but with a JSON-RPC error: not a success for whoever
            // asked (the breaker still sees a working server, see `execute_local`).
            Ok(executed) if executed.node_id == self.node_id => {
                if executed.response.is_error() {
                    Some(ErrorKind::ServerError.as_str())
                } else {
                    Some("success")
                }
            }
            Ok(_) | Err(ExecuteError::Forwarded(_)) => None,
            Err(e) => Some(e.kind().as_str()),
        };
        if let Some(outcome) = outcome {
            self.metrics.count_request(server, method, outcome);
        }
        result
    }

    /// Routes `request` through the guards: a refused call fails at once; an admitted one
    /// holds its quota slot until it ends; a `tools/list` answer is screened for pins.
    async fn guarded_route(
        &self,
        server: &str,
        request: Value,
        options: ExecuteOptions,
    ) -> Result<Executed, ExecuteError> {
        let is_list = jsonrpc::method(&request) == Some("tools/list");
        let admission = self
            .guards
            .admit(&self.registry, server, &request, options.forwarded)
            .map_err(ExecuteError::Refused)?;
        let mut result = self.route(server, request, options).await;
        drop(admission);
        if let (true, Ok(executed)) = (is_list, &mut result) {
            let local = executed.node_id == self.node_id;
            executed.response.edit(|response| {
                self.guards
                    .screen_list(&self.registry, server, response, local)
            });
        }
        result
    }

    /// Routes `request`, waiting (up to the connect timeout) for a server whose instances
    /// are still coming up: a call right after a deploy is served once the first instance
    /// is ready instead of failing while it starts.
    async fn route(
        &self,
        server: &str,
        request: Value,
        options: ExecuteOptions,
    ) -> Result<Executed, ExecuteError> {
        jsonrpc::validate_request(&request).map_err(ExecuteError::InvalidRequest)?;
        let deadline = tokio::time::Instant::now() + self.config().connect_timeout;
        // Retries because an instance became usable between the attempt and the look at
        // the pool: one is enough unless something else keeps taking it first.
        let mut retries_now = 0;
        loop {
            let error = match self.route_once(server, &request, &options).await {
                Ok(executed) => {
                    self.served(server);
                    return Ok(executed);
                }
                Err(error) => error,
            };
            let no_instance = matches!(error, ExecuteError::NoHealthyInstance { .. });
            // A sleeping on-demand server is woken by its first call, which then waits for
            // the instance like a call right after a deploy.
            let woken = no_instance && self.wake_if_sleeping(server).await;
            // A cold start this node began may come up on another node, which this node
            // sees neither in its pool nor (once placed) in its registry: poll for it.
            let cold = no_instance && self.cold_start_pending(server);
            let outlook = match (no_instance, woken || cold) {
                (false, _) => Outlook::Nothing,
                (true, true) => Outlook::ComingUp,
                (true, false) => self.outlook(server),
            };
            match outlook {
                Outlook::Usable if retries_now < MAX_RETRIES_NOW => {
                    retries_now += 1;
                    continue;
                }
                Outlook::ComingUp if tokio::time::Instant::now() < deadline => {}
                _ => return Err(error),
            }
            // Armed only now, off the hot path (a call that is served never touches the
            // shared notifier); the state is checked again after arming, so a change
            // between the attempt and here is not missed.
            let instance_changed = self.pool.changes().notified();
            tokio::pin!(instance_changed);
            instance_changed.as_mut().enable();
            let mut registry_changes = self.registry.subscribe();
            registry_changes.borrow_and_update();
            if !cold && self.outlook(server) != Outlook::ComingUp {
                continue;
            }
            tracing::debug!(server, "no instance ready yet; waiting for one to come up");
            let until = if cold {
                deadline.min(tokio::time::Instant::now() + COLD_START_POLL)
            } else {
                deadline
            };
            tokio::select! {
                () = instance_changed => {}
                _ = registry_changes.changed() => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// What this node may expect of `server` after an attempt found no instance to take
    /// it: one to come up (the leader has not placed it yet, a local instance is starting
    /// or restarting, or the reconciler has yet to start one), one usable already (it
    /// became so since the attempt), or nothing.
    ///
    /// The pool is read once: the reconciler inserts an instance at any moment, and an
    /// instance looked for in one read and its absence checked in another would both miss
    /// it.
    fn outlook(&self, server: &str) -> Outlook {
        let (unplaced, wanted) = self.registry.read(|state| {
            let unplaced = state.registry.server(server).is_some_and(|record| {
                !placement::runs_everywhere(record)
                    && record.desired_instances() > 0
                    && record.placements.is_empty()
            });
            let wanted: Vec<String> =
                placement::local_instances(&state.registry, self.node_id, self.http_sessions())
                    .into_iter()
                    .filter(|(_, name)| name == server)
                    .map(|(id, _)| id)
                    .collect();
            (unplaced, wanted)
        });
        let running = self.pool.all();
        let mut outlook = Outlook::Nothing;
        for instance in running.values().filter(|i| i.server == server) {
            let state = instance.state();
            if state == InstanceState::Running && instance.usable_session().is_some() {
                return Outlook::Usable;
            }
            if state.coming_up() {
                outlook = Outlook::ComingUp;
            }
        }
        let reconciler_behind = wanted.iter().any(|id| !running.contains_key(id));
        if unplaced || reconciler_behind {
            outlook = Outlook::ComingUp;
        }
        outlook
    }

    async fn route_once(
        &self,
        server: &str,
        request: &Value,
        options: &ExecuteOptions,
    ) -> Result<Executed, ExecuteError> {
        let lookup = self.registry.read(|state| {
            let record = state.registry.server(server)?;
            Some(record.spec.request_timeout_ms)
        });
        let Some(spec_timeout) = lookup else {
            return Err(ExecuteError::UnknownServer(server.to_owned()));
        };
        let timeout = options
            .timeout
            .or(spec_timeout.map(Duration::from_millis))
            .unwrap_or(self.config().request_timeout);

        let local = self
            .execute_local(
                server,
                request,
                timeout,
                options.retry_unsafe,
                options.progress.as_ref(),
            )
            .await;
        let local_error = match local {
            Ok(executed) => return Ok(executed),
            Err(e) => e,
        };
        // Only "nothing here could take it" is worth a hop; any other error is the answer.
        let try_peers = matches!(local_error, ExecuteError::NoHealthyInstance { .. });
        if !try_peers || options.forwarded {
            return Err(local_error);
        }
        // Looked up only now: a call served here never builds the list of hosts.
        let mut peers = self.peer_hosts(server);
        if peers.is_empty() {
            return Err(local_error);
        }
        peers.shuffle(&mut rand::thread_rng());
        self.peer_health.order(&mut peers);
        let repeatable =
            options.retry_unsafe || jsonrpc::method(request).is_some_and(is_repeatable_method);
        let mut last = local_error;
        let forwarding = ExecuteOptions {
            timeout: Some(timeout),
            ..options.clone()
        };
        for (peer, addr) in peers {
            self.metrics.count_forwarded(peer);
            tracing::info!(request_id = %options.request_id, server, peer, "forwarding request");
            let forwarded = self
                .peers
                .forward(peer, &addr, server, request, &forwarding)
                .await;
            if matches!(forwarded, Err(ExecuteError::Connection { .. })) {
                self.peer_health.failed(peer);
            } else {
                self.peer_health.answered(peer);
            }
            match forwarded {
                Ok(executed) => return Ok(executed),
                // Next peer only if this one provably never saw the request, or repeating
                // it is harmless.
                Err(ExecuteError::Connection { server, source })
                    if repeatable || !source.reached_server() =>
                {
                    tracing::debug!(peer, error = %source, "peer failed, trying the next");
                    last = ExecuteError::Connection { server, source };
                }
                // The peer had nothing that could take it (its instance is still starting,
                // draining away, or its registry is a step behind): nothing was sent, so
                // another host may serve it. This is what keeps calls succeeding while
                // placements move.
                Err(ExecuteError::Forwarded(status)) if never_reached_a_server(&status) => {
                    tracing::debug!(peer, error = %status.message(), "peer could not take it, trying the next");
                    last = ExecuteError::Forwarded(status);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// The other nodes that host `server`, with their addresses.
    fn peer_hosts(&self, server: &str) -> Vec<(NodeId, String)> {
        self.registry.read(|state| {
            placement::hosts(&state.registry, server)
                .into_iter()
                .filter(|id| *id != self.node_id)
                .filter_map(|id| {
                    state
                        .registry
                        .nodes()
                        .find(|n| n.id == id)
                        .map(|n| (id, n.addr.clone()))
                })
                .collect()
        })
    }

    async fn execute_local(
        &self,
        server: &str,
        request: &Value,
        timeout: Duration,
        retry_unsafe: bool,
        progress: Option<&super::upstream::stdio::ProgressSink>,
    ) -> Result<Executed, ExecuteError> {
        let repeatable = retry_unsafe || jsonrpc::method(request).is_some_and(is_repeatable_method);
        let config = self.config();
        let retry = &config.retry;
        let limit = config.max_in_flight_per_instance;
        let mut tried: Vec<String> = Vec::new();
        let mut last: Option<ExecuteError> = None;
        for attempt in 1..=retry.max_attempts.max(1) {
            if attempt > 1 {
                self.metrics.count_retry(server);
                tokio::time::sleep(retry.delay(attempt - 1)).await;
            }
            let chosen = match self.pool.choose(server, &tried, limit) {
                Ok(chosen) => chosen,
                Err(why) => {
                    if why == NoChoice::Saturated {
                        self.metrics.count_saturated(server);
                    }
                    return Err(last.unwrap_or_else(|| self.no_choice(server, why, limit)));
                }
            };
            let started = std::time::Instant::now();
            let outcome = tokio::time::timeout(
                timeout,
                chosen
                    .session
                    .request_with_progress(request, progress.cloned()),
            )
            .await;
            self.metrics
                .observe_duration(server, started.elapsed().as_secs_f64());
            match outcome {
                Ok(Ok(Some(response))) => {
                    // A JSON-RPC error is a working server saying no: not a breaker failure.
                    chosen.instance.breaker.record(true);
                    return Ok(Executed {
                        response,
                        node_id: self.node_id,
                        instance_id: chosen.instance.id.clone(),
                    });
                }
                // A notification: sent, and nothing comes back.
                Ok(Ok(None)) => {
                    chosen.instance.breaker.record(true);
                    return Ok(Executed {
                        response: RawResponse::from_value(&Value::Null),
                        node_id: self.node_id,
                        instance_id: chosen.instance.id.clone(),
                    });
                }
                Ok(Err(source)) => {
                    // Remembered only on failure: a call served at once allocates nothing here.
                    tried.push(chosen.instance.id.clone());
                    chosen.instance.breaker.record(false);
                    let reached = source.reached_server();
                    if source.session_broken() {
                        // Garbage, oversized or closed sessions are not worth a second
                        // look: the supervisor restarts them; keep traffic away meanwhile.
                        chosen.instance.breaker.trip();
                    }
                    let error = ExecuteError::Connection {
                        server: server.to_owned(),
                        source,
                    };
                    if reached && !repeatable {
                        return Err(error);
                    }
                    tracing::debug!(instance = %chosen.instance.id, attempt, error = %error, "attempt failed");
                    last = Some(error);
                }
                Err(_) => {
                    tried.push(chosen.instance.id.clone());
                    chosen.instance.breaker.record(false);
                    let error = ExecuteError::Timeout {
                        server: server.to_owned(),
                        after: timeout,
                    };
                    if !repeatable {
                        return Err(error);
                    }
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| self.no_choice(server, NoChoice::NoneHealthy, limit)))
    }

    fn no_choice(&self, server: &str, why: NoChoice, limit: usize) -> ExecuteError {
        match why {
            NoChoice::Saturated => ExecuteError::Saturated {
                server: server.to_owned(),
                limit,
            },
            NoChoice::CircuitOpen => ExecuteError::CircuitOpen {
                server: server.to_owned(),
            },
            NoChoice::NoLocalInstance => ExecuteError::NoHealthyInstance {
                server: server.to_owned(),
                detail: format!("node {} runs no instance of it", self.node_id),
            },
            NoChoice::NoneHealthy => {
                let states: Vec<String> = self
                    .pool
                    .instances(server)
                    .iter()
                    .map(|i| format!("{}: {}", i.id, i.state().describe()))
                    .collect();
                ExecuteError::NoHealthyInstance {
                    server: server.to_owned(),
                    detail: states.join(", "),
                }
            }
        }
    }
}

/// True if a peer's error says it sent the request to no server at all.
fn never_reached_a_server(status: &tonic::Status) -> bool {
    ErrorKind::of(status).is_some_and(ErrorKind::never_reached_a_server)
}

/// The method as a metric label: MCP's own methods by name, anything else as "other", so a
/// caller cannot create unbounded label values.
fn metric_method(method: Option<&str>) -> &'static str {
    const KNOWN: [&str; 14] = [
        "tools/call",
        "tools/list",
        "ping",
        "initialize",
        "server/discover",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "subscriptions/listen",
        "notifications/cancelled",
    ];
    method
        .and_then(|m| KNOWN.iter().find(|k| **k == m).copied())
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};

    use mcp_raft::registry::{spec, NodeRecord};
    use mcp_raft::types::Entry;
    use mcp_raft::{Command, RegistryReader, RegistryStateMachine};
    use openraft::storage::RaftStateMachine;
    use openraft::{CommittedLeaderId, EntryPayload, LogId};
    use serde_json::json;

    use super::*;
    use crate::dataplane::upstream::UpstreamError;
    use crate::dataplane::{DataPlaneConfig, DataPlaneMetrics};

    /// Answers for the peers in call order (whichever peer the router picks first gets
    /// the first answer), and remembers who was asked.
    struct FakePeers {
        answers: Mutex<Vec<Result<Executed, ExecuteError>>>,
        asked: Mutex<Vec<NodeId>>,
    }

    impl FakePeers {
        fn answering(mut answers: Vec<Result<Executed, ExecuteError>>) -> Arc<Self> {
            answers.reverse();
            Arc::new(Self {
                answers: Mutex::new(answers),
                asked: Mutex::default(),
            })
        }

        fn asked(&self) -> Vec<NodeId> {
            self.asked.lock().unwrap().clone()
        }
    }

    impl PeerForwarder for FakePeers {
        fn forward<'a>(
            &'a self,
            peer: NodeId,
            _addr: &'a str,
            _server: &'a str,
            _request: &'a Value,
            options: &'a ExecuteOptions,
        ) -> BoxFuture<'a, Result<Executed, ExecuteError>> {
            assert!(
                options.timeout.is_some(),
                "a forwarded request carries its timeout"
            );
            self.asked.lock().unwrap().push(peer);
            let answer = self.answers.lock().unwrap().pop();
            Box::pin(
                async move { answer.unwrap_or_else(|| panic!("peer {peer} asked once too often")) },
            )
        }
    }

    fn answered_by(node_id: NodeId) -> Result<Executed, ExecuteError> {
        Ok(Executed {
            response: RawResponse::from_value(&json!({"jsonrpc": "2.0", "id": 1, "result": {}})),
            node_id,
            instance_id: format!("s-0@{node_id}"),
        })
    }

    fn peer_has_nothing() -> Result<Executed, ExecuteError> {
        let status = ErrorKind::NoHealthyInstance.status("no healthy instance of \"s\"");
        Err(ExecuteError::Forwarded(status))
    }

    fn broken_after_sending() -> Result<Executed, ExecuteError> {
        Err(ExecuteError::Connection {
            server: "s".to_owned(),
            source: UpstreamError::Closed("peer n2: connection reset".to_owned()),
        })
    }

    /// A registry in which server `s` runs on nodes 2 and 3 only.
    async fn registry_hosted_elsewhere(dir: &std::path::Path) -> RegistryReader {
        let db = mcp_storage::open_db(dir, 1 << 20).unwrap();
        let mut machine = RegistryStateMachine::open(&db).unwrap();
        let spec = spec::parse_json(r#"{"name": "s", "command": "x", "replicas": 2}"#).unwrap();
        let node = |id: NodeId| Command::PutNode {
            node: NodeRecord {
                id,
                addr: format!("n{id}:7400"),
                tags: vec![],
                draining: false,
            },
        };
        let commands = [
            node(1),
            node(2),
            node(3),
            Command::PutServer {
                spec,
                expected_revision: None,
            },
            Command::Place {
                name: "s".to_owned(),
                assign: BTreeMap::from([("s-0".to_owned(), 2), ("s-1".to_owned(), 3)]),
                unassign: vec![],
            },
        ];
        let entries = commands.into_iter().zip(1..).map(|(command, index)| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(command),
        });
        for result in machine.apply(entries).await.unwrap() {
            result.unwrap();
        }
        machine.reader()
    }

    /// Runs `method` on node 1, which hosts nothing, with the peers giving `answers` in
    /// turn: the node that answered (or the error's kind), and the peers asked in order.
    async fn execute_on_node_1(
        method: &str,
        answers: Vec<Result<Executed, ExecuteError>>,
    ) -> (Result<NodeId, ErrorKind>, Vec<NodeId>) {
        let dir = tempfile::tempdir().unwrap();
        let peers = FakePeers::answering(answers);
        let plane = node_1(dir.path(), &peers).await;
        let result = call(&plane, method).await;
        plane.shutdown().await;
        (result, peers.asked())
    }

    /// The data plane of node 1, which hosts nothing, reaching the peers through `peers`.
    async fn node_1(dir: &std::path::Path, peers: &Arc<FakePeers>) -> Arc<DataPlane> {
        let registry = registry_hosted_elsewhere(dir).await;
        let metrics = DataPlaneMetrics::register(&prometheus::Registry::new()).unwrap();
        DataPlane::start(
            1,
            DataPlaneConfig::default(),
            registry,
            Arc::clone(peers) as Arc<dyn PeerForwarder>,
            Arc::new(metrics),
        )
    }

    /// Runs `method` on `plane`: the node that answered, or the error's kind.
    async fn call(plane: &DataPlane, method: &str) -> Result<NodeId, ErrorKind> {
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}});
        plane
            .execute("s", request, ExecuteOptions::default())
            .await
            .map(|executed| executed.node_id)
            .map_err(|e| e.kind())
    }

    #[tokio::test]
    async fn a_peer_that_failed_is_tried_last_by_the_calls_after_it() {
        let unreachable = Err(ExecuteError::Connection {
            server: "s".to_owned(),
            source: UpstreamError::Connect("peer: connection refused".to_owned()),
        });
        let mut answers = vec![unreachable, answered_by(0)];
        answers.extend((0..10).map(|_| answered_by(0)));
        let dir = tempfile::tempdir().unwrap();
        let peers = FakePeers::answering(answers);
        let plane = node_1(dir.path(), &peers).await;
        for _ in 0..11 {
            assert_eq!(call(&plane, "tools/call").await, Ok(0));
        }
        plane.shutdown().await;
        let asked = peers.asked();
        let (failed, answering) = (asked[0], asked[1]);
        assert_ne!(failed, answering);
        // Hosts are tried in random order: without the mark, ten calls in a row would all
        // pick the answering host first once in 1,024 runs.
        assert_eq!(asked[2..], [answering; 10], "asked in order: {asked:?}");
    }

    #[tokio::test]
    async fn a_peer_with_nothing_to_run_it_on_sends_the_call_to_the_next_host() {
        let answers = vec![peer_has_nothing(), answered_by(0)];
        let (outcome, asked) = execute_on_node_1("tools/call", answers).await;
        assert_eq!(outcome, Ok(0));
        assert_eq!(BTreeSet::from_iter(asked), BTreeSet::from([2, 3]));
    }

    #[tokio::test]
    async fn a_tools_call_broken_after_sending_is_not_sent_to_another_host() {
        let (outcome, asked) = execute_on_node_1("tools/call", vec![broken_after_sending()]).await;
        assert_eq!((outcome, asked.len()), (Err(ErrorKind::Connection), 1));
    }

    #[tokio::test]
    async fn a_tools_list_broken_after_sending_goes_to_the_next_host() {
        let answers = vec![broken_after_sending(), answered_by(0)];
        let (outcome, asked) = execute_on_node_1("tools/list", answers).await;
        assert_eq!((outcome, asked.len()), (Ok(0), 2));
    }

    #[tokio::test]
    async fn a_tools_call_goes_to_the_next_host_when_a_peer_cannot_be_reached() {
        let unreachable = Err(ExecuteError::Connection {
            server: "s".to_owned(),
            source: UpstreamError::Connect("peer n2: connection refused".to_owned()),
        });
        let (outcome, asked) =
            execute_on_node_1("tools/call", vec![unreachable, answered_by(0)]).await;
        assert_eq!((outcome, asked.len()), (Ok(0), 2));
    }

    #[tokio::test]
    async fn a_peers_own_error_is_the_answer() {
        let timeout = ErrorKind::Timeout.status("no answer from \"s\" within 10 ms");
        let answers = vec![Err(ExecuteError::Forwarded(timeout))];
        let (outcome, asked) = execute_on_node_1("tools/list", answers).await;
        assert_eq!((outcome, asked.len()), (Err(ErrorKind::Timeout), 1));
    }

    #[tokio::test]
    async fn when_no_host_can_take_it_the_last_refusal_is_the_answer() {
        let answers = vec![peer_has_nothing(), peer_has_nothing()];
        let (outcome, asked) = execute_on_node_1("tools/call", answers).await;
        assert_eq!(
            (outcome, asked.len()),
            (Err(ErrorKind::NoHealthyInstance), 2)
        );
    }
}
