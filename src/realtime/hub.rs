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
//!
//! ## Several nodes (`--broker`)
//!
//! - **Who runs a call**: the hub of the node where the invitation is made (its machine
//!   holds it), named in the log (`calls.owner_node`). An answer, cancel or hang-up that
//!   reaches a node whose machine does not know the call, or an invitation into a running
//!   call's room, is forwarded ([`Kind::Call`]) to the node the log names, if its liveness
//!   key says it is alive; its hub answers the session through a remote [`Delivery`], and
//!   tells the forwarding node at once that it took the request (a node that does not within
//!   [`FORWARD_WAIT`] is taken for dead: the forwarding node answers the session itself).
//! - **The log is the referee**: every answer to a ringing call (accept, decline, cancel, the
//!   ring deadline) is first a conditional update from `ringing`, and the machine carries
//!   it out only if that moved the row; every other move is conditional on the state it
//!   starts from. Of two moves that race, on any nodes, one wins.
//! - **Glare**: an invitation to someone whose own invitation to the inviter rings on
//!   another node is found in the log when the new call is stored (the two people locked
//!   meanwhile, so of two crossing at once the second finds the first): nothing is stored,
//!   and it goes to that node as the answer ([`Event::Crossed`]), as on one node.
//! - **Connections elsewhere**: a connection that opens while a call another node runs
//!   rings for it is told (`call.incoming`, from the log); missed calls are told from the
//!   log on every connection (each once, over all nodes); a call room may be entered on any
//!   node while the log says its call runs with you in it (which ends your reconnect grace
//!   on the node that runs it).
//! - **Nodes that go**: a node that is gone (its liveness key expired, and still gone
//!   [`CONFIRM_GONE`] later, so a Redis restart that lost every key is not taken for a
//!   death) has its ringing calls missed, once over all nodes, and its running calls taken
//!   over by one live node, which ends each in the log when, after the reconnect grace,
//!   fewer than two of its people are online (or at a hang-up). A drained node (stopping)
//!   misses its ringing calls and leaves its running ones to be taken over. Every
//!   [`ORPHAN_SWEEP`] each node also looks for live calls of nodes that are gone.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use crate::db::DbConnection;
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use super::calls::CallAction;
use super::{
    broker::{Broker, ClusterEvent, Inbound, Kind, NodeId, Topic, NODE_TTL},
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
        calls::InRoom,
        models::{CallState, Capabilities, NewCall, RoomKind},
        DbPool,
    },
    domain::Capability,
    error::{ApiError, ErrorCode},
};

/// How long a node waits for the node running a call to take a request it forwards there
/// (a live node answers at once; one that does not is dead or cut off).
const FORWARD_WAIT: Duration = Duration::from_secs(3);

/// How long after a node looks gone its calls are closed, if it is still gone then: longer
/// than a heartbeat after a Redis restart, when every live node registers again.
pub const CONFIRM_GONE: Duration = NODE_TTL;
/// How often a node looks for live calls of nodes that are gone.
pub const ORPHAN_SWEEP: Duration = Duration::from_secs(10);

/// A call room entered on a node that does not run its call, while the log says the call
/// still rings (its answer is on its way to the log): looked at again this often, ...
const ANSWER_WAIT_STEP: Duration = Duration::from_millis(100);
/// ... at most this many times.
const ANSWER_WAIT_TRIES: u32 = 20;

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
    /// The link to the other nodes (`None`: this server runs alone, and every call is here).
    broker: Option<Broker>,
    /// Nodes whose calls are about to be swept (each once at a time).
    sweeping: HashSet<NodeId>,
    /// Running calls taken over from nodes that are gone (not in the machine: their people
    /// are back on any node, in rooms of their own), by call id, with their two people.
    adopted: HashMap<String, [UserId; 2]>,
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
        broker: Option<Broker>,
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
            broker,
            sweeping: HashSet::new(),
            adopted: HashMap::new(),
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
                    self.store(entry, req.clone(), ctx);
                }
            }
            Effect::AcceptElsewhere { call_id } => {
                if let (Origin::Request(req), Some(broker)) = (origin, self.broker.clone()) {
                    let accept = CallRequest {
                        action: CallAction::Accept(call_id.0.to_string()),
                        ..req.clone()
                    };
                    self.forward(broker, accept, ctx);
                }
            }
            Effect::Log(write) => self.log(write),
            Effect::AnnounceMissed { call_id, callee } => {
                ctx.spawn(
                    self.tell_callee_missed(&call_id, callee)
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
                    act.deadline(key, at, ctx);
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
                let owner = self.owner_node();
                self.db(Box::new(move |conn| {
                    db::calls::close_dangling(conn, owner.as_deref()).map(drop)
                }))
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

    /// Stores a new call's log entry (its room too), then lets it ring; `req`: the
    /// invitation, told if that fails. With several nodes, unless the log holds the callee's
    /// own invitation to the caller, ringing on another node (glare across nodes): then
    /// nothing is stored and the machine hears [`Event::Crossed`].
    fn store(&mut self, entry: NewCallEntry, req: CallRequest, ctx: &mut Context<Self>) {
        let NewCallEntry {
            call_id,
            room,
            room_kind,
            own_room,
            caller,
            callee,
            media,
            at,
        } = entry;
        let (caller_id, callee_id) = (caller.0, callee.0);
        let room_name = room.as_str().to_owned();
        let key = call_id.clone();
        let pool = self.pool.clone();
        let owner = self.owner_node();
        let stored = async move {
            db::run(&pool, move |conn| {
                crate::db::write_transaction(conn, |conn| {
                    if let (Some(node), true) = (owner.as_deref(), own_room) {
                        if let Some(theirs) = db::calls::crossing(conn, callee_id, caller_id, node)?
                        {
                            return Ok(Some(theirs));
                        }
                    }
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
                            owner_node: owner.as_deref(),
                        },
                    )?;
                    Ok(None)
                })
            })
            .await
        };
        ctx.spawn(stored.into_actor(self).map(move |res, act, ctx| {
            let event = match res {
                Ok(None) => Event::Stored { call_id },
                Ok(Some((theirs, media))) => Event::Crossed {
                    call_id,
                    theirs: CallId(SharedStr::from(theirs)),
                    media: Media::parse(&media),
                },
                Err(e) => Event::StoreFailed {
                    call_id,
                    reply: req.id.clone(),
                    error: Refusal::from(&e),
                },
            };
            act.run(event, Origin::Request(&req), ctx);
        }));
    }
}

/// Several nodes: calls run by other nodes, and the calls of nodes that are gone.
impl Hub {
    /// This node's name in the call log (`None`: a server alone).
    fn owner_node(&self) -> Option<String> {
        self.broker.as_ref().map(|b| b.node().to_string())
    }

    /// `msg` is about a call this machine does not know (an answer, cancel or hang-up of
    /// it, or an invitation into the room it runs): the log says which node runs it; a live
    /// other node gets the request, otherwise this machine answers it (`not_found` or
    /// `forbidden`, or as it would anyway if the call was stored here meanwhile).
    fn forward(&mut self, broker: Broker, msg: CallRequest, ctx: &mut Context<Self>) {
        let pool = self.pool.clone();
        let (action, user) = (msg.action.clone(), msg.user.id.0);
        let lookup = {
            let broker = broker.clone();
            async move {
                let owner = match action {
                    CallAction::Invite {
                        room: Some((room, _)),
                        ..
                    } => {
                        let room = room.as_str().to_owned();
                        let found =
                            db::run(&pool, move |c| Ok(db::calls::call_in_room(c, &room, user)?))
                                .await?;
                        match found {
                            InRoom::Running(owner) => owner,
                            InRoom::Ringing | InRoom::Nothing => None,
                        }
                    }
                    CallAction::Invite { room: None, .. } => None,
                    CallAction::Accept(key)
                    | CallAction::Decline(key)
                    | CallAction::Cancel(key)
                    | CallAction::Hangup(key) => {
                        db::run(&pool, move |c| Ok(db::calls::live_owner(c, &key)?))
                            .await?
                            .flatten()
                    }
                };
                let owner = owner.map(|n| NodeId(SharedStr::from(n)));
                let alive = match &owner {
                    Some(node) if node != broker.node() => alive(&broker, node).await,
                    _ => None,
                };
                Ok::<_, ApiError>((owner, alive))
            }
        };
        ctx.spawn(lookup.into_actor(self).map(move |res, act, ctx| {
            let (owner, alive) = match res {
                Ok(found) => found,
                Err(e) => return msg.reply_error(&e),
            };
            match (owner, alive) {
                (Some(node), Some(true)) if !act.runs(&msg.action) => {
                    act.hand_over(broker, node, msg, ctx);
                }
                // Its node is gone and no node has taken the call over yet.
                (Some(_), Some(false)) if matches!(msg.action, CallAction::Hangup(_)) => {
                    act.hang_up_orphan(msg, ctx);
                }
                _ => act.request(msg, ctx),
            }
        }));
    }

    /// Sends `msg` to `node`, which runs its call, and waits for that node to say it has it
    /// ([`FORWARD_WAIT`]). A node that does not (it died before its liveness key expired, or
    /// Redis is away) leaves the session answered here: a hang-up ends the call in the log as
    /// for a node that is gone ([`Hub::hang_up_orphan`]), anything else is `unavailable`.
    fn hand_over(
        &mut self,
        broker: Broker,
        node: NodeId,
        msg: CallRequest,
        ctx: &mut Context<Self>,
    ) {
        let Some(body) = ForwardedCall::new(&msg) else {
            return;
        };
        let taken = async move {
            broker
                .request(&node, Kind::Call, &CallWire::Request(body), FORWARD_WAIT)
                .await
                .is_some()
        };
        ctx.spawn(taken.into_actor(self).map(move |taken, act, ctx| {
            if taken {
                return;
            }
            if matches!(msg.action, CallAction::Hangup(_)) {
                return act.hang_up_orphan(msg, ctx);
            }
            msg.reply_error(&ApiError::Unavailable(
                "the server running this call does not answer; try again in a few seconds".into(),
            ));
        }));
    }

    /// Whether this node's machine runs the call `action` is about (an invitation without a
    /// room: the new call will run here).
    fn runs(&self, action: &CallAction) -> bool {
        match action {
            CallAction::Invite { room: None, .. } => true,
            CallAction::Invite {
                room: Some((room, _)),
                ..
            } => self.calls.runs_in(room),
            CallAction::Accept(key) | CallAction::Decline(key) | CallAction::Cancel(key) => {
                self.calls.knows(key)
            }
            CallAction::Hangup(key) => self.calls.knows(key) || self.adopted.contains_key(key),
        }
    }

    /// A hang-up of a running call whose node is gone, before a live node has taken it over
    /// (which takes up to [`CONFIRM_GONE`] and a sweep): it ends in the log now, if it still
    /// runs there with the user in it, and the other person hears `call.ended`; the take-over
    /// then finds it over.
    fn hang_up_orphan(&mut self, msg: CallRequest, ctx: &mut Context<Self>) {
        let key = msg.action.call_id().unwrap_or_default().to_owned();
        let (pool, user) = (self.pool.clone(), msg.user.id.0);
        let ended = async move {
            db::run(&pool, move |c| {
                Ok(db::calls::end_for(c, &key, user, now())?)
            })
            .await
        };
        ctx.spawn(ended.into_actor(self).map(move |res, act, ctx| match res {
            Ok(Some([caller, callee])) => {
                act.tell_hung_up(&msg, [UserId(caller), UserId(callee)]);
            }
            // Not running in the log (with this user in it): as if this node ran it.
            Ok(None) => act.request(msg, ctx),
            Err(e) => msg.reply_error(&e),
        }));
    }

    /// A hang-up of a call taken over from a node that is gone: it ends (in the log, and for
    /// the other person, who hears `call.ended`).
    fn hang_up_adopted(&mut self, msg: CallRequest, users: [UserId; 2]) {
        if !users.contains(&msg.user.id) {
            return msg.reply_error(&ApiError::Forbidden("you are not in this call".into()));
        }
        let key = msg.action.call_id().unwrap_or_default().to_owned();
        self.adopted.remove(&key);
        self.log(LogWrite::State {
            call_id: CallId(SharedStr::from(key)),
            state: CallState::Ended,
            at: now(),
        });
        self.tell_hung_up(&msg, users);
    }

    /// `msg`'s hang-up of a call of `users` (the sender one of them) is done: the other
    /// hears `call.ended`, the sender its ack.
    fn tell_hung_up(&self, msg: &CallRequest, users: [UserId; 2]) {
        let other = if users[0] == msg.user.id {
            users[1]
        } else {
            users[0]
        };
        let call_id = CallId(SharedStr::from(msg.action.call_id().unwrap_or_default()));
        self.presence.do_send(SendToUser {
            user_id: other,
            frame: ServerMsg::CallEnded {
                call_id: &call_id,
                by: &msg.user,
                dropped: false,
            }
            .encode(),
            except: None,
        });
        msg.deliver.do_send(Deliver(
            ServerMsg::Ack {
                id: msg.id.as_ref(),
                msg_id: None,
                created_at: None,
            }
            .encode(),
        ));
    }

    /// A call request for this machine. With several nodes, an answer to a ringing call
    /// (accept, decline, cancel, or a hang-up that is one) is first recorded in the shared
    /// log, from `ringing`: only if that moves the row does the machine carry it out;
    /// otherwise the call was decided elsewhere (missed by the sweep of a node that took
    /// this one for dead, or by its ring deadline here) and the request is too late.
    fn request(&mut self, msg: CallRequest, ctx: &mut Context<Self>) {
        if let CallAction::Hangup(key) = &msg.action {
            if let Some(users) = self.adopted.get(key).copied() {
                return self.hang_up_adopted(msg, users);
            }
        }
        let by = requester(&msg);
        let answer = match (&self.broker, msg.action.call_id()) {
            (Some(_), Some(key)) => self.calls.answers(&by, &msg.action).map(|s| (key, s)),
            _ => None,
        };
        let Some((key, state)) = answer else {
            self.run(
                Event::Request(by, msg.action.clone()),
                Origin::Request(&msg),
                ctx,
            );
            return;
        };
        let (pool, key) = (self.pool.clone(), key.to_owned());
        let decided = async move {
            db::run(&pool, move |c| {
                Ok(db::calls::set_state(c, &key, state, now())?)
            })
            .await
        };
        ctx.spawn(
            decided
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Ok(1) => {
                        let key = msg.action.call_id().unwrap_or_default().to_owned();
                        let event = Event::Request(requester(&msg), msg.action.clone());
                        act.run(event, Origin::Request(&msg), ctx);
                        if state == CallState::Accepted && !act.calls.knows(&key) {
                            // The machine ended it meanwhile (its caller left): so does the log.
                            act.log(LogWrite::State {
                                call_id: CallId(SharedStr::from(key)),
                                state: CallState::Ended,
                                at: now(),
                            });
                        }
                    }
                    Ok(_) => msg
                        .reply_error(&ApiError::Conflict("this call was already answered".into())),
                    Err(e) => msg.reply_error(&e),
                }),
        );
    }

    /// A timer came. With several nodes a ring deadline is first recorded in the shared
    /// log (ringing → missed): the machine misses the call only if that moved the row, or
    /// if the log already says missed (a sweep elsewhere); if the call was answered in the
    /// log meanwhile, the answer's request is on its way to the machine.
    fn deadline(&mut self, timer: Timer, at: Ms, ctx: &mut Context<Self>) {
        let ring = match (&self.broker, &timer) {
            (Some(_), Timer::Ring(call_id)) if self.calls.rings_until(call_id, at) => {
                call_id.clone()
            }
            _ => {
                self.run(Event::Deadline { timer, at }, Origin::Nobody, ctx);
                return;
            }
        };
        let pool = self.pool.clone();
        let decided = async move {
            db::run(&pool, move |c| {
                let moved = db::calls::set_missed(c, &ring.0, false, now())?;
                Ok(if moved == 1 {
                    Some(CallState::Missed)
                } else {
                    db::calls::state_of(c, &ring.0)?
                })
            })
            .await
        };
        ctx.spawn(
            decided
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Ok(Some(CallState::Missed) | None) => {
                        act.run(Event::Deadline { timer, at }, Origin::Nobody, ctx);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        log::error!("cannot record a ring deadline: {e}");
                        act.run(Event::Deadline { timer, at }, Origin::Nobody, ctx);
                    }
                }),
        );
    }

    /// `user` entered, here, the room of a call that `owner` runs: that node's machine stops
    /// holding them (their reconnect grace ends, as when they enter it there).
    fn entered_elsewhere(&self, owner: Option<String>, user: UserId, room: &RoomName) {
        let (Some(broker), Some(owner)) = (&self.broker, owner) else {
            return;
        };
        let node = NodeId(SharedStr::from(owner));
        if &node != broker.node() {
            let body = CallWire::Entered {
                user,
                room: room.clone(),
            };
            broker.publish(&Topic::Node(node), Kind::Call, &body);
        }
    }

    /// A connection of `user` opened here, with several nodes: the calls ringing for them
    /// that other nodes run are announced to it (`call.incoming`), as this node's own are.
    fn announce_ringing_elsewhere(
        &mut self,
        user: UserId,
        deliver: Delivery,
        ctx: &mut Context<Self>,
    ) {
        let pool = self.pool.clone();
        let ringing =
            async move { db::run(&pool, move |c| Ok(db::calls::ringing_for(c, user.0)?)).await };
        ctx.spawn(ringing.into_actor(self).map(move |res, act, _| {
            let ringing = match res {
                Ok(r) => r,
                Err(e) => return log::warn!("cannot read the calls ringing for {}: {e}", user.0),
            };
            for call in ringing {
                if act.calls.knows(&call.call_key) {
                    continue;
                }
                let Some(Ok((room, _))) = call.room.as_deref().map(RoomName::parse) else {
                    continue;
                };
                let frame = ServerMsg::CallIncoming {
                    call_id: &CallId(SharedStr::from(call.call_key)),
                    from: &UserRef {
                        id: UserId(call.caller_id),
                        nickname: SharedStr::from(call.caller_nickname),
                    },
                    media: Media::parse(&call.media),
                    room: &room,
                };
                deliver.do_send(Deliver(frame.encode()));
            }
        }));
    }

    /// `node` looks gone: if it still is [`CONFIRM_GONE`] from now, its calls are closed
    /// (see [`Hub::close_orphans`]).
    fn sweep_later(&mut self, node: NodeId, ctx: &mut Context<Self>) {
        let Some(broker) = self.broker.clone() else {
            return;
        };
        if &node == broker.node() || !self.sweeping.insert(node.clone()) {
            return;
        }
        ctx.run_later(CONFIRM_GONE, move |act, ctx| {
            let gone = node.clone();
            // Gone only when Redis answers that its liveness key is gone.
            let check = async move { alive(&broker, &gone).await == Some(false) };
            ctx.spawn(check.into_actor(act).map(move |gone, act, ctx| {
                act.sweeping.remove(&node);
                if gone {
                    act.close_orphans(node, ctx);
                }
            }));
        });
    }

    /// Closes the calls of `node`, which is gone: its ringing calls are missed (the callee's
    /// connections hear `call.missed`; the log says whether one did), its running calls are
    /// adopted by this node. Each call moves once over all the nodes that sweep at once.
    fn close_orphans(&mut self, node: NodeId, ctx: &mut Context<Self>) {
        let Some(me) = self.owner_node() else {
            return;
        };
        let pool = self.pool.clone();
        let dead = node.to_string();
        let swept = async move {
            db::run(&pool, move |c| {
                let missed = db::calls::miss_orphans(c, &dead, now())?;
                let adopted = db::calls::adopt_orphans(c, &dead, &me)?;
                Ok((missed, adopted))
            })
            .await
        };
        ctx.spawn(swept.into_actor(self).map(move |res, act, ctx| {
            let (missed, adopted) = match res {
                Ok(r) => r,
                Err(e) => {
                    log::error!("cannot close the calls of node {node}, which is gone: {e}");
                    return;
                }
            };
            if !missed.is_empty() || !adopted.is_empty() {
                log::info!(
                    "node {node} is gone: {} ringing call(s) missed, {} running call(s) taken over",
                    missed.len(),
                    adopted.len()
                );
            }
            for (key, _caller, callee) in missed {
                act.announce_orphan_missed(CallId(SharedStr::from(key)), UserId(callee), ctx);
            }
            for (key, caller, callee) in adopted {
                act.watch_adopted(key, [UserId(caller), UserId(callee)], ctx);
            }
        }));
    }

    /// A call of a node that is gone was missed: the callee's connections hear it, and it is
    /// marked seen if one did (otherwise told on their next connection here).
    fn announce_orphan_missed(&mut self, call_id: CallId, callee: UserId, ctx: &mut Context<Self>) {
        ctx.spawn(
            self.tell_callee_missed(&call_id, callee)
                .map(move |seen, act, ctx| {
                    if seen {
                        act.db(Box::new(move |conn| {
                            db::calls::mark_seen_key(conn, &call_id.0).map(drop)
                        }));
                    } else {
                        act.run(Event::MissedUnseen { user: callee }, Origin::Nobody, ctx);
                    }
                }),
        );
    }

    /// Tells `callee`'s connections (on every node) that `call_id` was missed; resolves to
    /// whether one of them heard it.
    fn tell_callee_missed(
        &self,
        call_id: &CallId,
        callee: UserId,
    ) -> impl ActorFuture<Self, Output = bool> + 'static {
        let told = self.presence.send(SendToUser {
            user_id: callee,
            frame: ServerMsg::CallMissed { call_id }.encode(),
            except: None,
        });
        async move { told.await.unwrap_or(0) > 0 }.into_actor(self)
    }

    /// A running call taken over from a node that is gone: after the reconnect grace, it
    /// ends in the log unless both of its people are online again (then it is looked at
    /// again one grace later).
    fn watch_adopted(&mut self, key: String, users: [UserId; 2], ctx: &mut Context<Self>) {
        self.adopted.insert(key.clone(), users);
        let grace = Duration::from_millis(self.settings.call_reconnect_grace_ms.max(1000));
        ctx.run_later(grace, move |act, ctx| {
            if !act.adopted.contains_key(&key) {
                // Hung up meanwhile.
                return;
            }
            let lookups = users.map(|user_id| act.presence.send(Lookup { user_id }));
            let online = async move {
                let mut n = 0;
                for lookup in lookups {
                    if matches!(lookup.await, Ok(Some(_))) {
                        n += 1;
                    }
                }
                n
            };
            ctx.spawn(online.into_actor(act).map(move |online, act, ctx| {
                if online >= 2 {
                    act.watch_adopted(key, users, ctx);
                } else {
                    act.adopted.remove(&key);
                    act.db(Box::new(move |conn| {
                        db::calls::set_state(conn, &key, CallState::Ended, now()).map(drop)
                    }));
                }
            }));
        });
    }

    /// Every [`ORPHAN_SWEEP`]: the nodes that run live calls in the log but are not seen
    /// alive are swept (once confirmed gone).
    fn sweep_all(&mut self, ctx: &mut Context<Self>) {
        let Some(broker) = self.broker.clone() else {
            return;
        };
        if !broker.is_up() {
            return;
        }
        let pool = self.pool.clone();
        let owners = async move { db::run(&pool, |c| Ok(db::calls::live_owners(c)?)).await };
        ctx.spawn(owners.into_actor(self).map(move |res, act, ctx| {
            let Ok(owners) = res else {
                return;
            };
            let alive = broker.peers();
            for owner in owners {
                let node = NodeId(SharedStr::from(owner));
                if &node != broker.node() && !alive.contains(&node) {
                    act.sweep_later(node, ctx);
                }
            }
        }));
    }
}

/// Whether `node`'s liveness key is in Redis (`None`: Redis does not answer).
async fn alive(broker: &Broker, node: &NodeId) -> Option<bool> {
    let mut redis = broker.redis();
    redis::cmd("EXISTS")
        .arg(broker.key(&format!("alive:{node}")))
        .query_async(&mut redis)
        .await
        .ok()
}

/// What one node tells the node that runs a call ([`Kind::Call`] on that node's channel).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum CallWire {
    /// A call frame from a session of the sending node.
    Request(ForwardedCall),
    /// `user` entered the call's `room` on the sending node.
    Entered { user: UserId, room: RoomName },
}

/// A call frame a session sent to another node, for the node that runs the call.
#[derive(Debug, Serialize, Deserialize)]
struct ForwardedCall {
    user: UserId,
    nickname: String,
    /// What the sender's account may do (an invitation is checked against it).
    #[serde(default)]
    caps: Vec<Capability>,
    session: SessionId,
    reply: Option<FrameId>,
    action: ForwardedAction,
}

/// What a forwarded frame asks (an invitation only when it is into a running call's room:
/// any other runs on the inviting node).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", content = "arg", rename_all = "snake_case")]
enum ForwardedAction {
    Invite {
        to: UserId,
        media: Media,
        room: RoomName,
    },
    Accept(String),
    Decline(String),
    Cancel(String),
    Hangup(String),
}

impl ForwardedCall {
    /// The wire form of `req` (which names a call).
    fn new(req: &CallRequest) -> Option<Self> {
        let action = match &req.action {
            CallAction::Invite {
                to,
                media,
                room: Some((room, _)),
            } => ForwardedAction::Invite {
                to: *to,
                media: *media,
                room: room.clone(),
            },
            CallAction::Invite { room: None, .. } => return None,
            CallAction::Accept(id) => ForwardedAction::Accept(id.clone()),
            CallAction::Decline(id) => ForwardedAction::Decline(id.clone()),
            CallAction::Cancel(id) => ForwardedAction::Cancel(id.clone()),
            CallAction::Hangup(id) => ForwardedAction::Hangup(id.clone()),
        };
        Some(ForwardedCall {
            user: req.user.id,
            nickname: req.user.nickname.as_str().to_owned(),
            session: req.session.clone(),
            reply: req.id.clone(),
            caps: req.caps.to_list(),
            action,
        })
    }
}

impl Handler<Inbound> for Hub {
    type Result = ();

    /// A call frame forwarded by the node its session is on: answered as if it came from a
    /// session here, through a remote [`Delivery`]. Or a participant entered the call's room on
    /// another node.
    fn handle(&mut self, msg: Inbound, ctx: &mut Self::Context) {
        let Some(broker) = self.broker.clone() else {
            return;
        };
        let fwd = match msg.parse::<CallWire>() {
            Some(CallWire::Request(fwd)) => {
                // The sending node waits for this: it answers its session itself otherwise.
                if let Some(request) = msg.request {
                    broker.reply(&msg.from, request, &true);
                }
                fwd
            }
            Some(CallWire::Entered { user, room }) => {
                self.run(Event::EnterCallRoom { user, room }, Origin::Nobody, ctx);
                return;
            }
            None => return,
        };
        let action = match fwd.action {
            ForwardedAction::Invite { to, media, room } => {
                let Ok((room, kind)) = RoomName::parse(room.as_str()) else {
                    return;
                };
                CallAction::Invite {
                    to,
                    media,
                    room: Some((room, kind)),
                }
            }
            ForwardedAction::Accept(id) => CallAction::Accept(id),
            ForwardedAction::Decline(id) => CallAction::Decline(id),
            ForwardedAction::Cancel(id) => CallAction::Cancel(id),
            ForwardedAction::Hangup(id) => CallAction::Hangup(id),
        };
        let req = CallRequest {
            user: UserRef {
                id: fwd.user,
                nickname: SharedStr::from(fwd.nickname),
            },
            caps: Capabilities::from_list(&fwd.caps),
            deliver: Delivery::remote(&broker, msg.from, fwd.user, fwd.session.clone()),
            session: fwd.session,
            id: fwd.reply,
            action,
        };
        self.request(req, ctx);
    }
}

impl Handler<ClusterEvent> for Hub {
    type Result = ();

    /// A node gone: its calls are closed once it is confirmed gone. (After a Redis restart
    /// nothing is to be registered again: the calls are in the log.)
    fn handle(&mut self, msg: ClusterEvent, ctx: &mut Self::Context) {
        match msg {
            ClusterEvent::NodeGone(node) => self.sweep_later(node, ctx),
            ClusterEvent::Resync => self.sweep_all(ctx),
        }
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

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.broker.is_some() {
            ctx.run_interval(ORPHAN_SWEEP, |act, ctx| act.sweep_all(ctx));
        }
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
    type Result = ResponseActFuture<Self, Result<Addr<RoomActor>, ApiError>>;

    fn handle(&mut self, msg: GetRoom, ctx: &mut Self::Context) -> Self::Result {
        if msg.kind == RoomRef::Call {
            let event = Event::EnterCallRoom {
                user: msg.user,
                room: msg.name.clone(),
            };
            if let Some(refusal) = self.run(event, Origin::Answer, ctx) {
                if self.broker.is_none() || self.calls.runs_in(&msg.name) {
                    return Box::pin(fut::ready(Err(api_error(refusal))));
                }
                // With several nodes the call may run on another node: the log says.
                let pool = self.pool.clone();
                let (room, user) = (msg.name.as_str().to_owned(), msg.user.0);
                let runs = async move {
                    // An answer the other node sent before its log write is in: wait for it.
                    let mut tries = ANSWER_WAIT_TRIES;
                    loop {
                        let (room, pool) = (room.clone(), pool.clone());
                        let found =
                            db::run(&pool, move |c| Ok(db::calls::call_in_room(c, &room, user)?))
                                .await?;
                        tries -= 1;
                        if found != InRoom::Ringing || tries == 0 {
                            return Ok::<_, ApiError>(found);
                        }
                        tokio::time::sleep(ANSWER_WAIT_STEP).await;
                    }
                };
                return Box::pin(runs.into_actor(self).map(move |res, act, ctx| match res {
                    Ok(InRoom::Running(owner)) => {
                        act.entered_elsewhere(owner, msg.user, &msg.name);
                        Ok(act.room(msg, ctx))
                    }
                    Ok(InRoom::Ringing | InRoom::Nothing) => Err(api_error(refusal)),
                    Err(e) => Err(e),
                }));
            }
        }
        Box::pin(fut::ready(Ok(self.room(msg, ctx))))
    }
}

impl Hub {
    /// The live room `msg` names, started if it has none.
    fn room(&mut self, msg: GetRoom, ctx: &mut Context<Self>) -> Addr<RoomActor> {
        if let Some(addr) = self.rooms.get(&msg.name).filter(|a| a.connected()) {
            return addr.clone();
        }
        let (name, kind, cap) = (msg.name.clone(), msg.kind, self.settings.room_member_cap);
        let (hub, presence) = (ctx.address(), self.presence.clone());
        let link = self.room_link.clone();
        let addr = RoomActor::start_in_arbiter(&msg.arbiter, move |_| {
            RoomActor::new(name, kind, cap, hub, presence, link)
        });
        self.rooms.insert(msg.name, addr.clone());
        self.metrics.rooms_live(self.rooms.len());
        addr
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
        if let Some(broker) = &self.broker {
            // Only a session of this node's request goes on to another node: one that came
            // from another node was sent here because this one runs the call.
            if !self.runs(&msg.action) && msg.deliver.node().is_none() {
                let broker = broker.clone();
                self.forward(broker, msg, ctx);
                return;
            }
        }
        self.request(msg, ctx);
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
        if self.broker.is_some() {
            // Another node may have logged a missed call for them (a ringing call of a node
            // that died): the log says, and tells each missed call once over all nodes.
            self.calls
                .handle(now(), Event::MissedUnseen { user: msg.user_id });
        }
        if self.broker.is_some() {
            self.announce_ringing_elsewhere(msg.user_id, msg.deliver.clone(), ctx);
        }
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
        let owner = self.owner_node();
        Box::pin(async move {
            let closed = db::run(&pool, move |conn| {
                Ok(db::calls::close_dangling(conn, owner.as_deref())?)
            });
            if let Err(e) = closed.await {
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
