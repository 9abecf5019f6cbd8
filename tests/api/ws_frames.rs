//! The transport's edges, with a raw WebSocket client that writes frames byte by byte: every
//! kind of frame is rate limited, text that is not UTF-8 closes with 1007, a close reaches
//! the peer at once, and the test-only echo route.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use crate::{
    helpers::{spawn_app, spawn_app_with, TestApp},
    ws_client::{connect, WAIT},
};

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// How soon after the close handshake the server's FIN must arrive. Generous for a shared
/// machine: the bug held every connection open for a second (actix-http's lingering close
/// waited for the client's FIN, which a WebSocket client leaves to the server).
const PROMPT_CLOSE: Duration = Duration::from_millis(300);

/// A WebSocket client on a bare TCP connection: frames are written as given (masked, as a
/// client must), so it can send what a well-behaved library refuses to.
struct RawWs {
    tcp: TcpStream,
    /// Read but not yet parsed.
    buf: Vec<u8>,
}

/// A frame from the server: opcode, final flag and payload.
struct Frame {
    opcode: u8,
    fin: bool,
    payload: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    /// The payload as text, so that a failure message can be read.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let payload = String::from_utf8_lossy(&self.payload);
        write!(f, "({:#x}, fin {}, {payload:?})", self.opcode, self.fin)
    }
}

impl Frame {
    /// A text frame's JSON.
    fn json(&self) -> Value {
        assert_eq!(self.opcode, TEXT, "{self:?}");
        serde_json::from_slice(&self.payload).expect("JSON")
    }

    /// A close frame's code.
    fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, CLOSE, "{self:?}");
        u16::from_be_bytes([self.payload[0], self.payload[1]])
    }
}

impl RawWs {
    /// Opens `path` on `app`, with `token` as the bearer credential if given.
    async fn open(app: &TestApp, path: &str, token: Option<&str>) -> Result<RawWs, String> {
        let mut tcp = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let handshake = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{auth}\r\n",
            app.port
        );
        tcp.write_all(handshake.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection ended during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        if !head.starts_with("HTTP/1.1 101") {
            return Err(head);
        }
        buf.drain(..end);
        Ok(RawWs { tcp, buf })
    }

    /// Opens `/ws` as `token`'s user and reads `welcome` and `presence.snapshot`.
    async fn session(app: &TestApp, token: &str) -> RawWs {
        let mut ws = RawWs::open(app, "/ws", Some(token)).await.expect("upgrade");
        assert_eq!(ws.recv_json().await["type"], "welcome");
        assert_eq!(ws.recv_json().await["type"], "presence.snapshot");
        ws
    }

    /// Writes one frame, masked. Write errors are ignored: a test that floods may find the
    /// connection already closed, and reads what the server said instead.
    async fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n @ 0..=125 => frame.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x37, 0xFA, 0x21, 0x3D];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        let _ = self.tcp.write_all(&frame).await;
    }

    /// Sends one JSON text frame.
    async fn send_json(&mut self, value: Value) {
        self.send(true, TEXT, value.to_string().as_bytes()).await;
    }

    /// The next frame from the server; `None` once the connection has ended (EOF or reset).
    async fn next(&mut self) -> Option<Frame> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some((frame, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 16 * 1024];
            let read = tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("no frame within {WAIT:?}"));
            match read {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next frame, which must come.
    async fn frame(&mut self) -> Frame {
        self.next().await.expect("connection ended")
    }

    /// The next text frame's JSON (control frames skipped).
    async fn recv_json(&mut self) -> Value {
        loop {
            let frame = self.frame().await;
            if frame.opcode == TEXT {
                return frame.json();
            }
        }
    }

    /// The next JSON frame of `kind` (others skipped).
    async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let value = self.recv_json().await;
            if value["type"] == kind {
                return value;
            }
        }
    }

    /// Reads until the server's close frame; returns it and the frames before it.
    async fn until_close(&mut self) -> (Frame, Vec<Frame>) {
        let mut before = Vec::new();
        loop {
            let frame = self
                .next()
                .await
                .unwrap_or_else(|| panic!("connection ended without a close frame: {before:?}"));
            if frame.opcode == CLOSE {
                return (frame, before);
            }
            before.push(frame);
        }
    }

    /// How long until the server ends the TCP connection (EOF or reset), at most `WAIT`.
    async fn time_to_end(&mut self) -> Duration {
        let start = Instant::now();
        while self.next().await.is_some() {}
        start.elapsed()
    }
}

/// A whole server frame at the start of `buf`, and its length (server frames are unmasked).
fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let (len, head) = match buf[1] & 0x7F {
        126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let mut len = [0u8; 8];
            len.copy_from_slice(&buf[2..10]);
            (usize::try_from(u64::from_be_bytes(len)).unwrap(), 10)
        }
        126 | 127 => return None,
        n => (usize::from(n), 2),
    };
    if buf.len() < head + len {
        return None;
    }
    let frame = Frame {
        opcode: buf[0] & 0x0F,
        fin: buf[0] & 0x80 != 0,
        payload: buf[head..head + len].to_vec(),
    };
    Some((frame, head + len))
}

/// The server's `/metrics` text.
async fn metrics_text(app: &TestApp) -> String {
    let res = app.get("/metrics", None).await;
    res.body.as_str().unwrap_or_default().to_owned()
}

/// A server whose connections may send 2 frames a second with bursts of 5.
async fn strict_app() -> TestApp {
    spawn_app_with(|s| {
        s.ws_rate_per_sec = 2;
        s.ws_rate_burst = 5;
    })
    .await
}

#[actix_web::test]
async fn floods_of_binary_frames_pings_or_pongs_are_each_closed_with_1008() {
    let app = strict_app().await;
    let ana = app.user("ana").await;
    for (opcode, payload) in [(BINARY, &b"\x00\x01"[..]), (PING, b"hb"), (PONG, b"hb")] {
        let mut ws = RawWs::session(&app, &ana.token).await;
        // 5 pass, 6 more are refused with `rate_limited`, the next closes: 40 is plenty
        // (the probe sent 300,000 binary frames and was never closed).
        for _ in 0..40 {
            ws.send(true, opcode, payload).await;
        }
        let (close, before) = ws.until_close().await;
        assert_eq!(close.close_code(), 1008, "opcode {opcode}: {before:?}");
        let refused = before
            .iter()
            .filter(|f| f.opcode == TEXT && f.json()["code"] == "rate_limited")
            .count();
        assert!(
            (1..=6).contains(&refused),
            "opcode {opcode}: {refused} refused"
        );
        // Pings within the limit were answered, the others were not.
        if opcode == PING {
            let pongs = before.iter().filter(|f| f.opcode == PONG).count();
            assert!((5..=7).contains(&pongs), "{pongs} pongs");
        }
        ws.time_to_end().await;
    }
    let text = metrics_text(&app).await;
    assert!(
        text.contains("tertulia_ws_closes_total{code=\"1008\"} 3"),
        "{text}"
    );
}

#[actix_web::test]
async fn a_client_that_pings_within_the_limit_gets_every_pong_with_its_payload() {
    let app = strict_app().await;
    let ana = app.user("ana").await;
    let mut ws = RawWs::session(&app, &ana.token).await;
    for i in 0..4 {
        let payload = format!("heartbeat {i}");
        ws.send(true, PING, payload.as_bytes()).await;
        // Text frames (presence) may come first.
        let pong = loop {
            let frame = ws.frame().await;
            if frame.opcode != TEXT {
                break frame;
            }
        };
        assert_eq!(pong.opcode, PONG);
        assert_eq!(pong.payload, payload.as_bytes());
    }
    // The connection still serves the protocol.
    ws.send_json(json!({"type": "ping", "id": 1})).await;
    assert_eq!(ws.recv_type("pong").await["id"], 1);
}

#[actix_web::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007_and_is_counted_under_1007() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let mut ws = RawWs::session(&app, &ana.token).await;
    ws.send(true, TEXT, b"{\"type\":\"ping\",\"x\":\"\xFF\"}")
        .await;
    let (close, _) = ws.until_close().await;
    assert_eq!(close.close_code(), 1007);
    let reason = String::from_utf8_lossy(&close.payload[2..]).into_owned();
    assert!(reason.contains("UTF-8"), "{reason}");
    ws.time_to_end().await;
    let text = metrics_text(&app).await;
    assert!(
        text.contains("tertulia_ws_closes_total{code=\"1007\"} 1"),
        "{text}"
    );
    // Not a lost connection.
    assert!(
        text.contains("tertulia_ws_closes_total{code=\"1006\"} 0"),
        "{text}"
    );
}

#[actix_web::test]
async fn text_split_across_fragments_is_checked_as_utf8_as_a_whole_and_fails_at_the_bad_fragment() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let mut ws = RawWs::session(&app, &ana.token).await;
    // A character cut between two fragments is fine ("é" is 0xC3 0xA9).
    ws.send(false, TEXT, b"{\"type\":\"ping\",\"id\":\"caf\xC3")
        .await;
    ws.send(false, CONTINUATION, b"\xA9").await;
    ws.send(true, CONTINUATION, b"\"}").await;
    let pong = ws.recv_type("pong").await;
    assert_eq!(pong["id"], "café");
    // A fragment that cannot continue the character: 1007 at once, before the message ends.
    ws.send(false, TEXT, b"{\"type\":\"ping\",\"id\":\"caf\xC3")
        .await;
    ws.send(false, CONTINUATION, b"(").await;
    let (close, _) = ws.until_close().await;
    assert_eq!(close.close_code(), 1007);
}

#[actix_web::test]
async fn a_call_whose_participant_is_closed_for_a_protocol_violation_ends_at_once() {
    // A grace far longer than the test: ending the call now cannot be the grace expiring.
    let app = spawn_app_with(|s| s.call_reconnect_grace_ms = 60_000).await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = RawWs::session(&app, &ana.token).await;
    let mut b = connect(&app, &bia).await;
    a.send_json(json!({"type": "call.invite", "to": bia.id, "media": "video"}))
        .await;
    let ringing = a.recv_type("call.ringing").await;
    let call_id = ringing["call_id"].as_str().unwrap().to_owned();
    b.recv_type("call.incoming").await;
    let accepted = b
        .request(2, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    let room = accepted["room"].as_str().unwrap().to_owned();
    a.recv_type("call.accepted").await;
    a.send_json(json!({"type": "room.join", "room": room}))
        .await;
    a.recv_type("room.joined").await;
    b.join(&room).await;
    // ana's client breaks the protocol: the server ends her session, and her call with it.
    a.send(true, TEXT, b"\xC0\xAF").await;
    assert_eq!(a.until_close().await.0.close_code(), 1007);
    let left = b.recv_type("room.peer_left").await;
    assert_eq!(left["dropped"], false, "{left}");
    let ended = b.recv_type("call.ended").await;
    assert_eq!(ended["call_id"], call_id.as_str());
    assert_eq!(ended["dropped"], false, "{ended}");
}

#[actix_web::test]
async fn the_tcp_connection_ends_right_after_a_close_either_side_starts() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;

    // The client closes, as a browser does: its close frame, the server's reply, then it
    // waits for the server to end the TCP connection (RFC 6455 §7.1.1).
    let mut ws = RawWs::session(&app, &ana.token).await;
    ws.send(true, CLOSE, &1000u16.to_be_bytes()).await;
    let (close, _) = ws.until_close().await;
    assert_eq!(close.close_code(), 1000);
    let took = ws.time_to_end().await;
    assert!(
        took < PROMPT_CLOSE,
        "client close: TCP ended after {took:?}"
    );

    // The server closes (a frame over the size limit): the client answers its close frame
    // and waits likewise.
    let mut ws = RawWs::session(&app, &ana.token).await;
    ws.send(true, TEXT, "x".repeat(70_000).as_bytes()).await;
    let (close, _) = ws.until_close().await;
    assert_eq!(close.close_code(), 1009);
    ws.send(true, CLOSE, &1009u16.to_be_bytes()).await;
    let took = ws.time_to_end().await;
    assert!(
        took < PROMPT_CLOSE,
        "server close: TCP ended after {took:?}"
    );
}

#[actix_web::test]
async fn the_echo_route_is_absent_by_default() {
    let app = spawn_app().await;
    let refused = RawWs::open(&app, "/ws-echo", None).await.err();
    let head = refused.expect("no upgrade");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

#[actix_web::test]
async fn the_echo_route_when_turned_on_sends_text_back_as_text_and_binary_as_binary() {
    let app = spawn_app_with(|s| s.ws_echo_for_tests = true).await;
    let mut ws = RawWs::open(&app, "/ws-echo", None).await.expect("upgrade");
    ws.send(true, TEXT, "olá".as_bytes()).await;
    let frame = ws.frame().await;
    assert_eq!((frame.opcode, frame.fin), (TEXT, true));
    assert_eq!(frame.payload, "olá".as_bytes());
    ws.send(false, BINARY, &[0, 1]).await;
    ws.send(true, CONTINUATION, &[2, 255]).await;
    let frame = ws.frame().await;
    assert_eq!((frame.opcode, frame.fin), (BINARY, true));
    assert_eq!(frame.payload, [0, 1, 2, 255]);
    // The same frame handling as /ws: text that is not UTF-8 closes with 1007.
    ws.send(true, TEXT, b"\xFF").await;
    assert_eq!(ws.until_close().await.0.close_code(), 1007);
}
