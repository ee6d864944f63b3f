//! The snapshot file. Line one is a JSON [`SnapshotHeader`]; everything after the first
//! newline is the registry as JSON, exactly as the leader's state machine serialized it,
//! and the header's `sha256` covers those bytes. Secrets stay the registry's ciphertext.
//! `format_version` says how to read the rest; a reader refuses a newer one by name.

use std::path::Path;

use mcp_raft::{NodeId, Registry};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BackupError;

/// The word in every snapshot file's header.
pub const MAGIC: &str = "mcpd-snapshot";
/// The snapshot file format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// What a snapshot file says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// Always [`MAGIC`].
    pub format: String,
    /// The file format ([`FORMAT_VERSION`] when written by this build).
    pub format_version: u32,
    /// The mcpd version of the node that read the registry.
    pub mcpd_version: String,
    /// The storage format of that node.
    pub storage_format: u32,
    /// The node that read it (the leader at the time).
    pub node_id: NodeId,
    /// Registry revision.
    pub revision: u64,
    /// Index and term of the last log entry applied to it.
    pub last_log_index: u64,
    /// Term of that entry.
    pub last_log_term: u64,
    /// Number of servers in the registry.
    pub server_count: usize,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
    /// Length of the payload in bytes.
    pub bytes: u64,
    /// SHA-256 of the payload, lowercase hex.
    pub sha256: String,
}

/// A snapshot read back and checked.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    /// Its header.
    pub header: SnapshotHeader,
    /// The registry it holds.
    pub registry: Registry,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where the file lives, for error messages.
fn shown(path: &Path) -> String {
    path.display().to_string()
}

impl SnapshotFile {
    /// Writes `header` and `payload` (the registry JSON) to `path`, through a temporary file
    /// renamed into place, so a crash never leaves half a snapshot under the final name.
    pub fn write(path: &Path, header: &SnapshotHeader, payload: &[u8]) -> Result<(), BackupError> {
        let io = |context: String| move |source| BackupError::Io { context, source };
        let mut bytes = serde_json::to_vec(header).map_err(|e| BackupError::Invalid {
            path: shown(path),
            reason: format!("cannot encode the header: {e}"),
        })?;
        bytes.push(b'\n');
        bytes.extend_from_slice(payload);
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, &bytes).map_err(io(format!("write {}", tmp.display())))?;
        let file = std::fs::File::open(&tmp).map_err(io(format!("open {}", tmp.display())))?;
        file.sync_all()
            .map_err(io(format!("sync {}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(io(format!("rename to {}", path.display())))?;
        Ok(())
    }

    /// Reads and checks the snapshot at `path`: header, format, length and checksum, then
    /// the registry itself.
    pub fn read(path: &Path) -> Result<Self, BackupError> {
        let bytes = std::fs::read(path).map_err(|source| BackupError::Io {
            context: format!("read {}", path.display()),
            source,
        })?;
        Self::parse(path, &bytes)
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Self, BackupError> {
        let invalid = |reason: String| BackupError::Invalid {
            path: shown(path),
            reason,
        };
        let split = bytes
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| invalid("not an mcpd snapshot (no header line)".to_owned()))?;
        let (head, payload) = (&bytes[..split], &bytes[split + 1..]);
        let value: serde_json::Value = serde_json::from_slice(head)
            .map_err(|_| invalid("not an mcpd snapshot (the header is not JSON)".to_owned()))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(MAGIC) {
            return Err(invalid(format!(
                "not an mcpd snapshot (the header has no \"format\": \"{MAGIC}\")"
            )));
        }
        let found = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| invalid("the header has no format_version".to_owned()))?;
        if found > u64::from(FORMAT_VERSION) {
            return Err(BackupError::NewerFormat {
                path: shown(path),
                found: u32::try_from(found).unwrap_or(u32::MAX),
                supported: FORMAT_VERSION,
            });
        }
        let header: SnapshotHeader =
            serde_json::from_value(value).map_err(|e| invalid(format!("malformed header: {e}")))?;
        if payload.len() as u64 != header.bytes {
            return Err(invalid(format!(
                "truncated or padded: the header says {} bytes of registry, the file holds {}",
                header.bytes,
                payload.len()
            )));
        }
        let actual = sha256_hex(payload);
        if actual != header.sha256 {
            return Err(invalid(format!(
                "checksum mismatch: the header says sha256 {}, the registry bytes hash to {actual}",
                header.sha256
            )));
        }
        let registry: Registry = serde_json::from_slice(payload)
            .map_err(|e| invalid(format!("the registry does not decode: {e}")))?;
        if registry.revision() != header.revision {
            return Err(invalid(format!(
                "the header says revision {}, the registry is at {}",
                header.revision,
                registry.revision()
            )));
        }
        Ok(Self { header, registry })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(payload: &[u8], revision: u64) -> SnapshotHeader {
        SnapshotHeader {
            format: MAGIC.to_owned(),
            format_version: FORMAT_VERSION,
            mcpd_version: "test".to_owned(),
            storage_format: 1,
            node_id: 1,
            revision,
            last_log_index: 9,
            last_log_term: 2,
            server_count: 0,
            taken_at_unix_ms: 0,
            bytes: payload.len() as u64,
            sha256: sha256_hex(payload),
        }
    }

    #[test]
    fn a_written_snapshot_reads_back_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let payload = serde_json::to_vec(&Registry::default()).unwrap();
        SnapshotFile::write(&path, &header(&payload, 0), &payload).unwrap();
        let read = SnapshotFile::read(&path).unwrap();
        assert_eq!(read.header.last_log_index, 9);
        assert_eq!(read.registry, Registry::default());

        // One flipped byte in the payload: the checksum says so.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let err = SnapshotFile::read(&path).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");

        // Cut short: the length says so.
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = SnapshotFile::read(&path).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");

        std::fs::write(&path, b"hello\nworld").unwrap();
        let err = SnapshotFile::read(&path).unwrap_err().to_string();
        assert!(err.contains("not an mcpd snapshot"), "{err}");
    }

    #[test]
    fn a_newer_format_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snap");
        let payload = b"{}".to_vec();
        let mut h = header(&payload, 0);
        h.format_version = FORMAT_VERSION + 1;
        SnapshotFile::write(&path, &h, &payload).unwrap();
        let err = SnapshotFile::read(&path).unwrap_err();
        assert!(
            matches!(err, BackupError::NewerFormat { found, .. } if found == FORMAT_VERSION + 1),
            "{err}"
        );
    }
}
