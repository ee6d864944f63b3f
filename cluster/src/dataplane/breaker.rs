//! A per-instance circuit breaker.
//!
//! Closed: calls pass; `failure_threshold` consecutive failures open it. Open: calls are
//! refused without touching the server until `open_timeout` has passed; then half-open:
//! at most `half_open_max_calls` trial calls at a time; `success_threshold` successes close
//! it, any failure opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Breaker settings (the migration guide's `CircuitBreakerConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// Successes in half-open that close it.
    pub success_threshold: u32,
    /// How long it stays open before admitting trial calls (`timeout_secs`).
    pub open_timeout: Duration,
    /// Trial calls admitted at once while half-open.
    pub half_open_max_calls: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            success_threshold: 2,
            open_timeout: Duration::from_secs(30),
            half_open_max_calls: 3,
        }
    }
}

/// The breaker's state, as shown in status and metrics (its wire word is part of the
/// contract, so the enum lives in `mcp_proto::contract`).
pub use mcp_proto::contract::BreakerState;

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// Called with the state a breaker enters (for metrics and logs).
pub type TransitionHook = Box<dyn Fn(BreakerState) + Send + Sync>;

/// One instance's breaker.
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
    on_transition: Option<TransitionHook>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("state", &self.state())
            .finish()
    }
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
            on_transition: None,
        }
    }

    /// Calls `hook` with every state the breaker enters.
    pub fn with_hook(mut self, hook: TransitionHook) -> Self {
        self.on_transition = Some(hook);
        self
    }

    fn entered(&self, state: BreakerState) {
        if let Some(hook) = &self.on_transition {
            hook(state);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state (an open breaker past its timeout reports half-open).
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if Instant::now() < until => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make a call. `false`: refused, the breaker is open (or half-open and full).
    pub fn try_acquire(&self) -> bool {
        let mut inner = self.lock();
        match &mut *inner {
            Inner::Closed { .. } => true,
            Inner::Open { until } => {
                if Instant::now() < *until {
                    return false;
                }
                tracing::info!("circuit breaker half-open: admitting trial calls");
                *inner = Inner::HalfOpen {
                    in_flight: 1,
                    successes: 0,
                };
                drop(inner);
                self.entered(BreakerState::HalfOpen);
                true
            }
            Inner::HalfOpen { in_flight, .. } => {
                if *in_flight >= self.config.half_open_max_calls {
                    return false;
                }
                *in_flight += 1;
                true
            }
        }
    }

    /// Reports the outcome of an admitted call.
    pub fn record(&self, success: bool) {
        let entered = self.record_locked(success);
        if let Some(state) = entered {
            self.entered(state);
        }
    }

    fn record_locked(&self, success: bool) -> Option<BreakerState> {
        let mut inner = self.lock();
        let open = Inner::Open {
            until: Instant::now() + self.config.open_timeout,
        };
        match &mut *inner {
            Inner::Closed { failures } => {
                if success {
                    *failures = 0;
                } else {
                    *failures += 1;
                    if *failures >= self.config.failure_threshold {
                        tracing::warn!(failures = *failures, "circuit breaker opened");
                        *inner = open;
                        return Some(BreakerState::Open);
                    }
                }
                None
            }
            Inner::HalfOpen {
                in_flight,
                successes,
            } => {
                *in_flight = in_flight.saturating_sub(1);
                if !success {
                    tracing::warn!("trial call failed: circuit breaker open again");
                    *inner = open;
                    return Some(BreakerState::Open);
                }
                *successes += 1;
                if *successes >= self.config.success_threshold {
                    tracing::info!("circuit breaker closed");
                    *inner = Inner::Closed { failures: 0 };
                    return Some(BreakerState::Closed);
                }
                None
            }
            // A call admitted before the breaker opened finished late: nothing to learn.
            Inner::Open { .. } => None,
        }
    }

    /// Opens the breaker at once (the instance is known to be broken).
    pub fn trip(&self) {
        let was_open = {
            let mut inner = self.lock();
            let was_open = matches!(*inner, Inner::Open { .. });
            *inner = Inner::Open {
                until: Instant::now() + self.config.open_timeout,
            };
            was_open
        };
        if !was_open {
            tracing::warn!("circuit breaker tripped by a broken session");
            self.entered(BreakerState::Open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(open_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: 2,
            success_threshold: 2,
            open_timeout: Duration::from_millis(open_ms),
            half_open_max_calls: 1,
        })
    }

    #[test]
    fn opens_after_threshold_and_closes_after_successes() {
        let b = breaker(0);
        assert!(b.try_acquire());
        b.record(false);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.try_acquire());
        b.record(false);
        // Zero timeout: straight to half-open on the next call, one trial at a time.
        assert!(b.try_acquire());
        assert!(!b.try_acquire());
        b.record(true);
        assert!(b.try_acquire());
        b.record(true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn stays_open_until_timeout_and_reopens_on_trial_failure() {
        let b = breaker(60_000);
        b.record(false);
        b.record(false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.try_acquire());
        let b = breaker(0);
        b.record(false);
        b.record(false);
        assert!(b.try_acquire());
        b.record(false);
        assert!(b.try_acquire(), "zero timeout admits a new trial");
    }

    #[test]
    fn success_resets_the_failure_count() {
        let b = breaker(60_000);
        b.record(false);
        b.record(true);
        b.record(false);
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
