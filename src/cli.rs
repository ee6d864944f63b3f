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

    /// Admin token, required for writes when the cluster has one.
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
    /// List cluster members, or change membership.
    Members {
        #[command(subcommand)]
        action: Option<MembersAction>,
    },
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
    /// Require this token for writes and Raft RPCs.
    #[arg(long, env = "MCPD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Leader election timeout in milliseconds [default: 1000].
    #[arg(long, env = "MCPD_LEADER_ELECTION_TIMEOUT_MS")]
    pub leader_election_timeout_ms: Option<u64>,
    /// Leader heartbeat interval in milliseconds [default: 250].
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
}

/// Flags of `mcpd dev`.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub grpc_addr: SocketAddr,
}
