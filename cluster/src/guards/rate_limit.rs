//! Cluster-wide rate limits, enforced as shares: with `n` live members, each node runs a
//! token bucket of `per_second / n` tokens a second holding at most `burst / n`, so the
//! cluster admits at most the limit whatever the spread of calls over nodes (see
//! docs/security.md, "Guards", for why shares and not a shared counter). Buckets rescale
//! when the share changes (members join, leave or drain), keeping their fill fraction.
//!
//! A refused call gets a typed error with the time until a token is due: nothing waits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mcp_raft::registry::spec::RateLimit;

/// What a limit applies to. Principal keys carry the principal's (or role's) name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// Every call of a server.
    Server(String),
    /// Calls of one tool of a server.
    Tool(String, String),
    /// Every call by one principal (a token's name).
    Principal(String),
    /// Every call by the principals of one role, each counted on its own.
    Role(String, String),
}

impl LimitKey {
    /// How the key reads in an error.
    pub fn describe(&self) -> String {
        match self {
            LimitKey::Server(s) => format!("server {s:?}"),
            LimitKey::Tool(s, t) => format!("tool {t:?} of server {s:?}"),
            LimitKey::Principal(p) => format!("principal {p:?}"),
            LimitKey::Role(role, p) => format!("principal {p:?} (role {role})"),
        }
    }
}

/// One node's bucket for one key.
#[derive(Debug, Clone)]
struct Bucket {
    limit: RateLimit,
    share: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn rate(&self) -> f64 {
        f64::from(self.limit.per_second) * self.share
    }

    fn capacity(&self) -> f64 {
        // At least one whole call, or a small share could never admit anything.
        (f64::from(self.limit.burst) * self.share).max(1.0)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate()).min(self.capacity());
        self.at = now;
    }

    /// Time until one token is due.
    fn wait(&self) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        let rate = self.rate();
        if rate <= 0.0 {
            return Duration::from_secs(1);
        }
        Duration::from_secs_f64(missing / rate).max(Duration::from_millis(1))
    }
}

/// A refusal: which limit, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// The limit that refused.
    pub key: LimitKey,
    /// The limit, cluster-wide.
    pub limit: RateLimit,
    /// When a call may pass on this node again.
    pub retry_after: Duration,
}

/// The buckets of one node.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<LimitKey, Bucket>>,
}

impl RateLimiter {
    /// Takes one token from every bucket of `limits` (each at `share` of its limit), or
    /// none if one is empty: then the first empty one is reported.
    pub fn admit(
        &self,
        limits: &[(LimitKey, RateLimit)],
        share: f64,
        now: Instant,
    ) -> Result<(), Limited> {
        if limits.is_empty() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        for (key, limit) in limits {
            let bucket = buckets.entry(key.clone()).or_insert_with(|| {
                // A new bucket starts full.
                let mut fresh = Bucket {
                    limit: *limit,
                    share,
                    tokens: 0.0,
                    at: now,
                };
                fresh.tokens = fresh.capacity();
                fresh
            });
            if bucket.limit != *limit || bucket.share != share {
                // Keep the fill fraction across a changed limit or share.
                bucket.refill(now);
                let fraction = bucket.tokens / bucket.capacity();
                bucket.limit = *limit;
                bucket.share = share;
                bucket.tokens = fraction * bucket.capacity();
            }
            bucket.refill(now);
        }
        if let Some((key, limit)) = limits
            .iter()
            .find(|(key, _)| buckets.get(key).is_some_and(|b| b.tokens < 1.0))
        {
            let retry_after = buckets
                .get(key)
                .map_or(Duration::from_secs(1), Bucket::wait);
            return Err(Limited {
                key: key.clone(),
                limit: *limit,
                retry_after,
            });
        }
        for (key, _) in limits {
            if let Some(bucket) = buckets.get_mut(key) {
                bucket.tokens -= 1.0;
            }
        }
        Ok(())
    }

    /// Forgets buckets not used for `idle` (servers undeployed, principals gone).
    pub fn prune(&self, now: Instant, idle: Duration) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.retain(|_, b| now.saturating_duration_since(b.at) < idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_second: u32, burst: u32) -> RateLimit {
        RateLimit { per_second, burst }
    }

    #[test]
    fn a_bucket_admits_its_burst_then_its_rate() {
        let limiter = RateLimiter::default();
        let key = vec![(LimitKey::Server("s".into()), limit(10, 5))];
        let t0 = Instant::now();
        for _ in 0..5 {
            limiter.admit(&key, 1.0, t0).unwrap();
        }
        let refused = limiter.admit(&key, 1.0, t0).unwrap_err();
        assert_eq!(refused.key, LimitKey::Server("s".into()));
        // 10/s: the next token is due in 100 ms.
        assert_eq!(refused.retry_after.as_millis(), 100);
        limiter
            .admit(&key, 1.0, t0 + Duration::from_millis(100))
            .unwrap();
        // Over 10 simulated seconds at a high offered rate: about 10/s admitted.
        let mut admitted = 0;
        for ms in (200..10_200).step_by(10) {
            if limiter
                .admit(&key, 1.0, t0 + Duration::from_millis(ms))
                .is_ok()
            {
                admitted += 1;
            }
        }
        assert!((99..=101).contains(&admitted), "{admitted}");
    }

    #[test]
    fn shares_split_the_limit_and_rescale() {
        let limiter = RateLimiter::default();
        let key = vec![(LimitKey::Server("s".into()), limit(30, 30))];
        let t0 = Instant::now();
        // A third of 30: 10 at once.
        let burst = (0..30)
            .filter(|_| limiter.admit(&key, 1.0 / 3.0, t0).is_ok())
            .count();
        assert_eq!(burst, 10);
        // The share doubles (a member left): the empty bucket refills at 15/s.
        let t1 = t0 + Duration::from_secs(1);
        let after = (0..30)
            .filter(|_| limiter.admit(&key, 0.5, t1).is_ok())
            .count();
        // A second at the old rate refilled the bucket; it stays full at its new size.
        assert_eq!(after, 15);
    }

    #[test]
    fn one_empty_bucket_refuses_without_taking_from_the_others() {
        let limiter = RateLimiter::default();
        let server = (LimitKey::Server("s".into()), limit(100, 100));
        let tool = (LimitKey::Tool("s".into(), "t".into()), limit(1, 1));
        let t0 = Instant::now();
        limiter
            .admit(&[server.clone(), tool.clone()], 1.0, t0)
            .unwrap();
        let refused = limiter
            .admit(&[server.clone(), tool.clone()], 1.0, t0)
            .unwrap_err();
        assert_eq!(refused.key, tool.0);
        // The server bucket lost only the one admitted call.
        let left = (0..200)
            .filter(|_| {
                limiter
                    .admit(std::slice::from_ref(&server), 1.0, t0)
                    .is_ok()
            })
            .count();
        assert_eq!(left, 99);
    }
}
