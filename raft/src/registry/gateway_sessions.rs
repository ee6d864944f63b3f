//! What the MCP gateways of every node share about handshake-era sessions: the keys that
//! seal session ids (so any node can open an id another node handed out) and the ids ended
//! before their expiry (so `DELETE /mcp` on one node ends the session on all of them).
//!
//! Both change only through commands that carry their own time (`at_ms`, the proposer's
//! clock), and pruning compares against that time, never against the clock of the node
//! applying: every node prunes the same entries at the same log index.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::spec::REDACTED;
use super::CommandError;

/// Length of a session key in bytes (XChaCha20-Poly1305 takes 256-bit keys).
pub const SESSION_KEY_BYTES: usize = 32;

/// Longest session serial an `EndSession` may carry: it bounds the replicated set even
/// when a caller sends nonsense (a serial is 32 hex digits).
pub const MAX_SESSION_SERIAL: usize = 64;

/// The secret bytes of a session key. `Debug` never shows them; only the gateway reads
/// them, through [`SecretKey::expose`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretKey([u8; SESSION_KEY_BYTES]);

impl SecretKey {
    /// Wraps key bytes.
    pub fn new(bytes: [u8; SESSION_KEY_BYTES]) -> Self {
        Self(bytes)
    }

    /// The key bytes, for sealing and opening session ids.
    pub fn expose(&self) -> &[u8; SESSION_KEY_BYTES] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// One session key and its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionKey {
    /// The secret.
    pub key: SecretKey,
    /// When it was proposed (ms since the Unix epoch, the proposer's clock).
    pub created_at_ms: u64,
    /// When a newer key replaced it for new sessions; `None` for the current key.
    pub retired_at_ms: Option<u64>,
}

/// The gateway session state of the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewaySessions {
    /// Key id -> key. The highest id is the current key; older ones stay until the
    /// sessions they sealed have expired.
    keys: BTreeMap<u32, SessionKey>,
    /// Serial of a session ended by `DELETE /mcp` -> its expiry (ms since the epoch).
    ended: BTreeMap<String, u64>,
}

impl GatewaySessions {
    /// The key new sessions are sealed with, and its id.
    pub fn current_key(&self) -> Option<(u32, &SessionKey)> {
        self.keys.iter().next_back().map(|(id, key)| (*id, key))
    }

    /// The key of id `id`, current or retired.
    pub fn key(&self, id: u32) -> Option<&SessionKey> {
        self.keys.get(&id)
    }

    /// Number of keys kept (the current one and those still needed by live sessions).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// True if the session of serial `serial` was ended.
    pub fn is_ended(&self, serial: &str) -> bool {
        self.ended.contains_key(serial)
    }

    /// Number of ended sessions remembered (until their expiry).
    pub fn ended_count(&self) -> usize {
        self.ended.len()
    }

    /// Makes `key` the current key under `id`, which must follow the current id (1 for the
    /// first key): two rotations racing cannot both win. Retired keys older than
    /// `retain_ms` at `at_ms` go: every session they sealed has expired by then.
    pub(super) fn put_key(
        &mut self,
        id: u32,
        key: &SecretKey,
        at_ms: u64,
        retain_ms: u64,
    ) -> Result<(), CommandError> {
        let current = self.current_key().map_or(0, |(id, _)| id);
        if current.checked_add(1) != Some(id) {
            return Err(CommandError::SessionKeyConflict { id, current });
        }
        if let Some(previous) = self.keys.get_mut(&current) {
            previous.retired_at_ms = Some(at_ms);
        }
        self.keys.retain(|_, k| {
            k.retired_at_ms
                .is_none_or(|retired| retired.saturating_add(retain_ms) > at_ms)
        });
        self.keys.insert(
            id,
            SessionKey {
                key: key.clone(),
                created_at_ms: at_ms,
                retired_at_ms: None,
            },
        );
        Ok(())
    }

    /// Remembers that session `serial`, valid until `expires_at_ms`, was ended, and forgets
    /// ended sessions that expired by `at_ms` (their ids are refused anyway).
    pub(super) fn end(
        &mut self,
        serial: &str,
        expires_at_ms: u64,
        at_ms: u64,
    ) -> Result<(), CommandError> {
        if serial.is_empty() || serial.len() > MAX_SESSION_SERIAL {
            return Err(CommandError::InvalidSession);
        }
        self.ended.retain(|_, expires| *expires > at_ms);
        if expires_at_ms > at_ms {
            self.ended.insert(serial.to_owned(), expires_at_ms);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    fn key(byte: u8) -> SecretKey {
        SecretKey::new([byte; SESSION_KEY_BYTES])
    }

    #[test]
    fn rotation_keeps_old_keys_until_their_sessions_expired() {
        let mut s = GatewaySessions::default();
        s.put_key(1, &key(1), 0, 24 * HOUR).unwrap();
        s.put_key(2, &key(2), HOUR, 24 * HOUR).unwrap();
        assert_eq!(s.current_key().map(|(id, _)| id), Some(2));
        assert_eq!(s.key(1).and_then(|k| k.retired_at_ms), Some(HOUR));
        // Key 1 sealed sessions until HOUR; they all expired by HOUR + 24 h.
        s.put_key(3, &key(3), 25 * HOUR - 1, 24 * HOUR).unwrap();
        assert!(s.key(1).is_some());
        s.put_key(4, &key(4), 25 * HOUR, 24 * HOUR).unwrap();
        assert!(s.key(1).is_none());
        assert_eq!(s.key_count(), 3);
    }

    #[test]
    fn a_key_id_that_does_not_follow_the_current_one_is_refused() {
        let mut s = GatewaySessions::default();
        s.put_key(1, &key(1), 0, HOUR).unwrap();
        let before = s.clone();
        assert_eq!(
            s.put_key(1, &key(9), 1, HOUR),
            Err(CommandError::SessionKeyConflict { id: 1, current: 1 })
        );
        assert!(s.put_key(3, &key(9), 1, HOUR).is_err());
        assert_eq!(s, before);
    }

    #[test]
    fn ended_sessions_are_forgotten_once_expired() {
        let mut s = GatewaySessions::default();
        s.end("a", 10, 0).unwrap();
        s.end("b", 20, 5).unwrap();
        assert!(s.is_ended("a") && s.is_ended("b"));
        // Pruned by the time the next command carries, not by the applying node's clock.
        s.end("c", 30, 10).unwrap();
        assert!(!s.is_ended("a"));
        assert_eq!(s.ended_count(), 2);
        // An already expired session needs no entry.
        s.end("d", 15, 15).unwrap();
        assert!(!s.is_ended("d"));
        assert_eq!(s.end("", 99, 0), Err(CommandError::InvalidSession));
    }

    #[test]
    fn debug_never_shows_a_key() {
        let mut s = GatewaySessions::default();
        s.put_key(1, &key(0xab), 0, HOUR).unwrap();
        let shown = format!("{s:?}");
        assert!(shown.contains(REDACTED), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }
}
