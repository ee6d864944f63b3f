//! The tokio runtime the module owns, shaped by `MCP_THREAD_POOL_SIZE` and
//! `MCP_CPU_AFFINITY`.
//!
//! Built once, on first use; every awaitable the package returns runs its Rust part here,
//! without the GIL (see `bridge`). A bad value in either
//! variable is a `ConfigError` naming the variable, raised by the first call that needs the
//! runtime (not silently replaced by a default).

use std::sync::OnceLock;

use tokio::runtime::Runtime;

use crate::errors::ClientError;

/// Environment variable: number of worker threads.
pub const THREAD_POOL_SIZE_VAR: &str = "MCP_THREAD_POOL_SIZE";
/// Environment variable: CPUs the worker threads are pinned to (`0-7`, `0,2,4`, `1-3,6`).
pub const CPU_AFFINITY_VAR: &str = "MCP_CPU_AFFINITY";

/// How the runtime was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeShape {
    /// Worker threads.
    pub worker_threads: usize,
    /// CPUs the workers are pinned to; empty when not pinned.
    pub cpu_affinity: Vec<usize>,
}

static RUNTIME: OnceLock<Result<(Runtime, RuntimeShape), ClientError>> = OnceLock::new();

/// The module's runtime, built on first call.
pub fn runtime() -> Result<&'static Runtime, ClientError> {
    match RUNTIME.get_or_init(build) {
        Ok((runtime, _)) => Ok(runtime),
        Err(e) => Err(e.clone()),
    }
}

/// The shape of the module's runtime (building it if needed).
pub fn shape() -> Result<RuntimeShape, ClientError> {
    match RUNTIME.get_or_init(build) {
        Ok((_, shape)) => Ok(shape.clone()),
        Err(e) => Err(e.clone()),
    }
}

fn build() -> Result<(Runtime, RuntimeShape), ClientError> {
    let threads = match std::env::var(THREAD_POOL_SIZE_VAR) {
        Ok(value) if !value.trim().is_empty() => parse_threads(&value)?,
        _ => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
    };
    let cpus = match std::env::var(CPU_AFFINITY_VAR) {
        Ok(value) if !value.trim().is_empty() => parse_cpu_list(&value)?,
        _ => Vec::new(),
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(threads)
        .thread_name("mcp-rust-worker")
        .enable_all();
    if !cpus.is_empty() {
        let pinned = cpus.clone();
        builder.on_thread_start(move || pin_current_thread(&pinned));
    }
    let runtime = builder.build().map_err(|e| {
        ClientError::new(
            crate::errors::ErrorKind::Internal,
            format!("cannot start the tokio runtime: {e}"),
        )
    })?;
    Ok((
        runtime,
        RuntimeShape {
            worker_threads: threads,
            cpu_affinity: cpus,
        },
    ))
}

fn parse_threads(value: &str) -> Result<usize, ClientError> {
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(ClientError::config(
            THREAD_POOL_SIZE_VAR,
            format!("{THREAD_POOL_SIZE_VAR} must be a whole number from 1 to 1024, got {value:?}"),
        )),
    }
}

/// Parses a Linux-style CPU list: `0-7`, `0,2,4`, `1-3,6`.
pub fn parse_cpu_list(value: &str) -> Result<Vec<usize>, ClientError> {
    let bad = |why: &str| {
        ClientError::config(
            CPU_AFFINITY_VAR,
            format!(
                "{CPU_AFFINITY_VAR}={value:?}: {why} (expected a CPU list such as 0-7 or 0,2,4)"
            ),
        )
    };
    let available = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let max_cpu = usize::try_from(libc::CPU_SETSIZE).unwrap_or(1024);
    let mut cpus = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let first: usize = first.parse().map_err(|_| bad("not a number"))?;
        let last: usize = last.parse().map_err(|_| bad("not a number"))?;
        if first > last {
            return Err(bad("a range must go upwards"));
        }
        if last >= max_cpu {
            return Err(bad("CPU number too large"));
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    if cpus.is_empty() {
        return Err(bad("no CPU listed"));
    }
    if cpus
        .iter()
        .all(|cpu| *cpu >= available.max(online_cpu_bound()))
    {
        return Err(bad("none of these CPUs exists on this machine"));
    }
    Ok(cpus)
}

/// One past the highest CPU number the kernel reports, so that a list naming only absent
/// CPUs is refused up front instead of failing on every thread start.
fn online_cpu_bound() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    usize::try_from(n).unwrap_or(1).max(1)
}

fn pin_current_thread(cpus: &[usize]) {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write inside it, and every
    // index was checked against CPU_SETSIZE when the list was parsed.
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for cpu in cpus {
            libc::CPU_SET(*cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if result != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            ?cpus,
            "cannot pin a worker thread to the CPUs in MCP_CPU_AFFINITY"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0").unwrap(), vec![0]);
        assert_eq!(parse_cpu_list("0-1,0").unwrap(), vec![0, 1]);
        for bad in ["", "a", "3-1", "0-x", "99999"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn thread_counts_parse() {
        assert_eq!(parse_threads("4").unwrap(), 4);
        assert!(parse_threads("0").is_err());
        assert!(parse_threads("many").is_err());
    }
}
