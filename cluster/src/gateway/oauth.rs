//! The gateway as an OAuth 2.1 resource server: it accepts JWT access tokens issued for it
//! by the configured authorization server, and describes itself in the protected resource
//! metadata of RFC 9728.
//!
//! A token is accepted when its signature verifies against a key of the issuer's JWKS
//! (read from a file, or fetched from a URL and cached; a `kid` not in the cache triggers
//! one refetch, at most every [`REFETCH_INTERVAL`]), its `iss` is the issuer, its `aud`
//! names this resource, and `exp`/`nbf` hold. Only asymmetric algorithms are accepted: a
//! shared-secret (`HS*`) token could be minted by anyone holding the verification key.
//!
//! Scopes become a [`Principal`]: each configured `SCOPE=ROLE` pair grants its role (the
//! highest granted wins), and each `tools:GLOB` scope is an allow rule of a caller. A
//! valid token that grants nothing is refused with 403 `insufficient_scope`. The token is
//! never passed to an upstream server: only the JSON-RPC body travels on.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcp_raft::registry::principals::AllowRules;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::principal::{Principal, Role};

/// Shortest time between two JWKS fetches caused by unknown key ids, so a stream of
/// tokens with made-up `kid`s cannot turn the gateway into a flood of requests to the
/// issuer.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// How long a fetched JWKS is used before it is fetched again anyway (key rotation).
pub const JWKS_TTL: Duration = Duration::from_secs(600);
/// Bound on one JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew allowed on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 30;
/// The scope prefix of allow rules: `tools:time__*`.
pub const TOOLS_SCOPE_PREFIX: &str = "tools:";
/// Path of the protected resource metadata (RFC 9728 section 3).
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// Where the issuer's signing keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS document on disk (read again on an unknown `kid`).
    File(PathBuf),
    /// The issuer's `jwks_uri`.
    Url(String),
}

impl JwksSource {
    /// A URL for `http(s)://...`, a file path otherwise.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("https://") || text.starts_with("http://") {
            JwksSource::Url(text.to_owned())
        } else {
            JwksSource::File(PathBuf::from(text))
        }
    }
}

/// How the gateway accepts JWT access tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    /// The authorization server: the `iss` tokens must carry, and what the metadata
    /// document names.
    pub issuer: String,
    /// This resource's identifier, the `aud` tokens must carry: the gateway's URL
    /// (`https://mcp.example.com/mcp`).
    pub audience: String,
    /// Where the signing keys are.
    pub jwks: JwksSource,
    /// Scope -> the role it grants.
    pub scope_roles: Vec<(String, Role)>,
}

impl OAuthConfig {
    /// The default scope names: `mcp:admin`, `mcp:operator`, `mcp:read`.
    pub fn default_scope_roles() -> Vec<(String, Role)> {
        vec![
            ("mcp:admin".to_owned(), Role::Admin),
            ("mcp:operator".to_owned(), Role::Operator),
            ("mcp:read".to_owned(), Role::Reader),
        ]
    }

    /// Parses `SCOPE=ROLE` pairs.
    pub fn parse_scope_roles(pairs: &[String]) -> Result<Vec<(String, Role)>, String> {
        pairs
            .iter()
            .map(|pair| {
                let (scope, role) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("scope mapping {pair:?} must be SCOPE=ROLE"))?;
                let role = Role::parse(role.trim()).ok_or_else(|| {
                    format!(
                        "scope mapping {pair:?}: role must be admin, operator, caller or reader"
                    )
                })?;
                if scope.trim().is_empty() {
                    return Err(format!("scope mapping {pair:?} has no scope"));
                }
                Ok((scope.trim().to_owned(), role))
            })
            .collect()
    }

    /// The URL of this resource's metadata document: the well-known path inserted before
    /// the resource's path, as RFC 9728 section 3.1 builds it.
    pub fn metadata_url(&self) -> String {
        let (origin, path) = split_url(&self.audience);
        format!("{origin}{METADATA_PATH}{path}")
    }

    /// The metadata document (RFC 9728 section 2).
    pub fn metadata(&self) -> Value {
        let mut scopes: Vec<&str> = self.scope_roles.iter().map(|(s, _)| s.as_str()).collect();
        scopes.push("tools:SERVER__TOOL");
        json!({
            "resource": self.audience,
            "authorization_servers": [self.issuer],
            "bearer_methods_supported": ["header"],
            "scopes_supported": scopes,
            "resource_name": "mcpd MCP gateway",
        })
    }
}

/// `scheme://authority` and the path (without a trailing `/`) of `url`.
fn split_url(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => {
            let (origin, path) = url.split_at(after_scheme + i);
            (origin, path.trim_end_matches('/'))
        }
        None => (url, ""),
    }
}

/// Why a JWT was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// Bad shape, signature, issuer, audience, times, or an unknown key: 401.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// A valid token whose scopes grant nothing here: 403.
    #[error("insufficient scope: the token grants no role on this resource")]
    InsufficientScope,
    /// The keys could not be loaded: 401 too (the client cannot tell), logged.
    #[error("signing keys unavailable: {0}")]
    Keys(String),
}

/// The claims read from an access token.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    /// Space-separated (RFC 8693, RFC 9068).
    #[serde(default)]
    scope: Option<String>,
    /// An array, as some issuers write it.
    #[serde(default)]
    scp: Option<Vec<String>>,
}

#[derive(Default)]
struct Cache {
    keys: Option<JwkSet>,
    fetched: Option<Instant>,
}

/// Validates access tokens against one issuer.
pub struct JwtValidator {
    config: OAuthConfig,
    http: reqwest::Client,
    cache: tokio::sync::Mutex<Cache>,
    /// When an unknown `kid` last caused a fetch.
    last_refetch: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .finish()
    }
}

/// The asymmetric algorithms a token may be signed with.
const ACCEPTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl JwtValidator {
    /// A validator for `config`. Nothing is fetched until the first token.
    pub fn new(config: OAuthConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            config,
            http,
            cache: tokio::sync::Mutex::new(Cache::default()),
            last_refetch: Mutex::new(None),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    async fn load(&self) -> Result<JwkSet, OAuthError> {
        let text = match &self.config.jwks {
            JwksSource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| OAuthError::Keys(format!("read {}: {e}", path.display())))?,
            JwksSource::Url(url) => {
                let response = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| OAuthError::Keys(format!("fetch {url}: {e}")))?;
                response
                    .text()
                    .await
                    .map_err(|e| OAuthError::Keys(format!("fetch {url}: {e}")))?
            }
        };
        serde_json::from_str(&text).map_err(|e| OAuthError::Keys(format!("not a JWKS: {e}")))
    }

    /// The key `kid` (or the only key, for a token without a `kid`), fetching the set
    /// when it is not cached, is stale, or lacks `kid` (rate-limited).
    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, OAuthError> {
        let mut cache = self.cache.lock().await;
        let stale = cache.fetched.is_none_or(|t| t.elapsed() >= JWKS_TTL);
        if stale {
            let keys = self.load().await?;
            cache.keys = Some(keys);
            cache.fetched = Some(Instant::now());
        }
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let mut found = cache.keys.as_ref().and_then(find);
        if found.is_none() && !stale && self.may_refetch() {
            let keys = self.load().await?;
            found = find(&keys);
            cache.keys = Some(keys);
            cache.fetched = Some(Instant::now());
        }
        let jwk = found.ok_or_else(|| {
            OAuthError::InvalidToken(format!("unknown signing key {:?}", kid.unwrap_or("")))
        })?;
        DecodingKey::from_jwk(&jwk).map_err(|e| OAuthError::Keys(format!("unusable key: {e}")))
    }

    fn may_refetch(&self) -> bool {
        let mut last = self.last_refetch.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < REFETCH_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// The principal of access token `token`.
    pub async fn validate(&self, token: &str) -> Result<Principal, OAuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| OAuthError::InvalidToken(format!("malformed: {e}")))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(OAuthError::InvalidToken(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = self.key(header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            let why = match e.kind() {
                K::ExpiredSignature => "expired".to_owned(),
                K::ImmatureSignature => "not valid yet".to_owned(),
                K::InvalidAudience => "issued for another audience".to_owned(),
                K::InvalidIssuer => "issued by another issuer".to_owned(),
                K::InvalidSignature => "bad signature".to_owned(),
                other => format!("{other:?}"),
            };
            OAuthError::InvalidToken(why)
        })?;
        self.principal(data.claims)
    }

    fn principal(&self, claims: Claims) -> Result<Principal, OAuthError> {
        let scopes: Vec<String> = match (claims.scope, claims.scp) {
            (Some(scope), _) => scope.split_whitespace().map(str::to_owned).collect(),
            (None, Some(scp)) => scp,
            (None, None) => Vec::new(),
        };
        let mut role = self
            .config
            .scope_roles
            .iter()
            .filter(|(scope, _)| scopes.contains(scope))
            .map(|(_, role)| *role)
            .max();
        let globs: Vec<String> = scopes
            .iter()
            .filter_map(|s| s.strip_prefix(TOOLS_SCOPE_PREFIX))
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect();
        if !globs.is_empty() && role.is_none_or(|r| r < Role::Caller) {
            role = Some(Role::Caller);
        }
        let role = role.ok_or(OAuthError::InsufficientScope)?;
        let allow = if role == Role::Caller {
            AllowRules::new(globs).map_err(OAuthError::InvalidToken)?
        } else {
            AllowRules::default()
        };
        let name = claims
            .sub
            .or(claims.client_id)
            .unwrap_or_else(|| "jwt".to_owned());
        Ok(Principal::new(format!("jwt:{name}"), role, allow))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OAuthConfig {
        OAuthConfig {
            issuer: "https://idp.example".into(),
            audience: "https://mcp.example.com/mcp".into(),
            jwks: JwksSource::File("/nonexistent".into()),
            scope_roles: OAuthConfig::default_scope_roles(),
        }
    }

    #[test]
    fn metadata_follows_rfc_9728() {
        let c = config();
        assert_eq!(
            c.metadata_url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        let doc = c.metadata();
        assert_eq!(doc["resource"], "https://mcp.example.com/mcp");
        assert_eq!(doc["authorization_servers"][0], "https://idp.example");
        assert_eq!(doc["bearer_methods_supported"][0], "header");
        let root = OAuthConfig {
            audience: "http://127.0.0.1:7480".into(),
            ..config()
        };
        assert_eq!(
            root.metadata_url(),
            "http://127.0.0.1:7480/.well-known/oauth-protected-resource"
        );
    }

    /// An ES256 key made for the test: its encoding key and JWK under `kid`.
    fn key(kid: &str) -> (jsonwebtoken::EncodingKey, jsonwebtoken::jwk::Jwk) {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let encoding = jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der());
        let mut jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        (encoding, jwk)
    }

    fn token(key: &jsonwebtoken::EncodingKey, kid: &str, aud: &str) -> String {
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({"iss": "https://idp.example", "aud": aud, "sub": "bob",
                            "exp": now + 300, "scope": "mcp:read"});
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    #[tokio::test]
    async fn keys_from_a_url_are_cached_and_refetched_for_an_unknown_kid() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let (k1, jwk1) = key("k1");
        let (k2, jwk2) = key("k2");
        let (k3, _) = key("k3");
        let served = Arc::new(Mutex::new(json!({"keys": [jwk1]})));
        let fetches = Arc::new(AtomicUsize::new(0));
        let app = {
            let (served, fetches) = (Arc::clone(&served), Arc::clone(&fetches));
            axum::Router::new().route(
                "/jwks",
                axum::routing::get(move || {
                    let (served, fetches) = (Arc::clone(&served), Arc::clone(&fetches));
                    async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let body = served.lock().unwrap().to_string();
                        body
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let v = JwtValidator::new(OAuthConfig {
            jwks: JwksSource::parse(&format!("http://{addr}/jwks")),
            ..config()
        });
        let aud = "https://mcp.example.com/mcp";
        for _ in 0..3 {
            assert_eq!(
                v.validate(&token(&k1, "k1", aud)).await.unwrap().role,
                Role::Reader
            );
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "cached");
        // The issuer rotates in k2: the first token signed with it refetches the set.
        served.lock().unwrap()["keys"] = json!([jwk2]);
        assert_eq!(
            v.validate(&token(&k2, "k2", aud)).await.unwrap().name,
            "jwt:bob"
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        // A made-up kid right after is refused without another fetch.
        assert!(matches!(
            v.validate(&token(&k3, "k3", aud)).await,
            Err(OAuthError::InvalidToken(_))
        ));
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "rate-limited refetch");
        // Shared secrets are not accepted, whatever the key set holds.
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &json!({"iss": "https://idp.example", "aud": aud, "exp": 4_000_000_000u64}),
            &jsonwebtoken::EncodingKey::from_secret(b"guessable").unwrap(),
        )
        .unwrap();
        assert!(matches!(
            v.validate(&hs).await,
            Err(OAuthError::InvalidToken(_))
        ));
    }

    #[test]
    fn scopes_become_roles() {
        let v = JwtValidator::new(config());
        let claims = |scope: &str| Claims {
            sub: Some("alice".into()),
            client_id: None,
            scope: Some(scope.into()),
            scp: None,
        };
        let p = v.principal(claims("mcp:read mcp:operator")).unwrap();
        assert_eq!((p.name.as_str(), p.role), ("jwt:alice", Role::Operator));
        let c = v.principal(claims("tools:time__* openid")).unwrap();
        assert_eq!(c.role, Role::Caller);
        assert!(c.may_call_tool("time", "x") && !c.may_call_tool("notes", "x"));
        let reader_and_tools = v.principal(claims("mcp:read tools:time__*")).unwrap();
        assert_eq!(reader_and_tools.role, Role::Caller);
        assert_eq!(
            v.principal(claims("openid profile")),
            Err(OAuthError::InsufficientScope)
        );
        assert_eq!(
            OAuthConfig::parse_scope_roles(&["a=admin".into(), " b = reader".into()]).unwrap(),
            vec![
                ("a".to_owned(), Role::Admin),
                ("b".to_owned(), Role::Reader)
            ]
        );
        assert!(OAuthConfig::parse_scope_roles(&["a=root".into()]).is_err());
        assert!(OAuthConfig::parse_scope_roles(&["a".into()]).is_err());
    }
}
