//! The API-token part of `ClusterService`: `CreateToken`, `ListTokens`, `RevokeToken`.
//!
//! Creating and revoking are registry writes proposed on the leader (see
//! [`LeaderRoute`]). The token is made by the node that proposes it and leaves it only in
//! the reply to its creator; the Raft log and the registry hold its hash. Listings never
//! show a token or a hash. Who may call these is settled by [`crate::auth`] (admins).

use std::time::Duration;

use mcp_proto::cluster::{
    CreateTokenReply, CreateTokenRequest, ListTokensReply, ListTokensRequest, RevokeTokenRequest,
    TokenInfo, WriteReply,
};
use mcp_raft::registry::principals::{validate_token_name, AllowRules};
use mcp_raft::registry::{Role, TokenRecord};
use mcp_raft::{Command, RegistryReader};
use tonic::{Request, Response, Status};

use super::leader_route::LeaderRoute;
use super::registry_service::write_reply;
use crate::error::ClusterError;
use crate::gateway::session::unix_ms;
use crate::principal::{hash_token, new_token};

/// Longest lifetime a token may be given (ten years): beyond it, say "never".
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Handlers of the token RPCs.
#[derive(Clone)]
pub struct TokenHandlers {
    route: LeaderRoute,
    registry: RegistryReader,
    /// False on a node with no admin token: tokens would be checked by nobody.
    auth_enabled: bool,
}

/// The registry record and the token of a `CreateToken` request, checked.
fn new_record(
    request: &CreateTokenRequest,
    now_ms: u64,
) -> Result<(TokenRecord, String), ClusterError> {
    let invalid = ClusterError::InvalidArgument;
    validate_token_name(&request.name).map_err(invalid)?;
    let role = Role::parse(&request.role).ok_or_else(|| {
        invalid(format!(
            "role {:?} is not one of admin, operator, caller, reader",
            request.role
        ))
    })?;
    let allow = AllowRules::new(request.allow.clone()).map_err(invalid)?;
    if role == Role::Caller && allow.globs().is_empty() {
        return Err(invalid(
            "a caller token needs at least one --allow rule (SERVER__TOOL glob)".to_owned(),
        ));
    }
    if role != Role::Caller && !allow.globs().is_empty() {
        return Err(invalid(format!(
            "allow rules apply to callers only; a {role} calls {}",
            if role >= Role::Operator {
                "every tool"
            } else {
                "no tool"
            }
        )));
    }
    if request.expires_in_secs > MAX_TOKEN_LIFETIME.as_secs() {
        return Err(invalid(format!(
            "expiry of {} s is beyond the {} s maximum; omit it for a token that never expires",
            request.expires_in_secs,
            MAX_TOKEN_LIFETIME.as_secs()
        )));
    }
    let token = new_token();
    let record = TokenRecord {
        name: request.name.clone(),
        role,
        allow,
        hash: hash_token(&token),
        created_at_ms: now_ms,
        expires_at_ms: (request.expires_in_secs > 0)
            .then(|| now_ms + request.expires_in_secs * 1000),
    };
    Ok((record, token))
}

impl TokenHandlers {
    /// Token handlers on `route`, reading `registry`.
    pub fn new(route: LeaderRoute, registry: RegistryReader, auth_enabled: bool) -> Self {
        Self {
            route,
            registry,
            auth_enabled,
        }
    }

    /// `CreateToken`: a new token, shown once.
    pub async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenReply>, Status> {
        if !self.auth_enabled {
            return Err(ClusterError::InvalidArgument(
                "this node has no --admin-token, so it checks no credential: start every \
                 node with one before creating tokens"
                    .to_owned(),
            )
            .into());
        }
        // Built here; if another node leads, it builds its own token from the forwarded
        // request and this one is dropped, never sent anywhere.
        let (record, token) = new_record(request.get_ref(), unix_ms())?;
        let expires_at_ms = record.expires_at_ms.unwrap_or(0);
        let (name, role) = (record.name.clone(), record.role);
        let done = move |(outcome, index): (mcp_raft::CommandOutcome, u64)| {
            tracing::info!(token = %name, %role, "API token created");
            CreateTokenReply {
                token: token.clone(),
                revision: outcome.revision,
                log_index: index,
                expires_at_ms,
            }
        };
        self.route
            .propose_or_forward(
                request,
                Command::PutToken { record },
                done,
                |mut c, r| async move { c.create_token(r).await },
            )
            .await
    }

    /// `ListTokens`: names, roles, rules and expiry, from this node's applied state.
    pub async fn list_tokens(
        &self,
        _request: Request<ListTokensRequest>,
    ) -> Result<Response<ListTokensReply>, Status> {
        let now = unix_ms();
        let tokens = self.registry.read(|state| {
            state
                .registry
                .principals()
                .tokens()
                .map(|t| TokenInfo {
                    name: t.name.clone(),
                    role: t.role.as_str().to_owned(),
                    allow: t.allow.globs().to_vec(),
                    created_at_ms: t.created_at_ms,
                    expires_at_ms: t.expires_at_ms.unwrap_or(0),
                    expired: t.expired(now),
                })
                .collect()
        });
        Ok(Response::new(ListTokensReply { tokens }))
    }

    /// `RevokeToken`: every node refuses the token once it applies the revocation.
    pub async fn revoke_token(
        &self,
        request: Request<RevokeTokenRequest>,
    ) -> Result<Response<WriteReply>, Status> {
        let name = request.get_ref().name.clone();
        validate_token_name(&name).map_err(ClusterError::InvalidArgument)?;
        let command = Command::RevokeToken { name: name.clone() };
        self.route
            .propose_or_forward(
                request,
                command,
                |done| {
                    tracing::info!(token = %name, "API token revoked");
                    write_reply(&name, done)
                },
                |mut c, r| async move { c.revoke_token(r).await },
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, role: &str, allow: &[&str], expires_in_secs: u64) -> CreateTokenRequest {
        CreateTokenRequest {
            name: name.into(),
            role: role.into(),
            allow: allow.iter().map(|s| (*s).to_owned()).collect(),
            expires_in_secs,
        }
    }

    #[test]
    fn a_record_holds_the_hash_and_the_expiry() {
        let (record, token) =
            new_record(&request("ci", "caller", &["time__*"], 60), 1_000).unwrap();
        assert_eq!(record.hash, hash_token(&token));
        assert_ne!(record.hash, token);
        assert_eq!(record.expires_at_ms, Some(61_000));
        assert_eq!(record.role, Role::Caller);
        let (forever, _) = new_record(&request("ops", "operator", &[], 0), 1_000).unwrap();
        assert_eq!(forever.expires_at_ms, None);
    }

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        for (bad, why) in [
            (request("", "admin", &[], 0), "name"),
            (request("a b", "admin", &[], 0), "letters"),
            (request("x", "root", &[], 0), "role"),
            (request("x", "caller", &[], 0), "at least one"),
            (request("x", "reader", &["a__*"], 0), "callers only"),
            (request("x", "admin", &[], u64::MAX), "maximum"),
        ] {
            let e = new_record(&bad, 0).expect_err(why);
            assert!(e.to_string().contains(why), "{e}");
        }
    }
}
