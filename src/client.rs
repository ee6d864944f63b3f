//! How CLI commands reach the cluster: a [`ClusterClient`] from the client library over
//! the endpoint list (`--endpoints`, `MCPD_ENDPOINTS`, `endpoints` in the client TOML file,
//! or the one `--endpoint`), so a command moves on to the next node when one cannot be
//! reached, and writes wait out an election instead of failing.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use mcp_client::auth::Credentials;
use mcp_client::retry::Repeat;
use mcp_client::tls::ClientTls;
use mcp_client::{CallError, ClientSettings, ClusterClient};
use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
use mcp_proto::execute::execute_service_client::ExecuteServiceClient;
use serde::Deserialize;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::cli::ClientArgs;
use crate::commands::RemoteError;

/// The cluster-API client one attempt of a CLI command uses.
pub type Client = ClusterServiceClient<InterceptedService<Channel, Credentials>>;
/// The data-plane client one attempt of a CLI command uses.
pub type ExecClient = ExecuteServiceClient<InterceptedService<Channel, Credentials>>;

/// The node a command talks to when no endpoint is given anywhere.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:7400";

/// How long a command keeps trying (other nodes, a new leader) before it gives up.
const FAILOVER_WINDOW: Duration = Duration::from_secs(15);
/// How long one attempt of a cluster-API command may take; membership additions wait for
/// the new node to catch up, so they get more.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
const SLOW_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(90);
/// The default request timeout of a tool call (the node enforces its own).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Client settings as written in the TOML file of `--client-config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    endpoints: Option<Vec<String>>,
    admin_token: Option<String>,
    ca_file: Option<std::path::PathBuf>,
    cert: Option<std::path::PathBuf>,
    key: Option<std::path::PathBuf>,
}

/// What a command does, which decides where it goes and whether it may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Reads answered by whichever node is reached first.
    Read,
    /// Registry and membership writes: sent to another node only when the first provably
    /// never got them (see [`Repeat::Unsafe`]).
    Write,
    /// Membership additions: like `Write`, with a long attempt timeout.
    SlowWrite,
}

impl Op {
    fn leader_first(self) -> bool {
        !matches!(self, Op::Read)
    }

    fn repeat(self) -> Repeat {
        match self {
            Op::Read => Repeat::Safe,
            Op::Write | Op::SlowWrite => Repeat::Unsafe,
        }
    }

    fn attempt_timeout(self) -> Duration {
        match self {
            Op::SlowWrite => SLOW_ATTEMPT_TIMEOUT,
            _ => ATTEMPT_TIMEOUT,
        }
    }
}

/// The cluster as one CLI command sees it.
pub struct Cluster {
    client: ClusterClient,
}

fn load_file(path: &Path) -> Result<FileSettings, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read client config {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("client config {}: {e}", path.display()))
}

/// The endpoint list and token of `args`: `--endpoints`/`MCPD_ENDPOINTS`, else
/// `--endpoint`/`MCPD_ENDPOINT`, else the client config file, else the default node.
pub fn settings(args: &ClientArgs) -> Result<(Vec<String>, Option<String>), String> {
    let file = match &args.client_config {
        Some(path) => load_file(path)?,
        None => FileSettings::default(),
    };
    let endpoints = match (&args.endpoints, &args.endpoint) {
        (Some(_), Some(_)) => {
            return Err(
                "give --endpoints (MCPD_ENDPOINTS) or --endpoint (MCPD_ENDPOINT), not both"
                    .to_owned(),
            )
        }
        (Some(list), None) => list.clone(),
        (None, Some(one)) => vec![one.clone()],
        (None, None) => file
            .endpoints
            .unwrap_or_else(|| vec![DEFAULT_ENDPOINT.to_owned()]),
    };
    let endpoints: Vec<String> = endpoints.iter().map(|e| e.trim().to_owned()).collect();
    if endpoints.is_empty() || endpoints.iter().any(String::is_empty) {
        return Err("endpoints: give at least one HOST:PORT, without empty entries".to_owned());
    }
    let token = args.admin_token.clone().or(file.admin_token);
    Ok((endpoints, token))
}

/// TLS towards the nodes when a CA file is given (`--ca-file`, `MCPD_CA_FILE` or
/// `ca_file` in the client config file), with the client certificate of `--cert`/`--key`.
pub fn tls(args: &ClientArgs) -> Result<Option<ClientTls>, Box<dyn std::error::Error>> {
    let file = match &args.client_config {
        Some(path) => load_file(path)?,
        None => FileSettings::default(),
    };
    let ca = args.ca_file.clone().or(file.ca_file);
    let cert = args.cert.clone().or(file.cert);
    let key = args.key.clone().or(file.key);
    match ca {
        Some(ca) => Ok(Some(ClientTls::from_files(
            &ca,
            cert.as_deref(),
            key.as_deref(),
        )?)),
        None if cert.is_some() || key.is_some() => Err(
            "--cert and --key need --ca-file: the CA the nodes' certificates are checked against"
                .into(),
        ),
        None => Ok(None),
    }
}

impl Cluster {
    /// A client of the nodes `args` names. Nothing is dialed yet.
    pub fn new(args: &ClientArgs) -> Result<Self, Box<dyn std::error::Error>> {
        let (seeds, admin_token) = settings(args)?;
        let client = ClusterClient::new(ClientSettings {
            seeds,
            admin_token,
            failover_window: FAILOVER_WINDOW,
            request_timeout: REQUEST_TIMEOUT,
        })?
        .one_shot();
        let client = match tls(args)? {
            Some(tls) => client.with_tls(tls)?,
            None => client,
        };
        Ok(Self { client })
    }

    /// Sends one cluster-API request built by `call`, failing over as `op` allows.
    pub async fn cluster<T, F, Fut>(
        &self,
        what: &str,
        op: Op,
        mut call: F,
    ) -> Result<T, RemoteError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let credentials = self.client.credentials().clone();
        self.client
            .call(
                what,
                op.leader_first(),
                op.repeat(),
                op.attempt_timeout(),
                |channel| {
                    let client =
                        ClusterServiceClient::with_interceptor(channel, credentials.clone())
                            .max_decoding_message_size(mcp_proto::MAX_MESSAGE_BYTES);
                    call(client)
                },
            )
            .await
            .map_err(|e| remote_error(what, e))
    }

    /// Sends one data-plane request built by `call`; `repeat` says whether it may go to
    /// another node after a failure that may have reached the first.
    pub async fn execute<T, F, Fut>(
        &self,
        repeat: Repeat,
        timeout: Option<Duration>,
        mut call: F,
    ) -> Result<T, RemoteError>
    where
        F: FnMut(ExecClient) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let credentials = self.client.credentials().clone();
        // The node answers `timeout` itself; this bound only catches one that went silent.
        let attempt = timeout.unwrap_or(REQUEST_TIMEOUT) + Duration::from_secs(5);
        self.client
            .call("execute", false, repeat, attempt, |channel| {
                let client = ExecuteServiceClient::with_interceptor(channel, credentials.clone())
                    .max_decoding_message_size(mcp_proto::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(mcp_proto::MAX_MESSAGE_BYTES);
                call(client)
            })
            .await
            .map_err(|e| remote_error("execute", e))
    }
}

fn remote_error(what: &str, e: CallError) -> RemoteError {
    match e {
        CallError::Status { node, status } => {
            if mcp_client::retry::is_transport_failure(&status) {
                RemoteError::new(
                    format!(
                        "{what}: the connection to node {node} broke while the request was in flight, so it may have run; not repeated: {}",
                        status.message()
                    ),
                    "connection",
                )
            } else {
                RemoteError::from(status)
            }
        }
        CallError::Client(e) => RemoteError::new(e.message, e.kind.as_str()),
    }
}
