//! One instance of a server on this node: a supervised session plus the state that load
//! balancing reads (in-flight count, health, circuit breaker).
//!
//! A supervisor task keeps the session alive: it connects, watches the session, restarts
//! it with capped exponential backoff when it dies, and after `crash_loop_after` failed
//! starts in a row reports a crash loop (and slows down to the maximum backoff) instead of
//! spinning. A health checker probes the session every `health_check_interval` and takes
//! the instance out of rotation while probes fail.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_proto::contract::InstanceState as WireState;
use mcp_raft::registry::spec::ServerSpec;
use tokio::sync::{watch, Notify};

use super::breaker::CircuitBreaker;
use super::config::{DataPlaneConfig, RestartPolicy};
use super::metrics::DataPlaneMetrics;
use super::upstream::{Session, SessionOptions};

/// Lifecycle state of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    /// Connecting for the first time.
    Starting,
    /// Session up.
    Running,
    /// The session died; waiting to reconnect.
    Restarting {
        /// Consecutive failed starts so far.
        failures: u32,
    },
    /// Failing again and again; retried slowly.
    CrashLoop {
        /// Consecutive failed starts so far.
        failures: u32,
        /// The last error.
        last_error: String,
    },
    /// Stopped for good.
    Stopped,
}

impl InstanceState {
    /// True while the instance may still become usable without anyone's help: it is
    /// connecting for the first time or restarting after a crash (but not crash-looping).
    /// A request for a server whose instances are all coming up waits for them.
    pub fn coming_up(&self) -> bool {
        matches!(
            self,
            InstanceState::Starting | InstanceState::Restarting { .. }
        )
    }

    /// The state for an error message: its name, and the last error of a crash loop.
    pub fn describe(&self) -> String {
        match self {
            InstanceState::CrashLoop {
                failures,
                last_error,
            } => format!("crash_loop after {failures} failed starts: {last_error}"),
            other => other.name().to_owned(),
        }
    }

    /// The state as reported on the wire.
    pub fn wire(&self) -> WireState {
        match self {
            InstanceState::Starting => WireState::Starting,
            InstanceState::Running => WireState::Running,
            InstanceState::Restarting { .. } => WireState::Restarting,
            InstanceState::CrashLoop { .. } => WireState::CrashLoop,
            InstanceState::Stopped => WireState::Stopped,
        }
    }

    /// Short name for listings and metrics.
    pub fn name(&self) -> &'static str {
        self.wire().as_str()
    }
}

/// A supervised instance.
pub struct Instance {
    /// Instance id (unique in the cluster).
    pub id: String,
    /// The server it belongs to.
    pub server: String,
    /// The spec it runs (a changed spec means a new instance).
    pub spec: Arc<ServerSpec>,
    session: watch::Sender<Option<Arc<Session>>>,
    state: Mutex<InstanceState>,
    in_flight: AtomicUsize,
    healthy: AtomicBool,
    restarts: AtomicU32,
    /// When a request last began or ended here (scale to zero stops idle instances).
    last_used: Mutex<Instant>,
    /// The instance's circuit breaker.
    pub breaker: CircuitBreaker,
    stop: watch::Sender<bool>,
    /// Shared with the pool: woken when this instance's state changes, so that requests
    /// waiting for a starting instance go on at once.
    changed: Arc<Notify>,
}

/// Decrements the in-flight count when a request ends, however it ends.
pub struct InFlight(Arc<Instance>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Instance {
    /// Creates the instance and starts its supervisor and health checker. `changed` is
    /// notified on every lifecycle change (see [`super::pool::InstancePool::changes`]).
    pub fn start(
        id: String,
        spec: Arc<ServerSpec>,
        config: &DataPlaneConfig,
        metrics: Arc<DataPlaneMetrics>,
        changed: Arc<Notify>,
    ) -> Arc<Self> {
        let (session, _) = watch::channel(None);
        let (stop, _) = watch::channel(false);
        let transitions = Arc::clone(&metrics);
        let (server, label) = (spec.name.clone(), id.clone());
        let breaker = CircuitBreaker::new(config.breaker.clone()).with_hook(Box::new(move |state| {
            tracing::info!(instance = %label, state = state.as_str(), "circuit breaker changed state");
            transitions.count_breaker_transition(&server, state);
        }));
        let instance = Arc::new(Self {
            server: spec.name.clone(),
            id,
            spec,
            session,
            state: Mutex::new(InstanceState::Starting),
            in_flight: AtomicUsize::new(0),
            healthy: AtomicBool::new(false),
            restarts: AtomicU32::new(0),
            last_used: Mutex::new(Instant::now()),
            breaker,
            stop,
            changed,
        });
        tokio::spawn(supervise(Arc::clone(&instance), config.clone(), metrics));
        instance
    }

    /// The current lifecycle state.
    pub fn state(&self) -> InstanceState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_state(&self, state: InstanceState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        self.changed.notify_waiters();
    }

    /// Requests in flight right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// How often the session was restarted.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The protocol version of the current session, if connected.
    pub fn protocol_version(&self) -> Option<String> {
        self.session
            .borrow()
            .as_ref()
            .map(|s| s.era().protocol_version().to_owned())
    }

    /// The live session, if the instance is running and passes health checks.
    pub fn usable_session(&self) -> Option<Arc<Session>> {
        if !self.healthy.load(Ordering::Acquire) {
            return None;
        }
        self.session
            .borrow()
            .as_ref()
            .filter(|s| s.is_alive())
            .cloned()
    }

    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// How long since a request last began or ended on this instance (since it was
    /// created, if none did).
    pub fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    /// Counts a request in flight, or refuses if `limit` are already in flight.
    pub fn try_begin(self: &Arc<Self>, limit: usize) -> Option<InFlight> {
        self.touch();
        let previous = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(Arc::clone(self));
        (previous < limit).then_some(guard)
    }

    /// Stops the instance: the session is shut down (for stdio: stdin closed, SIGTERM,
    /// SIGKILL) and the supervisor ends. Returns once the process is gone.
    pub async fn stop(&self) {
        // `send_replace`, not `send`: the value must stick even when the supervisor has not
        // subscribed yet (an instance stopped right after it was started).
        self.stop.send_replace(true);
        let mut session = self.session.subscribe();
        // Wait for the supervisor to take the session down.
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if self.state() == InstanceState::Stopped {
                    return;
                }
                if session.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
}

async fn supervise(
    instance: Arc<Instance>,
    config: DataPlaneConfig,
    metrics: Arc<DataPlaneMetrics>,
) {
    let options = SessionOptions {
        connect_timeout: config.connect_timeout,
        max_message_bytes: config.max_message_bytes,
        label: instance.id.clone(),
        idle_timeout: config.idle_timeout,
        keepalive: config.keepalive,
        keepalive_interval: config.keepalive_interval,
        containers: config.containers.clone(),
        list_changes: config.list_changes.clone().map(|sender| {
            super::list_changes::ListChangeSink {
                server: instance.server.clone(),
                sender,
            }
        }),
    };
    let policy = &config.restart;
    let mut stop = instance.stop.subscribe();
    let mut failures: u32 = 0;
    loop {
        if *stop.borrow() {
            break;
        }
        let started = Instant::now();
        let connected = tokio::select! {
            connected = Session::connect(&instance.spec, &options) => connected,
            _ = stop.changed() => break,
        };
        let last_error = match connected {
            Ok(session) => {
                let session = Arc::new(session);
                instance.session.send_replace(Some(Arc::clone(&session)));
                instance.healthy.store(true, Ordering::Release);
                instance.set_state(InstanceState::Running);
                let ended = watch_session(&instance, &session, &config, &mut stop).await;
                instance.healthy.store(false, Ordering::Release);
                instance.session.send_replace(None);
                session.shutdown().await;
                if ended == SessionEnd::Stopped {
                    break;
                }
                if started.elapsed() >= policy.stable_after {
                    failures = 0;
                }
                "session ended".to_owned()
            }
            Err(e) => e.to_string(),
        };
        failures += 1;
        instance.restarts.fetch_add(1, Ordering::Relaxed);
        metrics.count_restart(&instance.server);
        if failures >= policy.crash_loop_after {
            if failures == policy.crash_loop_after {
                tracing::error!(instance = %instance.id, failures, error = %last_error, "instance is crash-looping");
            }
            instance.set_state(InstanceState::CrashLoop {
                failures,
                last_error,
            });
        } else {
            tracing::warn!(instance = %instance.id, failures, error = %last_error, "instance down; restarting");
            instance.set_state(InstanceState::Restarting { failures });
        }
        let backoff = restart_delay(policy, failures);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => break,
        }
    }
    instance.healthy.store(false, Ordering::Release);
    instance.set_state(InstanceState::Stopped);
    // Wake `Instance::stop`, which waits on this channel.
    instance.session.send_replace(None);
    tracing::info!(instance = %instance.id, "instance stopped");
}

/// How long to wait before the next start after `failures` failed starts in a row:
/// doubling from the initial backoff, capped; the cap once the instance is crash-looping.
fn restart_delay(policy: &RestartPolicy, failures: u32) -> Duration {
    if failures >= policy.crash_loop_after {
        return policy.max_backoff;
    }
    let exponent = failures.saturating_sub(1).min(16);
    policy
        .initial_backoff
        .saturating_mul(1u32 << exponent)
        .min(policy.max_backoff)
}

#[derive(PartialEq, Eq)]
enum SessionEnd {
    Died,
    Stopped,
}

/// Waits until the session dies or the instance is stopped, probing its health meanwhile.
async fn watch_session(
    instance: &Instance,
    session: &Session,
    config: &DataPlaneConfig,
    stop: &mut watch::Receiver<bool>,
) -> SessionEnd {
    // Liveness is cheap to read; checking it often makes crash detection quick.
    let mut liveness = tokio::time::interval(Duration::from_millis(50));
    let mut health = tokio::time::interval(config.health_check_interval);
    health.tick().await;
    let probe_timeout = config.request_timeout.min(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = stop.changed() => return SessionEnd::Stopped,
            _ = liveness.tick() => {
                if !session.is_alive() {
                    return SessionEnd::Died;
                }
            }
            _ = health.tick() => {
                let ok = matches!(tokio::time::timeout(probe_timeout, session.probe()).await, Ok(Ok(())));
                let was = instance.healthy.swap(ok, Ordering::AcqRel);
                if was != ok {
                    if ok {
                        tracing::info!(instance = %instance.id, "health check passes again: back in rotation");
                    } else {
                        tracing::warn!(instance = %instance.id, "health check failed: out of rotation");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::testing::{eventually, quick_config, start_instance as start, SERVE};

    /// A server that exits on the first message it gets while `flag` exists, and serves
    /// otherwise.
    fn fails_while(flag: &Path) -> String {
        let flag = flag.display();
        SERVE.replacen("do ", &format!("do [ -e '{flag}' ] && exit 1; "), 1)
    }

    async fn wait_for_state(
        instance: &Instance,
        what: &str,
        wanted: impl Fn(&InstanceState) -> bool,
    ) {
        eventually(what, || wanted(&instance.state())).await;
    }

    #[test]
    fn restart_delay_doubles_up_to_the_cap_and_is_the_cap_in_a_crash_loop() {
        let policy = RestartPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            crash_loop_after: 5,
            stable_after: Duration::from_secs(10),
        };
        let delays: Vec<u128> = (1..=6)
            .map(|failures| restart_delay(&policy, failures).as_millis())
            .collect();
        assert_eq!(delays, vec![100, 200, 350, 350, 350, 350]);
        let crash_loop_soon = RestartPolicy {
            crash_loop_after: 2,
            max_backoff: Duration::from_secs(30),
            ..policy
        };
        assert_eq!(restart_delay(&crash_loop_soon, 1).as_millis(), 100);
        assert_eq!(restart_delay(&crash_loop_soon, 2), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn an_instance_starts_then_runs_then_stops() {
        let instance = start("s-0", SERVE, &quick_config());
        // The supervisor has not run yet on this single-threaded runtime.
        assert_eq!(instance.state(), InstanceState::Starting);
        assert!(instance.state().coming_up());
        wait_for_state(&instance, "running", |s| *s == InstanceState::Running).await;
        assert!(instance.usable_session().is_some());
        assert!(instance.protocol_version().is_some());
        instance.stop().await;
        assert_eq!(instance.state(), InstanceState::Stopped);
        assert!(instance.usable_session().is_none());
        assert_eq!(instance.restarts(), 0);
    }

    #[tokio::test]
    async fn a_crashed_session_is_restarted_and_runs_again_once_the_server_works() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("broken");
        let config = DataPlaneConfig {
            restart: RestartPolicy {
                crash_loop_after: u32::MAX,
                ..quick_config().restart
            },
            ..quick_config()
        };
        let instance = start("s-0", &fails_while(&flag), &config);
        wait_for_state(&instance, "running", |s| *s == InstanceState::Running).await;

        // The next health probe kills it, and every restart fails while the flag is there.
        std::fs::write(&flag, b"").unwrap();
        wait_for_state(
            &instance,
            "repeated restarts",
            |s| matches!(s, InstanceState::Restarting { failures } if *failures >= 2),
        )
        .await;
        assert!(instance.usable_session().is_none());
        assert!(
            instance.state().coming_up(),
            "restarting is still coming up"
        );

        std::fs::remove_file(&flag).unwrap();
        wait_for_state(&instance, "running again", |s| *s == InstanceState::Running).await;
        assert!(
            instance.restarts() >= 2,
            "restarts: {}",
            instance.restarts()
        );
        assert!(instance.usable_session().is_some());
        instance.stop().await;
    }

    #[tokio::test]
    async fn a_server_that_keeps_failing_is_reported_crash_looping_and_still_retried() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("broken");
        std::fs::write(&flag, b"").unwrap();
        let instance = start("s-0", &fails_while(&flag), &quick_config());
        wait_for_state(&instance, "a crash loop", |s| {
            matches!(s, InstanceState::CrashLoop { .. })
        })
        .await;
        let state = instance.state();
        let InstanceState::CrashLoop { failures, .. } = &state else {
            panic!("{state:?}");
        };
        assert!(*failures >= 3, "crash loop after {failures} failures");
        assert!(instance.restarts() >= 3);
        assert!(!state.coming_up(), "a crash loop is not waited for");
        assert_eq!(state.wire(), WireState::CrashLoop);
        assert!(
            state.describe().starts_with("crash_loop after "),
            "{}",
            state.describe()
        );

        // Retried at the maximum backoff: once the server works, the instance runs again.
        std::fs::remove_file(&flag).unwrap();
        wait_for_state(&instance, "running again", |s| *s == InstanceState::Running).await;
        instance.stop().await;
    }

    #[tokio::test]
    async fn an_instance_stopped_before_its_supervisor_ran_stops() {
        let instance = start("s-0", SERVE, &quick_config());
        instance.stop().await;
        assert_eq!(instance.state(), InstanceState::Stopped);
    }

    #[tokio::test]
    async fn the_in_flight_limit_is_enforced_and_slots_are_given_back() {
        let instance = start("s-0", SERVE, &quick_config());
        let first = instance.try_begin(2).expect("a free slot");
        let second = instance.try_begin(2).expect("a free slot");
        assert!(
            instance.try_begin(2).is_none(),
            "a third request over the limit"
        );
        assert_eq!(instance.in_flight(), 2);
        drop((first, second));
        assert_eq!(instance.in_flight(), 0);
        instance.stop().await;
    }
}
