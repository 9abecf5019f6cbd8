//! [`SessionActor`]: one WebSocket connection.
//!
//! It owns the connection's inbound frames (`ctx.add_stream` of an [`InboundFrames`], which
//! enforces the transport's limits: rate, frame size, UTF-8; the heartbeat is presence's
//! sweep, see [`Outbox::ping`]), parses every text message into the typed protocol at this
//! boundary and forwards typed messages to the presence, hub, room and chat-store actors.
//! Outbound frames go through its [`Outbox`] into the [`actix_ws::Session`], directly when
//! the connection has room: when a client cannot keep up and frames pile up, the connection
//! is closed (1013) rather than let memory grow or other clients wait.

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use actix_web::web::Bytes;
use actix_ws::{CloseCode, CloseReason, Message};
use bytestring::ByteString;

use super::{
    conversations,
    frames::{self, Endpoint, Inbound, InboundFrames},
    history::{enter_room, history_page, room_page, HISTORY_PAGE},
    hub::{CallAction, CallRequest, GetRoom},
    outbox::Outbox,
    presence::{Connect, Disconnect, SetStatus, Subscribe, Unsubscribe},
    protocol::{
        self, error_frame, ChatView, ClientFrame, ClientMsg, FrameId, Limits, RoomName, RoomRef,
        ServerMsg, SessionId, UserId, UserRef, WelcomeUser,
    },
    room::{Join, Leave, RoomActor, Signal, Typing},
    store::{ChatReply, StoreChat},
    ws_error, CloseSession, ConnectionSlot, Delivery, Realtime, SessionHandle,
};
use crate::{
    config::Settings,
    db::{self, messages::Cursor, models::NewMessage},
    error::{ApiError, ErrorCode},
};

/// Most rooms one connection may be in at once (each costs a room actor and a database row).
const MAX_JOINED_ROOMS: usize = 32;
/// How many times a join retries when its room stopped in the meantime.
const JOIN_ATTEMPTS: usize = 3;
/// A room this session has joined.
struct Joined {
    addr: Addr<RoomActor>,
    room_id: i64,
}

/// What a successful join yields: the pending membership, the peers already there, the
/// history to send (and, after a join with `since`, whether more missed messages remain),
/// the room's id and kind.
type JoinOutcome = (
    JoinGuard,
    Vec<protocol::PeerView>,
    Vec<ChatView>,
    Option<bool>,
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
///
/// Kept to 72 bytes (a unit test watches it): with actix's context around it the actor's
/// task is then 512 bytes, jemalloc's size class below 640. What is not needed on every
/// frame lives behind a pointer (`Who`, `Rooms`).
pub struct SessionActor {
    id: SessionId,
    /// Whose connection it is.
    who: Box<Who>,
    rt: Arc<Realtime>,
    /// Its outbound queue into the connection; others deliver into it directly.
    outbox: Outbox,
    /// The close frame is on its way: a connection is closed once.
    closing: bool,
    /// The client closed the connection on purpose (its close frame said 1000, 1001 or no
    /// code), or it was closed for breaking the protocol: its calls end at once. Anything
    /// else (a dropped network, our client's own reconnect with 4000) is a blip its calls
    /// wait for.
    left: bool,
    rooms: Rooms,
}

/// A session's user, boxed (see [`SessionActor`]).
struct Who {
    user: UserRef,
    caps: crate::db::models::Capabilities,
    /// This connection's place under the per-user cap, freed when the actor is dropped.
    _slot: ConnectionSlot,
}

/// The rooms a session has joined: at most [`MAX_JOINED_ROOMS`], most often none, so a list
/// allocated only while there is one (8 bytes in the actor).
#[derive(Default)]
// The box is the point: one pointer in the actor instead of a `Vec`'s three words.
#[allow(clippy::box_collection)]
struct Rooms(Option<Box<Vec<(RoomName, Joined)>>>);

impl Rooms {
    fn get(&self, name: &str) -> Option<&Joined> {
        self.0
            .as_deref()?
            .iter()
            .find(|(joined, _)| joined.0.as_str() == name)
            .map(|(_, joined)| joined)
    }

    fn len(&self) -> usize {
        self.0.as_deref().map_or(0, Vec::len)
    }

    /// Records `room` as joined (replacing an earlier join of it).
    fn insert(&mut self, room: RoomName, joined: Joined) {
        let list = self.0.get_or_insert_default();
        match list.iter_mut().find(|(r, _)| *r == room) {
            Some((_, was)) => *was = joined,
            None => list.push((room, joined)),
        }
    }

    /// Forgets `room`; its membership, if it was joined.
    fn remove(&mut self, room: &RoomName) -> Option<Joined> {
        let list = self.0.as_deref_mut()?;
        let at = list.iter().position(|(r, _)| r == room)?;
        let (_, joined) = list.swap_remove(at);
        if list.is_empty() {
            self.0 = None;
        }
        Some(joined)
    }

    /// Every joined room, forgotten.
    fn take_all(&mut self) -> Vec<(RoomName, Joined)> {
        self.0.take().map(|list| *list).unwrap_or_default()
    }
}

/// Who a new connection belongs to, as the handshake established it (a plain value: the
/// realtime core knows nothing of HTTP).
pub struct Connecting {
    /// The account, as stored.
    pub user: db::models::User,
    /// The login session (`sessions` row) whose credential opened the connection: revoking
    /// it closes the connection.
    pub auth_session_id: i64,
    /// The names of the themes the user follows.
    pub themes: Vec<String>,
}

impl SessionActor {
    /// Starts the actor for an upgraded connection: it reads `stream` and writes into
    /// `session` through its [`Outbox`].
    pub fn spawn(
        rt: Arc<Realtime>,
        who: Connecting,
        session: impl Into<super::outbox::Wire>,
        stream: InboundFrames,
        slot: ConnectionSlot,
    ) -> Addr<SessionActor> {
        let settings = Arc::clone(&rt.settings);
        let user = &who.user;
        let nickname = slot.nickname(&user.nickname);
        let welcome = WelcomeUser {
            id: UserId(user.id),
            nickname: nickname.clone(),
            capabilities: user.capabilities(),
            themes: who.themes,
            role: crate::domain::Role::parse(&user.role),
        };
        let id = SessionId::random();
        let auth_session_id = who.auth_session_id;
        SessionActor::create(move |ctx| {
            ctx.add_stream(stream);
            let outbox = Outbox::open(
                ctx,
                session,
                settings.ws_outbound_queue,
                Arc::clone(&rt.metrics),
            );
            // Queued before the handshake's response is written, so that both leave in one
            // write.
            outbox.push_own(Message::Text(welcome_frame(&id, &welcome, &settings)));
            // Presence changes and call frames come after the snapshot. Held before asking:
            // `send` queues the request at once, and presence (then the hub) may answer or
            // deliver on another thread before this one goes on.
            outbox.hold();
            let connect = rt.presence.send(Connect {
                handle: SessionHandle {
                    id: id.clone(),
                    deliver: Delivery::from(outbox.clone()),
                    close: ctx.address().downgrade(),
                },
                user_id: welcome.id,
                auth_session_id,
                nickname: welcome.nickname,
                capabilities: welcome.capabilities,
                themes: Arc::from(welcome.themes),
            });
            // Runs first, before any frame of the client is read.
            ctx.wait(fut::wrap_future::<_, Self>(connect).map(|res, act, ctx| {
                match res {
                    Ok(snapshot) => {
                        // As `enqueue`: the connection is gone.
                        if !act.closing && !act.outbox.push_own_pieces(snapshot) {
                            act.lost(ctx);
                        }
                    }
                    Err(_) => act.close(ctx, CloseCode::Error, "presence unavailable", false),
                }
                act.outbox.release();
            }));
            SessionActor {
                id,
                who: Box::new(Who {
                    user: UserRef {
                        id: UserId(who.user.id),
                        nickname,
                    },
                    caps: who.user.capabilities(),
                    _slot: slot,
                }),
                outbox,
                closing: false,
                left: false,
                rooms: Rooms::default(),
                rt,
            }
        })
    }

    /// Queues a frame for the client.
    fn push(&mut self, ctx: &mut Context<Self>, frame: ByteString) {
        self.enqueue(ctx, Message::Text(frame));
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

    /// A text frame within the limits (see [`InboundFrames`]): parsed once, here.
    fn parse_text(&mut self, text: &str, ctx: &mut Context<Self>) {
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
            user: self.who.user.clone(),
            caps: self.who.caps,
            session: self.id.clone(),
            deliver: Delivery::from(self.outbox.clone()),
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
                    user_id: self.who.user.id,
                    status,
                });
                self.ack(ctx, id.as_ref());
            }
            ClientMsg::PresenceSubscribe { theme, limit } => {
                // Presence answers (`presence.window`), so that the window comes before the
                // changes to it.
                self.rt.presence.do_send(Subscribe {
                    user_id: self.who.user.id,
                    session_id: self.id.clone(),
                    id,
                    theme,
                    limit: limit.unwrap_or(protocol::PRESENCE_WINDOW),
                });
            }
            ClientMsg::PresenceUnsubscribe { theme } => {
                self.rt.presence.do_send(Unsubscribe {
                    user_id: self.who.user.id,
                    session_id: self.id.clone(),
                    theme,
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
            ClientMsg::ChatTyping { room } => match self.rooms.get(room.as_str()) {
                Some(joined) => joined.addr.do_send(Typing {
                    from: self.id.clone(),
                    user: self.who.user.clone(),
                }),
                None => self.error(ctx, id.as_ref(), &Self::not_joined(room.as_str())),
            },
            ClientMsg::ChatHistory {
                room,
                kind,
                cursor,
                limit,
            } => self.history(id, room, kind, cursor, limit, ctx),
            ClientMsg::ConversationsList => {
                let work = conversations::list(Arc::clone(&self.rt), self.who.user.id, id.clone());
                self.answer(id, work, ctx);
            }
            ClientMsg::ConversationRead { room, msg_id } => {
                let work = conversations::read(
                    Arc::clone(&self.rt),
                    self.who.user.id,
                    self.id.clone(),
                    room,
                    msg_id,
                    id.clone(),
                );
                self.answer(id, work, ctx);
            }
            ClientMsg::ConversationInvite { room, kind, user } => {
                let work = conversations::invite(
                    Arc::clone(&self.rt),
                    self.who.user.clone(),
                    self.id.clone(),
                    room,
                    kind,
                    user,
                    id.clone(),
                );
                self.answer(id, work, ctx);
            }
        }
    }

    /// Runs a request whose answer is one frame to this session (or an `error` with `id`).
    fn answer(
        &mut self,
        id: Option<FrameId>,
        work: impl std::future::Future<Output = Result<ByteString, ApiError>> + 'static,
        ctx: &mut Context<Self>,
    ) {
        ctx.spawn(work.into_actor(self).map(move |res, act, ctx| match res {
            Ok(frame) => act.push(ctx, frame),
            Err(e) => act.error(ctx, id.as_ref(), &e),
        }));
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
        if self.rooms.len() >= MAX_JOINED_ROOMS && self.rooms.get(room.as_str()).is_none() {
            let err = ApiError::Conflict(format!(
                "a connection may be in at most {MAX_JOINED_ROOMS} rooms; leave one first"
            ));
            return self.error(ctx, id.as_ref(), &err);
        }
        let pool = self.rt.pool.clone();
        let hub = self.rt.hub.clone();
        let uid = self.who.user.id;
        let peer_id = self.id.clone();
        let user = self.who.user.clone();
        let deliver = Delivery::from(self.outbox.clone());
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
            let (messages, has_more) = db::run(&pool, move |conn| {
                // With `since`, what was missed, oldest first, a page at a time (the client
                // asks for the rest with `chat.history` `after`); else the latest messages.
                let (cursor, limit) = match since {
                    Some(since) => (Cursor::After(since), db::messages::MAX_PAGE),
                    None => (Cursor::Before(None), HISTORY_PAGE),
                };
                Ok(room_page(conn, &name, room_id, cursor, limit)?)
            })
            .await?;
            // Whether older messages remain is not news to a first join: said only with `since`.
            let has_more = since.map(|_| has_more);
            Ok::<_, ApiError>((
                guard,
                peers,
                messages,
                has_more,
                room_row.id,
                room_row.kind(),
            ))
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
            Ok((guard, peers, messages, has_more, room_id, room_kind)) => {
                let Some(addr) = guard.disarm() else { return };
                act.rooms.insert(room.clone(), Joined { addr, room_id });
                let frame = ServerMsg::RoomJoined {
                    id: id.as_ref(),
                    room: &room,
                    kind: room_kind.as_str(),
                    peers: &peers,
                    messages: &messages,
                    has_more,
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
        let Some(joined) = self.rooms.get(room.as_str()) else {
            return self.error(ctx, id.as_ref(), &Self::not_joined(room.as_str()));
        };
        let new = NewMessage {
            room_id: joined.room_id,
            sender_id: self.who.user.id.0,
            client_msg_id,
            body: text,
            created_at: db::now_ms(),
        };
        let reply = ChatReply {
            id,
            sender: Delivery::from(self.outbox.clone()),
            from: self.who.user.clone(),
            room: joined.addr.clone(),
            room_name: room,
        };
        self.rt.store.do_send(StoreChat { new, reply });
    }

    /// `chat.history`: a page of older (`before`) or newer (`after`) messages, with the same
    /// access rule as joining.
    fn history(
        &mut self,
        id: Option<FrameId>,
        room: RoomName,
        kind: RoomRef,
        cursor: Cursor,
        limit: Option<i64>,
        ctx: &mut Context<Self>,
    ) {
        let pool = self.rt.pool.clone();
        let uid = self.who.user.id;
        let lookup = room.clone();
        let work = async move {
            db::run(&pool, move |conn| {
                history_page(conn, &lookup, kind, uid, cursor, limit)
            })
            .await
        };
        ctx.spawn(work.into_actor(self).map(move |res, act, ctx| match res {
            Ok((messages, has_more)) => {
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
}

/// The `welcome` frame: who the connection is, and the limits it runs under.
fn welcome_frame(id: &SessionId, user: &WelcomeUser, settings: &Settings) -> ByteString {
    let limits = Limits {
        max_frame_bytes: settings.ws_max_frame_bytes,
        rate_per_sec: settings.ws_rate_per_sec,
        rate_burst: settings.ws_rate_burst,
        room_member_cap: settings.room_member_cap,
        ring_timeout_ms: settings.ring_timeout_ms,
        call_reconnect_grace_ms: settings.call_reconnect_grace_ms,
    };
    ServerMsg::Welcome {
        session_id: id,
        user,
        heartbeat_ms: settings.heartbeat_ms,
        limits: &limits,
    }
    .encode()
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn stopping(&mut self, ctx: &mut Self::Context) -> Running {
        if !self.closing {
            self.close(ctx, CloseCode::Normal, "bye", true);
        }
        self.rt.presence.do_send(Disconnect {
            session_id: self.id.clone(),
            user_id: self.who.user.id,
            left: self.left,
        });
        for (_, joined) in self.rooms.take_all() {
            joined.addr.do_send(Leave {
                peer_id: self.id.clone(),
                dropped: !self.left,
            });
        }
        Running::Stop
    }
}

impl StreamHandler<Inbound> for SessionActor {
    fn handle(&mut self, item: Inbound, ctx: &mut Self::Context) {
        crate::busy_poll::traffic(Duration::from_micros(self.rt.settings.busy_poll_us));
        frames::handle(self, item, ctx);
    }

    /// The request stream ended: after a close frame the session is already closing;
    /// without one the connection was lost.
    fn finished(&mut self, ctx: &mut Self::Context) {
        self.lost(ctx);
    }
}

impl Endpoint for SessionActor {
    fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    fn closing(&mut self) -> &mut bool {
        &mut self.closing
    }

    fn on_text(&mut self, text: ByteString, _now: u32, ctx: &mut Context<Self>) {
        self.parse_text(&text, ctx);
    }

    fn on_binary(&mut self, _bytes: Bytes, ctx: &mut Context<Self>) {
        let err = ApiError::BadRequest(
            "binary frames are not part of the protocol; send JSON text".to_owned(),
        );
        self.error(ctx, None, &err);
    }

    /// A close frame with 1000, 1001 or no code is the client leaving on purpose: its calls
    /// end at once. Anything else (our browser client's own reconnect says 4000) is a blip
    /// its calls wait for.
    fn on_close_frame(&mut self, reason: Option<&CloseReason>) {
        self.left = reason.is_none_or(|r| matches!(r.code, CloseCode::Normal | CloseCode::Away));
    }

    /// A connection closed for breaking the protocol is no network blip: the client that
    /// broke it would break it again after reconnecting, so its calls end at once, as a
    /// hang-up (docs/protocol.md, "Errors and closing").
    fn on_violation(&mut self, _code: CloseCode) {
        self.left = true;
    }
}

impl Handler<CloseSession> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: CloseSession, ctx: &mut Self::Context) {
        self.close(ctx, msg.code, msg.reason, msg.flush);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_sessions_actor_task_fits_jemallocs_512_byte_class() {
        // tokio's task is the future (actix's context around the actor) plus 104 bytes of
        // header, scheduler, id, stage and trailer: 408 bytes of future fill 512.
        let future =
            std::mem::size_of::<actix::dev::ContextFut<SessionActor, Context<SessionActor>>>();
        assert!(
            future <= 408,
            "SessionActor {} B, its context future {future} B",
            std::mem::size_of::<SessionActor>()
        );
    }
}
