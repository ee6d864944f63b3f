//! Data-plane settings, named after the migration guide's `MCPConfig`, `RetryConfig` and
//! `CircuitBreakerConfig`.

use std::time::Duration;

use super::breaker::BreakerConfig;

/// Retry settings (`RetryConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Total attempts, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub initial_delay: Duration,
    /// Cap on any delay.
    pub max_delay: Duration,
    /// Growth factor of the delay per retry.
    pub exponential_base: f64,
    /// Randomise each delay (full jitter) so retries of many callers spread out.
    pub jitter: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(2),
            exponential_base: 2.0,
            jitter: true,
        }
    }
}

impl RetryConfig {
    /// The delay before retry number `retry` (1-based).
    pub fn delay(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = self.initial_delay.as_secs_f64() * self.exponential_base.powi(exponent);
        let capped = base.min(self.max_delay.as_secs_f64()).max(0.0);
        let secs = if self.jitter {
            capped * rand::random::<f64>()
        } else {
            capped
        };
        Duration::from_secs_f64(secs)
    }
}

/// Crash handling of stdio instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Delay before the first restart.
    pub initial_backoff: Duration,
    /// Cap on the restart delay.
    pub max_backoff: Duration,
    /// Consecutive failed starts (or crashes soon after start) that mark a crash loop.
    pub crash_loop_after: u32,
    /// An instance that ran this long is healthy again: its failure count resets.
    pub stable_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            crash_loop_after: 5,
            stable_after: Duration::from_secs(10),
        }
    }
}

/// Everything the data plane is configured with.
#[derive(Debug, Clone)]
pub struct DataPlaneConfig {
    /// Default per-request timeout (`request_timeout_ms`); a spec may override it.
    pub request_timeout: Duration,
    /// Connect and handshake timeout (`connection_timeout_ms`).
    pub connect_timeout: Duration,
    /// Health-check period (`health_check_interval_secs`).
    pub health_check_interval: Duration,
    /// Concurrent requests per instance before it counts as saturated.
    pub max_in_flight_per_instance: usize,
    /// Most sessions per remote HTTP server on one node (`max_connections_per_server`).
    pub max_connections_per_server: usize,
    /// Fewest sessions per remote HTTP server on one node (`initial_size`); a server's
    /// `replicas` asks for more, up to `max_connections_per_server`.
    pub initial_size: usize,
    /// Idle HTTP connections are closed after this long (`idle_timeout_secs`).
    pub idle_timeout: Duration,
    /// TCP keep-alive on HTTP connections (`enable_keepalive`).
    pub keepalive: bool,
    /// Time between TCP keep-alive probes when keep-alive is on (`keepalive_interval_secs`).
    pub keepalive_interval: Duration,
    /// Largest message accepted from a server.
    pub max_message_bytes: usize,
    /// Circuit breaker per instance.
    pub breaker: BreakerConfig,
    /// Retries.
    pub retry: RetryConfig,
    /// Restarts of crashed instances.
    pub restart: RestartPolicy,
    /// Labels and reaping scope of this node's containers (docker servers).
    pub containers: super::upstream::docker::ContainerScope,
    /// Where sessions report their server's own list changes; set by the data plane on
    /// the copy each instance gets (never read from a file).
    pub list_changes: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

impl Default for DataPlaneConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            health_check_interval: Duration::from_secs(10),
            max_in_flight_per_instance: 512,
            max_connections_per_server: 20,
            initial_size: 1,
            idle_timeout: Duration::from_secs(300),
            keepalive: true,
            keepalive_interval: Duration::from_secs(30),
            max_message_bytes: 16 * 1024 * 1024,
            breaker: BreakerConfig::default(),
            retry: RetryConfig::default(),
            restart: RestartPolicy::default(),
            containers: Default::default(),
            list_changes: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let retry = RetryConfig {
            jitter: false,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
            ..RetryConfig::default()
        };
        assert_eq!(retry.delay(1), Duration::from_millis(100));
        assert_eq!(retry.delay(2), Duration::from_millis(200));
        assert_eq!(retry.delay(3), Duration::from_millis(250));
        let jittered = RetryConfig {
            jitter: true,
            ..retry
        };
        assert!(jittered.delay(3) <= Duration::from_millis(250));
    }
}
