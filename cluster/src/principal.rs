//! Who made a request: the [`Principal`] that [`crate::auth`] resolves from a credential
//! and puts into the request's extensions, for handlers, the gateway, audit lines and
//! rate limits to read. Also the making and hashing of API tokens.
//!
//! Tokens are 256-bit random strings; the registry holds only their SHA-256 (see
//! `mcp_raft::registry::principals` for why a plain hash suffices).

use base64::Engine;
use mcp_raft::registry::principals::AllowRules;
pub use mcp_raft::registry::Role;
use sha2::{Digest, Sha256};

/// Prefix of every API token, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "mcpd_";
/// Name of the principal of the bootstrap admin token (`--admin-token`).
pub const BOOTSTRAP_ADMIN: &str = "admin";
/// Name of the principal of every request on a node with no authentication configured.
pub const ANONYMOUS: &str = "anonymous";

/// The identity a request was let in with.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (`admin` for the bootstrap admin token, the `sub` of a JWT).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// For a caller: the tools it may call.
    pub allow: AllowRules,
    /// True for the cluster's own credential (the bootstrap admin token today, a cluster
    /// client certificate with mutual TLS): only it may send Raft RPCs.
    pub peer: bool,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("allow", &self.allow.globs())
            .field("peer", &self.peer)
            .finish()
    }
}

impl Principal {
    /// The holder of the bootstrap admin token: everything, Raft included.
    pub fn bootstrap_admin() -> Self {
        Self {
            name: BOOTSTRAP_ADMIN.to_owned(),
            role: Role::Admin,
            allow: AllowRules::default(),
            peer: true,
        }
    }

    /// Everyone, on a node without authentication: everything is allowed.
    pub fn anonymous() -> Self {
        Self {
            name: ANONYMOUS.to_owned(),
            ..Self::bootstrap_admin()
        }
    }

    /// Who a refused request came from when its credential was not valid: a reader
    /// named `-` (only audit lines show it).
    pub fn unauthenticated() -> Self {
        Self::new("-", Role::Reader, AllowRules::default())
    }

    /// A principal named `name` with `role` and, for a caller, `allow`.
    pub fn new(name: impl Into<String>, role: Role, allow: AllowRules) -> Self {
        Self {
            name: name.into(),
            role,
            allow,
            peer: false,
        }
    }

    /// True if the principal may call tool `tool` of server `server`.
    pub fn may_call_tool(&self, server: &str, tool: &str) -> bool {
        match self.role {
            Role::Admin | Role::Operator => true,
            Role::Caller => self.allow.allows_tool(server, tool),
            Role::Reader => false,
        }
    }

    /// True if the principal may send requests other than tool calls to `server`
    /// (`tools/list`, resources, prompts): some tool of it must be allowed.
    pub fn may_use_server(&self, server: &str) -> bool {
        match self.role {
            Role::Admin | Role::Operator => true,
            Role::Caller => self.allow.allows_server(server),
            Role::Reader => false,
        }
    }

    /// The principal a tonic request was let in with, if the auth layer put one there.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&Principal> {
        request.extensions().get::<Principal>()
    }
}

/// A new API token: the prefix and 32 random bytes, URL-safe base64.
pub fn new_token() -> String {
    // `rand::random` draws from the thread's CSPRNG, seeded from the OS.
    let bytes: [u8; 32] = rand::random();
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The hex SHA-256 of `token`, as the registry stores it.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed_to_hex() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 43);
        let hash = hash_token(&a);
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(hash, hash_token(&a));
        assert_ne!(hash, hash_token(&b));
        // The SHA-256 of "abc", a published test vector.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn what_each_role_may_call() {
        let allow = AllowRules::new(vec!["time__*".into()]).unwrap();
        let caller = Principal::new("c", Role::Caller, allow.clone());
        assert!(caller.may_call_tool("time", "get_current_time"));
        assert!(!caller.may_call_tool("notes", "add"));
        assert!(caller.may_use_server("time") && !caller.may_use_server("notes"));
        let reader = Principal::new("r", Role::Reader, allow);
        assert!(!reader.may_call_tool("time", "x") && !reader.may_use_server("time"));
        let operator = Principal::new("o", Role::Operator, AllowRules::default());
        assert!(operator.may_call_tool("sh", "run") && !operator.peer);
        assert!(Principal::bootstrap_admin().peer);
    }
}
