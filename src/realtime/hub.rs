//! [`Hub`]: the registry of live rooms (room name → [`RoomActor`]) and the driver of the
//! call lifecycle.
//!
//! The lifecycle itself (invitations, ring deadlines, who is in which call, the reconnect
//! grace) is the pure [`CallMachine`]; the hub turns its messages into the machine's
//! [`Event`]s, asks presence and the database what an event needs to know (is the callee
//! online, may they take the call), and carries out the [`Effect`]s that come back: frames
//! through presence or a session's [`Delivery`], timers with `run_later`, and the call log.
//!
//! Everything it does to the call log goes through one ordered queue run on the blocking
//! pool, so a call's log entry moves ringing → accepted → ended in that order and the hub's
//! mailbox never waits on I/O.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use crate::db::DbConnection;
use actix::prelude::*;
use tokio::sync::mpsc;

pub use super::calls::CallAction;
use super::{
    calls::{
        CallMachine, Callee, Config, Effect, Event, LogWrite, Ms, NewCallEntry, Refusal, Requester,
        Timer, To,
    },
    metrics::RealtimeMetrics,
    presence::{CallParticipants, Lookup, PresenceActor, SendToUser},
    protocol::{
        error_frame, CallId, FrameId, Media, MissedView, RoomName, RoomRef, ServerMsg, SessionId,
        SharedStr, UserId, UserRef,
    },
    room::RoomActor,
    room_cluster::RoomLink,
    Deliver, Delivery,
};
use crate::{
    config::Settings,
    db::{
        self,
        models::{CallState, Capabilities, NewCall, RoomKind},
        DbPool,
    },
    error::{ApiError, ErrorCode},
};

/// One database write of the call log, run in order with the others.
type DbJob = Box<dyn FnOnce(&mut DbConnection) -> diesel::QueryResult<()> + Send>;

/// The connection an event came from, as far as the hub can reach it.
#[derive(Clone, Copy)]
enum Origin<'a> {
    /// None (a timer, presence): effects for the origin have nowhere to go.
    Nobody,
    /// A call frame from a session.
    Request(&'a CallRequest),
    /// A connection known only by its queue.
    Connection(&'a Delivery),
    /// The message is answered: a refusal for the origin is handed back.
    Answer,
}

/// Room registry and call-lifecycle driver.
pub struct Hub {
    pool: DbPool,
    settings: Arc<Settings>,
    presence: Addr<PresenceActor>,
    metrics: Arc<RealtimeMetrics>,
    rooms: HashMap<RoomName, Addr<RoomActor>>,
    calls: CallMachine,
    /// How to reach the connections the live calls refer to (their callers' sessions),
    /// until the machine releases them.
    outboxes: HashMap<SessionId, Delivery>,
    /// The machine's running timers, by key; replacing or cancelling one stops it.
    timers: HashMap<Timer, SpawnHandle>,
    db_jobs: Option<mpsc::UnboundedSender<DbJob>>,
    /// How room actors reach the other nodes (`--broker`), handed to each new one.
    room_link: Option<RoomLink>,
}

/// What a client is told when `r` answers a message that expects an [`ApiError`].
fn api_error(r: Refusal) -> ApiError {
    match r.code {
        ErrorCode::BadRequest => ApiError::BadRequest(r.message),
        ErrorCode::Forbidden => ApiError::Forbidden(r.message),
        ErrorCode::NotFound => ApiError::NotFound(r.message),
        ErrorCode::Conflict => ApiError::Conflict(r.message),
        ErrorCode::Unavailable => ApiError::Unavailable(r.message),
        _ => ApiError::Internal(r.message),
    }
}

/// The machine's time: the wall clock, which the call log stores.
fn now() -> Ms {
    db::now_ms()
}

impl Hub {
    /// A hub with no rooms and no calls; `unseen_missed`: the users the call log holds
    /// unseen missed calls for.
    pub fn new(
        pool: DbPool,
        settings: Arc<Settings>,
        presence: Addr<PresenceActor>,
        metrics: Arc<RealtimeMetrics>,
        unseen_missed: HashSet<UserId>,
        room_link: Option<RoomLink>,
    ) -> Self {
        let ms = |v: u64| Ms::try_from(v).unwrap_or(Ms::MAX);
        let config = Config {
            ring_ms: ms(settings.ring_timeout_ms),
            grace_ms: ms(settings.call_reconnect_grace_ms),
            room_cap: settings.room_member_cap,
        };
        Hub {
            pool,
            settings,
            presence,
            metrics,
            rooms: HashMap::new(),
            calls: CallMachine::new(config, unseen_missed),
            outboxes: HashMap::new(),
            timers: HashMap::new(),
            db_jobs: None,
            room_link,
        }
    }

    /// Queues a call-log write behind the earlier ones.
    fn db(&self, job: DbJob) {
        if let Some(tx) = &self.db_jobs {
            if tx.send(job).is_err() {
                log::error!("call log writer is gone; a call state change was not stored");
            }
        }
    }

    /// Runs `event` through the machine and carries out its effects; answers the refusal
    /// meant for the origin when that is [`Origin::Answer`].
    fn run(
        &mut self,
        event: Event,
        origin: Origin<'_>,
        ctx: &mut Context<Self>,
    ) -> Option<Refusal> {
        let registers = matches!(event, Event::CalleeFound { .. });
        let now = now();
        let effects = self.calls.handle(now, event);
        if let (true, Origin::Request(req)) = (registers, origin) {
            // The invitation rings (or waits for one that crosses it): its answer goes here.
            if self.calls.refers_to(&req.session) {
                self.outboxes
                    .entry(req.session.clone())
                    .or_insert_with(|| req.deliver.clone());
            }
        }
        let mut answer = None;
        for effect in effects {
            if let Some(refusal) = self.apply(now, effect, origin, ctx) {
                answer = Some(refusal);
            }
        }
        self.metrics.calls_live(self.calls.live_calls());
        answer
    }

    /// Delivers `frame` to `to`.
    fn send(&self, to: To, frame: bytestring::ByteString, origin: Origin<'_>) {
        match to {
            To::Origin => match origin {
                Origin::Request(req) => req.deliver.do_send(Deliver(frame)),
                Origin::Connection(deliver) => deliver.do_send(Deliver(frame)),
                Origin::Nobody | Origin::Answer => {}
            },
            To::Session(session) => match (self.outboxes.get(&session), origin) {
                (Some(deliver), _) => deliver.do_send(Deliver(frame)),
                (None, Origin::Request(req)) if req.session == session => {
                    req.deliver.do_send(Deliver(frame))
                }
                // No live call refers to it any more: nobody is waiting for this.
                _ => {}
            },
            To::User { user, except } => self.presence.do_send(SendToUser {
                user_id: user,
                frame,
                except,
            }),
        }
    }

    /// Carries out one effect; answers a refusal for an [`Origin::Answer`].
    fn apply(
        &mut self,
        now: Ms,
        effect: Effect,
        origin: Origin<'_>,
        ctx: &mut Context<Self>,
    ) -> Option<Refusal> {
        match effect {
            Effect::Send { to, frame } => self.send(to, frame.encode(), origin),
            Effect::Refuse { to, reply, error } => {
                if to == To::Origin && matches!(origin, Origin::Answer) {
                    return Some(error);
                }
                let frame = error_frame(reply.as_ref(), error.code, &error.message);
                self.send(to, frame, origin);
            }
            Effect::LookUpCallee { to, media, room } => {
                if let Origin::Request(req) = origin {
                    self.look_up(req.clone(), to, media, room, ctx);
                }
            }
            Effect::StoreCall(entry) => {
                if let Origin::Request(req) = origin {
                    self.store(entry, req.deliver.clone(), req.id.clone(), ctx);
                }
            }
            Effect::Log(write) => self.log(write),
            Effect::AnnounceMissed { call_id, callee } => {
                let told = self.presence.send(SendToUser {
                    user_id: callee,
                    frame: ServerMsg::CallMissed { call_id: &call_id }.encode(),
                    except: None,
                });
                ctx.spawn(
                    async move { told.await.unwrap_or(0) > 0 }
                        .into_actor(self)
                        .map(move |seen, act, ctx| {
                            let event = Event::MissedAnnounced {
                                call_id,
                                callee,
                                seen,
                            };
                            act.run(event, Origin::Nobody, ctx);
                        }),
                );
            }
            Effect::TellMissedCalls { user } => {
                if let Origin::Connection(deliver) = origin {
                    let (hub, deliver) = (ctx.address(), deliver.clone());
                    self.db(Box::new(move |conn| {
                        tell_missed(conn, user, &deliver, &hub)
                    }));
                }
            }
            Effect::SetTimer { timer, at } => {
                let wait =
                    Duration::from_millis(u64::try_from(at.saturating_sub(now)).unwrap_or(0));
                let key = timer.clone();
                let handle = ctx.run_later(wait, move |act, ctx| {
                    act.timers.remove(&key);
                    act.run(Event::Deadline { timer: key, at }, Origin::Nobody, ctx);
                });
                if let Some(old) = self.timers.insert(timer, handle) {
                    ctx.cancel_future(old);
                }
            }
            Effect::CancelTimer(timer) => {
                if let Some(handle) = self.timers.remove(&timer) {
                    ctx.cancel_future(handle);
                }
            }
            Effect::Participants { room, users } => {
                self.presence.do_send(CallParticipants { room, users });
            }
            Effect::Release(session) => {
                self.outboxes.remove(&session);
            }
        }
        None
    }

    /// Writes to the call log, behind the earlier writes.
    fn log(&self, write: LogWrite) {
        match write {
            LogWrite::State { call_id, state, at } => self.db(Box::new(move |conn| {
                db::calls::set_state(conn, &call_id.0, state, at).map(drop)
            })),
            LogWrite::Missed { call_id, seen, at } => self.db(Box::new(move |conn| {
                db::calls::set_missed(conn, &call_id.0, seen, at).map(drop)
            })),
            LogWrite::CloseDangling => {
                self.db(Box::new(|conn| db::calls::close_dangling(conn).map(drop)))
            }
        }
    }

    /// Looks the invited user up (presence, else the database), then lets the machine
    /// check the invitation against what was found.
    fn look_up(
        &mut self,
        req: CallRequest,
        to: UserId,
        media: Media,
        room: Option<(RoomName, RoomRef)>,
        ctx: &mut Context<Self>,
    ) {
        let lookup = self.presence.send(Lookup { user_id: to });
        let pool = self.pool.clone();
        let found = async move {
            match lookup.await {
                Ok(Some(info)) => Ok(Callee::Online(info)),
                Ok(None) => {
                    let user = db::run(&pool, move |c| Ok(db::users::find(c, to.0)?)).await?;
                    Ok(match user {
                        Some(u) => Callee::Offline {
                            nickname: u.nickname,
                            banned: u.banned,
                        },
                        None => Callee::Unknown,
                    })
                }
                Err(_) => Err(ApiError::Internal("presence is not answering".into())),
            }
        };
        ctx.spawn(found.into_actor(self).map(move |res, act, ctx| match res {
            Ok(callee) => {
                let event = Event::CalleeFound {
                    by: requester(&req),
                    to,
                    media,
                    room,
                    callee,
                    call_id: CallId::random(),
                };
                act.run(event, Origin::Request(&req), ctx);
            }
            Err(e) => req.reply_error(&e),
        }));
    }

    /// Stores a new call's log entry (its room too), then lets it ring; `deliver` and
    /// `reply`: the inviting connection and its frame id, told if that fails.
    fn store(
        &mut self,
        entry: NewCallEntry,
        deliver: Delivery,
        reply: Option<FrameId>,
        ctx: &mut Context<Self>,
    ) {
        let NewCallEntry {
            call_id,
            room,
            room_kind,
            caller,
            callee,
            media,
            at,
        } = entry;
        let (caller_id, callee_id) = (caller.0, callee.0);
        let room_name = room.as_str().to_owned();
        let key = call_id.clone();
        let pool = self.pool.clone();
        let stored = async move {
            db::run(&pool, move |conn| {
                crate::db::write_transaction(conn, |conn| {
                    let room =
                        db::rooms::get_or_create(conn, &room_name, room_kind, Some(caller_id))?;
                    if room_kind == RoomKind::Call {
                        db::rooms::add_member(conn, room.id, caller_id)?;
                        db::rooms::add_member(conn, room.id, callee_id)?;
                    }
                    db::calls::create(
                        conn,
                        &NewCall {
                            call_key: &key.0,
                            room_id: Some(room.id),
                            caller_id,
                            callee_id,
                            media: media.as_str(),
                            state: CallState::Ringing.as_str(),
                            created_at: at,
                        },
                    )?;
                    Ok(())
                })
            })
            .await
        };
        ctx.spawn(stored.into_actor(self).map(move |res, act, ctx| {
            let event = match res {
                Ok(()) => Event::Stored { call_id },
                Err(e) => Event::StoreFailed {
                    call_id,
                    reply,
                    error: Refusal::from(&e),
                },
            };
            act.run(event, Origin::Connection(&deliver), ctx);
        }));
    }
}

/// The machine's view of who sent `req`.
fn requester(req: &CallRequest) -> Requester {
    Requester {
        user: req.user.clone(),
        caps: req.caps,
        session: req.session.clone(),
        reply: req.id.clone(),
    }
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        let (tx, mut rx) = mpsc::unbounded_channel::<DbJob>();
        self.db_jobs = Some(tx);
        let pool = self.pool.clone();
        actix::spawn(async move {
            while let Some(job) = rx.recv().await {
                if let Err(e) = db::run(&pool, move |conn| Ok(job(conn)?)).await {
                    log::error!("cannot write the call log: {e}");
                }
            }
        });
    }
}

/// The live room called `name`, created (empty) if it has none yet. A call room is only
/// for the participants of the call running in it (`forbidden` for anyone else, and for
/// everyone once the call is over); a participant held after a dropped connection who
/// enters it is back in the call (the reconnect grace stops).
#[derive(Message)]
#[rtype(result = "Result<Addr<RoomActor>, ApiError>")]
pub(crate) struct GetRoom {
    pub name: RoomName,
    pub kind: RoomRef,
    /// Who wants to enter (checked against a call room's participants).
    pub user: UserId,
    /// Where a new room runs: the first joiner's thread, so a room whose members share a
    /// worker relays their signals without crossing threads.
    pub arbiter: ArbiterHandle,
}

impl Handler<GetRoom> for Hub {
    type Result = MessageResult<GetRoom>;

    fn handle(&mut self, msg: GetRoom, ctx: &mut Self::Context) -> Self::Result {
        if msg.kind == RoomRef::Call {
            let event = Event::EnterCallRoom {
                user: msg.user,
                room: msg.name.clone(),
            };
            if let Some(refusal) = self.run(event, Origin::Answer, ctx) {
                return MessageResult(Err(api_error(refusal)));
            }
        }
        if let Some(addr) = self.rooms.get(&msg.name).filter(|a| a.connected()) {
            return MessageResult(Ok(addr.clone()));
        }
        let (name, kind, cap) = (msg.name.clone(), msg.kind, self.settings.room_member_cap);
        let (hub, presence) = (ctx.address(), self.presence.clone());
        let link = self.room_link.clone();
        let addr = RoomActor::start_in_arbiter(&msg.arbiter, move |_| {
            RoomActor::new(name, kind, cap, hub, presence, link)
        });
        self.rooms.insert(msg.name, addr.clone());
        self.metrics.rooms_live(self.rooms.len());
        MessageResult(Ok(addr))
    }
}

/// A room's last member left; it has stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RoomEmpty {
    pub name: RoomName,
    pub addr: Addr<RoomActor>,
}

impl Handler<RoomEmpty> for Hub {
    type Result = ();

    fn handle(&mut self, msg: RoomEmpty, _: &mut Self::Context) {
        if self.rooms.get(&msg.name) == Some(&msg.addr) {
            self.rooms.remove(&msg.name);
            self.metrics.rooms_live(self.rooms.len());
        }
    }
}

/// A call frame from one session; the hub answers that session directly.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub(crate) struct CallRequest {
    pub user: UserRef,
    pub caps: Capabilities,
    pub session: SessionId,
    pub deliver: Delivery,
    pub id: Option<FrameId>,
    pub action: CallAction,
}

impl CallRequest {
    /// Answers the request with `e`.
    fn reply_error(&self, e: &ApiError) {
        self.deliver.do_send(Deliver(error_frame(
            self.id.as_ref(),
            e.code(),
            &super::ws_error(e),
        )));
    }
}

impl Handler<CallRequest> for Hub {
    type Result = ();

    fn handle(&mut self, msg: CallRequest, ctx: &mut Self::Context) {
        let event = Event::Request(requester(&msg), msg.action.clone());
        self.run(event, Origin::Request(&msg), ctx);
    }
}

/// A user's last connection closed. Their outgoing invitations that still ring are
/// cancelled (nobody would hear the answer); invitations to them ring on until the ring
/// timeout (see [`UserOnline`]). If the connection dropped (`left` false: no close frame
/// from the client, or our client's own reconnect), their running calls hold them for the
/// reconnect grace (`--call-reconnect-grace-ms`): they stay a participant and may rejoin the
/// call room, which ends the hold; only when the grace ends first do they leave (the others
/// get `call.ended` with `dropped` if fewer than two remain). Closed on purpose, or with a
/// grace of 0, they leave at once.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct UserOffline {
    pub user_id: UserId,
    /// The client closed its connection on purpose (a close frame with 1000, 1001 or no code).
    pub left: bool,
}

impl Handler<UserOffline> for Hub {
    type Result = ();

    fn handle(&mut self, msg: UserOffline, ctx: &mut Self::Context) {
        let event = Event::Disconnected {
            user: msg.user_id,
            left: msg.left,
        };
        self.run(event, Origin::Nobody, ctx);
    }
}

/// A connection of a user registered with presence. Every invitation still ringing for them
/// is announced to it (`call.incoming` again), so a device that reconnects (or opens) while
/// it rings can answer; calls they missed while offline are told to it once (`calls.missed`,
/// marked seen in the log). (A held user is back in their call only once they rejoin its
/// room: see [`GetRoom`].)
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct UserOnline {
    pub user_id: UserId,
    pub deliver: Delivery,
}

impl Handler<UserOnline> for Hub {
    type Result = ();

    fn handle(&mut self, msg: UserOnline, ctx: &mut Self::Context) {
        let event = Event::Connected { user: msg.user_id };
        self.run(event, Origin::Connection(&msg.deliver), ctx);
    }
}

/// Tells `deliver`'s connection the calls `user` missed, and marks them seen; if the
/// connection is already gone, leaves them unseen for the next one.
fn tell_missed(
    conn: &mut DbConnection,
    user: UserId,
    deliver: &Delivery,
    hub: &Addr<Hub>,
) -> diesel::QueryResult<()> {
    if !deliver.is_open() {
        hub.do_send(MissedUnseen(user));
        return Ok(());
    }
    let missed = db::calls::take_unseen_missed(conn, user.0)?;
    if missed.is_empty() {
        return Ok(());
    }
    let calls: Vec<MissedView> = missed
        .into_iter()
        .map(|(call, nickname)| MissedView {
            call_id: call.call_key,
            from: UserRef {
                id: UserId(call.caller_id),
                nickname: SharedStr::from(nickname),
            },
            media: Media::parse(&call.media),
            at: call.created_at,
        })
        .collect();
    deliver.do_send(Deliver(ServerMsg::CallsMissed { calls: &calls }.encode()));
    Ok(())
}

/// `user` still has missed calls nobody was told about (their connection closed first).
#[derive(Message)]
#[rtype(result = "()")]
struct MissedUnseen(UserId);

impl Handler<MissedUnseen> for Hub {
    type Result = ();

    fn handle(&mut self, msg: MissedUnseen, ctx: &mut Self::Context) {
        self.run(Event::MissedUnseen { user: msg.0 }, Origin::Nobody, ctx);
    }
}

/// The server is stopping: every live call is closed in the log (ringing → missed, running →
/// ended); answers when that is stored.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Shutdown;

impl Handler<Shutdown> for Hub {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        let now = now();
        for effect in self.calls.handle(now, Event::Shutdown) {
            // Closing the log is awaited below rather than queued: the answer waits for it.
            if !matches!(effect, Effect::Log(LogWrite::CloseDangling)) {
                self.apply(now, effect, Origin::Nobody, ctx);
            }
        }
        self.outboxes.clear();
        self.metrics.calls_live(self.calls.live_calls());
        let pool = self.pool.clone();
        Box::pin(async move {
            if let Err(e) = db::run(&pool, |conn| Ok(db::calls::close_dangling(conn)?)).await {
                log::error!("cannot close live calls at shutdown: {e}");
            }
        })
    }
}

/// Live rooms and calls, for stats.
#[derive(Message)]
#[rtype(result = "(usize, usize)")]
pub(crate) struct HubStats;

impl Handler<HubStats> for Hub {
    type Result = MessageResult<HubStats>;

    fn handle(&mut self, _: HubStats, _: &mut Self::Context) -> Self::Result {
        MessageResult((self.rooms.len(), self.calls.live_calls()))
    }
}
