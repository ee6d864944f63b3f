//! Tool calls that take long: the upstream's progress on the call's own SSE response,
//! and cancellation.
//!
//! Every `tools/call` runs as its own task, registered under its caller and JSON-RPC id
//! while it runs, so that `notifications/cancelled` naming it (MCP cancellation) stops
//! it, as does the client closing the connection. Stopping it drops the data plane's
//! request: the instance's slot is given back at once and the stdio session tells the
//! server `notifications/cancelled` for its own id (see `dataplane::upstream::stdio`).
//!
//! A call whose `_meta` carries a `progressToken` is answered with an SSE stream: the
//! server's `notifications/progress` for it, under the client's token, then the result.
//! The token the server sees is one the gateway mints per call, so that two clients'
//! tokens never meet on one server session. Progress comes from calls that run on this
//! node's instances; a call forwarded to another node reports none (the forwarding RPC
//! is unary).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Mutex;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use super::protocol;
use crate::dataplane::upstream::stdio::ProgressSink;

/// The JSON-RPC error code of a call the client cancelled (the one LSP uses; MCP leaves
/// the answer to a cancelled request open, and HTTP needs one).
pub const REQUEST_CANCELLED: i64 = -32800;

/// Who made a call and its JSON-RPC id: what `notifications/cancelled` names.
pub type CallKey = (String, String);

/// The key of the call with JSON-RPC `id` made by `owner` (the caller's principal and
/// session).
pub fn key(owner: &str, id: &Value) -> CallKey {
    let id = id.as_str().map_or_else(|| id.to_string(), str::to_owned);
    (owner.to_owned(), id)
}

/// The `progressToken` a request asks progress under, if any.
pub fn progress_token(params: &Value) -> Option<Value> {
    params
        .pointer("/_meta/progressToken")
        .filter(|t| t.is_string() || t.is_i64() || t.is_u64())
        .cloned()
}

/// A token for the upstream server, unique to one call.
pub fn mint_token() -> String {
    format!("mcpd-{:016x}", rand::random::<u64>())
}

/// The calls running through one gateway.
#[derive(Default)]
pub struct Calls {
    running: Mutex<HashMap<CallKey, AbortHandle>>,
}

/// Aborts a call's task when dropped (its client went away) unless it finished.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Calls {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<CallKey, AbortHandle>> {
        // Inserts and removes only: a poisoned lock holds consistent data.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the call `key` names; false if none runs.
    pub fn cancel(&self, key: &CallKey) -> bool {
        match self.running().remove(key) {
            Some(handle) => {
                handle.abort();
                true
            }
            None => false,
        }
    }

    /// Runs `call`, the reply to request `id`, cancellable under `key`.
    pub async fn run(
        &self,
        key: CallKey,
        id: Value,
        call: impl Future<Output = Value> + Send + 'static,
    ) -> Value {
        let task = tokio::spawn(call);
        let _abort = AbortOnDrop(task.abort_handle());
        self.running().insert(key.clone(), task.abort_handle());
        let outcome = task.await;
        self.running().remove(&key);
        outcome.unwrap_or_else(|_| cancelled(id))
    }
}

/// The answer to a cancelled call.
pub fn cancelled(id: Value) -> Value {
    protocol::error(id, REQUEST_CANCELLED, "the call was cancelled", None)
}

fn message(value: &Value) -> Event {
    Event::default().event("message").data(value.to_string())
}

/// The SSE answer to a call with progress: `call` gets the sink of the server's progress
/// (under the minted token) and resolves to the reply; each notification goes out under
/// `client_token`, then the reply.
pub fn streamed<F, Fut>(client_token: Value, call: F) -> Response
where
    F: FnOnce(ProgressSink) -> Fut + Send + 'static,
    Fut: Future<Output = Value> + Send + 'static,
{
    let (sink, progress) = mpsc::unbounded_channel::<Value>();
    let (reply_tx, reply) = oneshot::channel::<Value>();
    let task = tokio::spawn(async move {
        let _ = reply_tx.send(call(sink).await);
    });
    struct State {
        progress: mpsc::UnboundedReceiver<Value>,
        reply: Option<oneshot::Receiver<Value>>,
        /// Messages due before anything else: the last progress and the reply.
        due: std::collections::VecDeque<Value>,
        token: Value,
        _abort: AbortOnDrop,
    }
    let state = State {
        progress,
        reply: Some(reply),
        due: std::collections::VecDeque::new(),
        token: client_token,
        _abort: AbortOnDrop(task.abort_handle()),
    };
    let note = |token: &Value, mut params: Value| {
        if let Some(object) = params.as_object_mut() {
            object.insert("progressToken".into(), token.clone());
        }
        json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": params})
    };
    let events = futures::stream::unfold(state, move |mut state| async move {
        if let Some(next) = state.due.pop_front() {
            return Some((Ok::<_, Infallible>(message(&next)), state));
        }
        let reply = state.reply.as_mut()?;
        tokio::select! {
            biased;
            Some(params) = state.progress.recv() => {
                let event = message(&note(&state.token, params));
                Some((Ok(event), state))
            }
            answer = reply => {
                // Progress the server sent before its reply was read first: it goes out
                // before the reply.
                state.reply = None;
                while let Ok(params) = state.progress.try_recv() {
                    state.due.push_back(note(&state.token, params));
                }
                let answer = answer.unwrap_or_else(|_| json!({"jsonrpc": "2.0", "id": null,
                    "error": {"code": protocol::INTERNAL_ERROR, "message": "the call ended without an answer"}}));
                state.due.push_back(answer);
                let first = state.due.pop_front().unwrap_or(Value::Null);
                Some((Ok(message(&first)), state))
            }
        }
    });
    Sse::new(events).into_response()
}
