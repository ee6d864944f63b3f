//! The guard part of `ClusterService` (issue 16): tool pins (`ListToolPins`,
//! `ApproveTools`, `ObserveTools`) and secrets (`SetSecret`, `ListSecrets`, `DeleteSecret`,
//! `RotateSecrets`). Writes are proposed on the leader (see [`LeaderRoute`]); a secret is
//! sealed by the node that proposes it, so only ciphertext enters the log, and no reply or
//! error carries a value. Listings are this node's view.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use mcp_proto::cluster::{
    ApproveToolsRequest, DeleteSecretRequest, ListSecretsReply, ListSecretsRequest,
    ListToolPinsReply, ListToolPinsRequest, ObserveToolsRequest, RotateSecretsReply,
    RotateSecretsRequest, SecretInfo, SetSecretRequest, ToolPin, WriteReply,
};
use mcp_proto::cluster::{
    CallerLimit, ListCallerLimitsReply, ListCallerLimitsRequest, SetCallerLimitRequest,
};
use mcp_raft::registry::limits::LimitSubject;
use mcp_raft::registry::pins::ToolDefinition;
use mcp_raft::registry::secrets::{valid_name, MAX_SECRET_NAME_LEN};
use mcp_raft::registry::spec;
use mcp_raft::registry::spec::RateLimit;
use mcp_raft::registry::Role;
use mcp_raft::{Command, RegistryReader};
use tonic::{Request, Response, Status};

use super::leader_route::LeaderRoute;
use super::registry_service::write_reply;
use crate::error::ClusterError;
use crate::gateway::session::unix_ms;
use crate::guards::pinning::PinWriter;
use crate::guards::secrets::Keyring;

/// Largest secret value accepted.
pub const MAX_SECRET_VALUE_BYTES: usize = 64 * 1024;

/// Handlers of the guard RPCs.
#[derive(Clone)]
pub struct GuardHandlers {
    route: LeaderRoute,
    registry: RegistryReader,
    keyring: Option<Arc<Keyring>>,
}

fn check_server(name: &str) -> Result<(), ClusterError> {
    spec::validate_name(name).map_err(ClusterError::InvalidSpec)
}

fn check_secret_name(name: &str) -> Result<(), ClusterError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ClusterError::InvalidArgument(format!(
            "secret names are 1-{MAX_SECRET_NAME_LEN} of A-Z a-z 0-9 _ . -"
        )))
    }
}

impl GuardHandlers {
    /// Guard handlers on `route`, reading `registry`, sealing with `keyring`.
    pub fn new(
        route: LeaderRoute,
        registry: RegistryReader,
        keyring: Option<Arc<Keyring>>,
    ) -> Self {
        Self {
            route,
            registry,
            keyring,
        }
    }

    fn keyring(&self) -> Result<&Keyring, ClusterError> {
        self.keyring.as_deref().ok_or_else(|| {
            ClusterError::Config(
                "this node has no secrets key: start every node with the same --secrets-key-file (or MCPD_SECRETS_KEY)".to_owned(),
            )
        })
    }

    /// `ListToolPins`: the pins and pending changes of a server.
    pub async fn list_tool_pins(
        &self,
        request: Request<ListToolPinsRequest>,
    ) -> Result<Response<ListToolPinsReply>, Status> {
        let server = request.into_inner().server;
        check_server(&server)?;
        let reply = self.registry.read(|state| {
            let record = state.registry.server(&server)?;
            let pins = state
                .registry
                .tool_pins()
                .server(&server)
                .cloned()
                .unwrap_or_default();
            let mut tools: BTreeMap<String, ToolPin> = BTreeMap::new();
            for (tool, pin) in &pins.pinned {
                tools.insert(
                    tool.clone(),
                    ToolPin {
                        tool: tool.clone(),
                        state: "pinned".into(),
                        pinned_hash: pin.hash.clone(),
                        pinned_definition: pin.definition.clone(),
                        ..ToolPin::default()
                    },
                );
            }
            for (tool, pending) in &pins.pending {
                let entry = tools.entry(tool.clone()).or_insert_with(|| ToolPin {
                    tool: tool.clone(),
                    state: "new".into(),
                    ..ToolPin::default()
                });
                if entry.state == "pinned" {
                    entry.state = "changed".into();
                }
                entry.pending_hash = pending.seen.hash.clone();
                entry.pending_definition = pending.seen.definition.clone();
                entry.seen_by = pending.seen_by;
                entry.seen_at_ms = pending.seen_at_ms;
            }
            Some(ListToolPinsReply {
                server: server.clone(),
                policy: record.spec.guards.pin.as_str().to_owned(),
                tools: tools.into_values().collect(),
            })
        });
        reply.map(Response::new).ok_or_else(|| {
            ClusterError::Rejected(mcp_raft::CommandError::ServerNotFound { name: server }).into()
        })
    }

    /// `ApproveTools`: pending definitions become the pinned ones.
    pub async fn approve_tools(
        &self,
        request: Request<ApproveToolsRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let ApproveToolsRequest { server, tools } = request.get_ref().clone();
        check_server(&server)?;
        let name = server.clone();
        let command = Command::ApproveTools {
            server,
            tools: tools.clone(),
        };
        self.route
            .propose_or_forward(
                request,
                command,
                |done| {
                    tracing::info!(target: crate::audit::TARGET, event = "tools_approved", server = %name, tools = ?tools, "pending tool definitions approved");
                    write_reply(&name, done)
                },
                |mut c, r| async move { c.approve_tools(r).await },
            )
            .await
    }

    /// `ObserveTools`: records what a node's instance presented.
    pub async fn observe_tools(
        &self,
        request: Request<ObserveToolsRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let ObserveToolsRequest {
            server,
            tools_json,
            node,
            at_ms,
        } = request.get_ref().clone();
        check_server(&server)?;
        let tools: BTreeMap<String, ToolDefinition> = serde_json::from_str(&tools_json)
            .map_err(|e| ClusterError::InvalidArgument(format!("tools_json: {e}")))?;
        let command = Command::ObserveTools {
            server: server.clone(),
            tools,
            node,
            at_ms,
        };
        self.route
            .propose_or_forward(
                request,
                command,
                |done| write_reply(&server, done),
                |mut c, r| async move { c.observe_tools(r).await },
            )
            .await
    }

    /// `SetSecret`: seals the value here and proposes the ciphertext.
    pub async fn set_secret(
        &self,
        request: Request<SetSecretRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let (name, sealed) = {
            let SetSecretRequest { name, value } = request.get_ref();
            check_secret_name(name)?;
            if value.len() > MAX_SECRET_VALUE_BYTES {
                return Err(ClusterError::InvalidArgument(format!(
                    "a secret value is at most {MAX_SECRET_VALUE_BYTES} bytes"
                ))
                .into());
            }
            if std::str::from_utf8(value).is_err() {
                return Err(ClusterError::InvalidArgument(
                    "a secret value must be UTF-8 text (it becomes an environment variable or header)".to_owned(),
                )
                .into());
            }
            let sealed = self
                .keyring()?
                .seal(name, value)
                .map_err(|e| ClusterError::Config(e.to_string()))?;
            (name.clone(), sealed)
        };
        let command = Command::PutSecret {
            name: name.clone(),
            sealed,
        };
        self.route
            .propose_or_forward(
                request,
                command,
                |done| {
                    tracing::info!(target: crate::audit::TARGET, event = "secret_set", secret = %name, "secret set");
                    write_reply(&name, done)
                },
                |mut c, r| async move { c.set_secret(r).await },
            )
            .await
    }

    /// `ListSecrets`: names and key ids, never values.
    pub async fn list_secrets(
        &self,
        _request: Request<ListSecretsRequest>,
    ) -> Result<Response<ListSecretsReply>, Status> {
        let secrets = self.registry.read(|state| {
            state
                .registry
                .secrets()
                .iter()
                .map(|(name, record)| SecretInfo {
                    name: name.clone(),
                    key_id: record.sealed.key_id.clone(),
                    mod_revision: record.mod_revision,
                })
                .collect()
        });
        Ok(Response::new(ListSecretsReply {
            secrets,
            current_key_id: self
                .keyring
                .as_deref()
                .map(|k| k.current_id().to_owned())
                .unwrap_or_default(),
        }))
    }

    /// `DeleteSecret`: removes a secret no server refers to.
    pub async fn delete_secret(
        &self,
        request: Request<DeleteSecretRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let name = request.get_ref().name.clone();
        check_secret_name(&name)?;
        let command = Command::DeleteSecret { name: name.clone() };
        self.route
            .propose_or_forward(
                request,
                command,
                |done| {
                    tracing::info!(target: crate::audit::TARGET, event = "secret_deleted", secret = %name, "secret deleted");
                    write_reply(&name, done)
                },
                |mut c, r| async move { c.delete_secret(r).await },
            )
            .await
    }

    /// `RotateSecrets`: every secret sealed under another key is resealed under this
    /// node's current key, each with a compare-and-set on its old ciphertext.
    pub async fn rotate_secrets(
        &self,
        request: Request<RotateSecretsRequest>,
    ) -> Result<Response<RotateSecretsReply>, Status> {
        let keyring = self.keyring()?;
        let key_id = keyring.current_id().to_owned();
        let resealed = self
            .registry
            .read(|state| keyring.reseal_all(state.registry.secrets()))
            .map_err(|e| ClusterError::Config(e.to_string()))?;
        let count = u32::try_from(resealed.len()).unwrap_or(u32::MAX);
        let commands: Vec<Command> = resealed
            .into_iter()
            .map(|(name, previous, sealed)| Command::ResealSecret {
                name,
                previous,
                sealed,
            })
            .collect();
        let command = Command::Batch { commands };
        let id = key_id.clone();
        self.route
            .propose_or_forward(
                request,
                command,
                move |(outcome, _)| {
                    // A secret set again meanwhile keeps its newer value (already current).
                    let done = outcome.batch.iter().filter(|r| r.is_ok()).count();
                    let done = u32::try_from(done).unwrap_or(count);
                    tracing::info!(target: crate::audit::TARGET, event = "secrets_rotated", key_id = %id, resealed = done, "secrets resealed");
                    RotateSecretsReply {
                        resealed: done,
                        key_id: id.clone(),
                        revision: outcome.revision,
                    }
                },
                |mut c, r| async move { c.rotate_secrets(r).await },
            )
            .await
    }
}

impl GuardHandlers {
    /// `SetCallerLimit`: sets or removes the limit of a principal or a role.
    pub async fn set_caller_limit(
        &self,
        request: Request<SetCallerLimitRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let limit = request.get_ref().limit.clone().unwrap_or_default();
        let subject = match limit.kind.as_str() {
            "principal" => LimitSubject::Principal(limit.name.clone()),
            "role" => LimitSubject::Role(Role::parse(&limit.name).ok_or_else(|| {
                ClusterError::InvalidArgument(format!(
                    "role {:?} is not one of admin, operator, caller, reader",
                    limit.name
                ))
            })?),
            other => {
                return Err(ClusterError::InvalidArgument(format!(
                    "a caller limit is for a principal or a role, not {other:?}"
                ))
                .into())
            }
        };
        let rate = (limit.per_second > 0).then_some(RateLimit {
            per_second: limit.per_second,
            burst: if limit.burst == 0 {
                limit.per_second
            } else {
                limit.burst
            },
        });
        let name = limit.name.clone();
        let command = Command::SetCallerLimit {
            subject: subject.clone(),
            limit: rate,
        };
        self.route
            .propose_or_forward(
                request,
                command,
                |done| {
                    tracing::info!(target: crate::audit::TARGET, event = "caller_limit_set", subject = %subject, limit = ?rate, "caller rate limit changed");
                    write_reply(&name, done)
                },
                |mut c, r| async move { c.set_caller_limit(r).await },
            )
            .await
    }

    /// `ListCallerLimits`: every principal and role limit.
    pub async fn list_caller_limits(
        &self,
        _request: Request<ListCallerLimitsRequest>,
    ) -> Result<Response<ListCallerLimitsReply>, Status> {
        let limits = self.registry.read(|state| {
            state
                .registry
                .caller_limits()
                .all()
                .into_iter()
                .map(|(subject, l)| {
                    let (kind, name) = match subject {
                        LimitSubject::Principal(name) => ("principal", name),
                        LimitSubject::Role(role) => ("role", role.as_str().to_owned()),
                    };
                    CallerLimit {
                        kind: kind.to_owned(),
                        name,
                        per_second: l.per_second,
                        burst: l.burst,
                    }
                })
                .collect()
        });
        Ok(Response::new(ListCallerLimitsReply { limits }))
    }
}

impl PinWriter for GuardHandlers {
    fn observe(
        &self,
        server: String,
        tools: BTreeMap<String, ToolDefinition>,
    ) -> BoxFuture<'static, Result<(), String>> {
        let handlers = self.clone();
        Box::pin(async move {
            let tools_json = serde_json::to_string(&tools).map_err(|e| e.to_string())?;
            let mut request = Request::new(ObserveToolsRequest {
                server,
                tools_json,
                node: handlers.route.id(),
                at_ms: unix_ms(),
            });
            // The node's own credential, as for a peer: the leader checks it.
            handlers.route.peers().authorize(request.metadata_mut());
            handlers
                .observe_tools(request)
                .await
                .map(|_| ())
                .map_err(|status| status.message().to_owned())
        })
    }
}
