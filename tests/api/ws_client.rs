//! A test client of protocol v1: connect with a bearer token, send JSON, await the next
//! frame of a type, expect a close code. Over a WebSocket (tokio-tungstenite, `/ws`) by
//! default; over the HTTP transport (`GET /api/stream` + `POST`, awc) when the environment
//! says `TERTULIA_TEST_TRANSPORT=http`, so that every protocol test runs on both
//! (`tests/run.sh` runs the protocol tests twice).

use std::{pin::Pin, time::Duration};

use actix_web::web::Bytes;

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

/// Whether the tests speak the HTTP transport (`TERTULIA_TEST_TRANSPORT=http`).
pub fn http_transport() -> bool {
    std::env::var("TERTULIA_TEST_TRANSPORT").is_ok_and(|t| t == "http")
}

/// One open connection.
pub struct WsClient {
    ws: Conn,
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
    /// The transport whatever `TERTULIA_TEST_TRANSPORT` says, for a test about one of them
    /// (a WebSocket's frames, pings and pongs; the event stream's ids and posts).
    pub transport: Option<Transport>,
}

/// The two ways to carry protocol v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `GET /ws`
    WebSocket,
    /// `GET /api/stream` and `POST /api/stream/{id}`
    Http,
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
    let http = match opts.transport {
        Some(transport) => transport == Transport::Http,
        None => http_transport(),
    };
    if http {
        return EventsConn::open(port, &opts).await.map(|conn| WsClient {
            ws: Conn::Events(Box::new(conn)),
            session_id: String::new(),
            snapshot: Value::Null,
            backlog: Vec::new(),
        });
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
            ws: Conn::Ws(Box::new(ws)),
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

/// Connects `user` over a WebSocket whatever the transport of the run (see
/// [`ConnectOpts::websocket`]), and reads `welcome` and `presence.snapshot`.
pub async fn connect_ws(app: &impl WsTarget, user: &TestUser) -> WsClient {
    connect_with(
        app,
        ConnectOpts {
            token: Some(&user.token),
            transport: Some(Transport::WebSocket),
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
        match &mut self.ws {
            Conn::Ws(ws) => ws.send(Message::Text(text.to_owned())).await.expect("send"),
            Conn::Events(events) => events.post(text).await,
        }
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
            let pos = self.backlog.iter().position(|f| is_presence_of(f, user_id));
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

    /// The next frame (of any type) if one arrives within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        if !self.backlog.is_empty() {
            return Some(self.backlog.remove(0));
        }
        self.read_frame(wait).await
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

    /// Asserts no presence change of `user_id` is waiting or arrives for a short while.
    pub async fn expect_no_presence_of(&mut self, user_id: i64) {
        let deadline = tokio::time::Instant::now() + QUIET;
        while let Some(f) = self
            .read_frame(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            self.backlog.push(f);
        }
        let about = self.backlog.iter().find(|f| is_presence_of(f, user_id));
        assert!(
            about.is_none(),
            "unexpected presence of {user_id}: {about:?}"
        );
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
        self.ws.close().await;
    }

    /// Closes as a browser does: the close frame, then the server's reply, then the TCP
    /// connection (so the server surely reads the close frame before the connection ends).
    pub async fn close_and_wait(mut self) {
        self.ws.close().await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, self.ws.next()).await {}
    }

    /// The event stream's path for posts (`/api/stream/{id}`), on the HTTP transport.
    pub fn stream_path(&self) -> Option<String> {
        match &self.ws {
            Conn::Ws(_) => None,
            Conn::Events(events) => Some(events.post_path.clone()),
        }
    }

    /// Sends this client's posts to the server on `port` instead (the HTTP transport): as a
    /// balancer that sends each request to any node.
    pub fn post_via(&mut self, port: u16) {
        if let Conn::Events(events) = &mut self.ws {
            events.post_url = format!("http://127.0.0.1:{port}{}", events.post_path);
        }
    }

    /// The `id:` of the last event read (the HTTP transport).
    pub fn last_event_id(&self) -> Option<String> {
        match &self.ws {
            Conn::Ws(_) => None,
            Conn::Events(events) => events.last_id.clone(),
        }
    }

    /// Drops the TCP connection without a close frame.
    pub fn vanish(self) {
        drop(self.ws);
    }
}

/// The connection under a [`WsClient`]: a WebSocket, or the HTTP transport's stream and posts.
enum Conn {
    Ws(Box<WebSocketStream<TcpStream>>),
    Events(Box<EventsConn>),
}

/// A frame as a WebSocket client reads it, from either transport.
type Incoming = Option<Result<Message, String>>;

impl Conn {
    /// The next frame (the event stream's events read as the WebSocket frames they stand for:
    /// a heartbeat comment as a ping, the `close` event as a close frame); `None` once the
    /// connection ended.
    async fn next(&mut self) -> Incoming {
        match self {
            Conn::Ws(ws) => ws.next().await.map(|r| r.map_err(|e| e.to_string())),
            Conn::Events(events) => events.next().await,
        }
    }

    async fn close(&mut self) {
        match self {
            Conn::Ws(ws) => {
                let _ = (**ws).close(None).await;
            }
            Conn::Events(events) => events.leave().await,
        }
    }
}

/// `GET /api/stream` and the posts to it.
struct EventsConn {
    client: awc::Client,
    body: Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>>>>,
    /// Bytes read and not yet parsed into events.
    buf: Vec<u8>,
    /// `http://127.0.0.1:PORT/api/stream/ID`, from the stream's first event.
    post_url: String,
    /// `/api/stream/ID`
    post_path: String,
    /// The last event's `id:`.
    last_id: Option<String>,
    headers: Vec<(&'static str, String)>,
    /// The close event came: the stream ends next.
    closed: bool,
}

impl EventsConn {
    async fn open(port: u16, opts: &ConnectOpts<'_>) -> Result<Self, u16> {
        let client = awc::Client::builder().disable_timeout().finish();
        let mut headers = Vec::new();
        if let Some(token) = opts.token {
            headers.push(("Authorization", format!("Bearer {token}")));
        }
        if let Some(origin) = opts.origin {
            headers.push(("Origin", origin.to_owned()));
        }
        let mut req = client.get(format!("http://127.0.0.1:{port}/api/stream"));
        for (name, value) in &headers {
            req = req.insert_header((*name, value.as_str()));
        }
        let res = req.send().await.expect("stream request sent");
        if res.status() != 200 {
            return Err(res.status().as_u16());
        }
        let mut conn = EventsConn {
            client,
            body: Box::pin(res),
            buf: Vec::new(),
            post_url: String::new(),
            post_path: String::new(),
            last_id: None,
            headers,
            closed: false,
        };
        let (event, data) = conn.event().await.expect("the stream's first event");
        assert_eq!(event, "stream", "{data}");
        let first: Value = serde_json::from_str(&data).expect("stream event is JSON");
        conn.post_path = first["post"].as_str().expect("post path").to_owned();
        conn.post_url = format!("http://127.0.0.1:{port}{}", conn.post_path);
        Ok(conn)
    }

    /// The next event: its name ("message" if none; "comment" for a comment) and data;
    /// `None` when the stream ended.
    async fn event(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 2).collect();
                let raw = String::from_utf8(raw).expect("events are UTF-8");
                let (mut name, mut data) = ("message".to_owned(), String::new());
                for line in raw.lines() {
                    if line.starts_with(':') {
                        name = "comment".to_owned();
                    } else if let Some(n) = line.strip_prefix("event: ") {
                        name = n.to_owned();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    } else if let Some(id) = line.strip_prefix("id: ") {
                        self.last_id = Some(id.to_owned());
                    }
                }
                return Some((name, data));
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.buf.extend_from_slice(&bytes),
                Some(Err(e)) => panic!("event stream failed: {e}"),
                None => return None,
            }
        }
    }

    async fn next(&mut self) -> Incoming {
        if self.closed {
            return self
                .event()
                .await
                .map(|e| Err(format!("event after close: {e:?}")));
        }
        let (name, data) = self.event().await?;
        Some(Ok(match name.as_str() {
            "comment" => Message::Ping(Vec::new()),
            "close" => {
                self.closed = true;
                let close: Value = serde_json::from_str(&data).expect("close event is JSON");
                let code = u16::try_from(close["code"].as_u64().expect("code")).expect("u16");
                Message::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code: code.into(),
                    reason: close["reason"].as_str().unwrap_or("").to_owned().into(),
                }))
            }
            _ => Message::Text(data),
        }))
    }

    /// Sends one frame as a POST; a stream that has ended is no error here (as a frame
    /// sent into a closing WebSocket).
    async fn post(&mut self, text: &str) {
        let mut req = self.client.post(&self.post_url);
        for (name, value) in &self.headers {
            req = req.insert_header((*name, value.as_str()));
        }
        let res = req
            .insert_header(("Content-Type", "application/json"))
            .send_body(text.to_owned())
            .await
            .expect("post sent");
        assert!(
            res.status() == 204 || res.status() == 404,
            "post answered {}",
            res.status()
        );
    }

    /// Leaves on purpose (`DELETE`), as a WebSocket close frame with 1000.
    async fn leave(&mut self) {
        let mut req = self.client.delete(&self.post_url);
        for (name, value) in &self.headers {
            req = req.insert_header((*name, value.as_str()));
        }
        let _ = req.send().await;
    }
}

/// Whether `frame` is a presence change of `user_id`, alone or in a batch.
fn is_presence_of(frame: &Value, user_id: i64) -> bool {
    (frame["type"] == "presence.update" && frame["user_id"] == user_id)
        || (frame["type"] == "presence.batch"
            && frame["updates"]
                .as_array()
                .is_some_and(|u| u.iter().any(|u| u["user_id"] == user_id)))
}
