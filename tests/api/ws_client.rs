//! A WebSocket test client (tokio-tungstenite) for `/ws`: connect with a bearer token, send
//! JSON, await the next frame of a type, expect a close code.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    client_async,
    tungstenite::{client::IntoClientRequest, http::HeaderValue, Message},
    WebSocketStream,
};

use crate::helpers::{TestApp, TestUser};

/// How long a test waits for a frame it expects (generous: the machine is shared).
pub const WAIT: Duration = Duration::from_secs(15);
/// How long a test watches for a frame that must not come.
pub const QUIET: Duration = Duration::from_millis(400);

/// One open connection.
pub struct WsClient {
    ws: WebSocketStream<TcpStream>,
    /// `session_id` from `welcome` (the peer id), once read.
    pub session_id: String,
    /// The `presence.snapshot` read by [`connect`] / [`connect_with`] (null until then).
    pub snapshot: Value,
    /// Frames read but not yet asked for.
    backlog: Vec<Value>,
}

/// How to open a connection.
#[derive(Default, Clone)]
pub struct ConnectOpts<'a> {
    pub token: Option<&'a str>,
    pub origin: Option<&'a str>,
    /// Shrinks the client's receive buffer (a reader that falls behind fast).
    pub recv_buffer: Option<u32>,
}

/// A server to connect to: a [`TestApp`] or a bare port.
pub trait WsTarget {
    fn ws_port(&self) -> u16;
}

impl WsTarget for TestApp {
    fn ws_port(&self) -> u16 {
        self.port
    }
}

impl WsTarget for u16 {
    fn ws_port(&self) -> u16 {
        *self
    }
}

/// Opens `/ws`; `Err(status)` when the server refuses the upgrade.
pub async fn try_connect(app: &impl WsTarget, opts: ConnectOpts<'_>) -> Result<WsClient, u16> {
    let port = app.ws_port();
    let mut req = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .expect("request");
    if let Some(token) = opts.token {
        req.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
    }
    if let Some(origin) = opts.origin {
        req.headers_mut()
            .insert("Origin", HeaderValue::from_str(origin).expect("header"));
    }
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(size) = opts.recv_buffer {
        socket.set_recv_buffer_size(size).expect("buffer size");
    }
    let stream = socket
        .connect(format!("127.0.0.1:{port}").parse().expect("addr"))
        .await
        .expect("tcp connect");
    match client_async(req, stream).await {
        Ok((ws, _)) => Ok(WsClient {
            ws,
            session_id: String::new(),
            snapshot: Value::Null,
            backlog: Vec::new(),
        }),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

/// Connects `user` and reads `welcome` and `presence.snapshot`.
pub async fn connect(app: &impl WsTarget, user: &TestUser) -> WsClient {
    connect_with(
        app,
        ConnectOpts {
            token: Some(&user.token),
            ..ConnectOpts::default()
        },
    )
    .await
}

/// Connects with options and reads `welcome` and `presence.snapshot`.
pub async fn connect_with(app: &impl WsTarget, opts: ConnectOpts<'_>) -> WsClient {
    let mut client = try_connect(app, opts).await.expect("upgrade accepted");
    let welcome = client.recv().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    client.session_id = welcome["session_id"]
        .as_str()
        .expect("session_id")
        .to_owned();
    client.snapshot = client.recv().await;
    assert_eq!(
        client.snapshot["type"], "presence.snapshot",
        "{}",
        client.snapshot
    );
    client
}

impl WsClient {
    /// Sends one JSON frame.
    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_owned()))
            .await
            .expect("send");
    }

    /// The next JSON frame (pings and pongs skipped); panics on close or timeout.
    pub async fn recv(&mut self) -> Value {
        if !self.backlog.is_empty() {
            return self.backlog.remove(0);
        }
        self.read_frame(WAIT)
            .await
            .unwrap_or_else(|| panic!("no frame within {WAIT:?}"))
    }

    async fn read_frame(&mut self, wait: Duration) -> Option<Value> {
        self.read_frame_until(tokio::time::Instant::now() + wait, &mut 0)
            .await
    }

    /// The next JSON frame before `deadline`, counting the pings that came before it in
    /// `pings` (each answered with a pong, as any client does).
    async fn read_frame_until(
        &mut self,
        deadline: tokio::time::Instant,
        pings: &mut usize,
    ) -> Option<Value> {
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(&text).expect("server sends JSON"))
                }
                Some(Ok(Message::Ping(_))) => *pings += 1,
                Some(Ok(Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("unexpected frame {other:?}"),
                Some(Err(e)) => panic!("connection error: {e}"),
                None => panic!("connection ended"),
            }
        }
    }

    /// The next frame of `type` (earlier ones of other types are kept for later).
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        if let Some(i) = self.backlog.iter().position(|f| f["type"] == kind) {
            return self.backlog.remove(i);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self
                .read_frame(left)
                .await
                .unwrap_or_else(|| panic!("no '{kind}' within {WAIT:?}; saw {:?}", self.backlog));
            if frame["type"] == kind {
                return frame;
            }
            self.backlog.push(frame);
        }
    }

    /// The next presence change of `user_id`, whether it came alone or in a batch.
    pub async fn presence_of(&mut self, user_id: i64) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let pos = self.backlog.iter().position(|f| {
                (f["type"] == "presence.update" && f["user_id"] == user_id)
                    || (f["type"] == "presence.batch"
                        && f["updates"]
                            .as_array()
                            .is_some_and(|u| u.iter().any(|u| u["user_id"] == user_id)))
            });
            if let Some(i) = pos {
                let frame = self.backlog.remove(i);
                if frame["type"] == "presence.update" {
                    return frame;
                }
                let found = frame["updates"]
                    .as_array()
                    .and_then(|u| u.iter().find(|u| u["user_id"] == user_id))
                    .cloned()
                    .expect("update present");
                return found;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self
                .read_frame(left)
                .await
                .unwrap_or_else(|| panic!("no presence change of user {user_id} in time"));
            self.backlog.push(frame);
        }
    }

    /// The next frame of `type` if one arrives within `wait`.
    pub async fn recv_type_within(&mut self, kind: &str, wait: Duration) -> Option<Value> {
        if let Some(i) = self.backlog.iter().position(|f| f["type"] == kind) {
            return Some(self.backlog.remove(i));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.read_frame(left).await?;
            if frame["type"] == kind {
                return Some(frame);
            }
            self.backlog.push(frame);
        }
    }

    /// The reply to the frame with this `id` (whatever its type).
    pub async fn recv_reply(&mut self, id: i64) -> Value {
        if let Some(i) = self.backlog.iter().position(|f| f["id"] == id) {
            return self.backlog.remove(i);
        }
        loop {
            let frame = self.read_frame(WAIT).await.expect("reply in time");
            if frame["id"] == id {
                return frame;
            }
            self.backlog.push(frame);
        }
    }

    /// The frames read but not yet taken, taken now.
    pub fn drain_backlog(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.backlog)
    }

    /// Sends a frame with `id` and returns the reply to it.
    pub async fn request(&mut self, id: i64, mut frame: Value) -> Value {
        frame["id"] = json!(id);
        self.send(frame).await;
        self.recv_reply(id).await
    }

    /// Asserts no frame of `type` arrives for a short while.
    pub async fn expect_no(&mut self, kind: &str) {
        assert!(
            !self.backlog.iter().any(|f| f["type"] == kind),
            "unexpected '{kind}' in {:?}",
            self.backlog
        );
        let deadline = tokio::time::Instant::now() + QUIET;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self.read_frame(left).await {
                Some(f) if f["type"] == kind => panic!("unexpected frame {f}"),
                Some(f) => self.backlog.push(f),
                None => return,
            }
        }
    }

    /// Reads for `wait`, answering the server's pings with pongs as any client does (text
    /// frames are kept for later); returns how many pings came. Panics if the connection
    /// closes meanwhile.
    pub async fn count_pings(&mut self, wait: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + wait;
        let mut pings = 0;
        while let Some(frame) = self.read_frame_until(deadline, &mut pings).await {
            self.backlog.push(frame);
        }
        pings
    }

    /// Reads (discarding frames) until the server's close frame; returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("close in time");
            match next {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(Message::Close(None))) => return 1005,
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("connection error before close frame: {e}"),
                None => panic!("connection ended without a close frame"),
            }
        }
    }

    /// After the close handshake: the server really closes the TCP connection.
    pub async fn expect_end(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(None | Some(Err(_))) => return,
                Ok(Some(Ok(_))) => continue,
                Err(_) => panic!("connection still open after {WAIT:?}"),
            }
        }
    }

    /// Joins a room and returns `room.joined`.
    pub async fn join(&mut self, room: &str) -> Value {
        let reply = self
            .request(900, json!({"type": "room.join", "room": room}))
            .await;
        assert_eq!(reply["type"], "room.joined", "{reply}");
        reply
    }

    /// Closes politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Closes as a browser does: the close frame, then the server's reply, then the TCP
    /// connection (so the server surely reads the close frame before the connection ends).
    pub async fn close_and_wait(mut self) {
        let _ = self.ws.close(None).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, self.ws.next()).await {}
    }

    /// Drops the TCP connection without a close frame.
    pub fn vanish(self) {
        drop(self.ws);
    }
}
