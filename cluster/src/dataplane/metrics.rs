//! The data plane's metrics: what happens to execute requests (counted where it happens:
//! router, instance supervisor, breaker) and the state of this node's instances (set from a
//! [`DataPlaneSnapshot`] at scrape time, so it never drifts from the truth).
//!
//! Registered into the node's one registry; names, labels and help texts are public (see
//! docs/metrics.md).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use mcp_proto::contract::{BreakerState, InstanceState};
use prometheus::core::Metric as _;
use prometheus::{
    register_histogram_vec_with_registry, register_int_counter_vec_with_registry,
    register_int_gauge_vec_with_registry, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGaugeVec, Registry,
};

use super::InstanceStatus;
use crate::latency::LATENCY_BUCKETS;

/// The data plane's state as a scrape sees it.
#[derive(Debug, Clone, Default)]
pub struct DataPlaneSnapshot {
    /// Every server in this node's applied registry (each gets a running count, 0 included).
    pub registered: BTreeSet<String>,
    /// This node's instances.
    pub instances: Vec<InstanceStatus>,
}

/// The series of one server that [`DataPlaneMetrics::request_stats`] reads back.
#[derive(Default)]
struct ServerSeries {
    /// `mcp_requests_total` by (method, outcome).
    requests: BTreeMap<(&'static str, &'static str), IntCounter>,
    /// `mcp_request_duration_seconds`, once a request ran here.
    duration: Option<Histogram>,
}

/// Metrics of one node's data plane.
pub struct DataPlaneMetrics {
    requests: IntCounterVec,
    request_duration: HistogramVec,
    retries: IntCounterVec,
    saturation_rejections: IntCounterVec,
    breaker_transitions: IntCounterVec,
    instance_restarts: IntCounterVec,
    forwarded: IntCounterVec,
    instances: IntGaugeVec,
    in_flight: IntGaugeVec,
    breakers: IntGaugeVec,
    breaker_open: IntGaugeVec,
    replicas_running: IntGaugeVec,
    cold_starts: IntCounterVec,
    cold_start_duration: HistogramVec,
    /// The request series by server, kept so that statistics are read from these handles
    /// rather than by gathering the registry and matching family names.
    series: Mutex<BTreeMap<String, ServerSeries>>,
}

impl DataPlaneMetrics {
    /// Creates the data plane's metrics in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            requests: register_int_counter_vec_with_registry!("mcp_requests_total", "Execute requests answered by this node, by server, JSON-RPC method and outcome (success or error kind).", &["server", "method", "outcome"], registry)?,
            request_duration: register_histogram_vec_with_registry!(HistogramOpts::new("mcp_request_duration_seconds", "Latency of execute requests run on this node's instances.").buckets(LATENCY_BUCKETS.to_vec()), &["server"], registry)?,
            retries: register_int_counter_vec_with_registry!("mcp_retries_total", "Extra attempts of a request on another instance.", &["server"], registry)?,
            saturation_rejections: register_int_counter_vec_with_registry!("mcp_saturation_rejections_total", "Requests refused because every instance was at its in-flight limit.", &["server"], registry)?,
            breaker_transitions: register_int_counter_vec_with_registry!("mcp_circuit_breaker_transitions_total", "Circuit breaker state changes, by the state entered.", &["server", "state"], registry)?,
            instance_restarts: register_int_counter_vec_with_registry!("mcp_instance_restarts_total", "Restarts of crashed or broken instances.", &["server"], registry)?,
            forwarded: register_int_counter_vec_with_registry!("mcp_forwarded_requests_total", "Execute requests forwarded to another node, by target node id.", &["target"], registry)?,
            instances: register_int_gauge_vec_with_registry!("mcp_instances", "Server instances on this node by state (starting, running, restarting, crash_loop).", &["server", "state"], registry)?,
            in_flight: register_int_gauge_vec_with_registry!("mcp_in_flight_requests", "Requests in flight on this node's instances.", &["server"], registry)?,
            breakers: register_int_gauge_vec_with_registry!("mcp_circuit_breakers", "Instances of a server on this node by circuit breaker state (closed, open, half_open).", &["server", "state"], registry)?,
            breaker_open: register_int_gauge_vec_with_registry!("mcp_circuit_breaker_open", "Instances of a server on this node whose circuit breaker is open.", &["server"], registry)?,
            replicas_running: register_int_gauge_vec_with_registry!("mcp_server_replicas_running", "Running instances of each server on this node.", &["server"], registry)?,
            cold_starts: register_int_counter_vec_with_registry!("mcp_cold_starts_total", "Calls that woke a sleeping on-demand server (scale to zero) through this node.", &["server"], registry)?,
            cold_start_duration: register_histogram_vec_with_registry!(HistogramOpts::new("mcp_cold_start_duration_seconds", "From waking a sleeping on-demand server to the first call served.").buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0]), &["server"], registry)?,
            series: Mutex::default(),
        })
    }

    /// Records a cold start of `server` that took `seconds` until its first call was served.
    pub fn observe_cold_start(&self, server: &str, seconds: f64) {
        self.cold_starts.with_label_values(&[server]).inc();
        self.cold_start_duration
            .with_label_values(&[server])
            .observe(seconds);
    }

    fn with_series<R>(&self, server: &str, f: impl FnOnce(&mut ServerSeries) -> R) -> R {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mine) = series.get_mut(server) {
            return f(mine);
        }
        f(series.entry(server.to_owned()).or_default())
    }

    /// Counts a request answered by this node (`outcome`: `success` or an error kind).
    pub fn count_request(&self, server: &str, method: &'static str, outcome: &'static str) {
        self.with_series(server, |series| {
            series
                .requests
                .entry((method, outcome))
                .or_insert_with(|| self.requests.with_label_values(&[server, method, outcome]))
                .inc();
        });
    }

    /// Records how long one attempt on a local instance took.
    pub fn observe_duration(&self, server: &str, seconds: f64) {
        self.with_series(server, |series| {
            series
                .duration
                .get_or_insert_with(|| self.request_duration.with_label_values(&[server]))
                .observe(seconds);
        });
    }

    /// Counts an extra attempt on another instance.
    pub fn count_retry(&self, server: &str) {
        self.retries.with_label_values(&[server]).inc();
    }

    /// Counts a request refused because every instance was at its in-flight limit.
    pub fn count_saturated(&self, server: &str) {
        self.saturation_rejections
            .with_label_values(&[server])
            .inc();
    }

    /// Counts a breaker of `server` entering `state`.
    pub fn count_breaker_transition(&self, server: &str, state: BreakerState) {
        self.breaker_transitions
            .with_label_values(&[server, state.as_str()])
            .inc();
    }

    /// Counts a restart of an instance of `server`.
    pub fn count_restart(&self, server: &str) {
        self.instance_restarts.with_label_values(&[server]).inc();
    }

    /// Counts a request sent to node `target`.
    pub fn count_forwarded(&self, target: u64) {
        self.forwarded
            .with_label_values(&[&target.to_string()])
            .inc();
    }

    /// Sets the instance gauges from `snapshot`.
    pub fn record(&self, snapshot: &DataPlaneSnapshot) {
        self.instances.reset();
        self.in_flight.reset();
        self.breaker_open.reset();
        self.breakers.reset();
        self.replicas_running.reset();
        // Every registered server gets a running count, 0 included: a server with no
        // instance anywhere must still show up, or "desired > running" alerts stay silent.
        for server in &snapshot.registered {
            self.replicas_running.with_label_values(&[server]).set(0);
        }
        for instance in &snapshot.instances {
            let server = instance.server.as_str();
            self.instances
                .with_label_values(&[server, instance.state.as_str()])
                .inc();
            self.in_flight
                .with_label_values(&[server])
                .add(i64::try_from(instance.in_flight).unwrap_or(i64::MAX));
            self.breaker_open
                .with_label_values(&[server])
                .add(i64::from(instance.breaker == BreakerState::Open));
            self.breakers
                .with_label_values(&[server, instance.breaker.as_str()])
                .inc();
            self.replicas_running
                .with_label_values(&[server])
                .add(i64::from(instance.state == InstanceState::Running));
        }
    }

    /// Per-server request statistics and their total, from this node's counters.
    pub fn request_stats(&self) -> (RequestStats, Vec<RequestStats>) {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = RequestStats::default();
        let servers: Vec<RequestStats> = series
            .iter()
            .map(|(server, series)| {
                let stats = RequestStats::of(server, series);
                total.add(&stats);
                stats
            })
            .collect();
        (total, servers)
    }
}

/// Request totals and latency of one server (or all of them), as `GetMetrics` reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestStats {
    /// Server name ("" for the total).
    pub server: String,
    /// Requests counted.
    pub total: u64,
    /// Of which succeeded.
    pub successful: u64,
    /// Sum of observed latencies, seconds.
    latency_sum: f64,
    /// Latency observations.
    latency_count: u64,
    /// Cumulative bucket counts by upper bound.
    buckets: Vec<(f64, u64)>,
}

impl RequestStats {
    fn of(server: &str, series: &ServerSeries) -> Self {
        let mut stats = RequestStats {
            server: server.to_owned(),
            ..RequestStats::default()
        };
        for ((_, outcome), counter) in &series.requests {
            stats.total += counter.get();
            if *outcome == "success" {
                stats.successful += counter.get();
            }
        }
        if let Some(duration) = &series.duration {
            let histogram = duration.metric();
            let histogram = histogram.get_histogram();
            stats.latency_sum = histogram.get_sample_sum();
            stats.latency_count = histogram.get_sample_count();
            stats.buckets = histogram
                .get_bucket()
                .iter()
                .map(|b| (b.upper_bound(), b.cumulative_count()))
                .collect();
            stats.buckets.push((f64::INFINITY, stats.latency_count));
        }
        stats
    }

    /// successful / total (1.0 without requests).
    pub fn success_rate(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.successful as f64 / self.total as f64
        }
    }

    /// Mean latency in milliseconds.
    pub fn avg_latency_ms(&self) -> f64 {
        if self.latency_count == 0 {
            0.0
        } else {
            1000.0 * self.latency_sum / self.latency_count as f64
        }
    }

    /// The `q` quantile of latency in milliseconds, interpolated within its bucket.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latency_count == 0 {
            return 0.0;
        }
        let rank = q * self.latency_count as f64;
        let (mut lower, mut below) = (0.0, 0u64);
        for (upper, cumulative) in &self.buckets {
            if *cumulative as f64 >= rank {
                let in_bucket = (cumulative - below) as f64;
                let upper = if upper.is_finite() { *upper } else { lower };
                let fraction = if in_bucket > 0.0 {
                    (rank - below as f64) / in_bucket
                } else {
                    1.0
                };
                return 1000.0 * (lower + (upper - lower) * fraction);
            }
            lower = *upper;
            below = *cumulative;
        }
        1000.0 * lower
    }

    fn add(&mut self, other: &RequestStats) {
        self.total += other.total;
        self.successful += other.successful;
        self.latency_sum += other.latency_sum;
        self.latency_count += other.latency_count;
        if self.buckets.is_empty() {
            self.buckets = other.buckets.clone();
        } else {
            for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
                mine.1 += theirs.1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_stats_sum_counters_and_estimate_p99() {
        let m = DataPlaneMetrics::register(&Registry::new()).unwrap();
        for _ in 0..99 {
            m.count_request("a", "tools/call", "success");
            m.observe_duration("a", 0.0007);
        }
        m.count_request("a", "tools/call", "timeout");
        m.observe_duration("a", 0.02);
        m.count_request("b", "ping", "success");
        let (total, servers) = m.request_stats();
        assert_eq!((total.total, total.successful), (101, 100));
        let a = &servers[0];
        assert_eq!(a.server, "a");
        assert!((a.success_rate() - 0.99).abs() < 1e-9);
        assert!(
            a.quantile_ms(0.5) > 0.5 && a.quantile_ms(0.5) <= 1.0,
            "{}",
            a.quantile_ms(0.5)
        );
        assert!(a.quantile_ms(0.99) <= 1.0, "{}", a.quantile_ms(0.99));
        assert!(a.quantile_ms(1.0) > 10.0);
        assert!((a.avg_latency_ms() - (99.0 * 0.7 + 20.0) / 100.0).abs() < 1e-6);
    }

    #[test]
    fn a_registered_server_without_instances_runs_zero_replicas() {
        let registry = Registry::new();
        let m = DataPlaneMetrics::register(&registry).unwrap();
        m.record(&DataPlaneSnapshot {
            registered: BTreeSet::from(["idle".to_owned()]),
            instances: Vec::new(),
        });
        assert_eq!(m.replicas_running.with_label_values(&["idle"]).get(), 0);
        let listed = registry
            .gather()
            .iter()
            .any(|f| f.name() == "mcp_server_replicas_running" && f.get_metric().len() == 1);
        assert!(listed);
    }
}
