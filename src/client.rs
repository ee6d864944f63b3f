//! A cluster-service client for CLI commands: connects to `--endpoint` and attaches the
//! admin token to every request.

use mcp_proto::cluster::cluster_service_client::ClusterServiceClient;
use mcp_proto::execute::execute_service_client::ExecuteServiceClient;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::cli::ClientArgs;

/// Adds `authorization: Bearer <token>` when a token is configured.
#[derive(Clone)]
pub struct TokenInterceptor {
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert(mcp_proto::AUTHORIZATION, header.clone());
        }
        Ok(request)
    }
}

/// The cluster-API client CLI commands use.
pub type Client = ClusterServiceClient<InterceptedService<Channel, TokenInterceptor>>;
/// The data-plane client CLI commands use.
pub type ExecClient = ExecuteServiceClient<InterceptedService<Channel, TokenInterceptor>>;

/// Connects to the node at `args.endpoint`.
pub async fn connect(args: &ClientArgs) -> Result<Client, Box<dyn std::error::Error>> {
    let (channel, interceptor) = channel(args).await?;
    Ok(ClusterServiceClient::with_interceptor(channel, interceptor)
        .max_decoding_message_size(mcp_proto::MAX_MESSAGE_BYTES))
}

/// Connects to the data plane of the node at `args.endpoint`.
pub async fn connect_exec(args: &ClientArgs) -> Result<ExecClient, Box<dyn std::error::Error>> {
    let (channel, interceptor) = channel(args).await?;
    Ok(ExecuteServiceClient::with_interceptor(channel, interceptor)
        .max_decoding_message_size(mcp_proto::MAX_MESSAGE_BYTES))
}

async fn channel(
    args: &ClientArgs,
) -> Result<(Channel, TokenInterceptor), Box<dyn std::error::Error>> {
    let uri = if args.endpoint.contains("://") {
        args.endpoint.clone()
    } else {
        format!("http://{}", args.endpoint)
    };
    let channel = Endpoint::from_shared(uri)?
        .connect_timeout(std::time::Duration::from_secs(3))
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.endpoint))?;
    let header = match &args.admin_token {
        Some(token) => Some(
            MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|_| "the admin token contains characters not allowed in a header")?,
        ),
        None => None,
    };
    Ok((channel, TokenInterceptor { header }))
}
