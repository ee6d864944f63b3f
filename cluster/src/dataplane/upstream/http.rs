//! The Streamable HTTP transport: each JSON-RPC message is one POST to the server's MCP
//! endpoint; the answer is a JSON body or an SSE stream carrying it.
//!
//! In the handshake era the server hands out an `Mcp-Session-Id` on `initialize`, which
//! every later request carries; a 404 means the server forgot the session, so the wire
//! reports itself dead and the request as never processed, and the pool reconnects. In the
//! stateless era requests also carry `Mcp-Method` (and `Mcp-Name` for `tools/call`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use futures::StreamExt;
use mcp_raft::registry::spec::{Auth, ServerSpec, Transport};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use serde_json::Value;

use super::{Era, SessionOptions, UpstreamError, Wire};
use crate::dataplane::jsonrpc::{self, Incoming, RawResponse};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";
/// Default header of `api_key` auth.
const DEFAULT_API_KEY_HEADER: &str = "x-api-key";

/// A Streamable HTTP MCP endpoint.
pub struct HttpWire {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    auth: Option<Auth>,
    session_id: Mutex<Option<String>>,
    alive: AtomicBool,
    max_bytes: usize,
    label: String,
}

fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), UpstreamError> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| UpstreamError::Connect(format!("invalid header name {name:?}")))?;
    let value = HeaderValue::from_str(value)
        .map_err(|_| UpstreamError::Connect(format!("invalid value for header {name}")))?;
    Ok((name, value))
}

impl HttpWire {
    /// A wire to the endpoint of an http `spec`. Nothing is sent until the first request.
    pub fn new(spec: &ServerSpec, options: &SessionOptions) -> Result<Self, UpstreamError> {
        let Transport::Http { url, headers, auth } = &spec.transport else {
            return Err(UpstreamError::Connect("not an http spec".into()));
        };
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let (name, value) = header_pair(name, value)?;
            map.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(options.idle_timeout)
            .tcp_keepalive(options.keepalive.then_some(options.keepalive_interval))
            .build()
            .map_err(|e| UpstreamError::Connect(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            client,
            url: url.clone(),
            headers: map,
            auth: auth.clone(),
            session_id: Mutex::new(None),
            alive: AtomicBool::new(true),
            max_bytes: options.max_message_bytes,
            label: options.label.clone(),
        })
    }

    fn session_id(&self) -> Option<String> {
        self.session_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn post(
        &self,
        message: &Value,
        era: Option<&Era>,
    ) -> Result<reqwest::RequestBuilder, UpstreamError> {
        let mut request = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(message.to_string());
        if let Some(era) = era {
            request = request.header(VERSION_HEADER, era.protocol_version());
            if *era == Era::Stateless {
                if let Some(method) = jsonrpc::method(message) {
                    request = request.header(METHOD_HEADER, method);
                    if method == "tools/call" {
                        if let Some(name) = message.pointer("/params/name").and_then(Value::as_str)
                        {
                            request = request.header(NAME_HEADER, name);
                        }
                    }
                }
            }
        }
        if let Some(id) = self.session_id() {
            request = request.header(SESSION_HEADER, id);
        }
        request = match &self.auth {
            None => request,
            Some(Auth::ApiKey { key, header }) => {
                let (name, value) =
                    header_pair(header.as_deref().unwrap_or(DEFAULT_API_KEY_HEADER), key)?;
                request.header(name, value)
            }
            Some(Auth::Bearer { token }) => request.bearer_auth(token),
            Some(Auth::Basic { username, password }) => {
                request.basic_auth(username, Some(password))
            }
        };
        Ok(request)
    }

    async fn send(
        &self,
        message: &Value,
        era: Option<&Era>,
    ) -> Result<reqwest::Response, UpstreamError> {
        if !self.is_alive() {
            return Err(UpstreamError::Connect("HTTP session expired".into()));
        }
        let response = self.post(message, era)?.send().await.map_err(|e| {
            if e.is_connect() {
                UpstreamError::Connect(format!("{}: {e}", self.url))
            } else {
                UpstreamError::Closed(format!("{}: {e}", self.url))
            }
        })?;
        if let Some(id) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            let mut session = self.session_id.lock().unwrap_or_else(|e| e.into_inner());
            if session.as_deref() != Some(id) {
                *session = Some(id.to_owned());
            }
        }
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND && self.session_id().is_some() {
            // The server no longer knows our session and did not process the request.
            self.alive.store(false, Ordering::SeqCst);
            tracing::info!(instance = %self.label, "HTTP session expired (404); reconnecting");
            return Err(UpstreamError::Connect("HTTP session expired (404)".into()));
        }
        if !status.is_success() {
            let body = self.read_body(response).await.unwrap_or_default();
            let body: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(UpstreamError::Http {
                status: status.as_u16(),
                body,
            });
        }
        Ok(response)
    }

    /// Reads the body, refusing to buffer more than the message limit.
    async fn read_body(&self, response: reqwest::Response) -> Result<Vec<u8>, UpstreamError> {
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(UpstreamError::TooLarge {
                limit: self.max_bytes,
            });
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| UpstreamError::Closed(format!("reading body: {e}")))?;
            if body.len() + chunk.len() > self.max_bytes {
                return Err(UpstreamError::TooLarge {
                    limit: self.max_bytes,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The JSON-RPC response for `id` in an SSE body (`data:` lines of `message` events).
fn response_from_sse(body: &str, id: &Value) -> Result<RawResponse, UpstreamError> {
    let mut data = String::new();
    let mut events = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        } else if line.is_empty() && !data.is_empty() {
            events.push(std::mem::take(&mut data));
        }
    }
    if !data.is_empty() {
        events.push(data);
    }
    for event in events {
        let message = Incoming::parse(event)
            .map_err(|_| UpstreamError::Protocol("SSE event data is not JSON".into()))?;
        if let Incoming::Response(response) = message {
            if response.id() == *id {
                return Ok(response);
            }
        }
    }
    Err(UpstreamError::Protocol(
        "SSE stream ended without the response".into(),
    ))
}

impl Wire for HttpWire {
    async fn roundtrip(
        &self,
        request: Value,
        era: Option<&Era>,
    ) -> Result<RawResponse, UpstreamError> {
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let response = self.send(&request, era).await?;
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let body = self.read_body(response).await?;
        let text = String::from_utf8(body)
            .map_err(|_| UpstreamError::Protocol("response body is not UTF-8".into()))?;
        if is_sse {
            return response_from_sse(&text, &id);
        }
        match Incoming::parse(text) {
            Ok(Incoming::Response(response)) => Ok(response),
            Ok(Incoming::Other(_)) => Err(UpstreamError::Protocol(
                "response is not a JSON-RPC response".into(),
            )),
            Err(not_json) => {
                let shown: String = not_json.text.chars().take(120).collect();
                Err(UpstreamError::Protocol(format!(
                    "response body is not JSON: {shown:?}"
                )))
            }
        }
    }

    async fn notify(&self, message: Value, era: Option<&Era>) -> Result<(), UpstreamError> {
        let response = self.send(&message, era).await?;
        drop(response);
        Ok(())
    }

    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    async fn shutdown(&self) {
        self.alive.store(false, Ordering::SeqCst);
        let Some(id) = self.session_id() else {
            return;
        };
        // Ending the session is a courtesy; the server expires it anyway.
        let _ = self
            .client
            .delete(&self.url)
            .header(SESSION_HEADER, id)
            .send()
            .await;
    }
}

#[cfg(test)]
#[path = "http_props.rs"]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_response_in_an_sse_body() {
        let body = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n";
        let message = response_from_sse(body, &json!(7)).unwrap().to_value();
        assert_eq!(message["id"], 7);
        assert!(response_from_sse("data: {\"id\": 1, \"result\": 1}\n\n", &json!(2)).is_err());
    }
}
