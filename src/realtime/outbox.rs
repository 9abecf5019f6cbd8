//! [`Outbox`]: one connection's bounded outbound queue, which other actors write into and
//! which feeds the [`actix_ws::Session`] directly when the connection has room. A text frame
//! of 7–128 KiB goes out as a fragmented message, one fragment per write; when a client
//! cannot keep up and frames pile up, the connection is closed (1013) rather than let memory
//! grow or other clients wait. Also the compact process clock ([`clock_ms`]) that idle
//! connections keep their times in.

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, LazyLock, Mutex, MutexGuard, PoisonError,
    },
    task::{Context as TaskContext, Poll, Waker},
    time::{Duration, Instant},
};

use actix::prelude::*;
use actix_web::web::Bytes;
use actix_ws::{CloseCode, CloseReason, Item, Message};
use bytestring::ByteString;
use futures_util::{task::AtomicWaker, FutureExt, Sink};

use super::{
    frames::Endpoint,
    metrics::{RealtimeMetrics, CLOSE_LOST},
    Deliver,
};

/// How long a closing connection keeps trying to deliver the close frame (and, on a graceful
/// close, what was queued before it) to a client that is not reading.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long frames may wait for a full connection, more than `--ws-outbound-queue` of them,
/// before the client counts as too slow (1013).
const SLOW_WRITER_GRACE: Duration = Duration::from_secs(1);
/// Frames waiting beyond this many times `--ws-outbound-queue` close the connection (1013)
/// at once, whatever the connection is doing: the hard bound on one connection's memory.
const HARD_QUEUE_FACTOR: usize = 64;
/// Text frames longer than this go out as a fragmented message (RFC 6455 §5.4), one
/// fragment at a time (see [`Fragments`]), so that each fits the HTTP/1 dispatcher's 8 KiB
/// write buffer: a frame appended whole grows that buffer, and actix-http keeps a grown buffer
/// for the connection's life unless it passed [`WHOLE_FROM`]. In a lobby of a thousand users
/// every arrival's `presence.snapshot` is ~110 KB: without this each connection kept a buffer
/// that size (docs/benchmarks.md, change 25, "Memory held after a lobby arrival").
const FRAGMENT_BYTES: usize = 7 * 1024;
/// Text frames longer than this go whole: actix-http hands back a write buffer grown past
/// 128 KiB once it is written out, and one write costs less than twenty fragments.
const WHOLE_FROM: usize = 128 * 1024;

/// Milliseconds since a moment shared by the whole process (the first call), wrapping after
/// 49.7 days: the compact timestamps every idle session keeps (4 bytes where an `Instant`
/// takes 16). Spans are taken with `wrapping_sub`, exact while they are shorter than that.
pub fn clock_ms() -> u32 {
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    // Truncation is the point: the clock wraps.
    EPOCH.elapsed().as_millis() as u32
}

/// Milliseconds from `since` to `now` ([`clock_ms`] times); 0 if `since` is later (read on
/// another thread meanwhile).
fn span(since: u32, now: u32) -> u32 {
    let span = now.wrapping_sub(since);
    if span > u32::MAX / 2 {
        0
    } else {
        span
    }
}

/// Whether `born` is less than `ms` milliseconds before `now` ([`clock_ms`] times). Unlike
/// [`span`] this reads the plain wrapped difference: a connection older than half the
/// clock's range (24.8 days) must not pass for new (it would not be pinged and would then
/// be closed as silent); once every 49.7 days a connection passes for new for `ms` and
/// misses one ping.
fn opened_within(born: u32, now: u32, ms: u32) -> bool {
    now.wrapping_sub(born) < ms
}

/// Frames waiting in an outbox: allocated only while some wait, so that an idle
/// connection's queue keeps one pointer for them instead of 56 bytes.
#[derive(Default)]
struct Backlog {
    /// Frames the channel had no room for yet, oldest first.
    frames: VecDeque<Message>,
    /// Frames from others while the session waits for a reply (see [`Outbox::hold`]).
    held: Vec<Message>,
    /// The text frame going out in fragments, ahead of `frames`.
    fragments: Option<Fragments>,
}

/// Whether a text of `len` bytes is cut into fragments (see [`FRAGMENT_BYTES`]).
fn cut_in_fragments(len: usize) -> bool {
    (FRAGMENT_BYTES + 1..=WHOLE_FROM).contains(&len)
}

/// Whether a frame goes out as a fragmented message.
fn goes_in_fragments(frame: &Message) -> bool {
    matches!(frame, Message::Text(text) if cut_in_fragments(text.len()))
}

/// A text frame given as pieces, sent as one fragmented message without joining them: the
/// `presence.snapshot` of a tick is one piece shared by all its arrivals, and what each
/// arrival adds is another (joining them copied the whole snapshot for every arrival).
/// Every piece is valid UTF-8 on its own.
pub struct TextPieces(pub Vec<Bytes>);

/// A text message going out as a fragmented message: one fragment in the connection's
/// channel at a time, the next once the response body has taken the previous one (encoded it
/// into the dispatcher's write buffer, which a connection that keeps reading writes out
/// before it asks for more). A piece longer than [`FRAGMENT_BYTES`] is cut into fragments of
/// that size, unless it is longer than [`WHOLE_FROM`]. Frames after it wait: data frames may
/// not interleave with a fragmented message.
struct Fragments {
    /// What is left to send, in order.
    pieces: VecDeque<Bytes>,
    /// The first fragment (the text frame that opens the message) has been sent.
    started: bool,
    taken: Arc<FragmentTaken>,
}

/// Set when the fragment in the channel has been taken, and who to wake then.
struct FragmentTaken {
    taken: AtomicBool,
    waker: AtomicWaker,
}

/// One fragment's bytes: dropped when the response body has encoded them, which tells the
/// outbox. Lock-free: a fragment may be dropped under the outbox's lock (a refused send).
struct FragmentBytes {
    bytes: Bytes,
    taken: Arc<FragmentTaken>,
}

impl AsRef<[u8]> for FragmentBytes {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for FragmentBytes {
    fn drop(&mut self) {
        self.taken.taken.store(true, Ordering::Release);
        self.taken.waker.wake();
    }
}

impl Fragments {
    fn new(pieces: impl IntoIterator<Item = Bytes>) -> Self {
        Fragments {
            pieces: pieces.into_iter().collect(),
            started: false,
            taken: Arc::new(FragmentTaken {
                taken: AtomicBool::new(true),
                waker: AtomicWaker::new(),
            }),
        }
    }

    /// Whether the previous fragment was taken, so that the next may go; if not, `cx` is
    /// woken when it is.
    fn ready(&self, cx: &mut TaskContext<'_>) -> bool {
        if self.taken.taken.load(Ordering::Acquire) {
            return true;
        }
        self.taken.waker.register(cx.waker());
        self.taken.taken.load(Ordering::Acquire)
    }

    /// The next fragment, and whether it ends the message. Fragments end on character
    /// boundaries.
    fn take(&mut self) -> (Message, bool) {
        let mut piece = self.pieces.pop_front().unwrap_or_default();
        if cut_in_fragments(piece.len()) {
            let mut end = FRAGMENT_BYTES;
            // A UTF-8 continuation byte is 0b10xx_xxxx: step back to the character's start.
            while piece[end] & 0xC0 == 0x80 {
                end -= 1;
            }
            self.pieces.push_front(piece.split_off(end));
        }
        let bytes = Bytes::from_owner(FragmentBytes {
            bytes: piece,
            taken: Arc::clone(&self.taken),
        });
        // Before the fragment can be dropped (if the connection is gone, at once).
        self.taken.taken.store(false, Ordering::Release);
        let last = self.pieces.is_empty();
        let item = match (self.started, last) {
            (false, true) => {
                // The message was one fragment: it still needs its final one.
                self.pieces.push_back(Bytes::new());
                Item::FirstText(bytes)
            }
            (false, false) => Item::FirstText(bytes),
            (true, false) => Item::Continue(bytes),
            (true, true) => Item::Last(bytes),
        };
        self.started = true;
        (Message::Continuation(item), self.pieces.is_empty())
    }
}

/// Where an outbox's frames go: the response body of one connection, through a bounded
/// channel of [`Message`]s that the body encodes for its transport. The outbox and the
/// session do not care which (`docs/protocol.md`, "The HTTP transport").
pub enum Wire {
    /// A WebSocket (`GET /ws`): actix-ws's handle, its body writes WebSocket frames.
    Ws(actix_ws::Session),
    /// A Server-Sent Events stream (`GET /api/stream`): its body
    /// ([`super::stream::EventStream`]) writes each text frame as an event, a ping as a
    /// heartbeat comment and the close frame as a `close` event.
    Events(tokio_util::sync::PollSender<Message>),
}

impl From<actix_ws::Session> for Wire {
    fn from(ws: actix_ws::Session) -> Self {
        Wire::Ws(ws)
    }
}

impl Sink<Message> for Wire {
    type Error = ();

    fn poll_ready(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<(), ()>> {
        match self.get_mut() {
            Wire::Ws(ws) => Pin::new(ws).poll_ready(cx).map_err(drop),
            Wire::Events(tx) => Pin::new(tx).poll_ready(cx).map_err(drop),
        }
    }

    fn start_send(self: Pin<&mut Self>, frame: Message) -> Result<(), ()> {
        match self.get_mut() {
            Wire::Ws(ws) => Pin::new(ws).start_send(frame).map_err(drop),
            Wire::Events(tx) => Pin::new(tx).start_send(frame).map_err(drop),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<(), ()>> {
        match self.get_mut() {
            Wire::Ws(ws) => Pin::new(ws).poll_flush(cx).map_err(drop),
            Wire::Events(tx) => Pin::new(tx).poll_flush(cx).map_err(drop),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<(), ()>> {
        match self.get_mut() {
            Wire::Ws(ws) => Pin::new(ws).poll_close(cx).map_err(drop),
            Wire::Events(tx) => Pin::new(tx).poll_close(cx).map_err(drop),
        }
    }
}

/// What the outbox keeps, behind its lock (the outbox fits jemalloc's 128-byte class: a
/// unit test watches it).
#[derive(Default)]
struct Queue {
    /// The connection's way out (a bounded channel into its response body); `None` once the
    /// close frame is handed over or the connection is gone.
    ws: Option<Wire>,
    /// What waits; `None` while nothing does.
    backlog: Option<Box<Backlog>>,
    /// The session's [`Drain`], waiting for frames or for room.
    waker: Option<Waker>,
    /// `--ws-outbound-queue`.
    limit: u32,
    /// Since when ([`clock_ms`]) a frame has waited for room in the channel, i.e. for the
    /// connection to take something, if `stuck`.
    stuck_since: u32,
    /// A frame waits for room (false: the last frame went in).
    stuck: bool,
    /// Waits the session is in (see [`Outbox::hold`]); frames from others are held.
    holds: u32,
    /// Nothing more is queued: the session is closing, its client was too slow, or the
    /// connection is gone.
    closed: bool,
    /// The connection is gone: the session must stop.
    gone: bool,
    /// Closed because the client did not take its frames: the [`Drain`] ends with
    /// [`DrainEnd::TooSlow`] and the session closes the connection with 1013.
    too_slow: bool,
}

impl Queue {
    /// Frames queued or held and not yet taken by the connection's channel.
    fn waiting(&self) -> usize {
        self.backlog.as_ref().map_or(0, |b| {
            b.frames.len() + b.held.len() + usize::from(b.fragments.is_some())
        })
    }

    /// No frame waits for room in the channel (held ones aside).
    fn frames_empty(&self) -> bool {
        self.backlog
            .as_ref()
            .is_none_or(|b| b.frames.is_empty() && b.fragments.is_none())
    }

    /// The frames waiting for room (the backlog is allocated if need be).
    fn frames(&mut self) -> &mut VecDeque<Message> {
        &mut self.backlog.get_or_insert_default().frames
    }

    /// Frees the backlog once nothing waits in it.
    fn tidy(&mut self) {
        if self
            .backlog
            .as_ref()
            .is_some_and(|b| b.frames.is_empty() && b.held.is_empty() && b.fragments.is_none())
        {
            self.backlog = None;
        }
    }

    /// Moves waiting frames into the actix-ws channel while it has room, right now, from
    /// whichever actor queues them. A no-op waker is left with a full channel: the caller
    /// wakes the [`Drain`] if frames are left, so that the channel gets the drain's waker.
    /// Outside tokio's cooperative budget: a fan-out to thousands of sessions in one actor
    /// turn must not find channels "full" only because its task used its budget.
    fn flush_now(&mut self) {
        self.flush_now_with(std::iter::empty());
    }

    /// As [`Queue::flush_now`], then `more` after what waited: while nothing waits, frames
    /// go straight into the channel and `frames` is not touched, so an outbox allocates its
    /// queue only once its connection falls behind (an idle connection keeps none). What
    /// does not fit waits in `frames`.
    fn flush_now_with(&mut self, more: impl IntoIterator<Item = Message>) {
        let mut more = more.into_iter();
        let flushed = tokio::task::unconstrained(std::future::poll_fn(|cx| {
            self.flush(cx);
            if self.frames_empty() {
                for frame in more.by_ref() {
                    if goes_in_fragments(&frame) {
                        self.frames().push_back(frame);
                        self.flush(cx);
                        break;
                    }
                    if let Err(frame) = self.offer(cx, frame) {
                        self.frames().push_back(frame);
                        break;
                    }
                }
            }
            let mut rest = more.by_ref().peekable();
            if self.ws.is_some() && rest.peek().is_some() {
                self.frames().extend(rest);
            }
            Poll::Ready(())
        }));
        let _ = flushed.now_or_never();
    }

    /// Moves waiting frames into the actix-ws channel while it has room (a long text frame
    /// one fragment at a time, see [`Fragments`]); with a full channel, or a fragment not
    /// taken yet, `cx` is woken when that changes.
    fn flush(&mut self, cx: &mut TaskContext<'_>) {
        loop {
            if let Some(fragments) = self.backlog.as_mut().and_then(|b| b.fragments.as_mut()) {
                if !fragments.ready(cx) {
                    // The connection has not taken the last fragment: as stuck as a full
                    // channel, for the slow-client check.
                    self.mark_stuck();
                    return;
                }
                if !self.has_room(cx) {
                    return;
                }
                let Some(fragments) = self.backlog.as_mut().and_then(|b| b.fragments.as_mut())
                else {
                    continue;
                };
                let (fragment, done) = fragments.take();
                if done {
                    if let Some(backlog) = self.backlog.as_mut() {
                        backlog.fragments = None;
                    }
                }
                // There is room: the fragment goes (or the connection is gone).
                let _ = self.offer(cx, fragment);
                continue;
            }
            let Some(frame) = self.backlog.as_mut().and_then(|b| b.frames.pop_front()) else {
                break;
            };
            if goes_in_fragments(&frame) {
                if let (Message::Text(text), Some(backlog)) = (frame, self.backlog.as_mut()) {
                    backlog.fragments = Some(Fragments::new([text.into_bytes()]));
                }
                continue;
            }
            if let Err(frame) = self.offer(cx, frame) {
                self.frames().push_front(frame);
                return;
            }
        }
        self.tidy();
    }

    /// Frames wait because the connection takes nothing (since now, if not already).
    fn mark_stuck(&mut self) {
        if !self.stuck {
            self.stuck = true;
            self.stuck_since = clock_ms();
        }
    }

    /// Whether the actix-ws channel has room for a frame (kept for the next
    /// [`Queue::offer`]); if not, `cx` is woken when it has. True if the connection is gone
    /// (a frame offered then is dropped).
    fn has_room(&mut self, cx: &mut TaskContext<'_>) -> bool {
        let Some(ws) = self.ws.as_mut() else {
            return true;
        };
        match Pin::new(ws).poll_ready(cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(_)) => {
                self.connection_gone();
                true
            }
            Poll::Pending => {
                self.mark_stuck();
                false
            }
        }
    }

    /// Hands one frame to the actix-ws channel if it has room. `Err`: no room, the frame
    /// comes back and `cx` is woken when there is. A frame for a connection that is gone is
    /// dropped (`Ok`).
    fn offer(&mut self, cx: &mut TaskContext<'_>, frame: Message) -> Result<(), Message> {
        let Some(ws) = self.ws.as_mut() else {
            return Ok(());
        };
        match Pin::new(&mut *ws).poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                if Pin::new(&mut *ws).start_send(frame).is_err() {
                    self.connection_gone();
                } else {
                    self.stuck = false;
                }
                Ok(())
            }
            Poll::Ready(Err(_)) => {
                self.connection_gone();
                Ok(())
            }
            Poll::Pending => {
                self.mark_stuck();
                Err(frame)
            }
        }
    }

    fn connection_gone(&mut self) {
        self.ws = None;
        self.gone = true;
        self.closed = true;
        self.backlog = None;
    }
}

/// A session's outbound queue as the session and other actors reach it. Rooms, presence
/// and the hub put frames straight into the connection's actix-ws channel when it has room
/// (no hop through the session's mailbox, no writer task of our own); what does not fit
/// waits here, and the session's `Drain` moves it on as the connection takes frames.
///
/// What a mailbox would guarantee is kept here: while the session waits for a reply whose
/// frame must come first (`room.joined`, the presence snapshot, a chat ack), frames from
/// others are *held* and queued right after it; once the session closes, frames are dropped;
/// and a client too slow for the queue is closed with 1013.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<OutboxInner>,
}

/// What every handle of one [`Outbox`] shares.
struct OutboxInner {
    queue: Mutex<Queue>,
    /// When the client was last heard from (any frame, a pong included), in [`clock_ms`]:
    /// written by the session, read by presence's heartbeat sweep (no lock either way).
    last_heard: AtomicU32,
    /// When the connection was opened ([`clock_ms`]).
    born: u32,
    metrics: Arc<RealtimeMetrics>,
}

impl Outbox {
    /// The outbox of `act`'s connection `ws`, its [`Drain`] running in `act`'s context: a
    /// client too slow for `limit` frames is closed with 1013.
    pub(super) fn open<A: Endpoint>(
        ctx: &mut Context<A>,
        ws: impl Into<Wire>,
        limit: usize,
        metrics: Arc<RealtimeMetrics>,
    ) -> Self {
        let outbox = Outbox::new(ws, limit, metrics);
        let drain = fut::wrap_future::<_, A>(Drain(outbox.clone()));
        ctx.spawn(drain.map(|end, act, ctx| {
            if end == DrainEnd::TooSlow {
                act.close(
                    ctx,
                    CloseCode::Again,
                    "too slow: outbound queue full",
                    false,
                );
            }
        }));
        outbox
    }

    fn new(ws: impl Into<Wire>, limit: usize, metrics: Arc<RealtimeMetrics>) -> Self {
        let now = clock_ms();
        Outbox {
            inner: Arc::new(OutboxInner {
                queue: Mutex::new(Queue {
                    ws: Some(ws.into()),
                    limit: u32::try_from(limit).unwrap_or(u32::MAX).max(1),
                    ..Queue::default()
                }),
                last_heard: AtomicU32::new(now),
                born: now,
                metrics,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves the queue consistent (plain fields).
        self.inner
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a frame from another actor (held while the session waits for a reply).
    pub(crate) fn do_send(&self, msg: Deliver) {
        let mut q = self.lock();
        if q.closed {
            return;
        }
        self.inner.metrics.frame_out(msg.0.as_bytes());
        if q.holds > 0 {
            q.backlog
                .get_or_insert_default()
                .held
                .push(Message::Text(msg.0));
            self.queue(&mut q, None);
        } else {
            self.queue(&mut q, Some(Message::Text(msg.0)));
        }
    }

    /// Queues a frame of the session itself (never held). False: the connection is gone
    /// and the session must stop.
    pub(super) fn push_own(&self, frame: Message) -> bool {
        self.push_own_with(|q| {
            if let Message::Text(text) = &frame {
                self.inner.metrics.frame_out(text.as_bytes());
            }
            self.queue(q, Some(frame));
        })
    }

    /// Runs `push` on the queue for a frame of the session itself, unless the outbox is
    /// closed. False: the connection is gone and the session must stop.
    fn push_own_with(&self, push: impl FnOnce(&mut Queue)) -> bool {
        let mut q = self.lock();
        if q.gone {
            return false;
        }
        if !q.closed {
            push(&mut q);
        }
        !q.gone
    }

    /// Queues a text frame of the session itself given in pieces (see [`TextPieces`]): sent
    /// as a fragmented message when it is longer than [`FRAGMENT_BYTES`] and nothing waits
    /// before it (as at connect), else joined and queued as one frame. False: the connection
    /// is gone and the session must stop.
    pub(super) fn push_own_pieces(&self, text: TextPieces) -> bool {
        self.push_own_with(|q| {
            if let Some(first) = text.0.first() {
                self.inner.metrics.frame_out(first);
            }
            let len: usize = text.0.iter().map(Bytes::len).sum();
            if len > FRAGMENT_BYTES && q.frames_empty() {
                q.backlog.get_or_insert_default().fragments = Some(Fragments::new(text.0));
                self.queue(q, None);
            } else {
                match ByteString::try_from(text.0.concat()) {
                    Ok(frame) => self.queue(q, Some(Message::Text(frame))),
                    Err(_) => log::error!("a text frame in pieces is not UTF-8; not sent"),
                }
            }
        })
    }

    /// Appends `frames` and hands what fits to the connection now, unless the client has
    /// shown it is too slow (1013).
    ///
    /// What waits is moved on first, so the slow-client check sees the connection as it is
    /// now: the drain is not polled while its session awaits a reply (`ctx.wait`), and a
    /// client that kept reading meanwhile must not look stuck.
    fn queue(&self, q: &mut Queue, frames: impl IntoIterator<Item = Message>) {
        q.flush_now_with(frames);
        if !self.check(q) {
            return;
        }
        if !q.frames_empty() {
            // The channel is full: the drain waits for room with the session's own waker
            // (the no-op poll above has just replaced it in the channel).
            if let Some(waker) = q.waker.take() {
                waker.wake();
            }
        }
    }

    /// Closes the outbox (1013) when more than `--ws-outbound-queue` frames wait while the
    /// connection has taken none for [`SLOW_WRITER_GRACE`], or when more than
    /// [`HARD_QUEUE_FACTOR`] times that many wait at all. A burst to a client that keeps
    /// reading is not slow. False: closed.
    fn check(&self, q: &mut Queue) -> bool {
        let waiting = q.waiting();
        let limit = q.limit as usize;
        if waiting <= limit {
            return true;
        }
        let stuck =
            q.stuck && u128::from(span(q.stuck_since, clock_ms())) >= SLOW_WRITER_GRACE.as_millis();
        if stuck || waiting > limit.saturating_mul(HARD_QUEUE_FACTOR) {
            q.closed = true;
            q.too_slow = true;
            if let Some(backlog) = q.backlog.as_mut() {
                backlog.held.clear();
            }
            // The session hears it from its drain.
            if let Some(waker) = q.waker.take() {
                waker.wake();
            }
            return false;
        }
        true
    }

    /// The client was heard from at `now` ([`clock_ms`]).
    pub(super) fn heard(&self, now: u32) {
        self.inner.last_heard.store(now, Ordering::Relaxed);
    }

    /// How long the client has been silent as of `now` ([`clock_ms`]), in milliseconds
    /// (0 if it was heard after `now` was read).
    pub(crate) fn silent_for(&self, now: u32) -> u32 {
        span(self.inner.last_heard.load(Ordering::Relaxed), now)
    }

    /// When the connection was opened ([`clock_ms`]).
    pub(crate) fn born(&self) -> u32 {
        self.inner.born
    }

    /// Whether the connection was opened less than `ms` milliseconds before `now`
    /// ([`clock_ms`]); see the free function `opened_within`.
    pub(crate) fn opened_within(&self, now: u32, ms: u32) -> bool {
        opened_within(self.inner.born, now, ms)
    }

    /// Queues a ping, the heartbeat (see `PresenceActor`'s sweep): the client answers with a
    /// pong, which counts as hearing from it. Nothing if the session is closing or gone.
    pub fn ping(&self) {
        let _ = self.push_own(Message::Ping(Bytes::new()));
    }

    /// Whether frames are still taken (the session is not closing and the connection is
    /// not gone).
    pub(crate) fn is_open(&self) -> bool {
        !self.lock().closed
    }

    /// The session starts waiting for a reply whose frame must precede frames from others.
    pub(super) fn hold(&self) {
        self.lock().holds += 1;
    }

    /// The awaited frame is queued: what others sent meanwhile follows it, in order.
    pub(super) fn release(&self) {
        let mut q = self.lock();
        q.holds = q.holds.saturating_sub(1);
        if q.holds > 0 || q.closed {
            return;
        }
        let held = q
            .backlog
            .as_mut()
            .map(|b| std::mem::take(&mut b.held))
            .unwrap_or_default();
        self.queue(&mut q, held);
    }

    /// Ends the connection with a close frame carrying `code` and `reason` (see
    /// [`Outbox::finish`]), counted under `code` in `/metrics`.
    pub(super) fn close(&self, code: CloseCode, reason: &str, flush: bool) {
        self.inner.metrics.close(code.into());
        let reason = CloseReason {
            code,
            description: Some(reason.to_owned()),
        };
        self.finish(reason, flush);
    }

    /// The connection failed under the session (a reset, or the stream ended without a
    /// close frame): counted as 1006 ([`CLOSE_LOST`]), and nothing more is sent.
    pub(super) fn lose(&self) {
        self.inner.metrics.close(CLOSE_LOST);
        self.abandon();
    }

    /// The connection is gone under the session (reset or cut): nothing more is queued and
    /// no close frame is sent, since nobody is left to read it.
    pub(super) fn abandon(&self) {
        self.lock().connection_gone();
    }

    /// Nothing more is queued; the connection ends with a close frame carrying `reason`,
    /// after what is already queued when `flush`. Whatever the channel cannot take yet is
    /// handed over by a short-lived task (the session stops now), for at most
    /// [`CLOSE_GRACE`].
    pub(super) fn finish(&self, reason: CloseReason, flush: bool) {
        let mut q = self.lock();
        if q.gone {
            return;
        }
        q.closed = true;
        if let Some(backlog) = q.backlog.as_mut() {
            backlog.held.clear();
            if !flush {
                backlog.frames.clear();
                backlog.fragments = None;
            }
        }
        q.frames().push_back(Message::Close(Some(reason)));
        q.flush_now();
        if q.frames_empty() {
            // Dropping the handle ends the response body after the close frame.
            q.ws = None;
            return;
        }
        drop(q);
        let outbox = self.clone();
        actix_web::rt::spawn(async move {
            let flushed = std::future::poll_fn(|cx| {
                let mut q = outbox.lock();
                q.flush(cx);
                if q.frames_empty() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            });
            let _ = tokio::time::timeout(CLOSE_GRACE, flushed).await;
            let mut q = outbox.lock();
            q.backlog = None;
            q.ws = None;
        });
    }
}

/// The session's side of its [`Outbox`]: runs in the session actor's context (no task of
/// its own) and moves frames into the connection's channel whenever a full channel gains
/// room. Ends when the outbox closes; closing hands over the rest itself.
struct Drain(Outbox);

/// Why a session's [`Drain`] ended.
#[derive(Debug, PartialEq, Eq)]
enum DrainEnd {
    /// The session is closing, or the connection is gone.
    Closed,
    /// The client does not take its frames fast enough: the session closes with 1013.
    TooSlow,
}

impl Future for Drain {
    type Output = DrainEnd;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<DrainEnd> {
        let mut q = self.0.lock();
        if q.closed {
            return Poll::Ready(if q.too_slow {
                DrainEnd::TooSlow
            } else {
                DrainEnd::Closed
            });
        }
        q.flush(cx);
        if q.gone {
            return Poll::Ready(DrainEnd::Closed);
        }
        if !q.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            q.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{
        body::{BoxBody, MessageBody},
        http::header,
        test::TestRequest,
        web, FromRequest,
    };

    #[test]
    fn a_connection_weeks_old_does_not_pass_for_new_when_the_clock_wraps() {
        let day = 86_400_000u32;
        // Opened just now, and a day ago.
        assert!(opened_within(1_000, 3_000, 5_000));
        assert!(!opened_within(1_000, 1_000 + day, 5_000));
        // 30 days old, across the clock's wrap (a span would read 0 here).
        let born = u32::MAX - 10 * day;
        let now = born.wrapping_add(30 * day);
        assert_eq!(span(born, now), 0);
        assert!(!opened_within(born, now, 5_000));
        // Opened 2 s ago, across the wrap.
        assert!(opened_within(u32::MAX - 1_000, 1_000, 5_000));
    }

    /// An outbox on a real actix-ws session, and the response body its frames go to.
    async fn outbox(limit: usize) -> (Outbox, BoxBody) {
        let (req, mut payload) = TestRequest::default()
            .insert_header((header::UPGRADE, "websocket"))
            .insert_header((header::CONNECTION, "upgrade"))
            .insert_header((header::SEC_WEBSOCKET_VERSION, "13"))
            .insert_header((header::SEC_WEBSOCKET_KEY, "x3JJHMbDL1EzLkh9GBhXDw=="))
            .to_http_parts();
        let payload = web::Payload::from_request(&req, &mut payload)
            .await
            .unwrap();
        let (response, ws, _stream) = actix_ws::handle(&req, payload).unwrap();
        let metrics = Arc::new(RealtimeMetrics::new(&crate::metrics::Metrics::new()));
        let outbox = Outbox::new(ws, limit, metrics);
        (outbox, response.into_body())
    }

    /// What the session's drain says now: `None` while it goes on.
    fn drain_end(drain: &mut Drain) -> Option<DrainEnd> {
        match Pin::new(drain).poll(&mut TaskContext::from_waker(Waker::noop())) {
            Poll::Ready(end) => Some(end),
            Poll::Pending => None,
        }
    }

    /// The text frames the connection has taken so far (server frames are unmasked).
    async fn taken(body: &mut BoxBody, drain: &mut Drain) -> Vec<String> {
        let mut texts = Vec::new();
        loop {
            // As between the turns of a real connection and session: a fresh task budget.
            tokio::task::yield_now().await;
            // The session's drain runs between the connection's polls.
            let _ = Pin::new(&mut *drain).poll(&mut TaskContext::from_waker(Waker::noop()));
            let Some(Some(Ok(mut bytes))) =
                std::future::poll_fn(|cx| Pin::new(&mut *body).poll_next(cx)).now_or_never()
            else {
                return texts;
            };
            while bytes.len() >= 2 {
                assert_eq!(bytes[0], 0x81, "a final text frame");
                let (len, head) = match bytes[1] {
                    126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
                    n => (usize::from(n), 2),
                };
                texts.push(String::from_utf8(bytes[head..head + len].to_vec()).unwrap());
                bytes = bytes.slice(head + len..);
            }
        }
    }

    /// A WebSocket frame as the connection wrote it: final?, opcode, payload.
    type RawFrame = (bool, u8, Vec<u8>);

    /// Every chunk the response body gives (each one write of the HTTP/1 dispatcher), the
    /// session's drain running between the connection's polls, until the body has nothing.
    async fn chunks(body: &mut BoxBody, drain: &mut Drain) -> Vec<Bytes> {
        let mut chunks = Vec::new();
        loop {
            tokio::task::yield_now().await;
            let _ = Pin::new(&mut *drain).poll(&mut TaskContext::from_waker(Waker::noop()));
            let Some(Some(Ok(bytes))) =
                std::future::poll_fn(|cx| Pin::new(&mut *body).poll_next(cx)).now_or_never()
            else {
                return chunks;
            };
            chunks.push(bytes);
        }
    }

    /// The frames in what the connection wrote (server frames are unmasked).
    fn frames_in(written: &[Bytes]) -> Vec<RawFrame> {
        let all: Vec<u8> = written.iter().flat_map(|c| c.iter().copied()).collect();
        let mut frames = Vec::new();
        let mut at = 0;
        while at < all.len() {
            let (fin, opcode) = (all[at] & 0x80 != 0, all[at] & 0x0F);
            let (len, head) = match all[at + 1] & 0x7F {
                126 => (
                    usize::from(u16::from_be_bytes([all[at + 2], all[at + 3]])),
                    4,
                ),
                127 => {
                    let mut len = [0u8; 8];
                    len.copy_from_slice(&all[at + 2..at + 10]);
                    (usize::try_from(u64::from_be_bytes(len)).unwrap(), 10)
                }
                n => (usize::from(n), 2),
            };
            frames.push((fin, opcode, all[at + head..at + head + len].to_vec()));
            at += head + len;
        }
        frames
    }

    #[actix_web::test]
    async fn a_long_frame_goes_in_fragments_that_each_fit_the_write_buffer_and_others_follow_it() {
        let (outbox, mut body) = outbox(16).await;
        let mut drain = Drain(outbox.clone());
        // 40 KB of text with two-byte characters, so that a fragment must not end mid-way.
        let long: String = format!("{{\"text\":\"{}\"}}", "aé".repeat(13_500));
        assert!(outbox.push_own(Message::Text(long.clone().into())));
        outbox.do_send(Deliver("after".into()));
        let written = chunks(&mut body, &mut drain).await;
        // One fragment per write, each within the dispatcher's 8 KiB buffer.
        assert!(written.len() >= 6, "{} writes", written.len());
        for chunk in &written {
            assert!(chunk.len() <= 8 * 1024, "a write of {} bytes", chunk.len());
        }
        let frames = frames_in(&written);
        let (last, fragments) = frames.split_last().unwrap();
        assert_eq!(
            last,
            &(true, 0x1, b"after".to_vec()),
            "the next frame follows the message"
        );
        // A text frame, continuations, the last one final.
        assert_eq!(fragments[0].1, 0x1);
        for (i, (fin, opcode, payload)) in fragments.iter().enumerate() {
            assert_eq!(*fin, i == fragments.len() - 1);
            assert_eq!(*opcode, if i == 0 { 0x1 } else { 0x0 });
            assert!(
                std::str::from_utf8(payload).is_ok(),
                "fragment {i} splits a character"
            );
        }
        let whole: Vec<u8> = fragments.iter().flat_map(|f| f.2.clone()).collect();
        assert_eq!(String::from_utf8(whole).unwrap(), long);
    }

    #[actix_web::test]
    async fn a_text_in_pieces_goes_as_one_fragmented_message_and_whole_when_frames_wait() {
        let (outbox, mut body) = outbox(16).await;
        let mut drain = Drain(outbox.clone());
        let (shared, own) = (format!("{{\"l\":[{}", "1,".repeat(5_000)), "2]}");
        let pieces = || TextPieces(vec![Bytes::from(shared.clone()), Bytes::from(own)]);
        assert!(outbox.push_own_pieces(pieces()));
        outbox.do_send(Deliver("after".into()));
        let frames = frames_in(&chunks(&mut body, &mut drain).await);
        // 10 KB of shared piece: a 7 KiB fragment and the rest, then the own piece, final.
        let opcodes: Vec<(bool, u8)> = frames.iter().map(|f| (f.0, f.1)).collect();
        assert_eq!(
            opcodes,
            [(false, 0x1), (false, 0x0), (true, 0x0), (true, 0x1)]
        );
        let whole: Vec<u8> = frames[..3].iter().flat_map(|f| f.2.clone()).collect();
        assert_eq!(whole, format!("{shared}{own}").into_bytes());
        assert_eq!(frames[3].2, b"after");

        // A short text is one frame, as if it had come whole.
        assert!(outbox.push_own_pieces(TextPieces(vec![Bytes::from("{\"a\":"), Bytes::from("2}")])));
        let frames = frames_in(&chunks(&mut body, &mut drain).await);
        assert_eq!(frames, [(true, 0x1, b"{\"a\":2}".to_vec())]);

        // One piece too long to cut is still a message: its first fragment, then a final
        // empty one.
        let huge = "h".repeat(WHOLE_FROM + 1);
        assert!(outbox.push_own_pieces(TextPieces(vec![Bytes::from(huge.clone())])));
        let frames = frames_in(&chunks(&mut body, &mut drain).await);
        assert_eq!(
            frames,
            [(false, 0x1, huge.into_bytes()), (true, 0x0, Vec::new())]
        );

        // Behind frames that wait, the pieces are joined into one frame, in its turn.
        outbox.hold();
        for i in 0..40 {
            outbox.do_send(Deliver(format!("frame {i}").into()));
        }
        outbox.release();
        assert!(outbox.push_own_pieces(TextPieces(vec![Bytes::from("{\"a\":"), Bytes::from("1}")])));
        let mut got = Vec::new();
        for _ in 0..10 {
            got.extend(frames_in(&chunks(&mut body, &mut drain).await));
        }
        assert_eq!(got.len(), 41);
        assert_eq!(got[40], (true, 0x1, b"{\"a\":1}".to_vec()));
    }

    #[actix_web::test]
    async fn short_frames_and_frames_past_the_retained_size_go_whole() {
        let (outbox, mut body) = outbox(16).await;
        let mut drain = Drain(outbox.clone());
        let short = "s".repeat(FRAGMENT_BYTES);
        let huge = "h".repeat(WHOLE_FROM + 1);
        outbox.do_send(Deliver(short.clone().into()));
        outbox.do_send(Deliver(huge.clone().into()));
        let frames = frames_in(&chunks(&mut body, &mut drain).await);
        assert_eq!(
            frames,
            [
                (true, 0x1, short.into_bytes()),
                (true, 0x1, huge.into_bytes())
            ]
        );
    }

    #[actix_web::test]
    async fn a_connection_that_takes_no_fragment_is_closed_as_too_slow() {
        let (outbox, _body) = outbox(2).await;
        let mut drain = Drain(outbox.clone());
        outbox.do_send(Deliver("x".repeat(20_000).into()));
        // The first fragment sits in the channel; nothing takes it, so the rest waits.
        for i in 0..3 {
            outbox.do_send(Deliver(format!("frame {i}").into()));
        }
        assert_eq!(drain_end(&mut drain), None);
        tokio::time::sleep(SLOW_WRITER_GRACE + Duration::from_millis(100)).await;
        outbox.do_send(Deliver("one more".into()));
        assert_eq!(drain_end(&mut drain), Some(DrainEnd::TooSlow));
    }

    #[test]
    fn an_idle_outbox_fits_jemallocs_128_byte_class() {
        // The shared part of an `Arc` is the value and two counters (16 bytes).
        let outbox = std::mem::size_of::<OutboxInner>() + 16;
        assert!(outbox <= 128, "the outbox takes {outbox} bytes");
    }

    #[actix_web::test]
    async fn frames_from_others_wait_while_the_session_holds_and_follow_its_reply() {
        let (outbox, mut body) = outbox(16).await;
        let mut drain = Drain(outbox.clone());
        assert!(outbox.push_own(Message::Text("welcome".into())));
        outbox.hold();
        outbox.do_send(Deliver("diff 1".into()));
        outbox.do_send(Deliver("diff 2".into()));
        assert_eq!(taken(&mut body, &mut drain).await, ["welcome"]);
        assert!(outbox.push_own(Message::Text("snapshot".into())));
        outbox.release();
        outbox.do_send(Deliver("diff 3".into()));
        assert_eq!(
            taken(&mut body, &mut drain).await,
            ["snapshot", "diff 1", "diff 2", "diff 3"]
        );
    }

    #[actix_web::test]
    async fn a_burst_beyond_the_channel_reaches_a_reading_connection_whole_and_in_order() {
        // 300 frames: the actix-ws channel takes 32, the rest waits for the drain.
        let (outbox, mut body) = outbox(8).await;
        let mut drain = Drain(outbox.clone());
        for i in 0..300 {
            outbox.do_send(Deliver(format!("frame {i}").into()));
        }
        let mut got = Vec::new();
        for _ in 0..100 {
            got.extend(taken(&mut body, &mut drain).await);
        }
        let want: Vec<String> = (0..300).map(|i| format!("frame {i}")).collect();
        assert_eq!(got, want);
    }

    #[actix_web::test]
    async fn frames_piling_up_past_the_hard_bound_close_the_outbox_as_too_slow() {
        let (outbox, _body) = outbox(2).await;
        let mut drain = Drain(outbox.clone());
        assert_eq!(drain_end(&mut drain), None);
        // Nobody takes anything: 32 fit the channel, then 2 x 64 may wait.
        for i in 0..(32 + 2 * HARD_QUEUE_FACTOR + 1) {
            outbox.do_send(Deliver(format!("frame {i}").into()));
        }
        assert!(outbox.lock().closed);
        let waiting = outbox.lock().waiting();
        assert_eq!(drain_end(&mut drain), Some(DrainEnd::TooSlow));
        // Nothing more is queued.
        outbox.do_send(Deliver("late".into()));
        assert_eq!(outbox.lock().waiting(), waiting);
    }

    #[actix_web::test]
    async fn a_client_that_read_while_its_session_was_busy_is_not_taken_for_slow() {
        // The session awaits a reply (its drain is not polled) while the channel is full and
        // three frames wait; the client then reads everything, and a second passes.
        let (outbox, mut body) = outbox(2).await;
        let mut drain = Drain(outbox.clone());
        for i in 0..35 {
            outbox.do_send(Deliver(format!("frame {i}").into()));
        }
        assert_eq!(outbox.lock().waiting(), 3);
        let read = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).now_or_never();
        assert!(matches!(read, Some(Some(Ok(_)))));
        tokio::time::sleep(SLOW_WRITER_GRACE + Duration::from_millis(100)).await;
        // The next frame finds room: everything moves on and nobody is closed.
        outbox.do_send(Deliver("frame 35".into()));
        assert!(!outbox.lock().closed);
        assert_eq!(outbox.lock().waiting(), 0);
        assert_eq!(drain_end(&mut drain), None);
    }
}
