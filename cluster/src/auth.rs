//! The admin-token guard.
//!
//! When a node has an admin token, every write RPC and every Raft RPC must carry
//! `authorization: Bearer <token>`. Reads stay open. The comparison runs in constant time
//! so the token cannot be guessed byte by byte from response timing.

use tonic::metadata::MetadataMap;

use crate::error::ClusterError;

/// Checks requests against the configured admin token.
#[derive(Clone, Default)]
pub struct AdminGuard {
    token: Option<String>,
}

impl std::fmt::Debug for AdminGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token itself.
        f.debug_struct("AdminGuard")
            .field("enabled", &self.token.is_some())
            .finish()
    }
}

impl AdminGuard {
    /// A guard for `token`; `None` lets every request through.
    pub fn new(token: Option<String>) -> Self {
        Self {
            token: token.filter(|t| !t.is_empty()),
        }
    }

    /// The configured token, for forwarding a request on behalf of a caller.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Allows the request if no token is configured or it carries the right one.
    pub fn check(&self, metadata: &MetadataMap) -> Result<(), ClusterError> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let presented = metadata
            .get(mcp_proto::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(ClusterError::Unauthorized)
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn with_auth(value: &'static str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert(mcp_proto::AUTHORIZATION, MetadataValue::from_static(value));
        m
    }

    #[test]
    fn open_without_token() {
        assert!(AdminGuard::new(None).check(&MetadataMap::new()).is_ok());
    }

    #[test]
    fn requires_exact_token() {
        let guard = AdminGuard::new(Some("s3cret".into()));
        assert!(guard.check(&MetadataMap::new()).is_err());
        assert!(guard.check(&with_auth("Bearer s3cre")).is_err());
        assert!(guard.check(&with_auth("s3cret")).is_err());
        assert!(guard.check(&with_auth("Bearer s3cret")).is_ok());
    }

    #[test]
    fn debug_hides_token() {
        let guard = AdminGuard::new(Some("s3cret".into()));
        assert!(!format!("{guard:?}").contains("s3cret"));
    }
}
