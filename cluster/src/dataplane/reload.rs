//! Hot reload of the data plane's settings: [`DataPlane::reload`] swaps the whole
//! [`DataPlaneConfig`] at once, without touching a running instance or its session.
//!
//! What takes effect when: request and connection timeouts, retries and the in-flight
//! limit apply to the next request; pool sizes (`initial_size`,
//! `max_connections_per_server`) resize the sessions to remote HTTP servers at once (the
//! reconciler runs on reload); breaker, health-check, restart and message-size settings
//! apply to instances started after the reload, since each running instance keeps the
//! ones it was started with (replacing them would mean dropping its session).

use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

use super::{DataPlane, DataPlaneConfig};

/// The current settings, replaced whole on reload.
pub struct LiveConfig {
    current: RwLock<Arc<DataPlaneConfig>>,
    reloaded: Notify,
}

impl LiveConfig {
    /// Settings starting as `config`.
    pub fn new(config: DataPlaneConfig) -> Self {
        Self {
            current: RwLock::new(Arc::new(config)),
            reloaded: Notify::new(),
        }
    }

    /// The settings now.
    pub fn get(&self) -> Arc<DataPlaneConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Resolves at the next reload.
    pub async fn reloaded(&self) {
        self.reloaded.notified().await
    }
}

/// The names of the settings that differ between `old` and `new`, as the TOML file's
/// `[dataplane]` table names them.
pub fn changed(old: &DataPlaneConfig, new: &DataPlaneConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name: &'static str, differs: bool| {
        if differs {
            out.push(name);
        }
    };
    check(
        "request_timeout_ms",
        old.request_timeout != new.request_timeout,
    );
    check(
        "connection_timeout_ms",
        old.connect_timeout != new.connect_timeout,
    );
    check(
        "health_check_interval_secs",
        old.health_check_interval != new.health_check_interval,
    );
    check(
        "max_in_flight_per_instance",
        old.max_in_flight_per_instance != new.max_in_flight_per_instance,
    );
    check(
        "max_connections_per_server",
        old.max_connections_per_server != new.max_connections_per_server,
    );
    check("initial_size", old.initial_size != new.initial_size);
    check("idle_timeout_secs", old.idle_timeout != new.idle_timeout);
    check(
        "enable_keepalive",
        old.keepalive != new.keepalive || old.keepalive_interval != new.keepalive_interval,
    );
    check(
        "max_message_bytes",
        old.max_message_bytes != new.max_message_bytes,
    );
    check("max_attempts", old.retry != new.retry);
    check(
        "circuit_breaker_threshold",
        old.breaker.failure_threshold != new.breaker.failure_threshold,
    );
    check(
        "circuit_breaker_recovery_secs",
        old.breaker.open_timeout != new.breaker.open_timeout,
    );
    check("restart", old.restart != new.restart);
    out
}

impl DataPlane {
    /// The data plane's settings now.
    pub fn config(&self) -> Arc<DataPlaneConfig> {
        self.config.get()
    }

    /// Replaces the settings with `new` (the node's own container scope is kept: it is the
    /// node's identity, not a setting) and returns the names of those that changed.
    pub fn reload(&self, mut new: DataPlaneConfig) -> Vec<&'static str> {
        let mut current = self
            .config
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner());
        new.containers = current.containers.clone();
        let names = changed(&current, &new);
        if !names.is_empty() {
            *current = Arc::new(new);
        }
        drop(current);
        if !names.is_empty() {
            self.config.reloaded.notify_waiters();
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn changes_are_named_as_the_file_names_them() {
        let old = DataPlaneConfig::default();
        assert!(changed(&old, &old.clone()).is_empty());
        let mut new = old.clone();
        new.request_timeout = Duration::from_millis(5);
        new.breaker.failure_threshold += 1;
        new.max_connections_per_server = 3;
        assert_eq!(
            changed(&old, &new),
            [
                "request_timeout_ms",
                "max_connections_per_server",
                "circuit_breaker_threshold"
            ]
        );
    }
}
