//! Rust futures as asyncio awaitables.
//!
//! Each awaitable is an `asyncio.Future` of the caller's running loop; the Rust future runs
//! on the module's tokio runtime without the GIL. Its outcome comes back through the loop's
//! [`Port`]: the runtime thread queues the outcome, still as Rust data, and rings the port's
//! bell (one byte on a socket pair whose other end the loop watches with `add_reader`); the
//! loop thread then converts every queued outcome and sets its future, in one turn.
//!
//! So a runtime thread never takes the GIL nor enters the interpreter: no GIL hand-off
//! between the runtime and the loop thread on each call (the loop thread, just woken, used to
//! wait for the runtime thread to let go of it), and nothing to guard while the interpreter
//! finalizes. That is also why this is not pyo3-async-runtimes' `future_into_py`: there, a
//! runtime thread hands each result back with `call_soon_threadsafe` under the GIL, and one
//! that does so while the interpreter is finalizing is killed inside Python and aborts the
//! process. Cancelling the asyncio future drops the Rust future.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Wake, Waker};

use pyo3::prelude::*;
use pyo3::{IntoPyObject, IntoPyObjectExt};

use crate::errors::ClientError;
use crate::runtime;

/// A finished future's outcome, turned into a Python object on the loop thread.
type Outcome = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// The loops that have a port, each with it. Holding the loop keeps its identity from
/// being reused by a new loop; closed ones are let go of when the next port is made.
static PORTS: Mutex<Vec<(Py<PyAny>, Py<Port>)>> = Mutex::new(Vec::new());

/// Runs `fut` on the module's runtime; returns an `asyncio.Future` of the running loop.
pub fn awaitable<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, ClientError>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    bridge(py, fut, false)
}

/// [`awaitable`] for a future that does little before it first waits (a call on a started
/// manager: route it, write the request): its first poll runs here, on the loop thread
/// and under the GIL, so the request goes out without waking a runtime thread.
pub fn awaitable_now<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, ClientError>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    bridge(py, fut, true)
}

fn bridge<'py, T, F>(py: Python<'py>, fut: F, poll_here: bool) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, ClientError>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let rt = runtime::runtime()?;
    let event_loop = pyo3_async_runtimes::get_running_loop(py)?;
    let port = Port::of(&event_loop)?;
    let py_future = event_loop.call_method0("create_future")?;
    let id = port.get().expect(py_future.clone().unbind());
    let bell = Arc::clone(&port.get().bell);
    let work = async move {
        let result = fut.await;
        bell.ring(
            id,
            Box::new(move |py| match result {
                Ok(value) => value.into_py_any(py),
                Err(e) => Err(e.to_pyerr(py)),
            }),
        );
    };
    let handoff = if poll_here {
        Handoff::start(rt, Box::pin(work))
    } else {
        Handoff::spawn(rt, Box::pin(work))
    };
    py_future.call_method1(
        "add_done_callback",
        (Canceller {
            handoff,
            port: port.unbind(),
            id,
        },),
    )?;
    Ok(py_future)
}

type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A call's Rust part: first polled on the caller's thread, so that a request whose
/// server's input is free is written before `awaitable` returns; then, once something
/// wakes it (the answer, on a runtime thread), spawned from that thread onto the runtime.
/// So the way in costs no runtime wake-up, only the way back does.
struct Handoff {
    stage: Mutex<Stage>,
    runtime: tokio::runtime::Handle,
}

enum Stage {
    /// Being polled on the caller's thread; `woken` if its waker fired meanwhile.
    FirstPoll { woken: bool },
    /// Waiting for its waker.
    Parked(Work),
    /// On the runtime.
    Running(tokio::task::AbortHandle),
    /// Finished, or cancelled.
    Over,
}

impl Handoff {
    fn start(rt: &tokio::runtime::Runtime, mut work: Work) -> Arc<Self> {
        let handoff = Arc::new(Handoff {
            stage: Mutex::new(Stage::FirstPoll { woken: false }),
            runtime: rt.handle().clone(),
        });
        let waker = Waker::from(Arc::clone(&handoff));
        let done = {
            // Timers, IO and spawns in the first poll need the runtime's context.
            let _context = rt.enter();
            work.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
        };
        let mut stage = lock(&handoff.stage);
        *stage = match (&*stage, done) {
            (_, true) => Stage::Over,
            (Stage::FirstPoll { woken: true }, false) => {
                Stage::Running(handoff.runtime.spawn(work).abort_handle())
            }
            (_, false) => Stage::Parked(work),
        };
        drop(stage);
        handoff
    }

    /// Runs `work` on the runtime from the start.
    fn spawn(rt: &tokio::runtime::Runtime, work: Work) -> Arc<Self> {
        Arc::new(Handoff {
            stage: Mutex::new(Stage::Running(rt.spawn(work).abort_handle())),
            runtime: rt.handle().clone(),
        })
    }

    /// Stops the work wherever it is.
    fn cancel(&self) {
        let stage = std::mem::replace(&mut *lock(&self.stage), Stage::Over);
        match stage {
            Stage::Running(task) => task.abort(),
            // Dropped here, outside the lock (its drop tells the server it was cancelled).
            Stage::Parked(work) => drop(work),
            Stage::FirstPoll { .. } | Stage::Over => {}
        }
    }
}

impl Wake for Handoff {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut stage = lock(&self.stage);
        match std::mem::replace(&mut *stage, Stage::Over) {
            Stage::FirstPoll { .. } => *stage = Stage::FirstPoll { woken: true },
            Stage::Parked(work) => {
                *stage = Stage::Running(self.runtime.spawn(work).abort_handle());
            }
            other => *stage = other,
        }
    }
}

/// What the runtime threads share with a loop's port: the finished outcomes, and the
/// socket that wakes the loop.
struct Bell {
    finished: Mutex<Vec<(u64, Outcome)>>,
    ringer: UnixStream,
}

impl Bell {
    /// Queues `outcome` for future `id` and wakes the loop (runs on a runtime thread).
    fn ring(&self, id: u64, outcome: Outcome) {
        let first = {
            let mut finished = lock(&self.finished);
            finished.push((id, outcome));
            finished.len() == 1
        };
        // One byte per batch: the loop takes the whole queue when it wakes. A full socket
        // buffer means a wake-up is pending anyway; a closed one, that nobody listens.
        if first {
            let _ = (&self.ringer).write(&[1]);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The way back into one event loop: its reader callback sets the futures whose Rust
/// part finished.
#[pyclass(module = "mcp_rust._native", frozen)]
pub struct Port {
    bell: Arc<Bell>,
    /// The loop watches this end (`add_reader`).
    listener: UnixStream,
    /// The asyncio futures still waiting, by id (touched only on the loop thread).
    waiting: Mutex<HashMap<u64, Py<PyAny>>>,
    next_id: AtomicU64,
}

impl Port {
    /// The port of `event_loop`, made and registered with it on first use.
    ///
    /// Nothing that could run Python code (and so let another thread take the GIL, which
    /// might then wait for this lock) happens while [`PORTS`] is locked: pointer
    /// comparisons and reference counts only; ports are made, and loops let go of, outside.
    fn of<'py>(event_loop: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Port>> {
        let py = event_loop.py();
        {
            let ports = lock(&PORTS);
            if let Some((_, port)) = ports.iter().find(|(l, _)| l.is(event_loop)) {
                return Ok(port.bind(py).clone());
            }
        }
        let (listener, ringer) = UnixStream::pair()?;
        listener.set_nonblocking(true)?;
        ringer.set_nonblocking(true)?;
        let fd = listener.as_raw_fd();
        let port = Bound::new(
            py,
            Port {
                bell: Arc::new(Bell {
                    finished: Mutex::new(Vec::new()),
                    ringer,
                }),
                listener,
                waiting: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
            },
        )?;
        event_loop.call_method1("add_reader", (fd, port.clone()))?;
        let known: Vec<Py<PyAny>> = lock(&PORTS).iter().map(|(l, _)| l.clone_ref(py)).collect();
        let closed: Vec<Py<PyAny>> = known
            .into_iter()
            .filter(|l| {
                l.bind(py)
                    .call_method0("is_closed")
                    .and_then(|closed| closed.is_truthy())
                    .unwrap_or(true)
            })
            .collect();
        let gone = {
            let mut ports = lock(&PORTS);
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut *ports)
                .into_iter()
                .partition(|(l, _)| closed.iter().any(|c| c.is(l)));
            *ports = kept;
            ports.push((event_loop.clone().unbind(), port.clone().unbind()));
            gone
        };
        drop((gone, closed));
        Ok(port)
    }

    /// Registers `future` as waiting; returns its id.
    fn expect(&self, future: Py<PyAny>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.waiting).insert(id, future);
        id
    }
}

#[pymethods]
impl Port {
    /// Reader callback (runs on the loop): sets every future whose Rust part finished,
    /// unless it was cancelled meanwhile.
    fn __call__(&self, py: Python<'_>) {
        let mut drained = [0u8; 64];
        while matches!((&self.listener).read(&mut drained), Ok(n) if n > 0) {}
        // Taken after the bell is emptied: an outcome queued in between rings again.
        let finished = std::mem::take(&mut *lock(&self.bell.finished));
        for (id, outcome) in finished {
            let Some(future) = lock(&self.waiting).remove(&id) else {
                continue; // cancelled
            };
            if let Err(e) = settle(future.bind(py), outcome(py)) {
                tracing::debug!(error = %e, "an awaitable's outcome was not delivered");
            }
        }
    }
}

/// Sets `future`'s result or exception from `outcome`, unless it is already done.
fn settle(future: &Bound<'_, PyAny>, outcome: PyResult<Py<PyAny>>) -> PyResult<()> {
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    match outcome {
        Ok(value) => future.call_method1("set_result", (value,))?,
        Err(error) => future.call_method1("set_exception", (error.into_value(future.py()),))?,
    };
    Ok(())
}

/// Done-callback of an awaitable: a cancelled awaitable stops its Rust future and is no
/// longer waited for.
#[pyclass(module = "mcp_rust._native")]
struct Canceller {
    handoff: Arc<Handoff>,
    port: Py<Port>,
    id: u64,
}

#[pymethods]
impl Canceller {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.handoff.cancel();
            lock(&self.port.get().waiting).remove(&self.id);
        }
        Ok(())
    }
}
