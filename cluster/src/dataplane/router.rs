//! Routes one execute request: to a local instance, with retries where they are safe, or
//! to a node that hosts one.
//!
//! Retry rule: a request is sent again (to another instance, after a backoff with jitter)
//! only if it provably never reached a server (connect failure, open breaker, saturated
//! instance), or if its method is safe to repeat (`ping`, `tools/list`, `resources/read`,
//! ...), or if the caller opted in. A `tools/call` that timed out is never sent twice
//! silently.

use std::time::Duration;

use mcp_client::retry::is_repeatable_method;
use mcp_proto::contract::ErrorKind;
use mcp_proto::execute::execute_service_client::ExecuteServiceClient;
use mcp_proto::execute::ExecuteRequest;
use mcp_raft::NodeId;
use rand::seq::SliceRandom;
use serde_json::Value;
use tonic::metadata::MetadataValue;

use super::error::ExecuteError;
use super::pool::NoChoice;
use super::upstream::UpstreamError;
use super::{jsonrpc, placement, DataPlane};

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
}

/// A successful execution.
#[derive(Debug, Clone)]
pub struct Executed {
    /// The server's JSON-RPC response (result or error) with the caller's id.
    pub response: Value,
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
        let result = self.route(server, request, options).await;
        // Each request is counted once: by the node that ran it, or by the node that
        // answered with an error of its own (a peer's error was counted by the peer).
        let outcome = match &result {
            // The server answered, but with a JSON-RPC error: not a success for whoever
            // asked (the breaker still sees a working server, see `execute_local`).
            Ok(executed) if executed.node_id == self.node_id => {
                if jsonrpc::error_of(&executed.response).is_some() {
                    Some(ErrorKind::ServerError.as_str())
                } else {
                    Some("success")
                }
            }
            Ok(_) | Err(ExecuteError::Forwarded(_)) => None,
            Err(e) => Some(e.kind().as_str()),
        };
        if let Some(outcome) = outcome {
            self.metrics
                .requests
                .with_label_values(&[server, method, outcome])
                .inc();
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
        let deadline = tokio::time::Instant::now() + self.config.connect_timeout;
        let mut registry_changes = self.registry.subscribe();
        loop {
            // Armed before the attempt, so that a change during it is not missed.
            let instance_changed = self.pool.changes().notified();
            tokio::pin!(instance_changed);
            instance_changed.as_mut().enable();
            registry_changes.borrow_and_update();

            let error = match self.route_once(server, &request, &options).await {
                Ok(executed) => return Ok(executed),
                Err(error) => error,
            };
            let waiting =
                matches!(error, ExecuteError::NoHealthyInstance { .. }) && self.coming_up(server);
            if !waiting || tokio::time::Instant::now() >= deadline {
                return Err(error);
            }
            tracing::debug!(server, "no instance ready yet; waiting for one to come up");
            tokio::select! {
                () = instance_changed => {}
                _ = registry_changes.changed() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// True if the server may soon have a usable instance on this node or anywhere: the
    /// leader has not placed it yet, or a local instance is starting or restarting.
    fn coming_up(&self, server: &str) -> bool {
        let unplaced = self.registry.read(|state| {
            state.registry.server(server).is_some_and(|record| {
                !placement::runs_everywhere(record)
                    && record.spec.replicas > 0
                    && record.placements.is_empty()
            })
        });
        unplaced
            || self
                .pool
                .instances(server)
                .iter()
                .any(|instance| instance.state().coming_up())
            || self.reconciler_behind(server)
    }

    /// True if the registry wants an instance of `server` here that the reconciler has not
    /// started yet (it runs as its own task, a moment after each registry change).
    fn reconciler_behind(&self, server: &str) -> bool {
        let wanted = self.registry.read(|state| {
            placement::local_instances(&state.registry, self.node_id, self.http_sessions())
        });
        let running = self.pool.all();
        wanted
            .iter()
            .any(|(id, name)| name == server && !running.contains_key(id))
    }

    async fn route_once(
        &self,
        server: &str,
        request: &Value,
        options: &ExecuteOptions,
    ) -> Result<Executed, ExecuteError> {
        let lookup = self.registry.read(|state| {
            let record = state.registry.server(server)?;
            let hosts: Vec<(NodeId, String)> = placement::hosts(&state.registry, server)
                .into_iter()
                .filter(|id| *id != self.node_id)
                .filter_map(|id| {
                    state
                        .registry
                        .nodes()
                        .find(|n| n.id == id)
                        .map(|n| (id, n.addr.clone()))
                })
                .collect();
            Some((record.spec.request_timeout_ms, hosts))
        });
        let Some((spec_timeout, mut peers)) = lookup else {
            return Err(ExecuteError::UnknownServer(server.to_owned()));
        };
        let timeout = options
            .timeout
            .or(spec_timeout.map(Duration::from_millis))
            .unwrap_or(self.config.request_timeout);

        let local = self
            .execute_local(server, request, timeout, options.retry_unsafe)
            .await;
        let local_error = match local {
            Ok(executed) => return Ok(executed),
            Err(e) => e,
        };
        // Only "nothing here could take it" is worth a hop; any other error is the answer.
        let try_peers = matches!(local_error, ExecuteError::NoHealthyInstance { .. });
        if !try_peers || options.forwarded || peers.is_empty() {
            return Err(local_error);
        }
        peers.shuffle(&mut rand::thread_rng());
        let repeatable =
            options.retry_unsafe || jsonrpc::method(request).is_some_and(is_repeatable_method);
        let mut last = local_error;
        for (peer, addr) in peers {
            let forwarded = self
                .forward(server, request, options, timeout, peer, &addr)
                .await;
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

    async fn execute_local(
        &self,
        server: &str,
        request: &Value,
        timeout: Duration,
        retry_unsafe: bool,
    ) -> Result<Executed, ExecuteError> {
        let repeatable = retry_unsafe || jsonrpc::method(request).is_some_and(is_repeatable_method);
        let retry = &self.config.retry;
        let limit = self.config.max_in_flight_per_instance;
        let mut tried: Vec<String> = Vec::new();
        let mut last: Option<ExecuteError> = None;
        for attempt in 1..=retry.max_attempts.max(1) {
            if attempt > 1 {
                self.metrics.retries.with_label_values(&[server]).inc();
                tokio::time::sleep(retry.delay(attempt - 1)).await;
            }
            let chosen = match self.pool.choose(server, &tried, limit) {
                Ok(chosen) => chosen,
                Err(why) => {
                    if why == NoChoice::Saturated {
                        self.metrics
                            .saturation_rejections
                            .with_label_values(&[server])
                            .inc();
                    }
                    return Err(last.unwrap_or_else(|| self.no_choice(server, why, limit)));
                }
            };
            tried.push(chosen.instance.id.clone());
            let started = std::time::Instant::now();
            let outcome = tokio::time::timeout(timeout, chosen.session.request(request)).await;
            self.metrics
                .request_duration
                .with_label_values(&[server])
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(Ok(response)) => {
                    // A JSON-RPC error is a working server saying no: not a breaker failure.
                    chosen.instance.breaker.record(true);
                    return Ok(Executed {
                        response,
                        node_id: self.node_id,
                        instance_id: chosen.instance.id.clone(),
                    });
                }
                Ok(Err(source)) => {
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

    async fn forward(
        &self,
        server: &str,
        request: &Value,
        options: &ExecuteOptions,
        timeout: Duration,
        peer: NodeId,
        addr: &str,
    ) -> Result<Executed, ExecuteError> {
        let connection = |message: String| ExecuteError::Connection {
            server: server.to_owned(),
            source: UpstreamError::Connect(message),
        };
        let channel = self
            .peers
            .channel(addr)
            .map_err(|e| connection(e.to_string()))?;
        self.metrics
            .forwarded
            .with_label_values(&[&peer.to_string()])
            .inc();
        let mut client = ExecuteServiceClient::new(channel)
            .max_decoding_message_size(self.config.max_message_bytes.saturating_mul(2));
        let mut call = tonic::Request::new(ExecuteRequest {
            server: server.to_owned(),
            request_json: request.to_string(),
            retry_unsafe: options.retry_unsafe,
            timeout_ms: u64::try_from(timeout.as_millis()).ok(),
        });
        call.metadata_mut()
            .insert(mcp_proto::FORWARDED_BY, MetadataValue::from(self.node_id));
        // The peer authorizes this like any caller's execute.
        self.peers.authorize(call.metadata_mut());
        if let Ok(id) = MetadataValue::try_from(options.request_id.as_str()) {
            call.metadata_mut().insert(mcp_proto::REQUEST_ID, id);
        }
        tracing::info!(request_id = %options.request_id, server, peer, "forwarding request");
        match client.execute(call).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                let response = serde_json::from_str(&reply.response_json)
                    .map_err(|e| connection(format!("peer sent an undecodable reply: {e}")))?;
                Ok(Executed {
                    response,
                    node_id: reply.node_id,
                    instance_id: reply.instance_id,
                })
            }
            Err(status) if status.metadata().get(mcp_proto::ERROR_KIND).is_none() => {
                let message = format!("peer {addr}: {}", status.message());
                // Only a failed connect proves the peer never saw the request.
                let source = if mcp_client::retry::never_reached(&status) {
                    UpstreamError::Connect(message)
                } else {
                    UpstreamError::Closed(message)
                };
                Err(ExecuteError::Connection {
                    server: server.to_owned(),
                    source,
                })
            }
            Err(status) => Err(ExecuteError::Forwarded(status)),
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
