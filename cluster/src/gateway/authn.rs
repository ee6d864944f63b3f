//! Who is calling the gateway: the bearer credential of a request turned into a
//! [`Principal`], and the HTTP answers to a missing, invalid or insufficient one.
//!
//! Accepted credentials, tried in this order: the gateway's own token (`--mcp-token`, a
//! principal that may call every tool), the cluster's tokens (the bootstrap admin token
//! and the API tokens of the registry, as on gRPC), and JWT access tokens of the
//! configured OAuth issuer (see [`oauth`](super::oauth)). With none of these configured
//! the endpoint is open and every request is the anonymous admin.
//!
//! A refusal is 401 with `WWW-Authenticate: Bearer`, naming the protected resource
//! metadata when OAuth is configured so that clients can find the authorization server;
//! a valid credential that may not do what it asked is 403 `insufficient_scope`.

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mcp_raft::registry::principals::AllowRules;
use serde_json::Value;

use super::oauth::{JwtValidator, OAuthError};
use super::scope::Scope;
use crate::auth::{constant_time_eq, Authenticator};
use crate::principal::{Principal, Role};

/// Name of the principal of the gateway's own token.
pub const MCP_TOKEN_PRINCIPAL: &str = "mcp-token";

/// Why a request has no principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No bearer credential.
    Missing,
    /// A credential that is not valid here (unknown, revoked, expired, bad JWT).
    Invalid(String),
    /// A valid credential that does not cover the request.
    InsufficientScope(String),
}

impl AuthFailure {
    /// The `reason` label of `mcp_gateway_rejections_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthFailure::Missing | AuthFailure::Invalid(_) => "unauthorized",
            AuthFailure::InsufficientScope(_) => "forbidden",
        }
    }
}

/// The credential checks of one gateway.
#[derive(Clone, Default)]
pub struct GatewayAuth {
    mcp_token: Option<String>,
    tokens: Authenticator,
    oauth: Option<Arc<JwtValidator>>,
}

impl std::fmt::Debug for GatewayAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a token.
        f.debug_struct("GatewayAuth")
            .field("mcp_token", &self.mcp_token.is_some())
            .field("tokens", &self.tokens)
            .field("oauth", &self.oauth)
            .finish()
    }
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
}

impl GatewayAuth {
    /// Checks with the gateway's own token `mcp_token`, the cluster's `tokens`, and the
    /// JWTs `oauth` accepts.
    pub fn new(
        mcp_token: Option<String>,
        tokens: Authenticator,
        oauth: Option<Arc<JwtValidator>>,
    ) -> Self {
        Self {
            mcp_token: mcp_token.filter(|t| !t.is_empty()),
            tokens,
            oauth,
        }
    }

    /// True when requests need a credential.
    pub fn enabled(&self) -> bool {
        self.mcp_token.is_some() || self.tokens.enabled() || self.oauth.is_some()
    }

    /// The OAuth validator, when configured.
    pub fn oauth(&self) -> Option<&Arc<JwtValidator>> {
        self.oauth.as_ref()
    }

    /// The principal of a request with `headers`.
    pub async fn principal(&self, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
        if !self.enabled() {
            return Ok(Principal::anonymous());
        }
        let token = bearer(headers).ok_or(AuthFailure::Missing)?;
        if let Some(expected) = &self.mcp_token {
            if constant_time_eq(token.as_bytes(), expected.as_bytes()) {
                return Ok(Principal::new(
                    MCP_TOKEN_PRINCIPAL,
                    Role::Operator,
                    AllowRules::default(),
                ));
            }
        }
        if self.tokens.enabled() {
            if let Ok(principal) = self.tokens.resolve(Some(token)) {
                return Ok(principal);
            }
        }
        // A JWT is three base64url parts; anything else is not worth a key lookup.
        match &self.oauth {
            Some(oauth) if token.split('.').count() == 3 => match oauth.validate(token).await {
                Ok(principal) => Ok(principal),
                Err(OAuthError::InsufficientScope) => Err(AuthFailure::InsufficientScope(
                    "the token grants no role on this resource".to_owned(),
                )),
                Err(OAuthError::Keys(why)) => {
                    tracing::warn!(error = %why, "cannot check a JWT: signing keys unavailable");
                    Err(AuthFailure::Invalid("signing keys unavailable".to_owned()))
                }
                Err(OAuthError::InvalidToken(why)) => Err(AuthFailure::Invalid(why)),
            },
            _ => Err(AuthFailure::Invalid(
                "unknown, expired or revoked token".to_owned(),
            )),
        }
    }

    /// The `WWW-Authenticate` value of a refusal.
    fn challenge(&self, failure: &AuthFailure) -> String {
        let mut parts = vec!["Bearer".to_owned()];
        let mut params = Vec::new();
        if let Some(oauth) = &self.oauth {
            params.push(format!(
                "resource_metadata=\"{}\"",
                oauth.config().metadata_url()
            ));
        }
        match failure {
            AuthFailure::Missing => {}
            AuthFailure::Invalid(why) => {
                params.push("error=\"invalid_token\"".to_owned());
                params.push(format!("error_description=\"{}\"", quoted(why)));
            }
            AuthFailure::InsufficientScope(why) => {
                params.push("error=\"insufficient_scope\"".to_owned());
                params.push(format!("error_description=\"{}\"", quoted(why)));
            }
        }
        if !params.is_empty() {
            parts.push(params.join(", "));
        }
        parts.join(" ")
    }

    /// The HTTP answer to `failure`: 401 or 403, with the challenge and a JSON-RPC error.
    pub fn refusal(&self, failure: &AuthFailure, id: Value) -> Response {
        let (status, message) = match failure {
            AuthFailure::Missing => (StatusCode::UNAUTHORIZED, "missing bearer token".to_owned()),
            AuthFailure::Invalid(why) => {
                (StatusCode::UNAUTHORIZED, format!("invalid token: {why}"))
            }
            AuthFailure::InsufficientScope(why) => {
                (StatusCode::FORBIDDEN, format!("insufficient scope: {why}"))
            }
        };
        let body = super::protocol::error(id, super::protocol::INVALID_REQUEST, message, None);
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if let Ok(value) = HeaderValue::from_str(&self.challenge(failure)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// The tools of a `tools/list` answer that `principal` may call (`routes` maps each
/// exposed name to its server and tool).
pub fn visible_tools(
    principal: &Principal,
    tools: Vec<Value>,
    routes: &std::collections::HashMap<String, super::catalog::Route>,
) -> Vec<Value> {
    if principal.role.calls_everything() {
        return tools;
    }
    tools
        .into_iter()
        .filter(|tool| {
            tool.get("name")
                .and_then(Value::as_str)
                .and_then(|name| routes.get(name))
                .is_some_and(|route| principal.may_call_tool(&route.server, &route.tool))
        })
        .collect()
}

/// `text` safe inside a quoted-string.
fn quoted(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

/// A principal narrows what the gateway shows and serves: a caller sees only the tools
/// its allow rules name (and the servers they name), a reader nothing.
impl Scope for Principal {
    fn server_visible(&self, server: &str) -> bool {
        self.may_use_server(server)
    }

    fn tool(&self, server: &str, exposed: String, tool: Value) -> Option<(String, Value)> {
        let name = tool.get("name").and_then(Value::as_str)?;
        self.may_call_tool(server, name).then_some((exposed, tool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(auth) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(auth));
        }
        h
    }

    #[tokio::test]
    async fn tokens_resolve_in_order() {
        let open = GatewayAuth::default();
        assert!(!open.enabled());
        assert_eq!(
            open.principal(&headers(None)).await.unwrap(),
            Principal::anonymous()
        );
        let auth = GatewayAuth::new(
            Some("mcp-secret".into()),
            Authenticator::new(Some("admin-secret".into()), None),
            None,
        );
        assert_eq!(
            auth.principal(&headers(Some("Bearer mcp-secret")))
                .await
                .unwrap()
                .name,
            MCP_TOKEN_PRINCIPAL
        );
        assert_eq!(
            auth.principal(&headers(Some("Bearer admin-secret")))
                .await
                .unwrap(),
            Principal::bootstrap_admin()
        );
        assert_eq!(
            auth.principal(&headers(None)).await,
            Err(AuthFailure::Missing)
        );
        assert!(matches!(
            auth.principal(&headers(Some("Bearer a.b.c"))).await,
            Err(AuthFailure::Invalid(_))
        ));
        assert!(!format!("{auth:?}").contains("secret"));
    }

    #[test]
    fn refusals_carry_the_challenge() {
        let auth = GatewayAuth::new(Some("t".into()), Authenticator::default(), None);
        let r = auth.refusal(&AuthFailure::Missing, Value::Null);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let r = auth.refusal(
            &AuthFailure::InsufficientScope("no \"tool\"".into()),
            Value::Null,
        );
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let challenge = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
    }
}
