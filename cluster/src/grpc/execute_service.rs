//! Server side of the data plane API: parse, authorize the server and tool, hand to the
//! [`DataPlane`], encode, audit. [`crate::auth`] has let in only principals that may call
//! some tool; here, where the request is parsed, the server and tool are checked against
//! the principal's allow rules (a caller's `tools/list` answer keeps only the tools it
//! may call). Requests a peer forwarded were checked and are audited by the node the
//! client reached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_proto::execute::execute_service_server::ExecuteService;
use mcp_proto::execute::{ExecuteReply, ExecuteRequest, ExecuteToolRequest};
use serde_json::Value;
use tonic::{Request, Response, Status};

use crate::audit::{Audit, AuditRecord, Via};
use crate::dataplane::{DataPlane, ExecuteError, ExecuteOptions, Executed};
use crate::error::ClusterError;
use crate::forward::was_forwarded;
use crate::principal::{Principal, Role};

/// The `ExecuteService` implementation of a node.
#[derive(Clone)]
pub struct ExecuteApi {
    plane: Arc<DataPlane>,
    audit: Arc<Audit>,
}

impl ExecuteApi {
    /// Serves execute requests with `plane`, auditing them to `audit`.
    pub fn new(plane: Arc<DataPlane>, audit: Arc<Audit>) -> Self {
        Self { plane, audit }
    }
}

/// The principal the auth layer let `request` in with. None reaches here only if the
/// layer was left out, so that is refused rather than served unchecked.
fn principal_of<T>(request: &Request<T>) -> Result<Principal, Status> {
    Principal::of(request)
        .cloned()
        .ok_or_else(|| ClusterError::Unauthorized.into())
}

/// The refusal of a call `principal` may not make.
fn forbidden(principal: &Principal, what: &str) -> Status {
    ClusterError::Forbidden(format!(
        "{} ({}) may not call {what}",
        principal.name, principal.role
    ))
    .into()
}

/// Checks a raw JSON-RPC request against `principal`: a `tools/call` needs its tool
/// allowed, anything else some tool of the server.
fn check_raw(principal: &Principal, server: &str, message: &Value) -> Result<(), Status> {
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    if method == "tools/call" {
        let tool = message
            .pointer("/params/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !principal.may_call_tool(server, tool) {
            return Err(forbidden(principal, &format!("{server}__{tool}")));
        }
    } else if !principal.may_use_server(server) {
        return Err(forbidden(principal, &format!("server {server}")));
    }
    Ok(())
}

/// Keeps in a `tools/list` response only the tools `principal` may call.
fn filter_tools(principal: &Principal, server: &str, response: &mut Value) {
    if let Some(tools) = response
        .pointer_mut("/result/tools")
        .and_then(Value::as_array_mut)
    {
        tools.retain(|tool| {
            tool.get("name")
                .and_then(Value::as_str)
                .is_some_and(|name| principal.may_call_tool(server, name))
        });
    }
}

/// True if `server`'s spec asks for tool arguments in the audit log.
pub(crate) fn audit_arguments_of(registry: &mcp_raft::RegistryReader, server: &str) -> bool {
    registry.read(|state| {
        state
            .registry
            .server(server)
            .is_some_and(|record| record.spec.audit_arguments)
    })
}

/// The outcome word of an audit line.
fn outcome<T>(result: &Result<T, ExecuteError>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.kind().as_str().to_owned(),
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
        progress: None,
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
        // The server's text as it wrote it: never parsed into a tree nor re-serialised.
        response_json: executed.response.into_string(),
        node_id: executed.node_id,
        instance_id: executed.instance_id,
    })
}

impl ExecuteApi {
    /// The caller's own rate limits (issue 16), for a tool call on the node it reached.
    fn admit_caller(
        &self,
        principal: &Principal,
        opts: &ExecuteOptions,
        server: &str,
        is_call: bool,
    ) -> Result<(), crate::guards::Refusal> {
        if !is_call || opts.forwarded {
            return Ok(());
        }
        self.plane
            .guards()
            .admit_caller(self.plane.registry(), principal, server)
    }

    /// Writes the audit line of a call, unless a peer forwarded it (its origin does).
    #[allow(clippy::too_many_arguments)]
    fn audit(
        &self,
        principal: &Principal,
        opts: &ExecuteOptions,
        method: &str,
        server: &str,
        tool: Option<&str>,
        outcome: &str,
        started: Instant,
    ) {
        self.audit_with(
            principal, opts, method, server, tool, outcome, started, None,
        );
    }

    /// [`Self::audit`] of a call whose `arguments` are recorded when its server's spec
    /// turns `audit_arguments` on.
    #[allow(clippy::too_many_arguments)]
    fn audit_with(
        &self,
        principal: &Principal,
        opts: &ExecuteOptions,
        method: &str,
        server: &str,
        tool: Option<&str>,
        outcome: &str,
        started: Instant,
        arguments: Option<&dyn Fn() -> Option<Value>>,
    ) {
        if opts.forwarded {
            return;
        }
        let recorded = arguments
            .filter(|_| audit_arguments_of(self.plane.registry(), server))
            .and_then(|arguments| arguments());
        let mut record = AuditRecord::new(principal, method, Via::Grpc);
        record.server = Some(server);
        record.tool = tool;
        record.outcome = outcome;
        record.duration = started.elapsed();
        record.request_id = Some(&opts.request_id);
        record.arguments = recorded.as_ref();
        self.audit.record(&record);
    }
}

#[tonic::async_trait]
impl ExecuteService for ExecuteApi {
    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteReply>, Status> {
        let started = Instant::now();
        let principal = principal_of(&request)?;
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
        let message: Value = match serde_json::from_str(&request_json) {
            Ok(message) => message,
            Err(e) => {
                let e = ExecuteError::InvalidRequest(format!("request is not JSON: {e}"));
                self.audit(
                    &principal,
                    &opts,
                    "Execute",
                    &server,
                    None,
                    e.kind().as_str(),
                    started,
                );
                return Err(e.into());
            }
        };
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let tool = (method == "tools/call")
            .then(|| message.pointer("/params/name").and_then(Value::as_str))
            .flatten()
            .map(str::to_owned);
        if let Err(refused) = check_raw(&principal, &server, &message) {
            self.audit(
                &principal,
                &opts,
                "Execute",
                &server,
                tool.as_deref(),
                "denied",
                started,
            );
            return Err(refused);
        }
        if let Err(limited) = self.admit_caller(&principal, &opts, &server, tool.is_some()) {
            let e = ExecuteError::Refused(limited);
            let outcome = e.kind().as_str();
            self.audit(
                &principal,
                &opts,
                "tools/call",
                &server,
                tool.as_deref(),
                outcome,
                started,
            );
            return Err(e.into());
        }
        let audited = opts.clone();
        let arguments = message.pointer("/params/arguments").cloned();
        let mut result = logged(
            self.plane.execute(&server, message, opts).await,
            &id,
            &server,
        );
        if let (Ok(executed), true) = (&mut result, method == "tools/list") {
            if principal.role == Role::Caller {
                executed
                    .response
                    .edit(|response| filter_tools(&principal, &server, response));
            }
        }
        let label = if method.is_empty() {
            "Execute"
        } else {
            method.as_str()
        };
        self.audit_with(
            &principal,
            &audited,
            label,
            &server,
            tool.as_deref(),
            &outcome(&result),
            started,
            Some(&|| arguments.clone()),
        );
        Ok(reply(result?))
    }

    async fn execute_tool(
        &self,
        request: Request<ExecuteToolRequest>,
    ) -> Result<Response<ExecuteReply>, Status> {
        let started = Instant::now();
        let principal = principal_of(&request)?;
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
        if !principal.may_call_tool(&server, &tool) {
            self.audit(
                &principal,
                &opts,
                "tools/call",
                &server,
                Some(&tool),
                "denied",
                started,
            );
            return Err(forbidden(&principal, &format!("{server}__{tool}")));
        }
        if let Err(limited) = self.admit_caller(&principal, &opts, &server, true) {
            let e = ExecuteError::Refused(limited);
            let outcome = e.kind().as_str();
            self.audit(
                &principal,
                &opts,
                "tools/call",
                &server,
                Some(&tool),
                outcome,
                started,
            );
            return Err(e.into());
        }
        let id = opts.request_id.clone();
        let audited = opts.clone();
        let result = logged(
            self.plane
                .call_tool(&server, &tool, &arguments_json, opts)
                .await,
            &id,
            &server,
        );
        self.audit_with(
            &principal,
            &audited,
            "tools/call",
            &server,
            Some(&tool),
            &outcome(&result),
            started,
            Some(&|| serde_json::from_str(&arguments_json).ok()),
        );
        Ok(reply(result?))
    }
}
