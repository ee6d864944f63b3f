//! Allocation tracking for `get_memory_stats()`: a global allocator over the system one
//! that counts the bytes the package's Rust code holds, when `MCP_TRACK_MEMORY=1`.
//!
//! The variable is read once, when the module is imported. Without it the allocator only
//! forwards (one relaxed atomic load per call) and the statistics say `tracking=False`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use pyo3::prelude::*;

/// Environment variable that turns tracking on.
pub const TRACK_MEMORY_VAR: &str = "MCP_TRACK_MEMORY";

static TRACKING: AtomicBool = AtomicBool::new(false);
// Signed: memory allocated before tracking started may be freed while it runs.
static CURRENT: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static DEALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Counts allocations while tracking is on.
pub struct TrackingAllocator;

fn grow(size: usize) {
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    let now = CURRENT.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
}

fn shrink(size: usize) {
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    CURRENT.fetch_sub(size, Ordering::Relaxed);
    DEALLOCATIONS.fetch_add(1, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// atomics and never allocate.
unsafe impl GlobalAlloc for TrackingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() && TRACKING.load(Ordering::Relaxed) {
            grow(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() && TRACKING.load(Ordering::Relaxed) {
            grow(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        if TRACKING.load(Ordering::Relaxed) {
            shrink(layout.size());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = System.realloc(ptr, layout, new_size);
        if !new.is_null() && TRACKING.load(Ordering::Relaxed) {
            shrink(layout.size());
            grow(new_size);
        }
        new
    }
}

/// Turns tracking on if `MCP_TRACK_MEMORY` is `1`, `true` or `yes`.
pub fn init_from_env() {
    let on = std::env::var(TRACK_MEMORY_VAR)
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
        .unwrap_or(false);
    TRACKING.store(on, Ordering::Relaxed);
}

/// Memory held by the package's Rust code (not by Python objects).
#[pyclass(module = "mcp_rust._native", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct MemoryStats {
    /// True when `MCP_TRACK_MEMORY=1` was set at import; otherwise every count is 0.
    pub tracking: bool,
    /// Bytes allocated and not yet freed.
    pub current_bytes: u64,
    /// Highest `current_bytes` seen.
    pub peak_bytes: u64,
    /// Allocations since tracking started.
    pub total_allocations: u64,
    /// Frees since tracking started.
    pub total_deallocations: u64,
}

#[pymethods]
impl MemoryStats {
    fn __repr__(&self) -> String {
        format!(
            "MemoryStats(tracking={}, current_bytes={}, peak_bytes={}, total_allocations={}, total_deallocations={})",
            if self.tracking { "True" } else { "False" },
            self.current_bytes,
            self.peak_bytes,
            self.total_allocations,
            self.total_deallocations
        )
    }
}

/// The counters now.
pub fn snapshot() -> MemoryStats {
    let clamp = |v: i64| u64::try_from(v.max(0)).unwrap_or(0);
    MemoryStats {
        tracking: TRACKING.load(Ordering::Relaxed),
        current_bytes: clamp(CURRENT.load(Ordering::Relaxed)),
        peak_bytes: clamp(PEAK.load(Ordering::Relaxed)),
        total_allocations: ALLOCATIONS.load(Ordering::Relaxed),
        total_deallocations: DEALLOCATIONS.load(Ordering::Relaxed),
    }
}
