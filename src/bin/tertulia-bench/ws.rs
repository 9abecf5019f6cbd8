//! Opening an authenticated connection and reading the protocol's frames (docs/protocol.md):
//! a WebSocket, or with `--transport http` the HTTP transport ([`crate::events`]).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, http::HeaderValue, Message},
    WebSocketStream,
};

use crate::{http::Target, users::BenchUser, BenchError, BenchResult};

/// How long the generator waits for the server's `welcome` and for replies during setup.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a client whose connection the server closed waits for the server to end the TCP
/// connection after answering its close frame (RFC 6455 §7.1.1) before it lets go anyway.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A WebSocket to the server.
pub type WsStream = WebSocketStream<TcpStream>;

/// An open, welcomed connection.
pub struct Conn {
    /// This connection's `session_id` (its `peer_id` in rooms).
    pub session_id: String,
    /// The user it is authenticated as.
    pub user_id: i64,
    ws: Link,
    /// Text frames received so far (the welcome included).
    pub frames_in: u64,
    /// Bytes of text frames received so far.
    pub bytes_in: u64,
}

/// What a connection runs over.
enum Link {
    Ws(Box<WsStream>),
    Http(Box<crate::events::EventsLink>),
}

/// The `data` of a bench signal: only its sequence number matters.
#[derive(Debug, Deserialize)]
pub struct SignalData {
    pub seq: u64,
}

/// Every server frame the generator looks into; fields a frame lacks stay `None` and the
/// rest of a frame (text, SDP, presence lists…) is skipped unread. Presence frames are read
/// by [`crate::scan`] instead.
#[derive(Debug, Deserialize)]
pub struct Frame {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<u64>,
    pub session_id: Option<String>,
    pub call_id: Option<String>,
    pub room: Option<String>,
    pub data: Option<SignalData>,
    pub msg_id: Option<i64>,
    /// `error`
    pub code: Option<String>,
    pub message: Option<String>,
}

impl Frame {
    /// The frame as a one-line description for error messages.
    pub fn describe(&self) -> String {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => format!("{} {code}: {message}", self.kind),
            _ => self.kind.clone(),
        }
    }
}

/// Opens `/ws` as `user` (bearer token) and waits for the `welcome`.
pub async fn connect(target: &Target, user: &BenchUser) -> BenchResult<Conn> {
    if target.transport == crate::Transport::Http {
        let link = crate::events::EventsLink::open(target, &user.token).await?;
        return welcomed(Conn {
            session_id: String::new(),
            user_id: user.id,
            ws: Link::Http(Box::new(link)),
            frames_in: 0,
            bytes_in: 0,
        })
        .await;
    }
    let mut request = target.ws_url().into_client_request()?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", user.token))
        .map_err(|e| BenchError::Protocol(format!("token is not a header value: {e}")))?;
    request.headers_mut().insert("Authorization", bearer);
    let stream = target.open().await?;
    // Signals are small and latency-bound: never wait to coalesce them.
    stream.set_nodelay(true)?;
    let (ws, _response) = tokio_tungstenite::client_async(request, stream).await?;
    welcomed(Conn {
        session_id: String::new(),
        user_id: user.id,
        ws: Link::Ws(Box::new(ws)),
        frames_in: 0,
        bytes_in: 0,
    })
    .await
}

/// Waits for the `welcome` of a connection just opened.
async fn welcomed(mut conn: Conn) -> BenchResult<Conn> {
    let welcome = conn.expect(|f| f.kind == "welcome").await?;
    conn.session_id = welcome
        .session_id
        .ok_or_else(|| BenchError::Protocol("welcome without session_id".to_owned()))?;
    Ok(conn)
}

/// Opens an unauthenticated WebSocket to `path` (the bare relay of `relay --bare`): no
/// `welcome` is awaited; `session_id` is the end's name, as the other end addresses it.
pub async fn connect_bare(target: &Target, path: &str, end: &str) -> BenchResult<Conn> {
    let request = format!("ws://{}{path}", target.authority).into_client_request()?;
    let stream = target.open().await?;
    stream.set_nodelay(true)?;
    let (ws, _response) = tokio_tungstenite::client_async(request, stream).await?;
    Ok(Conn {
        session_id: end.to_owned(),
        user_id: 0,
        ws: Link::Ws(Box::new(ws)),
        frames_in: 0,
        bytes_in: 0,
    })
}

impl Conn {
    /// The next text frame, parsed; `None` when the connection closed.
    pub async fn next_frame(&mut self) -> BenchResult<Option<Frame>> {
        match self.next_text().await? {
            Some(text) => parse(&text).map(Some),
            None => Ok(None),
        }
    }

    /// A frame that is already buffered or readable without waiting, if any (used to batch
    /// replies before one flush).
    pub fn ready_frame(&mut self) -> BenchResult<Option<Frame>> {
        use futures_util::FutureExt;
        loop {
            let next = match &mut self.ws {
                Link::Ws(ws) => ws.next().now_or_never(),
                Link::Http(link) => {
                    return match link.ready_text()? {
                        Some(text) => {
                            self.frames_in += 1;
                            self.bytes_in += text.len() as u64;
                            parse(&text).map(Some)
                        }
                        None => Ok(None),
                    }
                }
            };
            match next {
                Some(Some(message)) => {
                    if let Some(frame) = self.parse(message?)? {
                        return Ok(Some(frame));
                    }
                }
                Some(None) | None => return Ok(None),
            }
        }
    }

    /// The next text frame, unparsed (for readers that look at a few fields of large
    /// frames); `None` when the connection closed.
    pub async fn next_text(&mut self) -> BenchResult<Option<String>> {
        loop {
            let message = match &mut self.ws {
                Link::Ws(ws) => ws.next().await,
                Link::Http(link) => {
                    let text = link.next_text().await?;
                    if let Some(text) = &text {
                        self.frames_in += 1;
                        self.bytes_in += text.len() as u64;
                    }
                    return Ok(text);
                }
            };
            let Some(message) = message else {
                return Ok(None);
            };
            if let Some(text) = self.count(message?)? {
                return Ok(Some(text));
            }
        }
    }

    /// Counts and parses a message; control frames give `None`.
    fn parse(&mut self, message: Message) -> BenchResult<Option<Frame>> {
        let Some(text) = self.count(message)? else {
            return Ok(None);
        };
        parse(&text).map(Some)
    }

    /// Counts a text message and gives it; control frames give `None`.
    fn count(&mut self, message: Message) -> BenchResult<Option<String>> {
        match message {
            Message::Text(text) => {
                self.frames_in += 1;
                self.bytes_in += text.len() as u64;
                Ok(Some(text))
            }
            Message::Close(close) => Err(BenchError::Protocol(format!(
                "server closed the connection: {close:?}"
            ))),
            _ => Ok(None),
        }
    }

    /// Reads frames until one matches, within [`SETUP_TIMEOUT`]; an `error` frame fails.
    pub async fn expect(&mut self, wanted: impl Fn(&Frame) -> bool) -> BenchResult<Frame> {
        let wait = async {
            loop {
                match self.next_frame().await? {
                    Some(frame) if wanted(&frame) => return Ok(frame),
                    Some(frame) if frame.kind == "error" => {
                        return Err(BenchError::Protocol(frame.describe()))
                    }
                    Some(_) => {}
                    None => {
                        return Err(BenchError::Protocol(
                            "connection closed during setup".to_owned(),
                        ))
                    }
                }
            }
        };
        tokio::time::timeout(SETUP_TIMEOUT, wait)
            .await
            .map_err(|_| BenchError::Timeout("waiting for a setup reply".to_owned()))?
    }

    /// Sends one frame and flushes it.
    pub async fn send(&mut self, text: String) -> BenchResult<()> {
        self.feed(text).await?;
        self.flush().await
    }

    /// Queues one frame without flushing (follow with [`Conn::flush`]).
    pub async fn feed(&mut self, text: String) -> BenchResult<()> {
        match &mut self.ws {
            Link::Ws(ws) => ws.feed(Message::Text(text)).await?,
            Link::Http(link) => link.feed(text),
        }
        Ok(())
    }

    /// Writes out every queued frame.
    pub async fn flush(&mut self) -> BenchResult<()> {
        match &mut self.ws {
            Link::Ws(ws) => ws.flush().await?,
            Link::Http(link) => link.flush().await?,
        }
        Ok(())
    }

    /// Joins a room and waits for `room.joined`.
    pub async fn join(&mut self, room: &str, id: u64) -> BenchResult<()> {
        self.send(serde_json::json!({"type": "room.join", "id": id, "room": room}).to_string())
            .await?;
        self.expect(|f| f.kind == "room.joined" && f.id == Some(id))
            .await?;
        Ok(())
    }

    /// Ends a connection the server closed, as a browser does: answers the server's close
    /// frame (tungstenite queues the answer and writes it only on the next read or write) and
    /// reads until the server ends the TCP connection (at most [`CLOSE_WAIT`]), then lets the
    /// socket go. A client that stopped reading at the close frame and held its socket until
    /// it had reconnected left the server waiting for the answer (a second per connection)
    /// and its connections half-open while it drained, so a restart waited for its clients.
    pub async fn finish_close(self) {
        if let Link::Ws(mut ws) = self.ws {
            let drain = async {
                // The answer goes out with this flush, or with the next read below.
                let _ = ws.flush().await;
                while let Some(Ok(_)) = ws.next().await {}
            };
            let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
        }
    }

    /// Closes politely (errors ignored: the run is over).
    pub async fn close(self) {
        match self.ws {
            Link::Ws(mut ws) => {
                let _ = (*ws).close(None).await;
            }
            Link::Http(mut link) => link.leave().await,
        }
    }
}

/// Parses a frame's text.
fn parse(text: &str) -> BenchResult<Frame> {
    serde_json::from_str(text)
        .map_err(|e| BenchError::Protocol(format!("unparsable frame ({e}): {text}")))
}
