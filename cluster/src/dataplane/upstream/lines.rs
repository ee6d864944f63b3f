//! The session core of the transports whose server speaks one JSON-RPC message per line
//! over a byte stream: a child process's stdin/stdout ([`super::stdio`]) and a container's
//! attached stdin/stdout ([`super::docker`]). Both get from here, the same way: the
//! requests waiting for an answer (by id), the server's input (written by the caller when
//! it is free, else by a writer task draining a bounded queue), a reader task matching response lines to their waiters, answering the
//! server's own requests and passing on its progress and list-change notifications, and
//! the session's death, which fails every waiter with its reason.
//!
//! A response line is not parsed into a tree: it is handed to its waiter as the text the
//! server wrote ([`RawResponse`]), with its id and error-ness read on the way.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use super::UpstreamError;
use crate::dataplane::jsonrpc::{self, Incoming, RawResponse};
use crate::dataplane::list_changes::ListChangeSink;

/// Requests queued for the server's input before senders wait (backpressure, not an
/// unbounded queue).
const WRITE_QUEUE: usize = 1024;

/// Where a request's progress notifications go (their `params`, as the server sent them).
pub type ProgressSink = mpsc::UnboundedSender<Value>;

type Waiter = oneshot::Sender<Result<RawResponse, UpstreamError>>;
type Pending = Mutex<HashMap<u64, Waiter>>;

/// What a line session and its tasks share; also the alive/dead state of a transport that
/// watches its server some other way (a container's exit).
pub(crate) struct LineState {
    pending: Pending,
    alive: AtomicBool,
    /// Why the session died, once it has.
    death: Mutex<Option<UpstreamError>>,
    label: String,
    /// What the logs call this kind of session ("stdio", "container").
    kind: &'static str,
    /// Tells the writer to drop the server's input: the first, polite step of a stop.
    close_input: tokio::sync::Notify,
    /// Progress token -> where the server's `notifications/progress` for it go (tokens
    /// are minted unique by the caller, see `Session::request_with_progress`).
    progress: Mutex<HashMap<String, ProgressSink>>,
    /// Where the server's `notifications/*/list_changed` are reported.
    list_changes: Option<ListChangeSink>,
}

impl LineState {
    /// The state of a new, live session of instance `label`.
    pub(crate) fn new(
        label: &str,
        kind: &'static str,
        list_changes: Option<ListChangeSink>,
    ) -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::default(),
            alive: AtomicBool::new(true),
            death: Mutex::new(None),
            label: label.to_owned(),
            kind,
            close_input: tokio::sync::Notify::new(),
            progress: Mutex::default(),
            list_changes,
        })
    }

    /// Marks the session dead and fails every waiting request with `error`.
    pub(crate) fn die(&self, error: UpstreamError) {
        self.alive.store(false, Ordering::SeqCst);
        let mut death = self.death.lock().unwrap_or_else(|e| e.into_inner());
        if death.is_none() {
            tracing::warn!(instance = %self.label, error = %error, "{} session ended", self.kind);
            *death = Some(error.clone());
        }
        drop(death);
        let waiting: Vec<_> = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for (_, tx) in waiting {
            let _ = tx.send(Err(error.clone()));
        }
    }

    /// Why the session ended (a generic reason while it lives).
    pub(crate) fn death(&self) -> UpstreamError {
        self.death
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| UpstreamError::Closed("session ended".into()))
    }

    /// False once the session died.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Closes the server's input (it sees end of file).
    pub(crate) fn close_input(&self) {
        self.close_input.notify_one();
    }

    /// The instance this session belongs to.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    fn take_waiter(&self, id: u64) -> Option<Waiter> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
    }
}

/// The server's input while no task is writing to it: a caller that finds it here, with
/// nothing queued ahead, writes its line itself.
struct Slot {
    /// Taken by the writer task while it writes (and for good once the input is closed).
    writer: Option<Box<dyn AsyncWrite + Unpin + Send>>,
    /// The rest of a line a caller could write only in part: the next bytes the server
    /// must see, written by the writer task before anything else.
    tail: Option<Vec<u8>>,
}

type SharedSlot = Arc<Mutex<Slot>>;

fn lock_slot(slot: &SharedSlot) -> std::sync::MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// A line session: a request goes out from its caller when the input is free (one
/// non-blocking write, so a caller that gives up never leaves half a line behind), else
/// through the writer task's queue; answers come back from the reader task.
pub(crate) struct Lines {
    state: Arc<LineState>,
    input: mpsc::Sender<String>,
    slot: SharedSlot,
}

impl Lines {
    /// Starts the writer task on `writer` (the server's input) and the reader task on
    /// `reader` (its output, at most `limit` bytes a line).
    pub(crate) fn start<R, W>(state: Arc<LineState>, reader: R, writer: W, limit: usize) -> Self
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (input, queued) = mpsc::channel(WRITE_QUEUE);
        let slot = Arc::new(Mutex::new(Slot {
            writer: Some(Box::new(writer)),
            tail: None,
        }));
        tokio::spawn(write_lines(Arc::clone(&slot), queued, Arc::clone(&state)));
        tokio::spawn(read_lines(
            FramedRead::new(reader, LinesCodec::new_with_max_length(limit)),
            Arc::clone(&state),
            input.clone(),
            limit,
        ));
        Self { state, input, slot }
    }

    /// The shared state (death, liveness).
    pub(crate) fn state(&self) -> &Arc<LineState> {
        &self.state
    }

    async fn send_line(&self, message: &Value) -> Result<(), UpstreamError> {
        if !self.state.is_alive() {
            return Err(self.state.death());
        }
        let mut line = serde_json::to_string(message)
            .map_err(|e| UpstreamError::Protocol(format!("cannot encode request: {e}")))?;
        // The newline goes in here, where the string is made, not as a second write.
        line.push('\n');
        // Only with nothing queued ahead, so a caller's lines keep their order.
        if self.input.capacity() == WRITE_QUEUE {
            match self.write_now(line)? {
                None => return Ok(()),
                Some(unwritten) => line = unwritten,
            }
        }
        self.input.send(line).await.map_err(|_| self.state.death())
    }

    /// Writes `line` to the server's input here and now if it is free, in one non-blocking
    /// attempt: no await while the input is held, so nothing a caller drops can cut a line
    /// in two. Hands the line back when nothing of it was written (input busy, or its
    /// buffer full): then it goes through the queue. Saves waking the writer task, which
    /// on a small VM is a thread hand-off on every call.
    fn write_now(&self, line: String) -> Result<Option<String>, UpstreamError> {
        let Ok(mut slot) = self.slot.try_lock() else {
            return Ok(Some(line));
        };
        if slot.tail.is_some() {
            return Ok(Some(line));
        }
        let Some(writer) = slot.writer.as_mut() else {
            return Ok(Some(line));
        };
        let mut cx = Context::from_waker(Waker::noop());
        let written = match Pin::new(&mut *writer).poll_write(&mut cx, line.as_bytes()) {
            Poll::Pending | Poll::Ready(Ok(0)) => return Ok(Some(line)),
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => {
                let error = UpstreamError::Closed(format!("writing to stdin failed: {e}"));
                drop(slot);
                self.state.die(error.clone());
                return Err(error);
            }
        };
        let flushed = Pin::new(&mut *writer).poll_flush(&mut cx);
        if written < line.len() {
            slot.tail = Some(line.as_bytes()[written..].to_vec());
        }
        let rest_for_the_task = slot.tail.is_some() || flushed.is_pending();
        drop(slot);
        if let Poll::Ready(Err(e)) = flushed {
            let error = UpstreamError::Closed(format!("flushing stdin failed: {e}"));
            self.state.die(error.clone());
            return Err(error);
        }
        if rest_for_the_task {
            // An empty line wakes the writer task to finish (tail, flush); a full queue
            // wakes it anyway.
            let _ = self.input.try_send(String::new());
        }
        Ok(None)
    }

    /// Sends `request` (its id numeric and session-unique) and waits for its response. A
    /// caller that gives up (drops this future) tells the server with
    /// `notifications/cancelled`.
    pub(crate) async fn roundtrip(&self, request: &Value) -> Result<RawResponse, UpstreamError> {
        let Some(id) = request.get("id").and_then(Value::as_u64) else {
            return Err(UpstreamError::Protocol(
                "internal request id must be numeric".into(),
            ));
        };
        let (tx, rx) = oneshot::channel();
        self.state
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        // If the caller gives up (timeout), the entry must not stay behind.
        let mut guard = PendingGuard {
            state: &self.state,
            id,
            input: &self.input,
            answered: false,
        };
        if let Err(e) = self.send_line(request).await {
            // Not written at all: the server never saw it, so there is nothing to cancel.
            guard.answered = true;
            self.state.take_waiter(id);
            return Err(match e {
                UpstreamError::Closed(reason) => UpstreamError::Connect(reason),
                other => other,
            });
        }
        let answer = rx.await.unwrap_or_else(|_| Err(self.state.death()));
        guard.answered = true;
        answer
    }

    /// Sends a notification.
    pub(crate) async fn notify(&self, message: &Value) -> Result<(), UpstreamError> {
        self.send_line(message).await
    }

    /// Sends the server's progress notifications for `token` to `sink` until
    /// [`Lines::unwatch_progress`].
    pub(crate) fn watch_progress(&self, token: &str, sink: ProgressSink) {
        self.state
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_owned(), sink);
    }

    /// Stops sending progress for `token`.
    pub(crate) fn unwatch_progress(&self, token: &str) {
        self.state
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }
}

struct PendingGuard<'a> {
    state: &'a LineState,
    id: u64,
    input: &'a mpsc::Sender<String>,
    /// False while the caller waits: dropped then, the caller gave up (timeout, the
    /// client cancelled or went away).
    answered: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        // Answered ones were taken out by the reader (or by `die`); only a caller that
        // stopped waiting leaves its entry behind.
        if self.answered {
            return;
        }
        self.state.take_waiter(self.id);
        // Tell the server, so it can stop the work (MCP cancellation); best effort: a full
        // queue or a dead session has nobody to tell.
        let cancelled = jsonrpc::notification(
            "notifications/cancelled",
            serde_json::json!({"requestId": self.id, "reason": "the caller gave up"}),
        );
        let _ = self.input.try_send(format!("{cancelled}\n"));
    }
}

/// Drains the queue into the server's input, after the rest of a line a caller wrote in
/// part; holds the input only while it writes, then leaves it in the slot for callers.
/// Closes the input when asked, when the queue ends, or after a failed write (which ends
/// the session).
async fn write_lines(slot: SharedSlot, mut queued: mpsc::Receiver<String>, state: Arc<LineState>) {
    loop {
        let first = tokio::select! {
            line = queued.recv() => match line {
                Some(line) => line,
                None => break,
            },
            () = state.close_input.notified() => break,
        };
        let (writer, tail) = {
            let mut slot = lock_slot(&slot);
            (slot.writer.take(), slot.tail.take())
        };
        let Some(mut writer) = writer else {
            break;
        };
        let written = async {
            if let Some(tail) = tail {
                writer.write_all(&tail).await?;
            }
            writer.write_all(first.as_bytes()).await?;
            // Everything queued meanwhile goes out before one flush: batches under load.
            while let Ok(line) = queued.try_recv() {
                writer.write_all(line.as_bytes()).await?;
            }
            writer.flush().await
        }
        .await;
        if let Err(e) = written {
            state.die(UpstreamError::Closed(format!(
                "writing to stdin failed: {e}"
            )));
            let _ = writer.shutdown().await;
            return;
        }
        lock_slot(&slot).writer = Some(writer);
    }
    // A container's attach connection is half-closed here, so that (with `StdinOnce`)
    // the server sees the end of its input; a pipe is closed when dropped.
    let writer = lock_slot(&slot).writer.take();
    if let Some(mut writer) = writer {
        let _ = writer.shutdown().await;
    }
}

/// Reads the server's output: one JSON-RPC message per line, until it ends or breaks the
/// protocol (which ends the session). Generic over the reader so the framing and response
/// matching can be driven by generated byte streams in tests.
pub(crate) async fn read_lines<R: AsyncRead + Unpin>(
    mut lines: FramedRead<R, LinesCodec>,
    state: Arc<LineState>,
    input: mpsc::Sender<String>,
    limit: usize,
) {
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(line) => line,
            Err(LinesCodecError::MaxLineLengthExceeded) => {
                state.die(UpstreamError::TooLarge { limit });
                return;
            }
            Err(LinesCodecError::Io(e)) => {
                state.die(UpstreamError::Closed(format!("reading stdout failed: {e}")));
                return;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match Incoming::parse(line) {
            Ok(Incoming::Response(response)) => deliver(&state, response),
            Ok(Incoming::Other(message)) => handle_message(&state, &input, message).await,
            Err(not_json) => {
                let shown: String = not_json.text.chars().take(120).collect();
                state.die(UpstreamError::Protocol(format!(
                    "server wrote non-JSON to stdout: {shown:?}"
                )));
                return;
            }
        }
    }
    state.die(UpstreamError::Closed("server closed stdout".into()));
}

/// Hands a response to the request waiting for its id.
fn deliver(state: &LineState, response: RawResponse) {
    let id = response.id_u64();
    match id.and_then(|id| state.take_waiter(id)) {
        Some(tx) => {
            let _ = tx.send(Ok(response));
        }
        None => {
            tracing::debug!(instance = %state.label, ?id, "response nobody waits for (timed out?)")
        }
    }
}

/// A message from the server that is not a response: its request (answered here) or a
/// notification (passed on where someone listens).
async fn handle_message(state: &LineState, input: &mpsc::Sender<String>, message: Value) {
    let method = jsonrpc::method(&message);
    if jsonrpc::is_request(&message) {
        // Server-to-client requests (sampling, roots, ...) are not relayed: answer so the
        // server does not wait forever. A ping gets its empty result.
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        let reply = if method == Some("ping") {
            serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {}})
        } else {
            jsonrpc::error_response(
                id,
                jsonrpc::METHOD_NOT_FOUND,
                "not supported by mcp-rust: requests to the client (sampling, elicitation, \
                 roots) are not relayed",
            )
        };
        let _ = input.send(format!("{reply}\n")).await;
        return;
    }
    match method {
        Some(
            "notifications/tools/list_changed"
            | "notifications/resources/list_changed"
            | "notifications/prompts/list_changed",
        ) => {
            if let Some(sink) = &state.list_changes {
                sink.announce();
            }
        }
        Some("notifications/progress") => {
            let params = message.get("params").cloned().unwrap_or(Value::Null);
            let token = params
                .get("progressToken")
                .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_owned));
            let sink = token.and_then(|t| {
                state
                    .progress
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&t)
                    .cloned()
            });
            if let Some(sink) = sink {
                let _ = sink.send(params);
            }
        }
        _ => {
            tracing::debug!(instance = %state.label, method = ?method, "notification from server")
        }
    }
}

#[cfg(test)]
#[path = "stdio_props.rs"]
mod props;

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, BufReader};

    use super::*;

    /// A line session over in-memory pipes, as a container's attach gives one: the server
    /// end is driven by the test.
    /// Requests larger than the input's buffer are written in part by their callers; the
    /// rest follows through the writer task before any other line, so the server reads
    /// every request whole and each caller gets its own answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lines_written_in_part_reach_the_server_whole() {
        // A 64-byte buffer: every request below needs several writes.
        let (session_end, server_end) = tokio::io::duplex(64);
        let (session_read, session_write) = tokio::io::split(session_end);
        let (server_read, mut server_write) = tokio::io::split(server_end);
        let state = LineState::new("s-0", "stdio", None);
        let lines = Arc::new(Lines::start(state, session_read, session_write, 1 << 16));

        // Echoes each request's text back, after checking the line is one whole request.
        let server = tokio::spawn(async move {
            let mut requests = BufReader::new(server_read).lines();
            while let Some(line) = requests.next_line().await.unwrap() {
                let request: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("a request arrived cut or mixed ({e}): {line}"));
                let reply = json!({"jsonrpc": "2.0", "id": request["id"],
                                   "result": {"text": request["params"]["text"]}});
                server_write
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .unwrap();
            }
        });

        let calls = (0..40u64).map(|id| {
            let lines = Arc::clone(&lines);
            tokio::spawn(async move {
                let text = format!("{id}-").repeat(100);
                let request = jsonrpc::request(id, "tools/call", json!({"text": text}));
                let response = lines.roundtrip(&request).await.unwrap();
                let response: Value = serde_json::from_str(response.as_str()).unwrap();
                assert_eq!(response["result"]["text"], text.as_str(), "call {id}");
            })
        });
        for call in futures::future::join_all(calls).await {
            call.unwrap();
        }
        server.abort();
    }

    #[tokio::test]
    async fn progress_and_list_changes_from_the_server_are_passed_on() {
        let (session_end, server_end) = tokio::io::duplex(4096);
        let (session_read, session_write) = tokio::io::split(session_end);
        let (server_read, mut server_write) = tokio::io::split(server_end);
        let (announced_tx, mut announced) = mpsc::unbounded_channel();
        let sink = ListChangeSink {
            server: "s".into(),
            sender: announced_tx,
        };
        let state = LineState::new("s-0", "container", Some(sink));
        let lines = Lines::start(state, session_read, session_write, 1 << 16);
        let (progress_tx, mut progress) = mpsc::unbounded_channel();
        lines.watch_progress("tok-1", progress_tx);

        let server = tokio::spawn(async move {
            let mut requests = BufReader::new(server_read).lines();
            let request: Value =
                serde_json::from_str(&requests.next_line().await.unwrap().unwrap()).unwrap();
            let id = request["id"].clone();
            let notes = [
                json!({"jsonrpc": "2.0", "method": "notifications/progress",
                       "params": {"progressToken": "tok-1", "progress": 1, "total": 2}})
                .to_string(),
                json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}).to_string(),
                // Written by hand: a tree would print 1.50 as 1.5.
                format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[],"n":1.50}}}}"#),
            ];
            for note in notes {
                server_write
                    .write_all(format!("{note}\n").as_bytes())
                    .await
                    .unwrap();
            }
            server_write.flush().await.unwrap();
            requests
        });

        let request = jsonrpc::request(
            9,
            "tools/call",
            json!({"name": "slow", "_meta": {"progressToken": "tok-1"}}),
        );
        let response = lines.roundtrip(&request).await.unwrap();
        // The result comes back as the server wrote it (1.50 is not re-printed as 1.5).
        assert!(response.as_str().contains(r#""n":1.50"#), "{response}");
        assert_eq!(response.id_u64(), Some(9));
        let step = progress.recv().await.unwrap();
        assert_eq!(step["progress"], 1);
        assert_eq!(announced.recv().await.as_deref(), Some("s"));
        lines.unwatch_progress("tok-1");
        drop(server.await.unwrap());
    }

    #[tokio::test]
    async fn a_session_whose_server_goes_away_fails_its_waiters() {
        let (session_end, server_end) = tokio::io::duplex(4096);
        let (session_read, session_write) = tokio::io::split(session_end);
        let state = LineState::new("s-0", "container", None);
        let lines = Lines::start(Arc::clone(&state), session_read, session_write, 1 << 16);
        let request = jsonrpc::request(1, "ping", json!({}));
        let (answer, ()) = tokio::join!(lines.roundtrip(&request), async {
            // The server reads nothing and goes away.
            drop(server_end);
        });
        assert!(answer.is_err());
        assert!(!state.is_alive());
    }
}
