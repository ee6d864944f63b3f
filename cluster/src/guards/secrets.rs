//! Cluster secrets in the node: the cluster key ring (`--secrets-key-file` or
//! `MCPD_SECRETS_KEY`), sealing a value before it is proposed, and opening values only where
//! an instance starts, to fill the `${secret:NAME}` references of its spec.
//!
//! Values are sealed with XChaCha20-Poly1305 under the ring's current key, with the secret's
//! name as associated data (a sealed value copied under another name does not open). A
//! sealed value names its key by a fingerprint, so after a rotation a ring that still holds
//! the old key opens values not yet resealed. Nothing here logs, formats or returns a value
//! except [`Keyring::open`] and [`resolve`], whose results go straight to an instance.

use std::collections::BTreeMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use mcp_raft::registry::secrets::{self as registry_secrets, SealedSecret, Secrets};
use mcp_raft::registry::spec::{Auth, ServerSpec, Transport};
use sha2::{Digest, Sha256};

/// Bytes of a cluster key.
pub const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

/// Why a secret could not be sealed or opened. Never carries a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The node was started without a cluster key.
    #[error("this node has no secrets key (start it with --secrets-key-file or MCPD_SECRETS_KEY)")]
    NoKey,
    /// The key file or variable does not hold usable keys.
    #[error("invalid secrets key: {0}")]
    BadKey(String),
    /// A sealed value names a key this node does not have.
    #[error("secret {name:?} is sealed with key {key_id}, which this node does not have")]
    UnknownKey {
        /// Secret name.
        name: String,
        /// The key's fingerprint.
        key_id: String,
    },
    /// A sealed value failed authentication (tampered, or sealed under another name).
    #[error("secret {name:?} does not open with key {key_id} (corrupted or tampered)")]
    Corrupt {
        /// Secret name.
        name: String,
        /// The key's fingerprint.
        key_id: String,
    },
    /// A spec refers to a secret the registry does not have (removed meanwhile).
    #[error("secret {0:?} does not exist")]
    Missing(String),
    /// A value that is not UTF-8 text.
    #[error("secret {0:?} is not UTF-8 text")]
    NotText(String),
}

struct ClusterKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The cluster keys of this node: the first seals, all open. `Debug` shows fingerprints.
pub struct Keyring {
    keys: Vec<ClusterKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

/// The fingerprint naming `key` in sealed values (not reversible to the key).
pub fn key_id(key: &[u8; KEY_BYTES]) -> String {
    let digest = Sha256::new()
        .chain_update(b"mcpd secrets key id\0")
        .chain_update(key)
        .finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_key(text: &str, line: usize) -> Result<[u8; KEY_BYTES], SecretError> {
    let bytes = if text.len() == KEY_BYTES * 2 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..KEY_BYTES)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| SecretError::BadKey(format!("line {line} is not hex")))?
    } else {
        STANDARD.decode(text).map_err(|_| {
            SecretError::BadKey(format!(
                "line {line} is neither 64 hex digits nor base64 of {KEY_BYTES} bytes"
            ))
        })?
    };
    bytes.try_into().map_err(|_| {
        SecretError::BadKey(format!("line {line} does not decode to {KEY_BYTES} bytes"))
    })
}

impl Keyring {
    /// Keys one per line (64 hex digits or base64 of 32 bytes; blank lines and `#`
    /// comments skipped); the first one seals.
    pub fn from_text(text: &str) -> Result<Self, SecretError> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = decode_key(line, i + 1)?;
            let id = key_id(&key);
            if keys.iter().any(|k: &ClusterKey| k.id == id) {
                continue;
            }
            keys.push(ClusterKey {
                id,
                cipher: XChaCha20Poly1305::new(Key::from_slice(&key)),
            });
        }
        if keys.is_empty() {
            return Err(SecretError::BadKey("no key given".to_owned()));
        }
        Ok(Self { keys })
    }

    /// The key ring in `path` (see [`Keyring::from_text`]).
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SecretError::BadKey(format!("cannot read {}: {e}", path.display())))?;
        Self::from_text(&text)
    }

    /// A fresh random key as 64 hex digits (for `mcpd secret gen-key`).
    pub fn generate_key_text() -> String {
        let key: [u8; KEY_BYTES] = rand::random();
        key.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The fingerprint of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Seals `value` as secret `name` under the current key.
    pub fn seal(&self, name: &str, value: &[u8]) -> Result<SealedSecret, SecretError> {
        let key = &self.keys[0];
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let ciphertext = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| SecretError::BadKey("encryption failed".to_owned()))?;
        Ok(SealedSecret {
            key_id: key.id.clone(),
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ciphertext),
        })
    }

    /// Opens secret `name`.
    pub fn open(&self, name: &str, sealed: &SealedSecret) -> Result<String, SecretError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| SecretError::UnknownKey {
                name: name.to_owned(),
                key_id: sealed.key_id.clone(),
            })?;
        let corrupt = || SecretError::Corrupt {
            name: name.to_owned(),
            key_id: sealed.key_id.clone(),
        };
        let nonce = STANDARD.decode(&sealed.nonce).map_err(|_| corrupt())?;
        let ciphertext = STANDARD.decode(&sealed.ciphertext).map_err(|_| corrupt())?;
        if nonce.len() != NONCE_BYTES {
            return Err(corrupt());
        }
        let plain = key
            .cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| corrupt())?;
        String::from_utf8(plain).map_err(|_| SecretError::NotText(name.to_owned()))
    }

    /// The secrets sealed under a key other than the current one, resealed under it:
    /// (name, previous, new). Fails on the first one this ring cannot open.
    pub fn reseal_all(
        &self,
        secrets: &Secrets,
    ) -> Result<Vec<(String, SealedSecret, SealedSecret)>, SecretError> {
        secrets
            .iter()
            .filter(|(_, record)| record.sealed.key_id != self.current_id())
            .map(|(name, record)| {
                let value = self.open(name, &record.sealed)?;
                let sealed = self.seal(name, value.as_bytes())?;
                Ok((name.clone(), record.sealed.clone(), sealed))
            })
            .collect()
    }
}

/// `spec` with every `${secret:NAME}` reference replaced by the secret's value, for the
/// node that starts an instance of it. A spec without references comes back unchanged
/// without needing a key.
pub fn resolve(
    spec: &ServerSpec,
    secrets: &Secrets,
    keyring: Option<&Keyring>,
) -> Result<ServerSpec, SecretError> {
    if registry_secrets::references(spec).is_empty() {
        return Ok(spec.clone());
    }
    let keyring = keyring.ok_or(SecretError::NoKey)?;
    let lookup = |name: &str| -> Result<String, SecretError> {
        let record = secrets
            .get(name)
            .ok_or_else(|| SecretError::Missing(name.to_owned()))?;
        keyring.open(name, &record.sealed)
    };
    let fill = |value: &str| registry_secrets::substitute(value, lookup);
    let fill_map =
        |map: &BTreeMap<String, String>| -> Result<BTreeMap<String, String>, SecretError> {
            map.iter().map(|(k, v)| Ok((k.clone(), fill(v)?))).collect()
        };
    let mut out = spec.clone();
    match &mut out.transport {
        Transport::Stdio { env, .. } => *env = fill_map(env)?,
        Transport::Http { headers, auth, .. } => {
            *headers = fill_map(headers)?;
            match auth {
                Some(Auth::ApiKey { key, .. }) => *key = fill(key)?,
                Some(Auth::Bearer { token }) => *token = fill(token)?,
                Some(Auth::Basic { password, .. }) => *password = fill(password)?,
                None => {}
            }
        }
        Transport::Docker(docker) => docker.env = fill_map(&docker.env)?,
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use mcp_raft::registry::spec::parse_json;

    use super::*;

    const KEY_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const KEY_B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    #[test]
    fn sealed_values_open_only_under_their_name_and_key() {
        let ring = Keyring::from_text(KEY_A).unwrap();
        let sealed = ring.seal("db", b"hunter2").unwrap();
        assert_eq!(sealed.key_id, ring.current_id());
        assert!(!sealed.ciphertext.contains("hunter2"));
        assert_eq!(ring.open("db", &sealed).unwrap(), "hunter2");
        assert!(matches!(
            ring.open("other", &sealed),
            Err(SecretError::Corrupt { .. })
        ));
        let other = Keyring::from_text(KEY_B).unwrap();
        assert!(matches!(
            other.open("db", &sealed),
            Err(SecretError::UnknownKey { .. })
        ));
        // Two seals of one value differ (fresh nonce).
        assert_ne!(ring.seal("db", b"hunter2").unwrap(), sealed);
        assert!(!format!("{ring:?}").contains(KEY_A));
    }

    #[test]
    fn a_rotated_ring_opens_old_values_and_reseals_them() {
        let old = Keyring::from_text(KEY_A).unwrap();
        let mut secrets = Secrets::default();
        let sealed = old.seal("db", b"v").unwrap();
        // Through the registry's own apply, as the cluster would.
        let mut registry = mcp_raft::registry::Registry::default();
        registry
            .apply(&mcp_raft::Command::PutSecret {
                name: "db".into(),
                sealed,
            })
            .unwrap();
        secrets.clone_from(registry.secrets());
        let rotated = Keyring::from_text(&format!("{KEY_B}\n# old\n{KEY_A}\n")).unwrap();
        assert_ne!(rotated.current_id(), old.current_id());
        let resealed = rotated.reseal_all(&secrets).unwrap();
        assert_eq!(resealed.len(), 1);
        assert_eq!(resealed[0].2.key_id, rotated.current_id());
        assert_eq!(rotated.open("db", &resealed[0].2).unwrap(), "v");
    }

    #[test]
    fn keys_are_checked() {
        assert!(Keyring::from_text("").is_err());
        assert!(Keyring::from_text("abc").is_err());
        let b64 = STANDARD.encode([7u8; 32]);
        assert!(Keyring::from_text(&b64).is_ok());
        assert_eq!(Keyring::generate_key_text().len(), 64);
    }

    #[test]
    fn references_are_filled_from_the_registry() {
        let ring = Keyring::from_text(KEY_A).unwrap();
        let mut registry = mcp_raft::registry::Registry::default();
        registry
            .apply(&mcp_raft::Command::PutSecret {
                name: "tok".into(),
                sealed: ring.seal("tok", b"s3cr3t").unwrap(),
            })
            .unwrap();
        let spec = parse_json(
            r#"{"name": "a", "command": "x", "env": {"T": "Bearer ${secret:tok}", "P": "plain"}}"#,
        )
        .unwrap();
        let resolved = resolve(&spec, registry.secrets(), Some(&ring)).unwrap();
        let Transport::Stdio { env, .. } = &resolved.transport else {
            panic!("stdio")
        };
        assert_eq!(env["T"], "Bearer s3cr3t");
        assert_eq!(env["P"], "plain");
        assert_eq!(
            resolve(&spec, registry.secrets(), None),
            Err(SecretError::NoKey)
        );
        let plain = parse_json(r#"{"name": "a", "command": "x"}"#).unwrap();
        assert_eq!(resolve(&plain, registry.secrets(), None).unwrap(), plain);
    }
}
