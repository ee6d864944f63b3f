//! Cluster-wide concurrency quotas (`max_concurrent_calls`): each live member may have its
//! share of the quota in flight, the shares summing to exactly the quota (the remainder
//! goes to the lowest-ranked members). A call over the share is refused at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// This node's share of `quota` when it ranks `rank` (0-based) among `members` live members.
pub fn share_of(quota: u32, members: usize, rank: usize) -> u32 {
    let members = u32::try_from(members.max(1)).unwrap_or(u32::MAX);
    let rank = u32::try_from(rank).unwrap_or(u32::MAX);
    quota / members + u32::from(rank < quota % members)
}

/// Calls in flight per server on this node.
#[derive(Debug, Default)]
pub struct Quotas {
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
}

/// One admitted call; its slot is freed when dropped.
#[derive(Debug)]
pub struct Permit {
    server: String,
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.server) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.server);
            }
        }
    }
}

impl Quotas {
    /// A slot for a call of `server` if fewer than `share` are in flight here.
    pub fn try_acquire(&self, server: &str, share: u32) -> Option<Permit> {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(server.to_owned()).or_insert(0);
        if *n >= share {
            return None;
        }
        *n += 1;
        Some(Permit {
            server: server.to_owned(),
            in_flight: Arc::clone(&self.in_flight),
        })
    }

    /// Calls of `server` in flight here.
    pub fn in_flight(&self, server: &str) -> u32 {
        let map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        map.get(server).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_sum_to_the_quota() {
        for quota in [1, 2, 5, 7, 100] {
            for members in 1..6 {
                let total: u32 = (0..members).map(|r| share_of(quota, members, r)).sum();
                assert_eq!(total, quota, "{quota} over {members}");
            }
        }
        assert_eq!(share_of(5, 3, 0), 2);
        assert_eq!(share_of(5, 3, 2), 1);
    }

    #[test]
    fn permits_free_their_slot() {
        let quotas = Quotas::default();
        let a = quotas.try_acquire("s", 2).unwrap();
        let _b = quotas.try_acquire("s", 2).unwrap();
        assert!(quotas.try_acquire("s", 2).is_none());
        drop(a);
        assert_eq!(quotas.in_flight("s"), 1);
        assert!(quotas.try_acquire("s", 2).is_some());
    }
}
