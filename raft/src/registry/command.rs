//! Commands that change the registry, and what applying one returns.
//!
//! Every command is validated before it is proposed (see [`super::spec`]); the state
//! machine still checks preconditions that depend on the state at apply time (the server
//! exists, the expected revision matches), and reports a failed precondition as a
//! [`CommandError`] result, leaving the registry untouched.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::gateway_sessions::SecretKey;
use super::limits::LimitSubject;
use super::pins::ToolDefinition;
use super::principals::TokenRecord;
use super::secrets::SealedSecret;
use super::spec::RateLimit;
use super::spec::ServerSpec;
use super::views::ViewSpec;
use super::NodeRecord;
use crate::types::NodeId;

/// A change to the registry, carried by one Raft log entry.
///
/// `PutServer` carries a whole spec inline and is much larger than the other variants; a
/// command lives for one write (a batch at most) and is serialized into the log, so boxing
/// the spec would add an allocation and buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Command {
    /// Create or replace a server spec. With `expected_revision`, apply only if the
    /// server's current `mod_revision` equals it (0: the server must not exist).
    PutServer {
        /// The validated spec.
        spec: ServerSpec,
        /// Compare-and-set guard.
        expected_revision: Option<u64>,
    },
    /// Remove a server together with its placements.
    DeleteServer {
        /// Server name.
        name: String,
    },
    /// Change the desired replica count of a server.
    Scale {
        /// Server name.
        name: String,
        /// New desired replica count.
        replicas: u32,
    },
    /// Change where a server's instances run: assign instance ids to nodes and drop
    /// instance ids. Written by the leader's scheduler.
    Place {
        /// Server name.
        name: String,
        /// Instance id -> node that runs it (added or moved).
        assign: BTreeMap<String, NodeId>,
        /// Instance ids to remove.
        unassign: Vec<String>,
    },
    /// Record or update a cluster node.
    PutNode {
        /// The node.
        node: NodeRecord,
    },
    /// Mark a node as draining (the scheduler moves its instances away and places nothing
    /// new on it) or clear the mark. Only the flag changes, so it never races a concurrent
    /// update of the node's other attributes.
    SetDraining {
        /// Node id.
        id: NodeId,
        /// The new mark.
        draining: bool,
    },
    /// Replace a node's tags (what it announces about itself, for placement constraints).
    SetNodeTags {
        /// Node id.
        id: NodeId,
        /// The tags, sorted and deduplicated by the proposer.
        tags: Vec<String>,
    },
    /// Forget a cluster node.
    DeleteNode {
        /// Node id.
        id: NodeId,
    },
    /// Make `key` the key that seals new gateway session ids, under `id` (the one after the
    /// current id, else refused: racing rotations cannot both win). Keys retired more than
    /// `retain_ms` before `at_ms` are dropped. Proposed by the leader when there is none,
    /// and by `mcpd gateway rotate-key`. `Debug` never shows the key.
    PutSessionKey {
        /// The key's id, carried in every session id it seals.
        id: u32,
        /// The secret.
        key: SecretKey,
        /// When it was proposed (ms since the Unix epoch, the proposer's clock).
        at_ms: u64,
        /// How long a retired key is kept: the proposer's session lifetime.
        retain_ms: u64,
    },
    /// End gateway session `session` (its serial) on every node until it would have
    /// expired anyway at `expires_at_ms`; ended sessions expired by `at_ms` are forgotten.
    EndSession {
        /// The session's serial (not its id: the replicated set holds nothing sealed).
        session: String,
        /// When the session expires (ms since the Unix epoch).
        expires_at_ms: u64,
        /// When it was ended (ms since the Unix epoch, the proposer's clock).
        at_ms: u64,
    },
    /// Several independent commands in one log entry (concurrent writes batched into one
    /// fsync). Each is applied on its own: one failed precondition does not affect others.
    Batch {
        /// The commands, applied in order. Batches do not nest.
        commands: Vec<Command>,
    },
    /// Add an API token (its hash, never the token); the name must be new.
    PutToken {
        /// The token's record.
        record: TokenRecord,
    },
    /// Revoke the API token named `name`: every node refuses it once it applies this.
    RevokeToken {
        /// Token name.
        name: String,
    },
    /// What a node saw when it listed `server`'s tools: tool name -> definition. The first
    /// observation pins them; a changed pinned tool (or, under `pin: strict`, a new one)
    /// becomes pending until approved (see [`super::pins`]).
    ObserveTools {
        /// Server name.
        server: String,
        /// The tools as listed.
        tools: BTreeMap<String, ToolDefinition>,
        /// The node that listed them.
        node: NodeId,
        /// When (ms since the Unix epoch, that node's clock).
        at_ms: u64,
    },
    /// Pin the pending definitions of `tools` of `server` (every pending one if empty).
    ApproveTools {
        /// Server name.
        server: String,
        /// Tool names; empty: all pending.
        tools: Vec<String>,
    },
    /// Create or replace secret `name`, sealed by the proposing node (the log never holds
    /// a value). `Debug` shows no ciphertext.
    PutSecret {
        /// Secret name.
        name: String,
        /// The sealed value.
        sealed: SealedSecret,
    },
    /// Replace secret `name`'s sealed value if it is still `previous` (key rotation).
    ResealSecret {
        /// Secret name.
        name: String,
        /// The value it must still have.
        previous: SealedSecret,
        /// The value under the new key.
        sealed: SealedSecret,
    },
    /// Remove secret `name` (refused while a server refers to it).
    DeleteSecret {
        /// Secret name.
        name: String,
    },
    /// Wake an on-demand server (the scheduler places one instance though `replicas` is
    /// 0) or let it sleep again. Proposed by the data plane: a call that found no instance
    /// wakes it, the node whose instance sat idle for `idle_timeout_secs` puts it to sleep.
    SetAwake {
        /// Server name.
        name: String,
        /// The new state.
        awake: bool,
    },
    /// Create or replace a view of the MCP gateway (checked before it is proposed).
    PutView {
        /// The view.
        view: ViewSpec,
    },
    /// Remove a view; removing one that is not there changes nothing.
    DeleteView {
        /// View name.
        name: String,
    },
    /// Set (or with `None` remove) the rate limit of a principal or a role (issue 16).
    SetCallerLimit {
        /// Whom it limits.
        subject: LimitSubject,
        /// The cluster-wide limit; `None` removes it.
        limit: Option<RateLimit>,
    },
    /// A server announced that its tools, resources or prompts changed (sent by the node
    /// whose instance heard it, so that every node's gateway refreshes).
    ServerListsChanged {
        /// Server name.
        name: String,
    },
}

impl Command {
    /// Short name of the operation, for logs and metrics.
    pub fn op(&self) -> &'static str {
        match self {
            Command::PutServer { .. } => "put_server",
            Command::DeleteServer { .. } => "delete_server",
            Command::Scale { .. } => "scale",
            Command::Place { .. } => "place",
            Command::PutNode { .. } => "put_node",
            Command::SetDraining { .. } => "set_draining",
            Command::SetNodeTags { .. } => "set_node_tags",
            Command::DeleteNode { .. } => "delete_node",
            Command::PutSessionKey { .. } => "put_session_key",
            Command::EndSession { .. } => "end_session",
            Command::Batch { .. } => "batch",
            Command::PutToken { .. } => "put_token",
            Command::RevokeToken { .. } => "revoke_token",
            Command::ObserveTools { .. } => "observe_tools",
            Command::ApproveTools { .. } => "approve_tools",
            Command::PutSecret { .. } => "put_secret",
            Command::ResealSecret { .. } => "reseal_secret",
            Command::DeleteSecret { .. } => "delete_secret",
            Command::SetAwake { .. } => "set_awake",
            Command::PutView { .. } => "put_view",
            Command::DeleteView { .. } => "delete_view",
            Command::SetCallerLimit { .. } => "set_caller_limit",
            Command::ServerListsChanged { .. } => "server_lists_changed",
        }
    }
}

/// What a successfully applied command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// Registry revision after the command.
    pub revision: u64,
    /// `PutServer` created a new server (rather than replacing one).
    pub created: bool,
    /// For a `Batch`: the result of each command, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch: Vec<CommandResult>,
}

/// A command whose precondition did not hold when it was applied; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CommandError {
    /// The named server is not in the registry.
    #[error("server {name:?} not found")]
    ServerNotFound {
        /// Server name.
        name: String,
    },
    /// The compare-and-set guard of a `PutServer` did not match.
    #[error("server {name:?} is at revision {actual}, expected {expected}")]
    RevisionMismatch {
        /// Server name.
        name: String,
        /// The revision the caller expected.
        expected: u64,
        /// The server's revision (0 if it does not exist).
        actual: u64,
    },
    /// The named node is not in the registry.
    #[error("node {id} not found")]
    NodeNotFound {
        /// Node id.
        id: NodeId,
    },
    /// A `PutSessionKey` whose id does not follow the current key's (another rotation
    /// won the race).
    #[error("session key {id} does not follow the current key {current}; rotate again")]
    SessionKeyConflict {
        /// The id proposed.
        id: u32,
        /// The current key's id (0: none).
        current: u32,
    },
    /// An `EndSession` with an empty or oversized session serial.
    #[error("invalid session serial")]
    InvalidSession,
    /// A batch inside a batch.
    #[error("batches do not nest")]
    NestedBatch,
    /// A `PutToken` whose name or token is already registered.
    #[error("token {name:?} already exists")]
    TokenExists {
        /// Token name.
        name: String,
    },
    /// A `RevokeToken` naming no token.
    #[error("token {name:?} not found")]
    TokenNotFound {
        /// Token name.
        name: String,
    },
    /// A `PutToken` with a bad name or hash.
    #[error("token {name:?} is invalid")]
    InvalidToken {
        /// Token name.
        name: String,
    },
    /// An `ObserveTools` with too many tools, an empty name or an oversized definition.
    #[error("tool listing of {server:?} is too large to pin")]
    InvalidToolObservation {
        /// Server name.
        server: String,
    },
    /// An `ApproveTools` that found nothing pending (for `tool`, if named).
    #[error("{}", match tool { Some(t) => format!("tool {t:?} of {server:?} has no pending change to approve"), None => format!("server {server:?} has no pending tool change to approve") })]
    NothingToApprove {
        /// Server name.
        server: String,
        /// The tool named, if any.
        tool: Option<String>,
    },
    /// A spec refers to a secret that does not exist.
    #[error("server {server:?} refers to secret {secret:?} in {field}, which does not exist; create it first with `mcpd secret set {secret}`")]
    MissingSecret {
        /// Server name.
        server: String,
        /// The spec field holding the reference.
        field: String,
        /// The missing secret.
        secret: String,
    },
    /// A secret removal while a server refers to it.
    #[error("secret {name:?} is used by server {server:?}; change or undeploy it first")]
    SecretInUse {
        /// Secret name.
        name: String,
        /// A server referring to it.
        server: String,
    },
    /// No secret of that name.
    #[error("secret {name:?} not found")]
    SecretNotFound {
        /// Secret name.
        name: String,
    },
    /// A rotation found the secret changed since it read it.
    #[error("secret {name:?} changed during the key rotation; rotate again")]
    SecretChanged {
        /// Secret name.
        name: String,
    },
    /// A secret with a bad name or an oversized value.
    #[error(
        "secret {name:?} is invalid (names are 1-63 of A-Z a-z 0-9 _ . -; values at most 64 KiB)"
    )]
    InvalidSecret {
        /// Secret name.
        name: String,
    },
    /// A caller limit with a bad subject or numbers.
    #[error("invalid rate limit for {subject}: {reason}")]
    InvalidLimit {
        /// Whom it was for.
        subject: String,
        /// What is wrong.
        reason: String,
    },
}

/// The response of applying one log entry: an outcome, or the precondition that failed.
pub type CommandResult = Result<CommandOutcome, CommandError>;
