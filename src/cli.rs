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
}

/// Options of every command that talks to a node.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// gRPC address of any cluster node.
    #[arg(
        long,
        global = true,
        env = "MCPD_ENDPOINT",
        default_value = "127.0.0.1:7400"
    )]
    pub endpoint: String,

    /// Admin token, required for writes and tool calls when the cluster has one.
    #[arg(long, global = true, env = "MCPD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

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
    /// Create or replace a server from a JSON or YAML spec file ("-" reads stdin).
    Deploy {
        /// Spec file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Apply only if the server is at this revision (0: must not exist yet).
        #[arg(long)]
        expected_revision: Option<u64>,
    },
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
}
