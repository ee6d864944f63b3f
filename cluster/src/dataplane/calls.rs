//! The two kinds of call a caller makes, from the text it sends: a raw JSON-RPC request,
//! or one tool with its arguments. The gRPC `ExecuteService` and the in-process callers
//! (the Python package's embedded and member modes) both come through here, so a call
//! means the same on every path.

use serde_json::{json, Value};

use super::{jsonrpc, DataPlane, ExecuteError, ExecuteOptions, Executed};

impl DataPlane {
    /// Executes a JSON-RPC request given as text.
    pub async fn execute_text(
        &self,
        server: &str,
        request_json: &str,
        options: ExecuteOptions,
    ) -> Result<Executed, ExecuteError> {
        let message: Value = serde_json::from_str(request_json)
            .map_err(|e| ExecuteError::InvalidRequest(format!("request is not JSON: {e}")))?;
        self.execute(server, message, options).await
    }

    /// Calls `tool` with arguments given as JSON text (an object; empty means `{}`). A
    /// JSON-RPC error from the server is an `Err` of [`ExecuteError::ServerError`], intact.
    pub async fn call_tool(
        &self,
        server: &str,
        tool: &str,
        arguments_json: &str,
        options: ExecuteOptions,
    ) -> Result<Executed, ExecuteError> {
        let arguments: Value = if arguments_json.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(arguments_json)
                .map_err(|e| ExecuteError::InvalidRequest(format!("arguments are not JSON: {e}")))?
        };
        if !arguments.is_object() {
            return Err(ExecuteError::InvalidRequest(
                "tool arguments must be a JSON object".into(),
            ));
        }
        let message = jsonrpc::request(
            1,
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        );
        let executed = self.execute(server, message, options).await?;
        if let Some(error) = executed.response.error() {
            return Err(ExecuteError::ServerError {
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                error,
            });
        }
        Ok(executed)
    }
}
