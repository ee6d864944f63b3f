//! Cluster-service and data-plane clients for CLI commands: a channel to `--endpoint` and
//! the admin token on every request, both from the client library (`mcp_client`).

use mcp_client::auth::Credentials;
use mcp_client::channel::{self, Profile};
use mcp_client::tls::ClientTls;
use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
use mcp_proto::execute::execute_service_client::ExecuteServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::cli::ClientArgs;

/// The cluster-API client CLI commands use.
pub type Client = ClusterServiceClient<InterceptedService<Channel, Credentials>>;
/// The data-plane client CLI commands use.
pub type ExecClient = ExecuteServiceClient<InterceptedService<Channel, Credentials>>;

/// Connects to the node at `args.endpoint`.
pub async fn connect(args: &ClientArgs) -> Result<Client, mcp_client::Error> {
    let (channel, credentials) = channel(args).await?;
    Ok(ClusterServiceClient::with_interceptor(channel, credentials)
        .max_decoding_message_size(mcp_proto::MAX_MESSAGE_BYTES))
}

/// Connects to the data plane of the node at `args.endpoint`.
pub async fn connect_exec(args: &ClientArgs) -> Result<ExecClient, mcp_client::Error> {
    let (channel, credentials) = channel(args).await?;
    Ok(ExecuteServiceClient::with_interceptor(channel, credentials)
        .max_decoding_message_size(mcp_proto::MAX_MESSAGE_BYTES))
}

async fn channel(args: &ClientArgs) -> Result<(Channel, Credentials), mcp_client::Error> {
    // The token is checked first: a bad one is a usage error even when no node answers.
    let credentials = Credentials::bearer(args.admin_token.as_deref())?;
    let tls = match &args.ca_file {
        Some(ca) => Some(ClientTls::from_files(ca, args.cert.as_deref(), args.key.as_deref())?),
        None if args.cert.is_some() || args.key.is_some() => {
            return Err(mcp_client::Error::new(
                mcp_client::ErrorKind::Config,
                "--cert and --key need --ca-file: the CA the nodes' certificates are checked against",
            ))
        }
        None => None,
    };
    let channel = channel::connect_with(&args.endpoint, Profile::Client, tls.as_ref()).await?;
    Ok((channel, credentials))
}
