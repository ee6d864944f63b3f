//! Command-line definitions (clap). Every flag of `mcpd node` also reads an `MCPD_*`
//! environment variable; flags win over env, env wins over the `--config` TOML file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// mcpd: a Raft-replicated cluster manager for MCP servers.
#[derive(Debug, Parser)]
#[command(name = "mcpd", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub client: ClientArgs,

    /// Log format of nodes: human-readable lines or JSON objects.
    #[arg(long, global = true, env = "MCPD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// How client commands print their results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    /// YAML: `get` prints the spec `apply` reads back; other commands print JSON.
    Yaml,
}

/// Options of every command that talks to a node.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// gRPC address of one cluster node (a one-node --endpoints) [default: 127.0.0.1:7400].
    #[arg(long, global = true, env = "MCPD_ENDPOINT")]
    pub endpoint: Option<String>,

    /// gRPC addresses of cluster nodes, comma-separated: a command moves on to the next
    /// node when one cannot be reached, and writes wait out an election.
    #[arg(long, global = true, env = "MCPD_ENDPOINTS", value_delimiter = ',')]
    pub endpoints: Option<Vec<String>>,

    /// TOML file with client settings: `endpoints = ["HOST:PORT", ...]`, `admin_token`
    /// (flags and env win over it).
    #[arg(long, global = true, env = "MCPD_CLIENT_CONFIG")]
    pub client_config: Option<PathBuf>,

    /// Credential: the admin token, or an API token from `mcpd token create` (`--token`
    /// is the same flag). Required for every call but `status` when the cluster has one.
    #[arg(
        long,
        alias = "token",
        global = true,
        env = "MCPD_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// CA certificate (PEM) to check nodes against: speaks TLS to them when given.
    #[arg(long, global = true, env = "MCPD_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// Client certificate (PEM) to present to nodes, with --key.
    #[arg(long, global = true, env = "MCPD_CERT")]
    pub cert: Option<PathBuf>,

    /// Private key (PEM) of --cert.
    #[arg(long, global = true, env = "MCPD_KEY")]
    pub key: Option<PathBuf>,

    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a cluster node.
    Node(Box<NodeArgs>),
    /// Run a throwaway single-node cluster in a temporary directory.
    Dev(DevArgs),
    /// Make TLS certificates: a cluster CA, node and client certificates.
    Certs {
        #[command(subcommand)]
        action: CertsAction,
    },
    /// Create or replace a server from a JSON or YAML spec file ("-" reads stdin).
    Deploy {
        /// Spec file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Apply only if the server is at this revision (0: must not exist yet).
        #[arg(long)]
        expected_revision: Option<u64>,
    },
    /// Make the registry match spec files: `mcpd apply -f specs/ --dry-run`.
    Apply(ApplyArgs),
    /// Set the desired replica count of a server.
    Scale { name: String, replicas: u32 },
    /// Remove a server.
    Undeploy { name: String },
    /// Show one server.
    Get {
        name: String,
        /// Read this node's state without confirming with the leader.
        #[arg(long)]
        stale: bool,
    },
    /// List servers.
    #[command(alias = "list")]
    Ls {
        /// Read this node's state without confirming with the leader.
        #[arg(long)]
        stale: bool,
    },
    /// Show the contacted node's view of the cluster.
    Status,
    /// Request totals, success rate and latency of calls executed by the contacted node.
    Stats,
    /// Move every instance off a node (for maintenance); `--undo` lets it take work again.
    Drain {
        /// Node id.
        id: u64,
        /// Clear the draining mark.
        #[arg(long)]
        undo: bool,
    },
    /// Call a tool of a server: `mcpd call time get_current_time '{"timezone": "UTC"}'`.
    Call {
        server: String,
        tool: String,
        /// Tool arguments as a JSON object.
        #[arg(default_value = "{}")]
        arguments: String,
        #[command(flatten)]
        exec: ExecArgs,
    },
    /// Send any JSON-RPC request to a server: `mcpd exec time '{"method": "tools/list"}'`.
    Exec {
        server: String,
        /// The JSON-RPC request (`jsonrpc` and `id` are filled in when missing).
        request: String,
        #[command(flatten)]
        exec: ExecArgs,
    },
    /// List cluster members, or change membership.
    Members {
        #[command(subcommand)]
        action: Option<MembersAction>,
    },
    /// Manage the MCP gateway (`/mcp`) of every node.
    Gateway {
        #[command(subcommand)]
        action: GatewayAction,
    },
    /// Views of the MCP gateway: named subsets of the cluster's tools, each served at
    /// /mcp/v/NAME (apply -f view.yaml, ls, get, rm).
    View {
        #[command(subcommand)]
        action: ViewAction,
    },
    /// Back up the registry to a file, check a backup, or found a new cluster from one.
    Snapshot {
        #[command(subcommand)]
        action: SnapshotAction,
    },
    /// Disaster recovery, offline: make a stopped node whose peers are lost for good the
    /// one member of a new cluster, keeping every entry of its log; grow it back with
    /// `members add` and `members promote`.
    Recover(RecoverArgs),
    /// Manage API tokens: principals with a role, replicated to every node (admin only).
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Tool pinning: list a server's tools as callers see them, review and approve changed
    /// tool definitions.
    Tools {
        #[command(subcommand)]
        action: ToolsAction,
    },
    /// Cluster secrets, referred to in specs as ${secret:NAME}; values are sealed with the
    /// cluster key and never shown.
    Secret {
        #[command(subcommand)]
        action: SecretAction,
    },
    /// Cluster-wide rate limits of callers: one principal (a token's name), or each
    /// principal of a role.
    Limit {
        #[command(subcommand)]
        action: LimitAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ToolsAction {
    /// A server's tools as callers see them (withheld ones left out, and named).
    #[command(alias = "ls")]
    List { server: String },
    /// The pinned and pending definitions of a server's tools, changes shown line by line.
    Diff { server: String },
    /// Approve the pending definitions of TOOLs (all pending ones without a TOOL).
    Approve { server: String, tools: Vec<String> },
}

/// Whom a caller limit applies to.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct LimitSubjectArgs {
    /// A principal's name (a token's name, a JWT subject, `admin`).
    #[arg(long)]
    pub principal: Option<String>,
    /// A role: each of its principals gets its own bucket at this rate.
    #[arg(long, value_parser = ["admin", "operator", "caller", "reader"])]
    pub role: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum LimitAction {
    /// Limit tool calls of a principal or of each principal of a role, cluster-wide.
    Set {
        #[command(flatten)]
        subject: LimitSubjectArgs,
        /// Calls per second.
        #[arg(long)]
        per_second: u32,
        /// Calls at once after a quiet period [default: per-second].
        #[arg(long)]
        burst: Option<u32>,
    },
    /// Remove a limit.
    Rm {
        #[command(flatten)]
        subject: LimitSubjectArgs,
    },
    /// List the limits.
    Ls,
}

#[derive(Debug, Subcommand)]
pub enum SecretAction {
    /// Create or replace a secret; the value is read from stdin (one trailing newline
    /// dropped) or from --file (as is).
    Set {
        name: String,
        /// Read the value from this file instead of stdin.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// List secret names, the key that sealed each, and their revision.
    Ls,
    /// Remove a secret (refused while a server refers to it).
    Rm { name: String },
    /// Reseal every secret under the contacted node's current key (after adding a new
    /// first line to every node's --secrets-key-file).
    Rotate,
    /// Print a fresh random key for --secrets-key-file.
    GenKey,
}

#[derive(Debug, Subcommand)]
pub enum ViewAction {
    /// Create or replace a view from a YAML or JSON file ("-": stdin). Fields: name,
    /// servers, tags, allow_tools, deny_tools (globs over SERVER__TOOL), rename and
    /// descriptions (maps keyed by SERVER__TOOL).
    Apply {
        /// The view file.
        #[arg(short = 'f', long = "file")]
        file: String,
    },
    /// List the views.
    Ls,
    /// Show one view.
    Get {
        /// View name.
        name: String,
    },
    /// Remove a view.
    Rm {
        /// View name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token and print it, once: only its hash is stored.
    Create {
        /// Unique name (shown in listings and audit lines).
        name: String,
        /// admin (everything), operator (deploy/scale/drain, all tools), caller (the tools
        /// of its --allow rules), reader (reads only).
        #[arg(long, value_parser = ["admin", "operator", "caller", "reader"])]
        role: String,
        /// For a caller: a glob over SERVER__TOOL it may call, e.g. 'time__*' (repeatable).
        #[arg(long)]
        allow: Vec<String>,
        /// Lifetime, e.g. 30d, 12h, 90m [default: never expires].
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens: names, roles, allow rules and expiry (never a token).
    Ls,
    /// Revoke a token on every node.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum CertsAction {
    /// Create a CA (or keep the one in --dir), a certificate per node and a client
    /// certificate, as PEM files in --dir.
    Init(CertsInitArgs),
}

/// Flags of `mcpd certs init`.
#[derive(Debug, Clone, Args)]
pub struct CertsInitArgs {
    /// Directory for the files (created if missing).
    #[arg(long)]
    pub dir: PathBuf,
    /// Node names, comma-separated: each gets node-NAME.pem, valid for NAME (a host name or
    /// IP address), localhost, 127.0.0.1 and ::1.
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<String>,
    /// More host names or IP addresses every node certificate is valid for.
    #[arg(long, value_delimiter = ',')]
    pub san: Vec<String>,
    /// Validity of node and client certificates, in days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotAction {
    /// Save a consistent copy of the registry, read on the leader, to FILE (with its
    /// revision and a SHA-256 checksum; secrets stay encrypted).
    Save { file: PathBuf },
    /// Check a snapshot file (format, checksum, registry) and show what it holds.
    Status { file: PathBuf },
    /// Found a node of a new cluster from a snapshot file, offline: run it once per
    /// founding member, each with its own empty data dir, then start the nodes with
    /// `mcpd node --data-dir DIR`.
    Restore {
        file: PathBuf,
        /// The new node's data dir (must be empty).
        #[arg(long)]
        data_dir: PathBuf,
        /// The new node's id.
        #[arg(long)]
        id: u64,
        /// The new cluster's members: 1=HOST:PORT,2=HOST:PORT,...
        #[arg(long)]
        initial_cluster: String,
        /// Address to listen on [default: the node's address in --initial-cluster].
        #[arg(long)]
        grpc_addr: Option<SocketAddr>,
    },
}

/// Flags of `mcpd recover`.
#[derive(Debug, Clone, Args)]
pub struct RecoverArgs {
    /// Data dir of the stopped surviving node.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Show what would be kept (last log index, revision) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum GatewayAction {
    /// Seal new handshake-era session ids with a fresh key; sessions opened before keep
    /// working until they expire. The key is never shown.
    RotateKey,
}

/// Options of `call` and `exec`.
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// Request timeout in milliseconds (default: the server's or node's).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Allow re-sending a non-idempotent request after a failure that may have reached the
    /// server (a tools/call may then run twice).
    #[arg(long)]
    pub retry_unsafe: bool,
}

#[derive(Debug, Subcommand)]
pub enum MembersAction {
    /// Add a running, pristine node as a learner; returns once it has caught up.
    Add {
        /// Id the new node was started with.
        id: u64,
        /// Its advertised gRPC address.
        addr: String,
    },
    /// Turn a learner into a voter.
    Promote { id: u64 },
    /// Remove a node from the cluster.
    Remove { id: u64 },
}

/// Flags of `mcpd node`.
#[derive(Debug, Clone, Default, Args)]
pub struct NodeArgs {
    /// TOML file with node settings (flags and env win over it).
    #[arg(long, env = "MCPD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Node id (required on first start; read from the data dir afterwards).
    #[arg(long, env = "MCPD_ID")]
    pub id: Option<u64>,
    /// gRPC listen address [default: 127.0.0.1:7400].
    #[arg(long, env = "MCPD_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// Address other nodes and clients dial, if not the listen address.
    #[arg(long, env = "MCPD_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// Directory for the Raft log, snapshots and node identity.
    #[arg(long, env = "MCPD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Founding members on first start: 1=HOST:PORT,2=HOST:PORT,...
    #[arg(long, env = "MCPD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// Require this token for writes, tool calls and Raft RPCs.
    #[arg(long, env = "MCPD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Minimum leader election timeout in milliseconds; a dead leader is replaced after
    /// about 2.5-3 times this [default: 500].
    #[arg(long, env = "MCPD_LEADER_ELECTION_TIMEOUT_MS")]
    pub leader_election_timeout_ms: Option<u64>,
    /// Leader heartbeat interval in milliseconds, well below the election timeout
    /// [default: 100].
    #[arg(long, env = "MCPD_HEARTBEAT_INTERVAL_MS")]
    pub heartbeat_interval_ms: Option<u64>,
    /// Build a snapshot every this many log entries [default: 1000].
    #[arg(long, env = "MCPD_SNAPSHOT_LOGS")]
    pub snapshot_logs: Option<u64>,
    /// Log entries kept behind a snapshot [default: 1000].
    #[arg(long, env = "MCPD_LOGS_TO_KEEP")]
    pub logs_to_keep: Option<u64>,
    /// How long a write waits to commit before failing as unavailable [default: 5000].
    #[arg(long, env = "MCPD_WRITE_TIMEOUT_MS")]
    pub write_timeout_ms: Option<u64>,
    /// The leader re-places a node's instances after it has not answered for this long
    /// [default: 10000].
    #[arg(long, env = "MCPD_NODE_GRACE_MS")]
    pub node_grace_ms: Option<u64>,
    /// Labels of this node, comma-separated; servers can require them with
    /// `placement.node_tags`.
    #[arg(long, env = "MCPD_NODE_TAGS", value_delimiter = ',')]
    pub node_tags: Option<Vec<String>>,
    /// Address of /metrics, /metrics/cluster, /healthz and /readyz [default: the gRPC
    /// listen IP, at the gRPC port + 2000: 7400 -> 9400, 7401 -> 9401].
    #[arg(long, env = "MCPD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Serve every server's tools as one MCP server at http://ADDR/mcp [default: off].
    #[arg(long, env = "MCPD_MCP_ADDR")]
    pub mcp_addr: Option<SocketAddr>,
    /// Bearer token MCP clients must present at /mcp [default: the admin token, if any].
    #[arg(long, env = "MCPD_MCP_TOKEN", hide_env_values = true)]
    pub mcp_token: Option<String>,
    /// Browser origins allowed at /mcp besides loopback ones, comma-separated (`*`: any).
    #[arg(long, env = "MCPD_MCP_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub mcp_allowed_origins: Option<Vec<String>>,
    /// Lifetime of a handshake-era /mcp session from its `initialize`, used or not, in
    /// seconds; at most 604800 (7 days) [default: 86400].
    #[arg(long, env = "MCPD_MCP_SESSION_LIFETIME_SECS")]
    pub mcp_session_lifetime_secs: Option<u64>,
    /// Accept OAuth 2.1 JWT access tokens at /mcp issued by this authorization server
    /// (their `iss`); needs --oauth-jwks.
    #[arg(long, env = "MCPD_OAUTH_ISSUER")]
    pub oauth_issuer: Option<String>,
    /// The issuer's signing keys: a JWKS file, or its URL (cached, refetched on an unknown
    /// key id).
    #[arg(long, env = "MCPD_OAUTH_JWKS")]
    pub oauth_jwks: Option<String>,
    /// This resource's identifier, the `aud` tokens must carry [default:
    /// http://MCP_ADDR/mcp].
    #[arg(long, env = "MCPD_OAUTH_AUDIENCE")]
    pub oauth_audience: Option<String>,
    /// Which token scope grants which role, SCOPE=ROLE comma-separated [default:
    /// mcp:admin=admin,mcp:operator=operator,mcp:read=reader]; `tools:GLOB` scopes always
    /// make a caller allowed GLOB.
    #[arg(long, env = "MCPD_OAUTH_SCOPE_ROLES", value_delimiter = ',')]
    pub oauth_scope_roles: Option<Vec<String>>,
    /// Append the audit log (JSON lines: writes, token changes, tool calls) to this file;
    /// it always goes to the `mcpd::audit` log target too.
    #[arg(long, env = "MCPD_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// File of cluster secrets keys, one per line (64 hex digits or base64 of 32 bytes):
    /// the first seals, all open (keep the old key below a new one until `mcpd secret
    /// rotate` ran). Every node needs the same file. Without it, MCPD_SECRETS_KEY (one
    /// key) is read; without either, this node holds no secrets.
    #[arg(long, env = "MCPD_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
    /// This node's TLS certificate (PEM): the gRPC API and peer traffic speak TLS, and the
    /// node presents it to its peers. Needs --tls-key and --tls-ca.
    #[arg(long, env = "MCPD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "MCPD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// The cluster CA (PEM): peers verify each other against it (mutual TLS; Raft RPCs need
    /// a node certificate of it) and client certificates are checked against it.
    #[arg(long, env = "MCPD_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Whether every gRPC caller must present a certificate of the cluster CA
    /// [default: optional].
    #[arg(long, env = "MCPD_TLS_CLIENT_AUTH", value_enum)]
    pub tls_client_auth: Option<TlsClientAuth>,
    /// Serve /metrics, /healthz and /readyz over TLS too [default: false].
    #[arg(long, env = "MCPD_METRICS_TLS")]
    pub metrics_tls: Option<bool>,
    /// Serve /mcp over TLS too [default: false].
    #[arg(long, env = "MCPD_MCP_TLS")]
    pub mcp_tls: Option<bool>,
    /// Start even when a listener beyond loopback has authentication off (no admin token,
    /// no required client certificates): anyone who reaches it can run every tool.
    #[arg(long, env = "MCPD_INSECURE")]
    pub insecure: bool,
    #[command(flatten)]
    pub dataplane: DataPlaneArgs,
}

/// Data-plane flags, named after the Python `MCPConfig` fields (and `RetryConfig`'s
/// `max_attempts`); each name means what it means in Python.
#[derive(Debug, Clone, Default, Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataPlaneArgs {
    /// Default timeout of one request to an MCP server [default: 30000].
    #[arg(long, env = "MCPD_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Timeout to start/connect to a server and finish the MCP handshake [default: 10000].
    #[arg(long, env = "MCPD_CONNECTION_TIMEOUT_MS")]
    pub connection_timeout_ms: Option<u64>,
    /// Seconds between health checks of each instance [default: 10].
    #[arg(long, env = "MCPD_HEALTH_CHECK_INTERVAL_SECS")]
    pub health_check_interval_secs: Option<u64>,
    /// Concurrent requests per instance before it counts as saturated [default: 512].
    #[arg(long, env = "MCPD_MAX_IN_FLIGHT_PER_INSTANCE")]
    pub max_in_flight_per_instance: Option<usize>,
    /// Sessions per remote HTTP server on this node [default: 20].
    #[arg(long, env = "MCPD_MAX_CONNECTIONS_PER_SERVER")]
    pub max_connections_per_server: Option<usize>,
    /// Fewest sessions per remote HTTP server on this node [default: 1].
    #[arg(long, env = "MCPD_INITIAL_SIZE")]
    pub initial_size: Option<usize>,
    /// Seconds before an idle HTTP connection to a server is closed [default: 300].
    #[arg(long, env = "MCPD_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// TCP keep-alive on HTTP connections to servers [default: true].
    #[arg(long, env = "MCPD_ENABLE_KEEPALIVE")]
    pub enable_keepalive: Option<bool>,
    /// Largest message accepted from an MCP server, in bytes [default: 16777216].
    #[arg(long, env = "MCPD_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Attempts of one request in all, the first included, as Python's
    /// `RetryConfig.max_attempts`: 1 never retries [default: 3].
    #[arg(long, env = "MCPD_MAX_ATTEMPTS")]
    pub max_attempts: Option<u32>,
    /// Retries after the first attempt, as Python's `MCPConfig.max_retries`: 0 never retries,
    /// N makes N + 1 attempts; the same setting as --max-attempts, give one [default: 2].
    #[arg(long, env = "MCPD_MAX_RETRIES")]
    pub max_retries: Option<u32>,
    /// Consecutive failures that open an instance's circuit breaker [default: 5].
    #[arg(long, env = "MCPD_CIRCUIT_BREAKER_THRESHOLD")]
    pub circuit_breaker_threshold: Option<u32>,
    /// Seconds an open breaker waits before admitting trial calls [default: 30].
    #[arg(long, env = "MCPD_CIRCUIT_BREAKER_RECOVERY_SECS")]
    pub circuit_breaker_recovery_secs: Option<u64>,
}

/// `--tls-client-auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsClientAuth {
    /// Callers may present a certificate; peers do (Raft RPCs need one).
    Optional,
    /// A caller without a certificate of the cluster CA is refused.
    Required,
}

/// Flags of `mcpd dev`.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub grpc_addr: SocketAddr,
    /// Address of /metrics, /healthz and /readyz [default: the gRPC listen IP, at the gRPC
    /// port + 2000: 127.0.0.1:9400].
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Address of the aggregated MCP endpoint (/mcp).
    #[arg(long, default_value = "127.0.0.1:7480")]
    pub mcp_addr: SocketAddr,
    /// Serve gRPC over TLS with certificates made into the data dir (a CA, the node's and a
    /// client's); the clients then need the --ca-file it prints.
    #[arg(long)]
    pub tls: bool,
}

/// Options of `mcpd apply`.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// A spec file (YAML, several documents with `---`, or JSON) or a directory of them.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Show what would change and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: exit with status 2 when something would change.
    #[arg(long, requires = "dry_run")]
    pub exit_code: bool,
    /// Undeploy servers that apply created earlier and no file names any more (only those:
    /// they carry the tag `managed-by=mcpd-apply`).
    #[arg(long)]
    pub prune: bool,
}
