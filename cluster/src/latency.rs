//! The histogram buckets of every latency metric of a node (requests, commits, applies):
//! one set, so that the latencies of different layers compare bucket by bucket.

/// From 50 µs to 60 s: resolves sub-millisecond calls and long tool runs. The bounds are
/// the public `le` labels of every `*_duration_seconds` histogram.
pub const LATENCY_BUCKETS: [f64; 18] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0, 30.0, 60.0,
];
