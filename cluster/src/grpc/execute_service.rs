//! Server side of the data plane API: parse, hand to the [`DataPlane`], encode.
//! Callers are authorized before they get here (see [`crate::auth`]).

use std::sync::Arc;
use std::time::Duration;

use mcp_proto::execute::execute_service_server::ExecuteService;
use mcp_proto::execute::{ExecuteReply, ExecuteRequest, ExecuteToolRequest};
use tonic::{Request, Response, Status};

use crate::dataplane::{DataPlane, ExecuteError, ExecuteOptions, Executed};
use crate::forward::was_forwarded;

/// The `ExecuteService` implementation of a node.
#[derive(Clone)]
pub struct ExecuteApi {
    plane: Arc<DataPlane>,
}

impl ExecuteApi {
    /// Serves execute requests with `plane`.
    pub fn new(plane: Arc<DataPlane>) -> Self {
        Self { plane }
    }
}

fn options<T>(request: &Request<T>, retry_unsafe: bool, timeout_ms: Option<u64>) -> ExecuteOptions {
    let forwarded = was_forwarded(request);
    // Keep the caller's id if it is a sane token; otherwise mint one.
    let request_id = request
        .metadata()
        .get(mcp_proto::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 64)
        .map(str::to_owned)
        .unwrap_or_else(ExecuteOptions::new_request_id);
    if forwarded {
        let from = request
            .metadata()
            .get(mcp_proto::FORWARDED_BY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?");
        tracing::info!(request_id = %request_id, from_node = from, "serving forwarded request");
    }
    ExecuteOptions {
        retry_unsafe,
        timeout: timeout_ms.filter(|t| *t > 0).map(Duration::from_millis),
        forwarded,
        request_id,
    }
}

/// Logs a failed request with its id (successes are counted in metrics, not logged).
fn logged(
    result: Result<Executed, ExecuteError>,
    request_id: &str,
    server: &str,
) -> Result<Executed, ExecuteError> {
    if let Err(e) = &result {
        tracing::info!(request_id, server, kind = %e.kind(), error = %e, "request failed");
    }
    result
}

fn reply(executed: Executed) -> Response<ExecuteReply> {
    Response::new(ExecuteReply {
        response_json: executed.response.to_string(),
        node_id: executed.node_id,
        instance_id: executed.instance_id,
    })
}

#[tonic::async_trait]
impl ExecuteService for ExecuteApi {
    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteReply>, Status> {
        let opts = options(
            &request,
            request.get_ref().retry_unsafe,
            request.get_ref().timeout_ms,
        );
        let ExecuteRequest {
            server,
            request_json,
            ..
        } = request.into_inner();
        let id = opts.request_id.clone();
        Ok(reply(logged(
            self.plane.execute_text(&server, &request_json, opts).await,
            &id,
            &server,
        )?))
    }

    async fn execute_tool(
        &self,
        request: Request<ExecuteToolRequest>,
    ) -> Result<Response<ExecuteReply>, Status> {
        let opts = options(
            &request,
            request.get_ref().retry_unsafe,
            request.get_ref().timeout_ms,
        );
        let ExecuteToolRequest {
            server,
            tool,
            arguments_json,
            ..
        } = request.into_inner();
        let id = opts.request_id.clone();
        Ok(reply(logged(
            self.plane
                .call_tool(&server, &tool, &arguments_json, opts)
                .await,
            &id,
            &server,
        )?))
    }
}
