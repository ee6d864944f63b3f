//! Handshake-era sessions that any node can serve.
//!
//! A session id is not a key into one node's memory: it carries what the gateway needs to
//! serve the session (its serial, the negotiated protocol version, a hash of the credential
//! it was opened with, its expiry), sealed with XChaCha20-Poly1305 under a key every node
//! has from the Raft registry ([`GatewaySessions`]). Any node opens any id, so a client
//! behind a round-robin balancer, or whose node died, keeps its session.
//!
//! Layout, then base64url without padding (a valid header value):
//! `format (1 byte) | key id (4, big-endian) | nonce (24, random) | ciphertext + tag`.
//! The first five bytes are the associated data, so neither the format nor the key id can
//! be changed without the tag failing. The client's capabilities are not kept: the gateway
//! sends nothing unasked, so it never needs them.
//!
//! Ending a session (`DELETE /mcp`) puts its serial in the registry's replicated set of
//! ended sessions, forgotten at the session's expiry; until then every node refuses it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use mcp_raft::registry::gateway_sessions::SESSION_KEY_BYTES;
use mcp_raft::registry::{GatewaySessions, SecretKey};
use mcp_raft::Command;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How long a session lasts from its `initialize`, used or not, unless configured.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The longest lifetime a gateway may give its sessions. Retired keys are kept this long,
/// whatever lifetime the rotating node has, so no node's sessions outlive their key.
pub const MAX_SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Version of the sealed layout, the first byte of every id.
const FORMAT: u8 = 1;
/// Format byte and key id: the associated data.
const HEADER_LEN: usize = 5;
const NONCE_LEN: usize = 24;
/// Poly1305 tag.
const TAG_LEN: usize = 16;
/// Separates the credential hash from any other use of SHA-256 on the same token.
const PRINCIPAL_DOMAIN: &[u8] = b"mcpd gateway session principal\0";

/// Why a session id was not accepted (or could not be made). Clients are told only
/// "unknown session"; the reason goes to the node's debug log and names no secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    /// No key has reached this node yet (the cluster has had no leader so far).
    #[error("the cluster has no session key yet (no leader elected so far?); retry shortly")]
    NoKey,
    /// Not base64url, too short, or of an unknown format.
    #[error("malformed session id")]
    Malformed,
    /// Sealed with a key this node does not have (pruned, or never existed).
    #[error("session id sealed with unknown key {0}")]
    UnknownKey(u32),
    /// The tag did not verify: the id was altered or forged.
    #[error("session id does not open with its key")]
    Forged,
    /// Past its expiry.
    #[error("session expired")]
    Expired,
    /// Presented with a credential other than the one it was opened with.
    #[error("session presented with another credential")]
    OtherCredential,
    /// Ended by `DELETE /mcp`, on this node or another.
    #[error("session was ended")]
    Ended,
    /// The cipher refused to seal (it does not, for payloads this small).
    #[error("cannot seal the session id")]
    Seal,
}

/// What is sealed inside an id. Short field names keep ids short: they travel in a header
/// on every request.
#[derive(Serialize, Deserialize)]
struct Claims {
    /// Random serial: what `DELETE` records, so the replicated set holds nothing sealed.
    #[serde(rename = "s")]
    serial: String,
    /// The negotiated protocol version.
    #[serde(rename = "v")]
    version: String,
    /// Hash of the credential the session was opened with; absent on an open endpoint.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    principal: Option<String>,
    /// Expiry, ms since the Unix epoch.
    #[serde(rename = "e")]
    expires_at_ms: u64,
}

/// A session whose id opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSession {
    /// Its serial.
    pub serial: String,
    /// The protocol version negotiated at `initialize`.
    pub version: String,
    /// When it expires, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// Now, in ms since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who a session belongs to: a hash of the credential presented when it was opened
/// (`None` on an endpoint that takes none). Only a hash is sealed, and only its first 128
/// bits: enough to tell credentials apart, nothing to recover a token from.
pub fn principal(credential: Option<&str>) -> Option<String> {
    credential.map(|c| {
        let digest = Sha256::new()
            .chain_update(PRINCIPAL_DOMAIN)
            .chain_update(c.as_bytes())
            .finalize();
        hex(&digest[..16])
    })
}

fn cipher(key: &SecretKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(Key::from_slice(key.expose()))
}

/// Seals a new session at `version` for `principal`, valid for `lifetime` from `now_ms`,
/// with the registry's current key.
pub fn seal(
    sessions: &GatewaySessions,
    version: &str,
    principal: Option<String>,
    lifetime: Duration,
    now_ms: u64,
) -> Result<String, SessionError> {
    let (key_id, key) = sessions.current_key().ok_or(SessionError::NoKey)?;
    let claims = Claims {
        serial: format!("{:032x}", rand::random::<u128>()),
        version: version.to_owned(),
        principal,
        expires_at_ms: now_ms
            .saturating_add(u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX)),
    };
    let plaintext = serde_json::to_vec(&claims).map_err(|_| SessionError::Seal)?;
    let mut header = [0u8; HEADER_LEN];
    header[0] = FORMAT;
    header[1..].copy_from_slice(&key_id.to_be_bytes());
    // 192 random bits: with XChaCha a random nonce never repeats in practice, whatever
    // the number of nodes sealing under one key.
    let nonce: [u8; NONCE_LEN] = rand::random();
    let sealed = cipher(&key.key)
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plaintext,
                aad: &header,
            },
        )
        .map_err(|_| SessionError::Seal)?;
    let mut id = Vec::with_capacity(HEADER_LEN + NONCE_LEN + sealed.len());
    id.extend_from_slice(&header);
    id.extend_from_slice(&nonce);
    id.extend_from_slice(&sealed);
    Ok(URL_SAFE_NO_PAD.encode(id))
}

/// Opens session id `id` presented with `principal`, at `now_ms`: it must have been sealed
/// by a key the registry still has, be unaltered, unexpired, not ended, and belong to
/// the same principal.
pub fn open(
    sessions: &GatewaySessions,
    id: &str,
    principal: Option<&str>,
    now_ms: u64,
) -> Result<OpenSession, SessionError> {
    let raw = URL_SAFE_NO_PAD
        .decode(id)
        .map_err(|_| SessionError::Malformed)?;
    if raw.len() < HEADER_LEN + NONCE_LEN + TAG_LEN || raw[0] != FORMAT {
        return Err(SessionError::Malformed);
    }
    let (header, rest) = raw.split_at(HEADER_LEN);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let mut key_id = [0u8; 4];
    key_id.copy_from_slice(&header[1..]);
    let key_id = u32::from_be_bytes(key_id);
    let key = sessions
        .key(key_id)
        .ok_or(SessionError::UnknownKey(key_id))?;
    let plaintext = cipher(&key.key)
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: header,
            },
        )
        .map_err(|_| SessionError::Forged)?;
    let claims: Claims = serde_json::from_slice(&plaintext).map_err(|_| SessionError::Forged)?;
    if claims.expires_at_ms <= now_ms {
        return Err(SessionError::Expired);
    }
    let same_principal = match (claims.principal.as_deref(), principal) {
        (None, None) => true,
        (Some(sealed), Some(presented)) => {
            crate::auth::constant_time_eq(sealed.as_bytes(), presented.as_bytes())
        }
        _ => false,
    };
    if !same_principal {
        return Err(SessionError::OtherCredential);
    }
    if sessions.is_ended(&claims.serial) {
        return Err(SessionError::Ended);
    }
    Ok(OpenSession {
        serial: claims.serial,
        version: claims.version,
        expires_at_ms: claims.expires_at_ms,
    })
}

/// The command that makes a fresh random key current, after the registry's current one,
/// and the new key's id. Retired keys are kept [`MAX_SESSION_LIFETIME`].
pub fn next_key_command(sessions: &GatewaySessions, now_ms: u64) -> (u32, Command) {
    let id = sessions
        .current_key()
        .map_or(1, |(id, _)| id.saturating_add(1));
    // `rand::random` draws from the thread's CSPRNG, seeded from the OS.
    let key = SecretKey::new(rand::random::<[u8; SESSION_KEY_BYTES]>());
    let command = Command::PutSessionKey {
        id,
        key,
        at_ms: now_ms,
        retain_ms: u64::try_from(MAX_SESSION_LIFETIME.as_millis()).unwrap_or(u64::MAX),
    };
    (id, command)
}

#[cfg(test)]
mod tests {
    use mcp_raft::Registry;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    /// A registry with `keys` keys made by [`next_key_command`], at time 0.
    fn registry(keys: usize) -> Registry {
        let mut r = Registry::default();
        for _ in 0..keys {
            let (_, command) = next_key_command(r.gateway_sessions(), 0);
            r.apply(&command).unwrap();
        }
        r
    }

    #[test]
    fn a_sealed_id_opens_with_its_version_until_it_expires() {
        let r = registry(1);
        let s = r.gateway_sessions();
        let id = seal(s, "2025-06-18", None, HOUR, 1_000).unwrap();
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let open = open(s, &id, None, 2_000).unwrap();
        assert_eq!(open.version, "2025-06-18");
        assert_eq!(open.expires_at_ms, 1_000 + 3_600_000);
        assert_eq!(
            super::open(s, &id, None, 1_000 + 3_600_000),
            Err(SessionError::Expired)
        );
        // Two sessions never share an id or a serial.
        let other = seal(s, "2025-06-18", None, HOUR, 1_000).unwrap();
        assert_ne!(other, id);
        assert_ne!(super::open(s, &other, None, 0).unwrap().serial, open.serial);
    }

    #[test]
    fn any_altered_character_is_refused() {
        let r = registry(1);
        let s = r.gateway_sessions();
        let id = seal(s, "2025-06-18", None, HOUR, 0).unwrap();
        for i in 0..id.len() {
            let mut altered = id.clone().into_bytes();
            altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(altered).unwrap();
            assert!(open(s, &altered, None, 0).is_err(), "position {i} accepted");
        }
        assert_eq!(open(s, "not an id", None, 0), Err(SessionError::Malformed));
        assert_eq!(open(s, "", None, 0), Err(SessionError::Malformed));
    }

    #[test]
    fn a_session_belongs_to_the_credential_it_was_opened_with() {
        let r = registry(1);
        let s = r.gateway_sessions();
        let alice = principal(Some("alice-token"));
        let id = seal(s, "2025-06-18", alice.clone(), HOUR, 0).unwrap();
        assert!(open(s, &id, alice.as_deref(), 0).is_ok());
        for other in [principal(Some("bob-token")), None] {
            assert_eq!(
                open(s, &id, other.as_deref(), 0),
                Err(SessionError::OtherCredential)
            );
        }
        let anonymous = seal(s, "2025-06-18", None, HOUR, 0).unwrap();
        assert_eq!(
            open(s, &anonymous, alice.as_deref(), 0),
            Err(SessionError::OtherCredential)
        );
    }

    #[test]
    fn rotation_keeps_sessions_of_older_keys_and_foreign_keys_do_not_open() {
        let mut r = registry(1);
        let id = seal(r.gateway_sessions(), "2025-06-18", None, HOUR, 0).unwrap();
        let (key_id, rotate) = next_key_command(r.gateway_sessions(), 10);
        assert_eq!(key_id, 2);
        r.apply(&rotate).unwrap();
        assert!(open(r.gateway_sessions(), &id, None, 20).is_ok());
        let newer = seal(r.gateway_sessions(), "2025-06-18", None, HOUR, 20).unwrap();
        assert_ne!(newer[..8], id[..8], "the key id is part of the id");
        // Another cluster's key 1 is not this one.
        let foreign = registry(1);
        assert_eq!(
            open(foreign.gateway_sessions(), &id, None, 20),
            Err(SessionError::Forged)
        );
        assert_eq!(
            open(foreign.gateway_sessions(), &newer, None, 20),
            Err(SessionError::UnknownKey(2))
        );
        assert_eq!(
            seal(&GatewaySessions::default(), "2025-06-18", None, HOUR, 0),
            Err(SessionError::NoKey)
        );
    }

    #[test]
    fn an_ended_session_is_refused_and_its_entry_holds_only_the_serial() {
        let mut r = registry(1);
        let id = seal(r.gateway_sessions(), "2025-06-18", None, HOUR, 0).unwrap();
        let session = open(r.gateway_sessions(), &id, None, 0).unwrap();
        r.apply(&Command::EndSession {
            session: session.serial.clone(),
            expires_at_ms: session.expires_at_ms,
            at_ms: 5,
        })
        .unwrap();
        assert_eq!(
            open(r.gateway_sessions(), &id, None, 6),
            Err(SessionError::Ended)
        );
        let snapshot = serde_json::to_string(&r).unwrap();
        assert!(snapshot.contains(&session.serial) && !snapshot.contains(&id));
    }
}
