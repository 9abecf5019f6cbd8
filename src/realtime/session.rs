//! [`SessionActor`]: one WebSocket connection.
//!
//! It owns the inbound [`AggregatedMessageStream`] (`ctx.add_stream`), parses every frame
//! into the typed protocol at this boundary, enforces the limits (rate, frame size,
//! heartbeat) and forwards typed messages to the presence, hub, room and chat-store actors.
//! Outbound frames go through a bounded queue to a small writer task that owns the
//! [`actix_ws::Session`]: when a client cannot keep up and the queue fills, the connection is
//! closed (1013) rather than let memory grow or other clients wait.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, OnceLock, PoisonError,
    },
    time::{Duration, Instant},
};

use actix::prelude::*;
use actix_web::web::Bytes;
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};
use bytestring::ByteString;
use tokio::sync::{mpsc, oneshot};

use super::{
    enter_room, history_page,
    hub::{CallAction, CallRequest, GetRoom},
    metrics::RealtimeMetrics,
    presence::{Connect, Disconnect, SetStatus},
    protocol::{
        self, error_frame, ChatView, ClientFrame, ClientMsg, FrameId, Limits, MissedView, RoomName,
        RoomRef, ServerMsg, SessionId, SharedStr, UserId, UserRef, WelcomeUser,
    },
    room::{Join, Leave, RoomActor, Signal, Typing},
    store::{ChatReply, StoreChat},
    ws_error, CloseSession, Deliver, Realtime, SessionHandle,
};
use crate::{
    db::{self, models::NewMessage},
    error::{ApiError, ErrorCode},
};

/// How long the writer keeps trying to deliver the close frame (and, on a graceful close,
/// what was queued before it) to a client that is not reading.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Window over which rejected (rate-limited) frames are counted towards closing with 1008.
const ABUSE_WINDOW: Duration = Duration::from_secs(10);
/// Messages sent in `room.joined` when the client gives no `since`.
const JOIN_HISTORY: i64 = 50;
/// Most rooms one connection may be in at once (each costs a room actor and a database row).
const MAX_JOINED_ROOMS: usize = 32;
/// How many times a join retries when its room stopped in the meantime.
const JOIN_ATTEMPTS: usize = 3;
/// How long the writer may be stuck on a full connection, with more than
/// `--ws-outbound-queue` frames waiting, before the client counts as too slow (1013).
const SLOW_WRITER_GRACE: Duration = Duration::from_secs(1);
/// Frames waiting beyond this many times `--ws-outbound-queue` close the connection (1013)
/// at once, whatever the writer is doing: the hard bound on one connection's memory.
const HARD_QUEUE_FACTOR: usize = 64;

/// Milliseconds since the first call (a cheap monotonic clock shared with the writer).
fn mono_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// What the actor and its writer share about the outbound queue.
///
/// The writer runs between the actor's turns, and an actor drains its whole mailbox in one
/// turn, so a burst can put many frames in the queue before the writer sees any: the length
/// alone does not tell a slow client from a busy moment. A client is slow when frames pile
/// up *and* the writer is stuck because the connection does not take them.
#[derive(Default)]
struct OutboundState {
    /// Frames queued and not yet handed to the connection.
    waiting: AtomicUsize,
    /// When the writer started waiting for the connection to take a frame ([`mono_ms`]);
    /// 0 while it is not waiting.
    stuck_since_ms: AtomicU64,
}

/// A session's outbound queue as other actors reach it: rooms, presence and the hub put
/// frames straight into the queue the writer task drains, without a hop through the
/// session's mailbox (one task wake-up less per relayed signal or fan-out frame).
///
/// What the mailbox used to guarantee is kept here: while the session waits for a reply
/// whose frame must come first (`room.joined`, the presence snapshot, a chat ack), frames
/// from others are *held* and queued right after it; once the session closes, frames are
/// dropped; and a client too slow for the queue is closed with 1013.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<OutboxInner>,
}

/// What every handle of one [`Outbox`] shares.
struct OutboxInner {
    tx: mpsc::UnboundedSender<Outbound>,
    /// Shared with the writer task.
    state: Arc<OutboundState>,
    gate: Mutex<Gate>,
    /// `--ws-outbound-queue`.
    limit: usize,
    metrics: Arc<RealtimeMetrics>,
    /// The session, told when its client is too slow (weak: the outbox does not keep it).
    session: actix::WeakRecipient<TooSlow>,
}

/// Whether frames from others go to the queue now, wait, or are dropped.
#[derive(Default)]
struct Gate {
    /// Waits the session is in (see [`Outbox::hold`]); frames from others wait in `held`.
    holds: u32,
    held: Vec<Outbound>,
    /// The session is closing: nothing more is queued.
    closed: bool,
}

impl Outbox {
    fn new(
        tx: mpsc::UnboundedSender<Outbound>,
        state: Arc<OutboundState>,
        limit: usize,
        metrics: Arc<RealtimeMetrics>,
        session: actix::WeakRecipient<TooSlow>,
    ) -> Self {
        Outbox {
            inner: Arc::new(OutboxInner {
                tx,
                state,
                gate: Mutex::new(Gate::default()),
                limit: limit.max(1),
                metrics,
                session,
            }),
        }
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        // A panic while holding the lock leaves the gate consistent (plain fields).
        self.inner
            .gate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a frame from another actor (held while the session waits for a reply).
    pub fn do_send(&self, msg: Deliver) {
        let mut gate = self.gate();
        if gate.closed {
            return;
        }
        self.inner.metrics.frame_out(&msg.0);
        if gate.holds > 0 {
            // Counted as waiting, so the hard bound also covers held frames.
            self.inner.state.waiting.fetch_add(1, Ordering::Relaxed);
            gate.held.push(Outbound::Text(msg.0));
            if self.inner.state.waiting.load(Ordering::Relaxed)
                > self.inner.limit.saturating_mul(HARD_QUEUE_FACTOR)
            {
                self.too_slow(&mut gate);
            }
            return;
        }
        self.enqueue(&mut gate, Outbound::Text(msg.0), false);
    }

    /// Queues a frame of the session itself (never held). False: the session must stop (the
    /// writer is gone).
    fn push_own(&self, item: Outbound) -> bool {
        let mut gate = self.gate();
        if gate.closed {
            return true;
        }
        if let Outbound::Text(frame) = &item {
            self.inner.metrics.frame_out(frame);
        }
        self.enqueue(&mut gate, item, false)
    }

    /// Puts one item in the queue unless the client has shown it is too slow (1013).
    /// `counted`: already counted in `waiting` (a held frame).
    fn enqueue(&self, gate: &mut Gate, item: Outbound, counted: bool) -> bool {
        let state = &self.inner.state;
        let waiting = if counted {
            state.waiting.load(Ordering::Relaxed)
        } else {
            state.waiting.fetch_add(1, Ordering::Relaxed) + 1
        };
        let limit = self.inner.limit;
        if waiting > limit {
            let stuck_since = state.stuck_since_ms.load(Ordering::Relaxed);
            let stuck = stuck_since != 0
                && mono_ms().saturating_sub(stuck_since) >= SLOW_WRITER_GRACE.as_millis() as u64;
            if stuck || waiting > limit.saturating_mul(HARD_QUEUE_FACTOR) {
                self.too_slow(gate);
                return true;
            }
        }
        self.inner.tx.send(item).is_ok()
    }

    /// Stops queueing and has the session close with 1013.
    fn too_slow(&self, gate: &mut Gate) {
        gate.closed = true;
        gate.held.clear();
        if let Some(session) = self.inner.session.upgrade() {
            session.do_send(TooSlow);
        }
    }

    /// The session starts waiting for a reply whose frame must precede frames from others.
    fn hold(&self) {
        self.gate().holds += 1;
    }

    /// The awaited frame is queued: what others sent meanwhile follows it, in order.
    fn release(&self) {
        let mut gate = self.gate();
        gate.holds = gate.holds.saturating_sub(1);
        if gate.holds > 0 || gate.closed {
            return;
        }
        let held = std::mem::take(&mut gate.held);
        for item in held {
            if gate.closed {
                break;
            }
            self.enqueue(&mut gate, item, true);
        }
    }

    /// Nothing more is queued: the session is closing.
    fn close(&self) {
        let mut gate = self.gate();
        gate.closed = true;
        gate.held.clear();
    }
}

/// The session's client does not take its frames fast enough: close with 1013.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TooSlow;

/// One thing for the writer task to put on the wire.
pub enum Outbound {
    Text(ByteString),
    Ping,
    Pong(Bytes),
}

/// How the writer task should end the connection.
pub struct CloseCmd {
    reason: CloseReason,
    /// Write what is already queued first (false when the client is too slow for that).
    flush: bool,
}

/// Frames allowed per connection: `rate` per second with bursts up to `burst`.
struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            tokens: burst,
            rate: f64::from(rate),
            burst,
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A room this session has joined.
struct Joined {
    addr: Addr<RoomActor>,
    room_id: i64,
}

/// What a successful join yields: the pending membership, the peers already there, the
/// history to send, the room's id and kind.
type JoinOutcome = (
    JoinGuard,
    Vec<protocol::PeerView>,
    Vec<ChatView>,
    i64,
    db::models::RoomKind,
);

/// Leaves a room if a join's result is dropped before the session records it (the session
/// stopped while joining), so no room keeps a member that is gone.
struct JoinGuard {
    room: Option<Addr<RoomActor>>,
    peer_id: SessionId,
}

impl JoinGuard {
    fn disarm(mut self) -> Option<Addr<RoomActor>> {
        self.room.take()
    }
}

impl Drop for JoinGuard {
    fn drop(&mut self) {
        if let Some(room) = self.room.take() {
            room.do_send(Leave {
                peer_id: self.peer_id.clone(),
                dropped: true,
            });
        }
    }
}

/// One WebSocket connection of an authenticated user.
pub struct SessionActor {
    id: SessionId,
    user: UserRef,
    caps: crate::db::models::Capabilities,
    /// Sent once, in `started`.
    welcome: Option<WelcomeUser>,
    /// The login session (`sessions.id`) whose credential opened this connection.
    auth_session_id: i64,
    rt: Realtime,
    /// The queue the writer drains; others deliver into it directly.
    outbox: Outbox,
    /// Taken when closing: a connection is closed once.
    close_tx: Option<oneshot::Sender<CloseCmd>>,
    last_heard: Instant,
    rooms: HashMap<RoomName, Joined>,
    bucket: TokenBucket,
    rejected: u32,
    rejected_since: Instant,
}

impl SessionActor {
    /// Starts the actor for an upgraded connection and the writer task that feeds `session`.
    pub fn spawn(
        rt: Realtime,
        who: crate::http::auth::Authenticated,
        themes: Vec<String>,
        session: actix_ws::Session,
        stream: actix_ws::AggregatedMessageStream,
    ) -> Addr<SessionActor> {
        let settings = Arc::clone(&rt.settings);
        let (out, rx) = mpsc::unbounded_channel();
        let (close_tx, close_rx) = oneshot::channel();
        let outbound = Arc::new(OutboundState::default());
        actix_web::rt::spawn(write_loop(session, rx, close_rx, Arc::clone(&outbound)));
        let user = &who.user;
        let nickname = SharedStr::from(user.nickname.as_str());
        let welcome = WelcomeUser {
            id: UserId(user.id),
            nickname: nickname.clone(),
            capabilities: user.capabilities(),
            themes,
            role: crate::db::models::Role::parse(&user.role),
        };
        SessionActor::create(move |ctx| {
            ctx.add_stream(stream);
            let outbox = Outbox::new(
                out,
                outbound,
                settings.ws_outbound_queue,
                Arc::clone(&rt.metrics),
                ctx.address().downgrade().recipient(),
            );
            SessionActor {
                id: SessionId::random(),
                user: UserRef {
                    id: UserId(who.user.id),
                    nickname,
                },
                caps: who.user.capabilities(),
                welcome: Some(welcome),
                auth_session_id: who.session_id,
                outbox,
                close_tx: Some(close_tx),
                last_heard: Instant::now(),
                rooms: HashMap::new(),
                bucket: TokenBucket::new(settings.ws_rate_per_sec, settings.ws_rate_burst),
                rejected: 0,
                rejected_since: Instant::now(),
                rt,
            }
        })
    }

    /// Queues a frame for the client.
    fn push(&mut self, ctx: &mut Context<Self>, frame: ByteString) {
        self.enqueue(ctx, Outbound::Text(frame));
    }

    /// Queues a frame for the writer, unless the client has shown it is too slow (1013).
    fn enqueue(&mut self, ctx: &mut Context<Self>, item: Outbound) {
        if self.close_tx.is_none() {
            return;
        }
        // Too slow: the outbox has closed itself and sent this session `TooSlow`.
        if !self.outbox.push_own(item) {
            ctx.stop();
        }
    }

    fn error(&mut self, ctx: &mut Context<Self>, id: Option<&FrameId>, err: &ApiError) {
        let frame = error_frame(id, err.code(), &ws_error(err));
        self.push(ctx, frame);
    }

    fn ack(&mut self, ctx: &mut Context<Self>, id: Option<&FrameId>) {
        let frame = ServerMsg::Ack {
            id,
            msg_id: None,
            created_at: None,
        }
        .encode();
        self.push(ctx, frame);
    }

    /// Ends the connection with `code`, once; the writer sends the close frame.
    fn close(&mut self, ctx: &mut Context<Self>, code: CloseCode, reason: &str, flush: bool) {
        if let Some(tx) = self.close_tx.take() {
            self.outbox.close();
            self.rt.metrics.close(code.into());
            let _ = tx.send(CloseCmd {
                reason: CloseReason {
                    code,
                    description: Some(reason.to_owned()),
                },
                flush,
            });
        }
        ctx.stop();
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if !self.bucket.take(now) {
            if now.duration_since(self.rejected_since) > ABUSE_WINDOW {
                self.rejected = 0;
                self.rejected_since = now;
            }
            self.rejected += 1;
            if self.rejected > self.rt.settings.ws_rate_burst.max(1) {
                self.close(ctx, CloseCode::Policy, "rate limit exceeded", true);
            } else {
                let frame = error_frame(None, ErrorCode::RateLimited, "too many frames; slow down");
                self.push(ctx, frame);
            }
            return;
        }
        match protocol::parse(text) {
            Ok(frame) => {
                self.rt.metrics.frame_in(frame.msg.type_name());
                self.dispatch(frame, ctx);
            }
            Err(bad) => {
                self.rt.metrics.frame_in_invalid();
                let frame = error_frame(bad.id.as_ref(), ErrorCode::BadRequest, &bad.message);
                self.push(ctx, frame);
            }
        }
    }

    fn call(&self, id: Option<FrameId>, action: CallAction) {
        self.rt.hub.do_send(CallRequest {
            user: self.user.clone(),
            caps: self.caps,
            session: self.id.clone(),
            deliver: self.outbox.clone(),
            id,
            action,
        });
    }

    fn not_joined(room: &str) -> ApiError {
        ApiError::Forbidden(format!("you have not joined room '{room}'"))
    }

    fn dispatch(&mut self, frame: ClientFrame, ctx: &mut Context<Self>) {
        let ClientFrame { id, msg } = frame;
        match msg {
            ClientMsg::Ping => {
                let frame = ServerMsg::Pong { id: id.as_ref() }.encode();
                self.push(ctx, frame);
            }
            ClientMsg::PresenceSet { status } => {
                self.rt.presence.do_send(SetStatus {
                    user_id: self.user.id,
                    status,
                });
                self.ack(ctx, id.as_ref());
            }
            ClientMsg::CallInvite { to, media, room } => {
                self.call(id, CallAction::Invite { to, media, room })
            }
            ClientMsg::CallAccept { call_id } => self.call(id, CallAction::Accept(call_id)),
            ClientMsg::CallDecline { call_id } => self.call(id, CallAction::Decline(call_id)),
            ClientMsg::CallCancel { call_id } => self.call(id, CallAction::Cancel(call_id)),
            ClientMsg::CallHangup { call_id } => self.call(id, CallAction::Hangup(call_id)),
            ClientMsg::RoomJoin { room, kind, since } => self.join(id, room, kind, since, ctx),
            ClientMsg::RoomLeave { room } => match self.rooms.remove(&room) {
                Some(joined) => {
                    joined.addr.do_send(Leave {
                        peer_id: self.id.clone(),
                        dropped: false,
                    });
                    self.ack(ctx, id.as_ref());
                }
                None => self.error(ctx, id.as_ref(), &Self::not_joined(room.as_str())),
            },
            ClientMsg::Signal {
                room,
                to,
                kind,
                data,
            } => match self.rooms.get(room.as_str()) {
                Some(joined) => joined.addr.do_send(Signal {
                    from: self.id.clone(),
                    to,
                    kind,
                    data,
                    id,
                }),
                None => {
                    let room: String = room.chars().take(64).collect();
                    self.error(ctx, id.as_ref(), &Self::not_joined(&room));
                }
            },
            ClientMsg::ChatSend {
                room,
                client_msg_id,
                text,
            } => self.chat_send(id, room, client_msg_id, text, ctx),
            ClientMsg::ChatTyping { room } => match self.rooms.get(&room) {
                Some(joined) => joined.addr.do_send(Typing {
                    from: self.id.clone(),
                    user: self.user.clone(),
                }),
                None => self.error(ctx, id.as_ref(), &Self::not_joined(room.as_str())),
            },
            ClientMsg::ChatHistory {
                room,
                kind,
                before,
                limit,
            } => self.history(id, room, kind, before, limit, ctx),
        }
    }

    /// `room.join`: check access, enter the live room, then send what was missed.
    fn join(
        &mut self,
        id: Option<FrameId>,
        room: RoomName,
        kind: RoomRef,
        since: Option<i64>,
        ctx: &mut Context<Self>,
    ) {
        if self.rooms.len() >= MAX_JOINED_ROOMS && !self.rooms.contains_key(&room) {
            let err = ApiError::Conflict(format!(
                "a connection may be in at most {MAX_JOINED_ROOMS} rooms; leave one first"
            ));
            return self.error(ctx, id.as_ref(), &err);
        }
        let pool = self.rt.pool.clone();
        let hub = self.rt.hub.clone();
        let uid = self.user.id;
        let peer_id = self.id.clone();
        let user = self.user.clone();
        let deliver = self.outbox.clone();
        let name = room.clone();
        let work = async move {
            let lookup = name.as_str().to_owned();
            let room_row = db::run(&pool, move |conn| {
                enter_room(conn, &lookup, kind, uid, true)?
                    .ok_or_else(|| ApiError::NotFound("no such room".to_owned()))
            })
            .await?;
            let mut outcome = None;
            for _ in 0..JOIN_ATTEMPTS {
                let addr = hub
                    .send(GetRoom {
                        name: name.clone(),
                        kind,
                        user: uid,
                        arbiter: actix::Arbiter::current(),
                    })
                    .await
                    .map_err(|_| ApiError::Internal("room registry is not answering".into()))??;
                match addr
                    .send(Join {
                        peer_id: peer_id.clone(),
                        user: user.clone(),
                        deliver: deliver.clone(),
                    })
                    .await
                {
                    Ok(peers) => {
                        let guard = JoinGuard {
                            room: Some(addr),
                            peer_id: peer_id.clone(),
                        };
                        outcome = Some((guard, peers?));
                        break;
                    }
                    // The room stopped (emptied) between lookup and join: get a fresh one.
                    Err(_) => continue,
                }
            }
            let (guard, peers) =
                outcome.ok_or_else(|| ApiError::Unavailable("room is restarting".into()))?;
            let room_id = room_row.id;
            let history = db::run(&pool, move |conn| {
                let rows = match since {
                    Some(since) => {
                        db::messages::since(conn, room_id, since, db::messages::MAX_PAGE)?
                    }
                    None => db::messages::before(conn, room_id, None, JOIN_HISTORY)?,
                };
                let names = db::messages::sender_names(conn, &rows)?;
                Ok((rows, names))
            })
            .await;
            let (rows, names) = history?;
            let messages: Vec<ChatView> = rows
                .into_iter()
                .map(|m| {
                    let nick = names.get(&m.sender_id).map_or("", String::as_str);
                    chat_view(&name, m, nick)
                })
                .collect();
            Ok::<_, ApiError>((guard, peers, messages, room_row.id, room_row.kind()))
        };
        // Signals and peer events of the room come after `room.joined`.
        self.outbox.hold();
        ctx.wait(work.into_actor(self).map(move |res, act, ctx| {
            act.joined(ctx, id, room, res);
            act.outbox.release();
        }));
    }

    /// Records a finished join and answers it.
    fn joined(
        &mut self,
        ctx: &mut Context<Self>,
        id: Option<FrameId>,
        room: RoomName,
        res: Result<JoinOutcome, ApiError>,
    ) {
        let act = self;
        match res {
            Ok((guard, peers, messages, room_id, room_kind)) => {
                let Some(addr) = guard.disarm() else { return };
                act.rooms.insert(room.clone(), Joined { addr, room_id });
                let frame = ServerMsg::RoomJoined {
                    id: id.as_ref(),
                    room: &room,
                    kind: room_kind.as_str(),
                    peers: &peers,
                    messages: &messages,
                }
                .encode();
                act.push(ctx, frame);
            }
            Err(e) => act.error(ctx, id.as_ref(), &e),
        }
    }

    /// `chat.send`: handed to the chat store, which has it stored (group commit), then
    /// acknowledged and fanned out by the room. The session does not wait for it: the next
    /// frames are read meanwhile (a client may have several messages in flight; a room's acks
    /// come in the order sent), and the ack goes into this session's queue like any frame
    /// from another actor.
    fn chat_send(
        &mut self,
        id: Option<FrameId>,
        room: RoomName,
        client_msg_id: String,
        text: String,
        ctx: &mut Context<Self>,
    ) {
        let Some(joined) = self.rooms.get(&room) else {
            return self.error(ctx, id.as_ref(), &Self::not_joined(room.as_str()));
        };
        let new = NewMessage {
            room_id: joined.room_id,
            sender_id: self.user.id.0,
            client_msg_id,
            body: text,
            created_at: db::now_ms(),
        };
        let reply = ChatReply {
            id,
            sender: self.outbox.clone(),
            from: self.user.clone(),
            room: joined.addr.clone(),
            room_name: room,
        };
        self.rt.store.do_send(StoreChat { new, reply });
    }

    /// `chat.history`: a page of older messages, with the same access rule as joining.
    fn history(
        &mut self,
        id: Option<FrameId>,
        room: RoomName,
        kind: RoomRef,
        before: Option<i64>,
        limit: Option<i64>,
        ctx: &mut Context<Self>,
    ) {
        let pool = self.rt.pool.clone();
        let uid = self.user.id;
        let lookup = room.as_str().to_owned();
        let work = async move {
            db::run(&pool, move |conn| {
                history_page(conn, &lookup, kind, uid, before, limit)
            })
            .await
        };
        ctx.spawn(work.into_actor(self).map(move |res, act, ctx| match res {
            Ok((rows, names, has_more)) => {
                let messages: Vec<ChatView> = rows
                    .into_iter()
                    .map(|m| {
                        let nick = names.get(&m.sender_id).map_or("", String::as_str);
                        chat_view(&room, m, nick)
                    })
                    .collect();
                let frame = ServerMsg::ChatHistory {
                    id: id.as_ref(),
                    room: &room,
                    messages: &messages,
                    has_more,
                }
                .encode();
                act.push(ctx, frame);
            }
            Err(e) => act.error(ctx, id.as_ref(), &e),
        }));
    }

    /// After `welcome` and the snapshot: calls missed while offline, once.
    fn announce_missed_calls(&mut self, ctx: &mut Context<Self>) {
        let pool = self.rt.pool.clone();
        let uid = self.user.id.0;
        let work = async move {
            db::run(&pool, move |conn| {
                Ok(db::calls::take_unseen_missed(conn, uid)?)
            })
            .await
        };
        ctx.spawn(work.into_actor(self).map(move |res, act, ctx| match res {
            Ok(missed) if !missed.is_empty() => {
                let calls: Vec<MissedView> = missed
                    .into_iter()
                    .map(|(call, nickname)| MissedView {
                        call_id: call.call_key,
                        from: UserRef {
                            id: UserId(call.caller_id),
                            nickname: SharedStr::from(nickname),
                        },
                        media: protocol::Media::parse(&call.media),
                        at: call.created_at,
                    })
                    .collect();
                let frame = ServerMsg::CallsMissed { calls: &calls }.encode();
                act.push(ctx, frame);
            }
            Ok(_) => {}
            Err(e) => log::warn!("cannot load missed calls of user {uid}: {e}"),
        }));
    }
}

/// A stored message as frames carry it.
pub(crate) fn chat_view(room: &RoomName, m: db::models::Message, nickname: &str) -> ChatView {
    ChatView {
        room: room.clone(),
        msg_id: m.id,
        client_msg_id: m.client_msg_id,
        from: UserRef {
            id: UserId(m.sender_id),
            nickname: SharedStr::from(nickname),
        },
        text: m.body,
        created_at: m.created_at,
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let settings = Arc::clone(&self.rt.settings);
        if let Some(user) = self.welcome.take() {
            let limits = Limits {
                max_frame_bytes: settings.ws_max_frame_bytes,
                rate_per_sec: settings.ws_rate_per_sec,
                rate_burst: settings.ws_rate_burst,
                room_member_cap: settings.room_member_cap,
                ring_timeout_ms: settings.ring_timeout_ms,
                call_reconnect_grace_ms: settings.call_reconnect_grace_ms,
            };
            let frame = ServerMsg::Welcome {
                session_id: &self.id,
                user: &user,
                heartbeat_ms: settings.heartbeat_ms,
                limits: &limits,
            }
            .encode();
            self.push(ctx, frame);
            // Presence changes and call frames come after the snapshot. Held before asking:
            // `send` queues the request at once, and presence (then the hub) may answer or
            // deliver on another thread before this one goes on.
            self.outbox.hold();
            let connect = self.rt.presence.send(Connect {
                handle: SessionHandle {
                    id: self.id.clone(),
                    deliver: self.outbox.clone(),
                    close: ctx.address().recipient(),
                },
                user_id: self.user.id,
                auth_session_id: self.auth_session_id,
                nickname: user.nickname.clone(),
                capabilities: user.capabilities,
                themes: Arc::from(user.themes),
            });
            ctx.wait(connect.into_actor(self).map(|res, act, ctx| {
                match res {
                    Ok(snapshot) => {
                        act.push(ctx, snapshot);
                        act.announce_missed_calls(ctx);
                    }
                    Err(_) => act.close(ctx, CloseCode::Error, "presence unavailable", false),
                }
                act.outbox.release();
            }));
        }
        let heartbeat = Duration::from_millis(settings.heartbeat_ms.max(1));
        let timeout = Duration::from_millis(settings.client_timeout_ms.max(1));
        ctx.run_interval(heartbeat, move |act, ctx| {
            if act.last_heard.elapsed() > timeout {
                log::debug!("session {:?} timed out", act.id);
                act.close(ctx, CloseCode::Normal, "timed out", false);
            } else {
                act.enqueue(ctx, Outbound::Ping);
            }
        });
    }

    fn stopping(&mut self, ctx: &mut Self::Context) -> Running {
        if self.close_tx.is_some() {
            self.close(ctx, CloseCode::Normal, "bye", true);
        }
        self.rt.presence.do_send(Disconnect {
            session_id: self.id.clone(),
        });
        for (_, joined) in self.rooms.drain() {
            joined.addr.do_send(Leave {
                peer_id: self.id.clone(),
                dropped: true,
            });
        }
        Running::Stop
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for SessionActor {
    fn handle(&mut self, item: Result<AggregatedMessage, ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match item {
            Ok(AggregatedMessage::Text(text)) => self.on_text(&text, ctx),
            Ok(AggregatedMessage::Binary(_)) => {
                let err = ApiError::BadRequest(
                    "binary frames are not part of the protocol; send JSON text".to_owned(),
                );
                self.error(ctx, None, &err);
            }
            Ok(AggregatedMessage::Ping(bytes)) => self.enqueue(ctx, Outbound::Pong(bytes)),
            Ok(AggregatedMessage::Pong(_)) => {}
            Ok(AggregatedMessage::Close(_)) => self.close(ctx, CloseCode::Normal, "bye", true),
            Err(ProtocolError::Overflow) => {
                self.close(ctx, CloseCode::Size, "frame too large", false)
            }
            Err(ProtocolError::Io(e)) if e.to_string().contains("continuation size") => {
                self.close(ctx, CloseCode::Size, "frame too large", false)
            }
            Err(e) => {
                log::debug!("session {:?}: protocol error: {e}", self.id);
                self.close(ctx, CloseCode::Protocol, "protocol error", false);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<TooSlow> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: TooSlow, ctx: &mut Self::Context) {
        self.close(
            ctx,
            CloseCode::Again,
            "too slow: outbound queue full",
            false,
        );
    }
}

impl Handler<CloseSession> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: CloseSession, ctx: &mut Self::Context) {
        self.close(ctx, msg.code, msg.reason, true);
    }
}

/// Writes queued frames to the client until told to close, then sends the close frame.
async fn write_loop(
    mut session: actix_ws::Session,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    mut close_rx: oneshot::Receiver<CloseCmd>,
    state: Arc<OutboundState>,
) {
    let cmd = 'run: loop {
        let item = tokio::select! {
            biased;
            cmd = &mut close_rx => break 'run cmd.ok(),
            item = rx.recv() => item,
        };
        let Some(item) = item else { break 'run None };
        state.waiting.fetch_sub(1, Ordering::Relaxed);
        // Marked stuck until the connection takes the frame; cleared at once when it does.
        state.stuck_since_ms.store(mono_ms(), Ordering::Relaxed);
        tokio::select! {
            biased;
            cmd = &mut close_rx => break 'run cmd.ok(),
            sent = send(&mut session, item) => if sent.is_err() { return },
        }
        state.stuck_since_ms.store(0, Ordering::Relaxed);
    };
    // One deadline for the queued frames and the close frame together: a client that stopped
    // reading cannot hold the writer longer than that.
    let finish = async move {
        let reason = match cmd {
            Some(CloseCmd { reason, flush }) => {
                if flush {
                    rx.close();
                    while let Ok(item) = rx.try_recv() {
                        if send(&mut session, item).await.is_err() {
                            return;
                        }
                    }
                }
                Some(reason)
            }
            None => None,
        };
        let _ = session.close(reason).await;
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, finish).await;
}

async fn send(session: &mut actix_ws::Session, item: Outbound) -> Result<(), actix_ws::Closed> {
    match item {
        Outbound::Text(text) => session.text(text).await,
        Outbound::Ping => session.ping(b"").await,
        Outbound::Pong(bytes) => session.pong(&bytes).await,
    }
}
