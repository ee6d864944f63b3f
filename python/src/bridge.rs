//! Rust futures as asyncio awaitables, safe at interpreter exit.
//!
//! Each awaitable is an `asyncio.Future` of the caller's running loop; the Rust future runs
//! on the module's tokio runtime without the GIL, and its outcome is handed back with
//! `loop.call_soon_threadsafe`. Cancelling the asyncio future drops the Rust future.
//!
//! Why not pyo3-async-runtimes' `future_into_py`: a runtime thread that hands a result back
//! while the interpreter is finalizing is killed inside Python (`pthread_exit`) and aborts
//! the whole process. Here every hand-back holds a read lock, and an `atexit` hook
//! ([`shutdown`]) takes the write lock (waiting for hand-backs in progress) and then turns
//! all later ones into no-ops.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use pyo3::exceptions::PyBaseException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::{IntoPyObject, IntoPyObjectExt};

use crate::errors::ClientError;
use crate::runtime;

static HAND_BACKS: RwLock<()> = RwLock::new(());
static FINALIZING: AtomicBool = AtomicBool::new(false);
static COMPLETE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Runs `fut` on the module's runtime; returns an `asyncio.Future` of the running loop.
pub fn awaitable<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, ClientError>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let rt = runtime::runtime()?;
    let event_loop = pyo3_async_runtimes::get_running_loop(py)?;
    let py_future = event_loop.call_method0("create_future")?;
    let complete = COMPLETE
        .get_or_try_init(py, || {
            wrap_pyfunction!(complete, py).map(|f| f.into_any().unbind())
        })?
        .clone_ref(py);
    let loop_ref = event_loop.unbind();
    let future_ref = py_future.clone().unbind();
    let task = rt.spawn(async move {
        let result = fut.await;
        hand_back(loop_ref, future_ref, complete, result);
    });
    py_future.call_method1(
        "add_done_callback",
        (Canceller {
            handle: task.abort_handle(),
        },),
    )?;
    Ok(py_future)
}

fn hand_back<T>(
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
    complete: Py<PyAny>,
    result: Result<T, ClientError>,
) where
    T: for<'a> IntoPyObject<'a>,
{
    let _in_progress = HAND_BACKS.read().unwrap_or_else(|e| e.into_inner());
    if FINALIZING.load(Ordering::SeqCst) {
        // The interpreter is going away: nobody awaits this any more.
        return;
    }
    Python::attach(|py| {
        let (value, error): (Py<PyAny>, Option<Py<PyBaseException>>) = match result {
            Ok(value) => match value.into_py_any(py) {
                Ok(v) => (v, None),
                Err(e) => (py.None(), Some(e.into_value(py))),
            },
            Err(e) => (py.None(), Some(e.to_pyerr(py).into_value(py))),
        };
        // Fails only when the loop is closed: then nothing is waiting.
        if let Err(e) =
            event_loop.call_method1(py, "call_soon_threadsafe", (complete, future, value, error))
        {
            tracing::debug!(error = %e, "result not delivered: the event loop is closed");
        }
    });
}

/// Sets the future's outcome, unless it was cancelled meanwhile (runs on the loop).
#[pyfunction]
fn complete(
    future: &Bound<'_, PyAny>,
    value: Py<PyAny>,
    error: Option<Bound<'_, PyBaseException>>,
) -> PyResult<()> {
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    match error {
        Some(error) => future.call_method1("set_exception", (error,))?,
        None => future.call_method1("set_result", (value,))?,
    };
    Ok(())
}

/// Done-callback of an awaitable: a cancelled awaitable stops its Rust future.
#[pyclass(module = "mcp_rust._native")]
struct Canceller {
    handle: tokio::task::AbortHandle,
}

#[pymethods]
impl Canceller {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.handle.abort();
        }
        Ok(())
    }
}

/// `atexit` hook: waits for results being handed back, then makes every later hand-back a
/// no-op, so that no runtime thread enters the interpreter while it finalizes.
#[pyfunction]
pub fn shutdown(py: Python<'_>) {
    py.detach(|| {
        let _no_hand_backs = HAND_BACKS.write().unwrap_or_else(|e| e.into_inner());
        FINALIZING.store(true, Ordering::SeqCst);
    });
}
