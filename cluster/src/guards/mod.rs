//! Cluster-wide guards, applied by the data plane to every request whatever door it came
//! through (gRPC, `/mcp`, the Python package): pinned tool definitions ([`pinning`]),
//! secrets filled into specs where instances start ([`secrets`]), rate limits
//! ([`rate_limit`]) and concurrency quotas ([`concurrency`]). Their configuration and state
//! are registry state, so every node decides alike; limits and quotas are split into
//! per-node shares by the live membership ([`Share`]).
//!
//! A call a guard refuses never reaches a server and never waits: it fails at once with
//! a [`Refusal`] (typed on the wire, with a retry-after for limits).

pub mod concurrency;
pub mod pinning;
pub mod rate_limit;
pub mod secrets;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use mcp_raft::registry::spec::RateLimit;
use mcp_raft::{NodeId, RegistryReader};
use serde_json::Value;

use concurrency::{Permit, Quotas};
use pinning::Observer;
use rate_limit::{LimitKey, RateLimiter};
use secrets::Keyring;

use crate::dataplane::jsonrpc;
use crate::principal::Principal;

/// Retry-after suggested for a call refused by a concurrency quota (calls end at their
/// own pace; a short pause is the useful hint).
const QUOTA_RETRY_AFTER: Duration = Duration::from_millis(100);

/// This node's place among the live members: limits are split by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// Live members (members that are not draining).
    pub members: usize,
    /// This node's rank among them (by id); `None` if it is not live (draining, or not a
    /// member yet): it then admits no limited call.
    pub rank: Option<usize>,
}

impl Default for Share {
    /// Alone: the whole limit (a node that has not seen its membership yet).
    fn default() -> Self {
        Self {
            members: 1,
            rank: Some(0),
        }
    }
}

impl Share {
    /// The share of `members` (live ids) for node `this`.
    pub fn of(this: NodeId, live: &[NodeId]) -> Self {
        let mut sorted = live.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        Self {
            members: sorted.len(),
            rank: sorted.iter().position(|id| *id == this),
        }
    }

    /// The fraction of a rate limit this node admits.
    pub fn fraction(&self) -> f64 {
        match self.rank {
            Some(_) if self.members > 0 => 1.0 / self.members as f64,
            _ => 0.0,
        }
    }
}

/// Why a guard refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A rate limit is exhausted on this node.
    #[error("rate limit of {scope} reached ({per_second}/s, burst {burst}, cluster-wide; this node admits its share); retry after {} ms", .retry_after.as_millis())]
    RateLimited {
        /// What the limit is on.
        scope: String,
        /// The limit.
        per_second: u32,
        /// Its burst.
        burst: u32,
        /// When to try again.
        retry_after: Duration,
    },
    /// The server's concurrency quota is used up on this node.
    #[error("server {server:?} allows {limit} concurrent calls cluster-wide (max_concurrent_calls) and this node's share of {share} is in use; retry after {} ms", .retry_after.as_millis())]
    QuotaExceeded {
        /// Server name.
        server: String,
        /// The quota.
        limit: u32,
        /// This node's share of it.
        share: u32,
        /// When to try again.
        retry_after: Duration,
    },
    /// This node admits no limited call (it is draining or not yet a member).
    #[error("this node is draining (or not a member) and admits no calls of rate-limited server {server:?}; send them to another node")]
    NotServing {
        /// Server name.
        server: String,
    },
    /// A tool withheld by pinning.
    #[error("tool {tool:?} of server {server:?} is withheld: {reason}")]
    ToolWithheld {
        /// Server name.
        server: String,
        /// Tool name.
        tool: String,
        /// Why.
        reason: &'static str,
    },
}

impl Refusal {
    /// When the caller may try again, for limits.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Refusal::RateLimited { retry_after, .. }
            | Refusal::QuotaExceeded { retry_after, .. } => Some(*retry_after),
            Refusal::NotServing { .. } => Some(Duration::from_secs(1)),
            Refusal::ToolWithheld { .. } => None,
        }
    }

    /// The wire category of the refusal.
    pub fn kind(&self) -> mcp_proto::contract::ErrorKind {
        if self.is_limit() {
            mcp_proto::contract::ErrorKind::RateLimited
        } else {
            mcp_proto::contract::ErrorKind::ToolWithheld
        }
    }

    /// True for a limit (as opposed to a withheld tool).
    pub fn is_limit(&self) -> bool {
        !matches!(self, Refusal::ToolWithheld { .. })
    }
}

/// JSON-RPC error code of a call refused by a limit or quota (`/mcp`).
pub const JSONRPC_RATE_LIMITED: i64 = -32029;
/// JSON-RPC error code of a call of a withheld tool (`/mcp`).
pub const JSONRPC_TOOL_WITHHELD: i64 = -32028;

/// The JSON-RPC error code of `refusal`.
pub fn jsonrpc_code(refusal: &Refusal) -> i64 {
    if refusal.is_limit() {
        JSONRPC_RATE_LIMITED
    } else {
        JSONRPC_TOOL_WITHHELD
    }
}

/// The JSON-RPC error `data` of `refusal`: its kind, and `retryAfterMs` for a limit.
pub fn jsonrpc_data(refusal: &Refusal) -> Value {
    let mut data = serde_json::json!({ "kind": refusal.kind().as_str() });
    if let Some(after) = refusal.retry_after() {
        data["retryAfterMs"] = u64::try_from(after.as_millis()).unwrap_or(u64::MAX).into();
    }
    data
}

/// What an admitted request holds until it ends.
#[derive(Debug, Default)]
pub struct Admission {
    _quota: Option<Permit>,
}

/// The guards of one node.
pub struct Guards {
    keyring: Option<Arc<Keyring>>,
    share: RwLock<Share>,
    rates: RateLimiter,
    quotas: Quotas,
    observer: Observer,
    refusals: Option<prometheus::IntCounterVec>,
}

impl std::fmt::Debug for Guards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guards")
            .field("keyring", &self.keyring)
            .field("share", &self.share())
            .finish_non_exhaustive()
    }
}

/// The metrics of the guards, registered into a node's registry.
#[derive(Clone)]
pub struct GuardMetrics {
    /// `mcp_guard_tool_changes_total{server, kind}`.
    pub tool_changes: prometheus::IntCounterVec,
    /// `mcp_guard_refusals_total{server, reason}`.
    pub refusals: prometheus::IntCounterVec,
}

impl GuardMetrics {
    /// Registers the guard metrics in `registry`.
    pub fn register(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let tool_changes = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "mcp_guard_tool_changes_total",
                "Tool definitions seen that differ from their pin (changed) or were added after the first listing (new)",
            ),
            &["server", "kind"],
        )?;
        let refusals = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "mcp_guard_refusals_total",
                "Calls refused by a guard on this node, by reason",
            ),
            &["server", "reason"],
        )?;
        registry.register(Box::new(tool_changes.clone()))?;
        registry.register(Box::new(refusals.clone()))?;
        Ok(Self {
            tool_changes,
            refusals,
        })
    }
}

impl Guards {
    /// The guards of node `node`, opening secrets with `keyring` (none: specs that refer to
    /// secrets do not start here), counting in `metrics` if given.
    pub fn new(node: NodeId, keyring: Option<Arc<Keyring>>, metrics: Option<GuardMetrics>) -> Self {
        Self {
            keyring,
            share: RwLock::new(Share::default()),
            rates: RateLimiter::default(),
            quotas: Quotas::default(),
            observer: Observer::new(node, metrics.as_ref().map(|m| m.tool_changes.clone())),
            refusals: metrics.map(|m| m.refusals),
        }
    }

    /// The cluster key ring, if this node has one.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_deref()
    }

    /// Where tool observations are proposed.
    pub fn observer(&self) -> &Observer {
        &self.observer
    }

    /// This node's current share.
    pub fn share(&self) -> Share {
        *self.share.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets this node's share (the membership watcher calls this on every change).
    pub fn set_share(&self, share: Share) {
        let mut current = self.share.write().unwrap_or_else(|e| e.into_inner());
        if *current != share {
            tracing::info!(members = share.members, rank = ?share.rank, "guard shares rebalanced");
            *current = share;
        }
    }

    /// Admits `request` for `server` or refuses it. Only `tools/call`s are guarded; limits
    /// and quotas are counted on the node the caller reached (`forwarded` requests were
    /// counted there), pins everywhere.
    pub fn admit(
        &self,
        registry: &RegistryReader,
        server: &str,
        request: &Value,
        forwarded: bool,
    ) -> Result<Admission, Refusal> {
        if jsonrpc::method(request) != Some("tools/call") {
            return Ok(Admission::default());
        }
        let tool = request
            .pointer("/params/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // Only what this call needs is copied out of the registry (this runs per call).
        let found = registry.read(|state| {
            let guards = &state.registry.server(server)?.spec.guards;
            let withheld = state
                .registry
                .tool_pins()
                .server(server)
                .and_then(|pins| pins.withheld(guards.pin, tool, None));
            let tool_limit = guards.tool_rate_limits.get(tool).copied();
            Some((
                withheld,
                guards.rate_limit,
                tool_limit,
                guards.max_concurrent_calls,
            ))
        });
        // An unknown server is the router's error to report.
        let Some((withheld, server_limit, tool_limit, max_concurrent)) = found else {
            return Ok(Admission::default());
        };
        let refused = |r: Refusal| {
            self.count_refusal(server, &r);
            Err(r)
        };
        if let Some(why) = withheld {
            return refused(Refusal::ToolWithheld {
                server: server.to_owned(),
                tool: tool.to_owned(),
                reason: why.reason(),
            });
        }
        if forwarded {
            return Ok(Admission::default());
        }
        if server_limit.is_none() && tool_limit.is_none() && max_concurrent.is_none() {
            return Ok(Admission::default());
        }
        let mut limits: Vec<(LimitKey, RateLimit)> = Vec::with_capacity(2);
        if let Some(limit) = server_limit {
            limits.push((LimitKey::Server(server.to_owned()), limit));
        }
        if let Some(limit) = tool_limit {
            limits.push((LimitKey::Tool(server.to_owned(), tool.to_owned()), limit));
        }
        let share = self.share();
        if share.rank.is_none() {
            return refused(Refusal::NotServing {
                server: server.to_owned(),
            });
        }
        if let Err(limited) = self.rates.admit(&limits, share.fraction(), Instant::now()) {
            return refused(Refusal::RateLimited {
                scope: limited.key.describe(),
                per_second: limited.limit.per_second,
                burst: limited.limit.burst,
                retry_after: limited.retry_after,
            });
        }
        let quota = match max_concurrent {
            None => None,
            Some(limit) => {
                let node_share =
                    concurrency::share_of(limit, share.members, share.rank.unwrap_or(0));
                match self.quotas.try_acquire(server, node_share) {
                    Some(permit) => Some(permit),
                    None => {
                        return refused(Refusal::QuotaExceeded {
                            server: server.to_owned(),
                            limit,
                            share: node_share,
                            retry_after: QUOTA_RETRY_AFTER,
                        })
                    }
                }
            }
        };
        Ok(Admission { _quota: quota })
    }

    /// Admits a `tools/call` of `server` by `principal` against its own limit and its
    /// role's (each principal of a role has its own bucket), on the node the caller
    /// reached; a layer before the server's limits, so a refusal names the caller.
    pub fn admit_caller(
        &self,
        registry: &RegistryReader,
        principal: &Principal,
        server: &str,
    ) -> Result<(), Refusal> {
        let limits: Vec<(LimitKey, RateLimit)> = registry.read(|state| {
            let caller = state.registry.caller_limits();
            let own = caller
                .principal(&principal.name)
                .map(|l| (LimitKey::Principal(principal.name.clone()), l));
            let role = caller.role(principal.role).map(|l| {
                (
                    LimitKey::Role(principal.role.as_str().to_owned(), principal.name.clone()),
                    l,
                )
            });
            own.into_iter().chain(role).collect()
        });
        if limits.is_empty() {
            return Ok(());
        }
        let share = self.share();
        let refused = match share.rank {
            None => Refusal::NotServing {
                server: server.to_owned(),
            },
            Some(_) => match self.rates.admit(&limits, share.fraction(), Instant::now()) {
                Ok(()) => return Ok(()),
                Err(limited) => Refusal::RateLimited {
                    scope: limited.key.describe(),
                    per_second: limited.limit.per_second,
                    burst: limited.limit.burst,
                    retry_after: limited.retry_after,
                },
            },
        };
        self.count_refusal(server, &refused);
        Err(refused)
    }

    fn count_refusal(&self, server: &str, refusal: &Refusal) {
        let reason = match refusal {
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::QuotaExceeded { .. } => "quota_exceeded",
            Refusal::NotServing { .. } => "not_serving",
            Refusal::ToolWithheld { .. } => "tool_withheld",
        };
        if let Some(counter) = &self.refusals {
            counter.with_label_values(&[server, reason]).inc();
        }
    }

    /// Screens the answer to a `tools/list` of `server` (withheld tools taken out); if a
    /// local instance gave it (`local`), records what it presented.
    pub fn screen_list(
        &self,
        registry: &RegistryReader,
        server: &str,
        response: &mut Value,
        local: bool,
    ) {
        let screened = pinning::screen(registry, server, response);
        if !screened.withheld.is_empty() {
            tracing::debug!(server, withheld = ?screened.withheld, "tools withheld from a listing by pinning");
        }
        if local {
            self.observer.observe(server, &screened);
        }
    }

    /// A listing taken by the watcher from a local instance.
    pub fn after_local_list(&self, registry: &RegistryReader, server: &str, response: &mut Value) {
        self.screen_list(registry, server, response, true);
    }

    /// Forgets idle rate-limit buckets.
    pub fn prune(&self) {
        self.rates.prune(Instant::now(), Duration::from_secs(600));
    }
}

/// Keeps `guards`' share in step with the membership: the members Raft knows, minus the
/// nodes the registry marks as draining. Runs until Raft shuts down.
pub fn spawn_share_watch(
    guards: Arc<Guards>,
    raft: mcp_raft::types::Raft,
    registry: RegistryReader,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut metrics = raft.metrics();
        let mut changes = registry.subscribe();
        let mut prune = tokio::time::interval(Duration::from_secs(60));
        loop {
            let view = crate::membership::MembershipView::of(&raft);
            let draining: Vec<NodeId> = registry.read(|state| {
                state
                    .registry
                    .nodes()
                    .filter(|n| n.draining)
                    .map(|n| n.id)
                    .collect()
            });
            let live: Vec<NodeId> = view
                .nodes
                .keys()
                .copied()
                .filter(|id| !draining.contains(id))
                .collect();
            // No membership yet (a node still starting): alone, as a single node is.
            let share = if view.nodes.is_empty() {
                Share::default()
            } else {
                Share::of(view.this, &live)
            };
            guards.set_share(share);
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                changed = changes.changed() => if changed.is_err() { return },
                _ = prune.tick() => guards.prune(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_the_live_members() {
        let share = Share::of(2, &[3, 1, 2]);
        assert_eq!(
            share,
            Share {
                members: 3,
                rank: Some(1)
            }
        );
        assert!((share.fraction() - 1.0 / 3.0).abs() < 1e-9);
        let draining = Share::of(2, &[1, 3]);
        assert_eq!(draining.rank, None);
        assert_eq!(draining.fraction(), 0.0);
        assert_eq!(Share::default().fraction(), 1.0);
    }
}
