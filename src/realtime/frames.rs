//! The WebSocket transport's edge, shared by every endpoint: the protocol's
//! [`SessionActor`](super::session::SessionActor) on `/ws` and the test-only
//! [`EchoActor`](super::echo::EchoActor) on `/ws-echo`, so that what the Autobahn|Testsuite
//! checks on the echo is what `/ws` runs.
//!
//! [`InboundFrames`] turns the connection's raw frames into [`Inbound`] events: every frame
//! (text, binary, ping, pong, continuation) takes a token from the connection's bucket,
//! fragmented messages are put together (their text checked as UTF-8 fragment by fragment, so
//! a bad one fails at once), and what breaks the rules becomes a [`Violation`] with its close
//! code. [`handle`] then does the transport's part of each event for an [`Endpoint`] (pongs,
//! `rate_limited` errors, closes and their metrics) and hands it the messages.
//!
//! [`upgrade`] also holds the end of the upgrade's response until the close handshake is
//! over, so that the TCP connection ends right after it (see `CloseAfterHandshake`).

use std::{
    io,
    pin::Pin,
    str::Utf8Error,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{ready, Context as TaskContext, Poll},
    time::Duration,
};

use actix::prelude::*;
use actix_web::{
    body::{BodySize, BoxBody, MessageBody},
    web::{Bytes, BytesMut},
    HttpResponse,
};
use actix_ws::{CloseCode, CloseReason, Item, Message, MessageStream, ProtocolError};
use bytestring::ByteString;
use futures_util::{task::AtomicWaker, Stream, StreamExt};

use super::{
    outbox::{clock_ms, Outbox},
    protocol::error_frame,
};
use crate::{config::Settings, error::ErrorCode};

/// Window over which rejected (rate-limited) frames are counted towards closing with 1008,
/// in milliseconds.
const ABUSE_WINDOW_MS: u32 = 10_000;
/// How long after the server's close frame it waits for the client's before it ends the TCP
/// connection anyway (a client that is gone or does not answer).
const CLOSE_HANDSHAKE_WAIT: Duration = Duration::from_secs(1);

/// Wraps an upgrade's response and inbound stream (from `actix_ws::handle`): the response's
/// body ends only once the close handshake is over (`CloseAfterHandshake`), and the
/// stream yields [`Inbound`] events under the limits in `settings`.
pub fn upgrade(
    response: HttpResponse,
    stream: MessageStream,
    settings: &Settings,
) -> (HttpResponse, InboundFrames) {
    let handshake = Arc::new(Handshake::default());
    let response = response.map_body(|_, body| {
        BoxBody::new(CloseAfterHandshake {
            body,
            body_done: false,
            handshake: Arc::clone(&handshake),
            timeout: None,
        })
    });
    (response, InboundFrames::new(stream, settings, handshake))
}

/// Whether the client's side of the close handshake is over: its close frame came, or its
/// side of the connection ended.
#[derive(Default)]
struct Handshake {
    over: AtomicBool,
    /// The response body waiting for it.
    waker: AtomicWaker,
}

impl Handshake {
    fn finish(&self) {
        self.over.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether it is over; if not, `cx` is woken when it is.
    fn is_over(&self, cx: &mut TaskContext<'_>) -> bool {
        if self.over.load(Ordering::Acquire) {
            return true;
        }
        self.waker.register(cx.waker());
        self.over.load(Ordering::Acquire)
    }
}

/// An upgrade's response body (actix-ws's, which ends right after the close frame) whose end
/// waits for the client's close frame, at most [`CLOSE_HANDSHAKE_WAIT`].
///
/// The end of the body is when actix-http ends the TCP connection (the server's FIN, with
/// `client_disconnect_timeout` 0 in `startup.rs`: no lingering close). Ending it before the
/// client's close frame came would answer that frame, or anything the client sent before it
/// saw ours (a pong, a message in flight), with a reset, which may cost the client our close
/// frame; ending it later made every close reach the client late, since a WebSocket client
/// waits for the server's FIN (RFC 6455 §7.1.1). Meanwhile the client's frames are read and
/// dropped (see [`InboundFrames`]'s `Drop`).
struct CloseAfterHandshake {
    /// Kept until the wrapper ends, even once it has ended itself: dropping actix-ws's body
    /// tells its stream that the connection is closed, and the stream would stop reading.
    body: BoxBody,
    /// `body` has ended.
    body_done: bool,
    handshake: Arc<Handshake>,
    /// Started when the inner body ends.
    timeout: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl MessageBody for CloseAfterHandshake {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        if !self.body_done {
            match ready!(Pin::new(&mut self.body).poll_next(cx)) {
                Some(chunk) => return Poll::Ready(Some(chunk)),
                None => self.body_done = true,
            }
        }
        if self.handshake.is_over(cx) {
            return Poll::Ready(None);
        }
        let timeout = self
            .timeout
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_HANDSHAKE_WAIT)));
        ready!(std::future::Future::poll(timeout.as_mut(), cx));
        Poll::Ready(None)
    }
}

/// One thing the client did, and when ([`clock_ms`], read once per frame).
pub struct Inbound {
    pub now: u32,
    pub event: Event,
}

/// What one inbound frame comes to, once limits and fragments are dealt with.
pub enum Event {
    /// A whole text message (one frame, or its fragments put together), valid UTF-8.
    Text(ByteString),
    /// A whole binary message.
    Binary(Bytes),
    /// A ping within the limit: answered with a pong carrying `bytes`.
    Ping(Bytes),
    /// A frame that needs nothing more than being heard: a pong, or a fragment of a message
    /// not complete yet (or of one dropped by the rate limit).
    Heard,
    /// A frame over the rate limit, dropped unread: answered `rate_limited`.
    RateLimited,
    /// The client broke a rule: the connection is closed with this code.
    Violation(Violation),
    /// The client's close frame.
    Closed(Option<CloseReason>),
    /// The connection failed under us (a reset, a cut): nobody is left to tell.
    Lost,
}

/// A broken rule and how the connection ends for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub code: CloseCode,
    pub reason: &'static str,
    /// Frames already queued go out before the close frame (the `rate_limited` errors that
    /// led to a 1008); otherwise they are dropped.
    pub flush: bool,
    /// The connection is failed (RFC 6455 §7.1.7: the stream can no longer be trusted):
    /// the TCP connection ends right after the close frame, without waiting for the
    /// client's. Otherwise the close is an ordinary handshake.
    pub fail: bool,
}

impl Violation {
    /// Still flooding after `rate_limited` errors.
    const FLOOD: Violation = Violation {
        code: CloseCode::Policy,
        reason: "rate limit exceeded",
        flush: true,
        fail: false,
    };
    /// A frame, or a message put together from fragments, over `--ws-max-frame-bytes`.
    const TOO_LARGE: Violation = Violation {
        code: CloseCode::Size,
        reason: "frame too large",
        flush: false,
        fail: false,
    };
    /// A text message that is not UTF-8 (RFC 6455 §8.1).
    const NOT_UTF8: Violation = Violation {
        code: CloseCode::Invalid,
        reason: "text is not valid UTF-8",
        flush: false,
        fail: true,
    };
    /// Anything else RFC 6455 forbids (unmasked or reserved bits, bad opcodes, fragments out
    /// of order, a bad close frame).
    const PROTOCOL: Violation = Violation {
        code: CloseCode::Protocol,
        reason: "protocol error",
        flush: false,
        fail: true,
    };
}

/// Frames allowed per connection: `rate` per second with bursts up to `burst` (passed in by
/// its [`InboundFrames`]).
/// 8 bytes: an `f32` (exact for whole tokens up to 16 million) and a [`clock_ms`] time.
/// Not `governor`: its direct limiter is 72 bytes per connection and costs about three times
/// as much per frame (docs/benchmarks.md, *Session 8*).
struct TokenBucket {
    tokens: f32,
    last: u32,
}

impl TokenBucket {
    fn new(burst: u32, now: u32) -> Self {
        TokenBucket {
            tokens: burst.max(1) as f32,
            last: now,
        }
    }

    /// Takes a token at `now` ([`clock_ms`], never earlier than the last call's).
    fn take(&mut self, now: u32, rate: u32, burst: u32) -> bool {
        let elapsed_ms = now.wrapping_sub(self.last) as f32;
        self.last = now;
        self.tokens = (self.tokens + elapsed_ms * (rate as f32 / 1000.0)).min(burst.max(1) as f32);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A fragmented message being put together (allocated only while one is).
struct Partial {
    text: bool,
    bytes: BytesMut,
    /// How many leading bytes of a text message are known to be UTF-8 (a fragment may end in
    /// the middle of a character).
    checked: usize,
    /// A fragment was over the rate limit: the rest of the message is dropped too.
    dropped: bool,
}

/// A connection's inbound frames as [`Inbound`] events, under its limits
/// (`--ws-rate-per-sec`, `--ws-rate-burst`, `--ws-max-frame-bytes`).
///
/// It replaces actix-ws's `AggregatedMessageStream`, which put fragments together without
/// counting them, checked a fragmented text only once it was whole, and reported invalid
/// UTF-8 as an I/O error (it was taken for a lost connection: 1006 and no close frame).
pub struct InboundFrames {
    /// Taken by `Drop` to read the rest of the close handshake.
    stream: Option<Source>,
    handshake: Arc<Handshake>,
    rate: u32,
    burst: u32,
    /// Largest message, whole or put together (`--ws-max-frame-bytes`).
    max_message: usize,
    bucket: TokenBucket,
    /// Frames rejected since `rejected_since` ([`clock_ms`]).
    rejected: u32,
    rejected_since: u32,
    partial: Option<Box<Partial>>,
}

/// Where a connection's frames come from.
enum Source {
    /// A WebSocket's frames, decoded by actix-ws.
    Ws(MessageStream),
    /// The frames posted to an event stream (`super::stream`): whole text frames, and the
    /// client's leaving (a close frame); the channel ends when the stream does.
    Posted(tokio::sync::mpsc::Receiver<Message>),
}

impl InboundFrames {
    /// The frames of `stream` under the limits in `settings`; tells `handshake` when the
    /// client's close frame comes.
    fn new(stream: MessageStream, settings: &Settings, handshake: Arc<Handshake>) -> Self {
        let stream = Source::Ws(stream.max_frame_size(settings.ws_max_frame_bytes));
        Self::from_source(stream, settings, handshake)
    }

    /// The frames posted to an event stream (see [`super::stream`]), under the same limits
    /// as a WebSocket's.
    pub fn posted(frames: tokio::sync::mpsc::Receiver<Message>, settings: &Settings) -> Self {
        Self::from_source(Source::Posted(frames), settings, Arc::default())
    }

    fn from_source(stream: Source, settings: &Settings, handshake: Arc<Handshake>) -> Self {
        let now = clock_ms();
        InboundFrames {
            stream: Some(stream),
            handshake,
            rate: settings.ws_rate_per_sec,
            burst: settings.ws_rate_burst,
            max_message: settings.ws_max_frame_bytes,
            bucket: TokenBucket::new(settings.ws_rate_burst, now),
            rejected: 0,
            rejected_since: now,
            partial: None,
        }
    }

    /// What one frame comes to at `now`.
    fn frame(&mut self, msg: Message, now: u32) -> Event {
        // A close frame is never refused: a client may always leave.
        if !matches!(msg, Message::Close(_)) && !self.bucket.take(now, self.rate, self.burst) {
            if let Message::Continuation(item) = &msg {
                self.drop_fragment(item);
            }
            return self.reject(now);
        }
        match msg {
            // A WebSocket's codec refuses such a frame itself; a posted one comes whole.
            Message::Text(text) if text.len() > self.max_message => {
                Event::Violation(Violation::TOO_LARGE)
            }
            Message::Text(text) => Event::Text(text),
            Message::Binary(bytes) => Event::Binary(bytes),
            Message::Ping(bytes) => Event::Ping(bytes),
            Message::Pong(_) | Message::Nop => Event::Heard,
            Message::Close(reason) => Event::Closed(reason),
            Message::Continuation(item) => self.fragment(item),
        }
    }

    /// Counts a rejected frame: `rate_limited`, or 1008 once more than `burst` frames were
    /// rejected within [`ABUSE_WINDOW_MS`].
    fn reject(&mut self, now: u32) -> Event {
        if now.wrapping_sub(self.rejected_since) > ABUSE_WINDOW_MS {
            self.rejected = 0;
            self.rejected_since = now;
        }
        self.rejected += 1;
        if self.rejected > self.burst.max(1) {
            Event::Violation(Violation::FLOOD)
        } else {
            Event::RateLimited
        }
    }

    /// A fragment over the rate limit: its message is dropped whole (what is left of it is
    /// read and ignored), since a message missing a piece would be another message.
    fn drop_fragment(&mut self, item: &Item) {
        match item {
            Item::FirstText(_) | Item::FirstBinary(_) => {
                self.partial = Some(Box::new(Partial {
                    text: false,
                    bytes: BytesMut::new(),
                    checked: 0,
                    dropped: true,
                }));
            }
            Item::Continue(_) => {
                if let Some(partial) = self.partial.as_mut() {
                    partial.dropped = true;
                    partial.bytes = BytesMut::new();
                }
            }
            Item::Last(_) => self.partial = None,
        }
    }

    /// One fragment of a message (the codec has checked their order: a first one only
    /// outside a message, the others only inside one).
    fn fragment(&mut self, item: Item) -> Event {
        let (first, text, bytes, last) = match item {
            Item::FirstText(bytes) => (true, true, bytes, false),
            Item::FirstBinary(bytes) => (true, false, bytes, false),
            Item::Continue(bytes) => (false, false, bytes, false),
            Item::Last(bytes) => (false, false, bytes, true),
        };
        if first {
            self.partial = Some(Box::new(Partial {
                text,
                bytes: BytesMut::new(),
                checked: 0,
                dropped: false,
            }));
        }
        let Some(partial) = self.partial.as_mut() else {
            return Event::Violation(Violation::PROTOCOL);
        };
        if partial.dropped {
            if last {
                self.partial = None;
            }
            return Event::Heard;
        }
        if partial.bytes.len() + bytes.len() > self.max_message {
            self.partial = None;
            return Event::Violation(Violation::TOO_LARGE);
        }
        partial.bytes.extend_from_slice(&bytes);
        if partial.text && !partial.check_utf8(last) {
            self.partial = None;
            return Event::Violation(Violation::NOT_UTF8);
        }
        if !last {
            return Event::Heard;
        }
        let Some(partial) = self.partial.take() else {
            return Event::Heard;
        };
        let bytes = partial.bytes.freeze();
        if !partial.text {
            return Event::Binary(bytes);
        }
        match ByteString::try_from(bytes) {
            Ok(text) => Event::Text(text),
            // Checked above: cannot happen, and would be the client's fault if it did.
            Err(_) => Event::Violation(Violation::NOT_UTF8),
        }
    }
}

impl Partial {
    /// Checks what was added since the last check; a character cut at the end waits for the
    /// next fragment unless this is the `last`. False: not UTF-8.
    fn check_utf8(&mut self, last: bool) -> bool {
        match std::str::from_utf8(&self.bytes[self.checked..]) {
            Ok(_) => {
                self.checked = self.bytes.len();
                true
            }
            Err(e) if e.error_len().is_none() && !last => {
                self.checked += e.valid_up_to();
                true
            }
            Err(_) => false,
        }
    }
}

/// What a protocol error from the codec means for the connection.
fn classify(e: ProtocolError) -> Event {
    match e {
        ProtocolError::Overflow => Event::Violation(Violation::TOO_LARGE),
        // actix-ws reports a text frame that is not UTF-8 as an I/O error wrapping the
        // `Utf8Error`; frames with reserved bits set as another `InvalidData` I/O error.
        ProtocolError::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<Utf8Error>()) => {
            Event::Violation(Violation::NOT_UTF8)
        }
        ProtocolError::Io(e) if e.kind() == io::ErrorKind::InvalidData => {
            log::debug!("WebSocket protocol error: {e}");
            Event::Violation(Violation::PROTOCOL)
        }
        ProtocolError::Io(e) => {
            log::debug!("WebSocket connection lost: {e}");
            Event::Lost
        }
        e => {
            log::debug!("WebSocket protocol error: {e}");
            Event::Violation(Violation::PROTOCOL)
        }
    }
}

impl Stream for InboundFrames {
    type Item = Inbound;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Inbound>> {
        let this = self.get_mut();
        let Some(stream) = this.stream.as_mut() else {
            return Poll::Ready(None);
        };
        let next = match stream {
            Source::Ws(stream) => ready!(Pin::new(stream).poll_next(cx)),
            Source::Posted(frames) => ready!(frames.poll_recv(cx)).map(Ok),
        };
        let Some(item) = next else {
            this.handshake.finish();
            return Poll::Ready(None);
        };
        let now = clock_ms();
        let event = match item {
            Ok(msg) => this.frame(msg, now),
            Err(e) => classify(e),
        };
        // Nothing more is awaited from the client: its close frame came, its connection is
        // gone, or it is failed (after a bad close frame, say, no other comes).
        if matches!(event, Event::Closed(_) | Event::Lost)
            || matches!(event, Event::Violation(v) if v.fail)
        {
            this.handshake.finish();
        }
        Poll::Ready(Some(Inbound { now, event }))
    }
}

impl Drop for InboundFrames {
    /// The endpoint is done (it has sent its close frame, or the connection is gone): until
    /// the client's close frame comes, what it sends is read and dropped, so that nothing
    /// it sent is answered with a reset (see `CloseAfterHandshake`).
    fn drop(&mut self) {
        let Some(Source::Ws(mut stream)) = self.stream.take() else {
            return;
        };
        if self.handshake.over.load(Ordering::Acquire) {
            return;
        }
        let handshake = Arc::clone(&self.handshake);
        actix_web::rt::spawn(async move {
            let rest = async {
                while let Some(item) = stream.next().await {
                    if matches!(item, Ok(Message::Close(_)) | Err(_)) {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE_WAIT, rest).await;
            handshake.finish();
        });
    }
}

/// An actor at the end of a WebSocket connection: what it does with the messages; the
/// transport's part is [`handle`]'s.
pub trait Endpoint: Actor<Context = Context<Self>> {
    /// The connection's outbound queue.
    fn outbox(&self) -> &Outbox;

    /// Whether the endpoint is closing (set once, by [`Endpoint::close`] or
    /// [`Endpoint::lost`]).
    fn closing(&mut self) -> &mut bool;

    /// Queues a frame of the endpoint itself: nothing once closing. If the transport under
    /// the outbox failed (a socket reset, an event stream whose client went away) the
    /// connection was lost, counted as 1006, and the actor stops; whichever of the two sides
    /// notices first (this write, or the inbound stream's end) counts it, once.
    fn enqueue(&mut self, ctx: &mut Context<Self>, frame: Message) {
        if !*self.closing() && !self.outbox().push_own(frame) {
            self.lost(ctx);
        }
    }

    /// Ends the connection with `code`, once, counted under it (the outbox sends the close
    /// frame); stops the actor.
    fn close(&mut self, ctx: &mut Context<Self>, code: CloseCode, reason: &str, flush: bool) {
        if !std::mem::replace(self.closing(), true) {
            self.outbox().close(code, reason, flush);
        }
        ctx.stop();
    }

    /// The client's side of the transport failed (a reset, or the stream ended without a
    /// close frame): no close frame can reach anyone and it is no protocol error of theirs.
    /// Counted as 1006 (RFC 6455's "closed abnormally", never sent on the wire); stops the
    /// actor.
    fn lost(&mut self, ctx: &mut Context<Self>) {
        if !std::mem::replace(self.closing(), true) {
            self.outbox().lose();
        }
        ctx.stop();
    }

    /// A whole text message; `now` is when it came ([`clock_ms`]).
    fn on_text(&mut self, text: ByteString, now: u32, ctx: &mut Context<Self>);

    /// A whole binary message.
    fn on_binary(&mut self, bytes: Bytes, ctx: &mut Context<Self>);

    /// The client sent a close frame (answered with 1000 right after).
    fn on_close_frame(&mut self, _reason: Option<&CloseReason>) {}

    /// The connection is about to be closed with `code` for breaking a rule.
    fn on_violation(&mut self, _code: CloseCode) {}
}

/// Does the transport's part of one inbound event for `act`, and hands it the messages.
pub fn handle<A: Endpoint>(act: &mut A, inbound: Inbound, ctx: &mut Context<A>) {
    act.outbox().heard(inbound.now);
    match inbound.event {
        Event::Text(text) => act.on_text(text, inbound.now, ctx),
        Event::Binary(bytes) => act.on_binary(bytes, ctx),
        Event::Ping(bytes) => act.enqueue(ctx, Message::Pong(bytes)),
        Event::Heard => {}
        Event::RateLimited => {
            let frame = error_frame(None, ErrorCode::RateLimited, "too many frames; slow down");
            act.enqueue(ctx, Message::Text(frame));
        }
        Event::Violation(v) => {
            act.on_violation(v.code);
            act.close(ctx, v.code, v.reason, v.flush);
        }
        Event::Closed(reason) => {
            act.on_close_frame(reason.as_ref());
            act.close(ctx, CloseCode::Normal, "bye", true);
        }
        Event::Lost => act.lost(ctx),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{http::header, test::TestRequest, web, FromRequest};

    use super::*;

    /// A client frame: final?, opcode, payload, masked as a client must.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() < 126);
        let mask = [1, 2, 3, 4];
        let mut frame = vec![u8::from(fin) << 7 | opcode, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    /// What `InboundFrames` makes of `frames` (the whole input of one connection) under
    /// `settings`, each event described in a word.
    async fn events(frames: &[Vec<u8>], settings: &Settings) -> Vec<String> {
        let (req, mut payload) = TestRequest::default()
            .insert_header((header::UPGRADE, "websocket"))
            .insert_header((header::CONNECTION, "upgrade"))
            .insert_header((header::SEC_WEBSOCKET_VERSION, "13"))
            .insert_header((header::SEC_WEBSOCKET_KEY, "x3JJHMbDL1EzLkh9GBhXDw=="))
            .set_payload(frames.concat())
            .to_http_parts();
        let payload = web::Payload::from_request(&req, &mut payload)
            .await
            .unwrap();
        let (response, _ws, stream) = actix_ws::handle(&req, payload).unwrap();
        let (_response, inbound) = upgrade(response, stream, settings);
        inbound
            .map(|i| match i.event {
                Event::Text(text) => format!("text {text}"),
                Event::Binary(bytes) => format!("binary {bytes:?}"),
                Event::Ping(_) => "ping".to_owned(),
                Event::Heard => "heard".to_owned(),
                Event::RateLimited => "rate_limited".to_owned(),
                Event::Violation(v) => format!("close {}", u16::from(v.code)),
                Event::Closed(_) => "closed".to_owned(),
                Event::Lost => "lost".to_owned(),
            })
            .collect()
            .await
    }

    /// Settings with a bucket of `burst` tokens that does not refill within a test.
    fn bucket_of(burst: u32) -> Settings {
        Settings {
            ws_rate_per_sec: 0,
            ws_rate_burst: burst,
            ..Settings::default()
        }
    }

    #[actix_web::test]
    async fn every_kind_of_frame_takes_a_token_but_a_close_frame_always_passes() {
        let frames = [
            client_frame(true, 0x9, b"p"),
            client_frame(true, 0xA, b"p"),
            client_frame(true, 0x2, b"b"),
            client_frame(true, 0x9, b"p"),
            client_frame(true, 0x8, &1000u16.to_be_bytes()),
        ];
        let got = events(&frames, &bucket_of(3)).await;
        assert_eq!(
            got,
            ["ping", "heard", "binary b\"b\"", "rate_limited", "closed"]
        );
    }

    #[actix_web::test]
    async fn fragments_take_a_token_each_and_one_refused_drops_its_whole_message() {
        let frames = [
            client_frame(false, 0x1, b"ca"),
            client_frame(false, 0x0, b"f\xC3"),
            client_frame(true, 0x0, b"\xA9"),
            client_frame(false, 0x1, b"x"),
            client_frame(false, 0x0, b"y"),
            client_frame(true, 0x0, b"z"),
        ];
        let got = events(&frames, &bucket_of(4)).await;
        assert_eq!(
            got,
            [
                "heard",
                "heard",
                "text café",
                "heard",
                "rate_limited",
                "rate_limited"
            ]
        );
    }

    #[actix_web::test]
    async fn a_message_put_together_past_the_frame_limit_closes_with_1009() {
        let settings = Settings {
            ws_max_frame_bytes: 8,
            ..Settings::default()
        };
        let frames = [
            client_frame(false, 0x2, b"12345"),
            client_frame(true, 0x0, b"6789"),
        ];
        assert_eq!(events(&frames, &settings).await, ["heard", "close 1009"]);
    }

    #[actix_web::test]
    async fn text_that_is_not_utf8_closes_with_1007_and_bad_framing_with_1002() {
        let whole = [client_frame(true, 0x1, b"\xFF")];
        assert_eq!(events(&whole, &Settings::default()).await, ["close 1007"]);
        // A continuation with no message to continue.
        let stray = [client_frame(true, 0x0, b"x")];
        assert_eq!(events(&stray, &Settings::default()).await, ["close 1002"]);
    }

    fn partial(bytes: &[u8]) -> Partial {
        Partial {
            text: true,
            bytes: BytesMut::from(bytes),
            checked: 0,
            dropped: false,
        }
    }

    #[test]
    fn a_character_cut_between_fragments_waits_for_the_next_one_but_not_past_the_last() {
        // "é" is 0xC3 0xA9: cut after its first byte.
        let mut p = partial(b"caf\xC3");
        assert!(p.check_utf8(false));
        assert_eq!(p.checked, 3);
        p.bytes.extend_from_slice(b"\xA9!");
        assert!(p.check_utf8(true));
        // The same cut character in the last fragment is not UTF-8.
        assert!(!partial(b"caf\xC3").check_utf8(true));
    }

    #[test]
    fn a_byte_that_can_never_be_utf8_fails_the_fragment_it_comes_in() {
        // 0xFF never appears in UTF-8, whatever follows.
        assert!(!partial(b"ok\xFFmore").check_utf8(false));
        // An encoded surrogate (0xED 0xA0 0x80) neither.
        assert!(!partial(b"\xED\xA0\x80").check_utf8(false));
    }

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        let mut bucket = TokenBucket::new(3, 0);
        assert!((0..3).all(|_| bucket.take(0, 10, 3)));
        assert!(!bucket.take(0, 10, 3));
        // 10 per second: one more after 100 ms.
        assert!(bucket.take(100, 10, 3));
        assert!(!bucket.take(100, 10, 3));
    }
}
