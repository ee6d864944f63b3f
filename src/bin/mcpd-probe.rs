//! `mcpd-probe URL`: a minimal HTTP/1.1 GET for container health checks, so that an image
//! without curl can probe a node's `/readyz` (`mcpd-probe http://127.0.0.1:9400/readyz`).
//!
//! Exit status: 0 when the answer is 2xx, 1 for any other status, 2 when the URL is not a
//! plain `http://host:port/path` URL or the endpoint cannot be reached. The response body
//! is printed, so `docker inspect` shows why a node is not ready.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// Connect, read and write timeout.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Largest response read; health answers are a line of text.
const MAX_RESPONSE: u64 = 64 * 1024;

/// Why a probe could not get an answer.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("usage: mcpd-probe http://HOST:PORT/PATH")]
    Usage,
    #[error("only http:// URLs are supported, got {0:?}")]
    Scheme(String),
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("{0} resolves to no address")]
    NoAddress(String),
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("malformed HTTP response from {0}")]
    Malformed(String),
}

/// The parts of the URL the probe needs.
struct Target {
    authority: String,
    path: String,
}

fn parse(url: &str) -> Result<Target, ProbeError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ProbeError::Scheme(url.to_owned()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(ProbeError::Usage);
    }
    let authority = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok(Target {
        authority,
        path: path.to_owned(),
    })
}

/// Sends the request; returns the status code and the body.
fn probe(target: &Target) -> Result<(u16, String), ProbeError> {
    let io = |source| ProbeError::Io {
        addr: target.authority.clone(),
        source,
    };
    let addr = target
        .authority
        .to_socket_addrs()
        .map_err(|source| ProbeError::Resolve {
            host: target.authority.clone(),
            source,
        })?
        .next()
        .ok_or_else(|| ProbeError::NoAddress(target.authority.clone()))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: mcpd-probe\r\n\r\n",
        target.path, target.authority
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(io)?;
    let text = String::from_utf8_lossy(&raw);
    let malformed = || ProbeError::Malformed(target.authority.clone());
    let status_line = text.lines().next().ok_or_else(malformed)?;
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/"))
        .ok_or_else(malformed)?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let result = match (args.next(), args.next()) {
        (Some(url), None) => parse(&url).and_then(|target| probe(&target)),
        _ => Err(ProbeError::Usage),
    };
    match result {
        Ok((code, body)) => {
            print!("{body}");
            if (200..300).contains(&code) {
                ExitCode::SUCCESS
            } else {
                eprintln!("mcpd-probe: HTTP {code}");
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("mcpd-probe: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = parse("http://127.0.0.1:9400/readyz").unwrap();
        assert_eq!(t.authority, "127.0.0.1:9400");
        assert_eq!(t.path, "/readyz");
        let t = parse("http://node1").unwrap();
        assert_eq!(t.authority, "node1:80");
        assert_eq!(t.path, "/");
        assert!(parse("https://x/readyz").is_err());
        assert!(parse("http:///readyz").is_err());
    }

    #[test]
    fn reads_status_and_body() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for reply in ["200 OK", "503 Service Unavailable"] {
                let (mut conn, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let n = conn.read(&mut buf).unwrap();
                assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /readyz HTTP/1.1"));
                write!(conn, "HTTP/1.1 {reply}\r\ncontent-length: 6\r\n\r\nstate\n").unwrap();
            }
        });
        let target = parse(&format!("http://{addr}/readyz")).unwrap();
        assert_eq!(probe(&target).unwrap(), (200, "state\n".to_owned()));
        assert_eq!(probe(&target).unwrap().0, 503);
        server.join().unwrap();
        // Nothing listens any more.
        assert!(matches!(probe(&target), Err(ProbeError::Io { .. })));
    }
}
