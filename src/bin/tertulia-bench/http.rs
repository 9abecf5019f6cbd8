//! Where the server is, and the generator's few JSON calls (register, login, me): HTTP/2
//! with prior knowledge (h2c, which the server's plain port takes) through the `h2` crate,
//! hyper's HTTP/2, rather than the hand-rolled HTTP/1.1 client this was (issue 15): a
//! maintained client, and no more parsing of status lines and chunked bodies here. These
//! calls are setup, not a hot path: one connection per request, as before.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::atomic::{AtomicU32, Ordering},
};

use bytes::Bytes;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};

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

    /// Sends one request and returns the status and the JSON body (`Null` when empty): over
    /// HTTP/2 with prior knowledge (h2c), with the `h2` crate, one connection per request.
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
        let h2_failed = |e: h2::Error| failed(format!("HTTP/2: {e}"));
        let stream = self
            .open()
            .await
            .map_err(|e| failed(format!("cannot connect to {}: {e}", self.authority)))?;
        let (send, connection) = h2::client::handshake(stream).await.map_err(h2_failed)?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.authority))
            .header("accept", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(()).map_err(|e| failed(e.to_string()))?;
        let mut send = send.ready().await.map_err(h2_failed)?;
        let (response, mut out) = send
            .send_request(request, body.is_none())
            .map_err(h2_failed)?;
        if let Some(body) = body {
            out.send_data(Bytes::from(body.to_string()), true)
                .map_err(h2_failed)?;
        }
        let response = response.await.map_err(h2_failed)?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut raw = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(h2_failed)?;
            let _ = body.flow_control().release_capacity(chunk.len());
            raw.extend_from_slice(&chunk);
            if raw.len() > MAX_RESPONSE_BYTES {
                return Err(failed("response too large".to_owned()));
            }
        }
        connection.abort();
        if raw.is_empty() {
            return Ok((status, Value::Null));
        }
        let json = serde_json::from_slice(&raw)
            .map_err(|e| failed(format!("status {status}, body is not JSON ({e})")))?;
        Ok((status, json))
    }
}

/// The servers a run drives: one, or the nodes of one cluster (`--url` given several times).
///
/// Client `i` of a workload talks to node `i mod n` (round robin by client index), so two
/// clients next to each other in a workload's order (the two ends of a relay pair, the
/// members of a chat room) are on different nodes whenever there are several. Setup calls
/// (registration, login, `/api/me`, admin) all go to the first node: the nodes share one
/// database, so a token from one is good on every other.
#[derive(Debug, Clone)]
pub struct Nodes {
    /// In the order of the `--url`s; never empty.
    targets: Vec<Target>,
}

impl Nodes {
    /// Parses every `--url` (see [`Target::parse`]); `transport` is the protocol's transport.
    pub fn parse(urls: &[String], transport: crate::Transport) -> BenchResult<Self> {
        let targets = urls
            .iter()
            .map(|url| {
                let mut target = Target::parse(url)?;
                target.transport = transport;
                Ok(target)
            })
            .collect::<BenchResult<Vec<_>>>()?;
        if targets.is_empty() {
            return Err(BenchError::Url(String::new()));
        }
        Ok(Nodes { targets })
    }

    /// The first node: registration, login and admin calls go here.
    pub fn first(&self) -> &Target {
        &self.targets[0]
    }

    /// Which node client `index` uses (round robin).
    pub fn index_of(&self, index: usize) -> usize {
        index % self.targets.len()
    }

    /// The node client `index` talks to (round robin).
    pub fn of(&self, index: usize) -> &Target {
        &self.targets[self.index_of(index)]
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether the run spreads its clients over several nodes; only then do the reports carry
    /// the per-node figures (a one-server run prints exactly what it always did).
    pub fn several(&self) -> bool {
        self.targets.len() > 1
    }

    /// How a run placed the two ends of its pairs or rooms, for its report: `same-node` with
    /// `--same-node`, else `cross-node`.
    pub fn placement(same_node: bool) -> &'static str {
        if same_node {
            "same-node"
        } else {
            "cross-node"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn neighbouring_clients_land_on_different_nodes() {
        let urls = ["http://a:1", "http://b:2", "http://c:3"].map(str::to_owned);
        let nodes = Nodes::parse(&urls, crate::Transport::WebSocket).unwrap();
        assert!(nodes.several());
        assert_eq!(nodes.first().authority, "a:1");
        let of: Vec<&str> = (0..6).map(|i| nodes.of(i).authority.as_str()).collect();
        assert_eq!(of, ["a:1", "b:2", "c:3", "a:1", "b:2", "c:3"]);
        for i in 0..6 {
            assert_ne!(nodes.index_of(i), nodes.index_of(i + 1));
        }
        let one = Nodes::parse(&urls[..1], crate::Transport::WebSocket).unwrap();
        assert!(!one.several());
        assert_eq!(one.of(5).authority, "a:1");
    }
}
