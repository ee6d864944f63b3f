//! Which peer the router tries first: a peer whose forwarded call just failed in transport
//! (refused, reset, or silent until the deadline: a node that died or is paused) goes after
//! the others for a while, so that the calls after it do not wait on it too. Its next
//! answer, when it is tried, clears the mark. A peer's own error answer (its instance timed
//! out, say) says nothing about the peer and leaves no mark.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mcp_raft::NodeId;

/// How long a peer that failed in transport is tried after the others.
const SHUNNED_FOR: Duration = Duration::from_secs(10);

/// The peers whose last forwarded call failed in transport, and when.
#[derive(Debug, Default)]
pub struct PeerHealth {
    failed: Mutex<HashMap<NodeId, Instant>>,
}

impl PeerHealth {
    /// Marks `peer`: a forwarded call to it failed in transport.
    pub fn failed(&self, peer: NodeId) {
        self.failed_at(peer, Instant::now());
    }

    fn failed_at(&self, peer: NodeId, at: Instant) {
        self.lock().insert(peer, at);
    }

    /// Clears `peer`'s mark: it answered.
    pub fn answered(&self, peer: NodeId) {
        let mut failed = self.lock();
        if !failed.is_empty() {
            failed.remove(&peer);
        }
    }

    /// Puts the peers that failed within [`SHUNNED_FOR`] last (the most recent failure
    /// last), keeping the order of the others.
    pub fn order<T>(&self, peers: &mut [(NodeId, T)]) {
        let mut failed = self.lock();
        if failed.is_empty() {
            return;
        }
        let now = Instant::now();
        failed.retain(|_, at| now.duration_since(*at) < SHUNNED_FOR);
        peers.sort_by_key(|(id, _)| failed.get(id).copied());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Instant>> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(peers: &[(NodeId, ())]) -> Vec<NodeId> {
        peers.iter().map(|(id, _)| *id).collect()
    }

    #[test]
    fn a_peer_that_failed_goes_last_until_it_answers() {
        let health = PeerHealth::default();
        let mut peers = vec![(2, ()), (3, ()), (4, ())];
        health.order(&mut peers);
        assert_eq!(ids(&peers), [2, 3, 4], "no failure: the order stays");

        let start = Instant::now();
        health.failed_at(2, start);
        health.order(&mut peers);
        assert_eq!(ids(&peers), [3, 4, 2]);

        health.failed_at(3, start + Duration::from_millis(1));
        health.order(&mut peers);
        assert_eq!(ids(&peers), [4, 2, 3], "the latest failure goes last");

        health.answered(2);
        health.answered(3);
        let mut peers = vec![(2, ()), (3, ()), (4, ())];
        health.order(&mut peers);
        assert_eq!(ids(&peers), [2, 3, 4]);
    }

    #[test]
    fn a_mark_expires() {
        let health = PeerHealth::default();
        let long_ago = Instant::now().checked_sub(SHUNNED_FOR + Duration::from_secs(1));
        let Some(long_ago) = long_ago else {
            return; // the clock started less than that ago: nothing can be that old
        };
        health.failed_at(2, long_ago);
        let mut peers = vec![(2, ()), (3, ())];
        health.order(&mut peers);
        assert_eq!(ids(&peers), [2, 3]);
    }
}
