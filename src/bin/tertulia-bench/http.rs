//! A minimal HTTP/1.1 client for the generator's few JSON calls (register, login, me).
//!
//! Hand-rolled on a tokio `TcpStream` rather than pulling an HTTP client into the crate's
//! dependencies: awc is a dev-dependency that brings its own actix runtime, and these calls
//! are one request per connection (`Connection: close`) with a JSON body either way.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::atomic::{AtomicU32, Ordering},
};

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

use crate::{BenchError, BenchResult};

/// Largest response the generator accepts (the API's answers are a few hundred bytes).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Loopback source addresses the generator spreads its connections over (127.0.0.1 up to
/// 127.0.0.64) when the server is on loopback. From one address, each new connection makes
/// the kernel search the ephemeral port range for a port not yet used towards the server's
/// address and port; with 15,000 connections that search was 27 % of the generator's CPU
/// (`__inet_hash_connect`, `__inet_check_established`) and capped the connect rate it can
/// drive. Clients of a real server come from many addresses anyway.
const LOOPBACK_SOURCES: u32 = 64;

/// Which loopback source address the next connection uses.
static NEXT_SOURCE: AtomicU32 = AtomicU32::new(0);

/// Where the server is: `host:port` from `--url http://host:port`.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`, for connecting and for the `Host` header.
    pub authority: String,
    /// What the protocol's connections run over (`--transport`).
    pub transport: crate::Transport,
}

impl Target {
    /// Parses `http://host:port` (a trailing `/` is allowed; the port defaults to 80).
    pub fn parse(url: &str) -> BenchResult<Self> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| BenchError::Url(url.to_owned()))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(BenchError::Url(url.to_owned()));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Target {
            authority,
            transport: crate::Transport::WebSocket,
        })
    }

    /// Opens a TCP connection to the server; to a server on loopback, from the next of
    /// [`LOOPBACK_SOURCES`] loopback addresses in turn.
    pub async fn open(&self) -> std::io::Result<TcpStream> {
        let server = tokio::net::lookup_host(&self.authority)
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{} has no address", self.authority)))?;
        let stream = match server {
            SocketAddr::V4(v4) if v4.ip().is_loopback() => {
                let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % LOOPBACK_SOURCES;
                let source = Ipv4Addr::new(127, 0, 0, 1 + n as u8);
                let socket = TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
                socket.connect(server).await?
            }
            _ => TcpStream::connect(server).await?,
        };
        Ok(stream)
    }

    /// The WebSocket endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.authority)
    }

    /// Sends one request and returns the status and the JSON body (`Null` when empty).
    pub async fn request(
        &self,
        method: &'static str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> BenchResult<(u16, Value)> {
        let failed = |problem: String| BenchError::Http {
            method,
            path: path.to_owned(),
            problem,
        };
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n",
            self.authority
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));

        let mut stream = self
            .open()
            .await
            .map_err(|e| failed(format!("cannot connect to {}: {e}", self.authority)))?;
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE_BYTES as u64)
            .read_to_end(&mut raw)
            .await?;
        parse_response(&raw).map_err(failed)
    }
}

/// Splits a whole HTTP/1.1 response into its status and JSON body.
fn parse_response(raw: &[u8]) -> Result<(u16, Value), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("response ended inside its headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "headers are not UTF-8")?;
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or("no status line")?;
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if chunked {
        body = dechunk(&body)?;
    }
    if body.is_empty() {
        return Ok((status, Value::Null));
    }
    let json = serde_json::from_slice(&body)
        .map_err(|e| format!("status {status}, body is not JSON ({e})"))?;
    Ok((status, json))
}

/// Decodes a `Transfer-Encoding: chunked` body.
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_length_or_chunks_are_read() {
        let plain = b"HTTP/1.1 201 Created\r\ncontent-length: 8\r\n\r\n{\"id\":7}";
        assert_eq!(
            parse_response(plain).unwrap(),
            (201, serde_json::json!({"id": 7}))
        );
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).unwrap(),
            (200, serde_json::json!({"a": 1}))
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap(),
            (204, Value::Null)
        );
    }

    #[test]
    fn urls_need_the_http_scheme() {
        assert_eq!(
            Target::parse("http://127.0.0.1:9000/").unwrap().authority,
            "127.0.0.1:9000"
        );
        assert_eq!(
            Target::parse("http://localhost").unwrap().authority,
            "localhost:80"
        );
        assert!(Target::parse("https://x:1").is_err());
        assert!(Target::parse("http://x:1/path").is_err());
    }
}
