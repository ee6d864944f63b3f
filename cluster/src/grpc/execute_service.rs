//! Server side of the data plane API: parse, hand to the [`DataPlane`], encode.

use std::sync::Arc;
use std::time::Duration;

use mcp_proto::execute::execute_service_server::ExecuteService;
use mcp_proto::execute::{ExecuteReply, ExecuteRequest, ExecuteToolRequest};
use serde_json::{json, Value};
use tonic::{Request, Response, Status};

use crate::dataplane::{jsonrpc, DataPlane, ExecuteError, ExecuteOptions, Executed};
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
    ExecuteOptions {
        retry_unsafe,
        timeout: timeout_ms.filter(|t| *t > 0).map(Duration::from_millis),
        forwarded: was_forwarded(request),
    }
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
        let message: Value = serde_json::from_str(&request_json)
            .map_err(|e| ExecuteError::InvalidRequest(format!("request is not JSON: {e}")))?;
        Ok(reply(self.plane.execute(&server, message, opts).await?))
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
        let arguments: Value = if arguments_json.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&arguments_json)
                .map_err(|e| ExecuteError::InvalidRequest(format!("arguments are not JSON: {e}")))?
        };
        if !arguments.is_object() {
            return Err(ExecuteError::InvalidRequest(
                "tool arguments must be a JSON object".into(),
            )
            .into());
        }
        let message = jsonrpc::request(
            1,
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        );
        let executed = self.plane.execute(&server, message, opts).await?;
        if let Some(error) = jsonrpc::error_of(&executed.response) {
            return Err(ExecuteError::ServerError {
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                error: error.clone(),
            }
            .into());
        }
        Ok(reply(executed))
    }
}
