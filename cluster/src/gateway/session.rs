//! Handshake-era sessions: ids handed out by `initialize`, and the version each
//! negotiated. Kept in memory only: a session is tied to the node that created it, and a
//! client whose node restarted gets 404 and initializes again, as the transport spec asks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most sessions one node keeps; beyond it the least recently used is dropped.
const MAX_SESSIONS: usize = 10_000;
/// A session unused for this long is dropped when room is needed.
const IDLE_LIMIT: Duration = Duration::from_secs(3600);

struct Entry {
    version: String,
    last_used: Instant,
}

/// The live sessions of one gateway.
#[derive(Default)]
pub struct Sessions {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic elsewhere cannot leave the map half-written: every change is one insert
        // or remove. So a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session at `version` and returns its id (128 random bits, hex).
    pub fn open(&self, version: &str) -> String {
        let id = format!("{:032x}", rand::random::<u128>());
        let mut entries = self.lock();
        if entries.len() >= MAX_SESSIONS {
            let now = Instant::now();
            entries.retain(|_, e| now.duration_since(e.last_used) < IDLE_LIMIT);
            if entries.len() >= MAX_SESSIONS {
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(id, _)| id.clone())
                {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(
            id.clone(),
            Entry {
                version: version.to_owned(),
                last_used: Instant::now(),
            },
        );
        id
    }

    /// The version of session `id`, marking it used; `None` if unknown.
    pub fn touch(&self, id: &str) -> Option<String> {
        let mut entries = self.lock();
        let entry = entries.get_mut(id)?;
        entry.last_used = Instant::now();
        Some(entry.version.clone())
    }

    /// Ends session `id`; false if it was unknown.
    pub fn close(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle() {
        let s = Sessions::default();
        let id = s.open("2025-06-18");
        assert_eq!(id.len(), 32);
        assert_eq!(s.touch(&id).as_deref(), Some("2025-06-18"));
        assert_ne!(s.open("2025-06-18"), id);
        assert!(s.close(&id));
        assert!(s.touch(&id).is_none());
        assert!(!s.close(&id));
    }
}
