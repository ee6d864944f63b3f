//! `mcp-test-server`: a small MCP server that misbehaves on request, for tests, benchmarks
//! and the `mcpd dev` demo. Speaks both protocol eras (stateless `server/discover` and the
//! `initialize` handshake) over stdio or Streamable HTTP.
//!
//! Tools: echo, add, sleep, fail (JSON-RPC error), tool_error (isError result), crash
//! (exit without answering), garbage (non-JSON output), huge (a result of N bytes),
//! whoami (instance name and pid), counter (calls seen by this process), progress (steps
//! with `notifications/progress` when the call has a progressToken, stdio only). With `--content`,
//! also resources, a resource template, a prompt and completions (see `content`).

mod content;
mod protocol;

use std::sync::Arc;

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use protocol::{Outcome, Server};

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(name = "mcp-test-server", about = "An MCP server for tests and demos")]
struct Args {
    /// stdio or http.
    #[arg(long, default_value = "stdio")]
    transport: String,
    /// HTTP listen port (0 picks one; the address is printed on stderr).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// HTTP listen address (0.0.0.0 inside a container, so a published port reaches it).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Name reported by the whoami tool (default: the pid).
    #[arg(long)]
    instance_name: Option<String>,
    /// Exit with status 3 at once (a server that cannot start).
    #[arg(long)]
    crash_on_start: bool,
    /// Sleep this long before serving (a server that is slow to start).
    #[arg(long, default_value_t = 0)]
    startup_delay_ms: u64,
    /// Answer health probes (ping, server/discover) with an error.
    #[arg(long)]
    fail_health: bool,
    /// Refuse `server/discover`: behave like a handshake-era-only server.
    #[arg(long)]
    handshake_only: bool,
    /// Serve resources, a resource template, a prompt and completions besides the tools.
    #[arg(long)]
    content: bool,
}

fn main() -> std::io::Result<()> {
    // One thread: with stdin and stdout as non-blocking pipes (see `stdio_streams`), a
    // call costs this server one wake-up and a few microseconds, so a benchmark measures
    // the path to it, not the server.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(Args::parse()))
}

async fn serve(args: Args) -> std::io::Result<()> {
    if args.crash_on_start {
        eprintln!("mcp-test-server: crashing on start as asked");
        std::process::exit(3);
    }
    if args.startup_delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(args.startup_delay_ms)).await;
    }
    let server = Arc::new(Server::new(
        args.instance_name
            .clone()
            .unwrap_or_else(|| std::process::id().to_string()),
        args.fail_health,
        args.handshake_only,
        args.content,
    ));
    match args.transport.as_str() {
        "stdio" => serve_stdio(server).await,
        "http" => serve_http(server, args.host, args.port).await,
        other => {
            eprintln!("unknown transport {other:?} (stdio or http)");
            std::process::exit(2);
        }
    }
}

async fn serve_stdio(server: Arc<Server>) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<String>(1024);
    server.set_notifier(tx.clone());
    let (stdin, mut stdout) = stdio_streams();
    let writer = tokio::spawn(async move {
        while let Some(mut line) = rx.recv().await {
            line.push('\n');
            if stdout.write_all(line.as_bytes()).await.is_err() {
                break;
            }
            if rx.is_empty() && stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let mut lines = BufReader::new(stdin).lines();
    while let Some(line) = lines.next_line().await? {
        let server = Arc::clone(&server);
        let tx = tx.clone();
        // Each request in its own task: a sleeping call must not hold up the others.
        tokio::spawn(async move {
            match server.handle_line(&line).await {
                Outcome::Reply(reply) => {
                    let _ = tx.send(reply.to_string()).await;
                }
                Outcome::Garbage(text) => {
                    let _ = tx.send(text).await;
                }
                Outcome::Silent => {}
            }
        });
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}

type Input = Box<dyn AsyncRead + Unpin + Send>;
type Output = Box<dyn AsyncWrite + Unpin + Send>;

/// stdin and stdout as non-blocking pipes read and written on the runtime's own thread,
/// when they are pipes (as a node runs the server); tokio's stdin and stdout otherwise (a
/// terminal, a file), which go through a blocking thread for every read and write.
fn stdio_streams() -> (Input, Output) {
    use std::os::fd::AsFd;
    use tokio::net::unix::pipe;

    let input = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| pipe::Receiver::from_file(std::fs::File::from(fd)));
    let output = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| pipe::Sender::from_file(std::fs::File::from(fd)));
    let input: Input = match input {
        Ok(pipe) => Box::new(pipe),
        Err(_) => Box::new(tokio::io::stdin()),
    };
    let output: Output = match output {
        Ok(pipe) => Box::new(pipe),
        Err(_) => Box::new(tokio::io::stdout()),
    };
    (input, output)
}

async fn serve_http(server: Arc<Server>, host: std::net::IpAddr, port: u16) -> std::io::Result<()> {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::post;

    async fn handle(
        axum::extract::State(server): axum::extract::State<Arc<Server>>,
        headers: HeaderMap,
        body: String,
    ) -> axum::response::Response {
        let session = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match server.handle_http(&body, session.as_deref()).await {
            protocol::HttpOutcome::Json { body, session } => {
                let mut response = (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    body.to_string(),
                )
                    .into_response();
                if let Some(id) = session.and_then(|s| s.parse().ok()) {
                    response.headers_mut().insert("mcp-session-id", id);
                }
                response
            }
            protocol::HttpOutcome::Accepted => StatusCode::ACCEPTED.into_response(),
            protocol::HttpOutcome::Status(code, text) => (
                StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
                text,
            )
                .into_response(),
            protocol::HttpOutcome::Garbage(text) => (StatusCode::OK, text).into_response(),
        }
    }

    let app = axum::Router::new()
        .route(
            "/mcp",
            post(handle)
                .delete(|| async { StatusCode::OK })
                .get(|| async { StatusCode::METHOD_NOT_ALLOWED }),
        )
        .with_state(server);
    let listener = tokio::net::TcpListener::bind((host, port)).await?;
    eprintln!("listening on http://{}/mcp", listener.local_addr()?);
    axum::serve(listener, app).await
}
