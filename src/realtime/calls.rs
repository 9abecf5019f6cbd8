//! [`CallMachine`]: the call lifecycle as a pure state machine — invitations, their ring
//! deadlines, who takes part in which call, the reconnect grace, and which missed calls a
//! user has not been told about.
//!
//! It owns no actor, reads no clock and touches no database: [`CallMachine::handle`] takes
//! the time and one [`Event`] (a session's request, an answer the hub got from presence or
//! the database, a deadline that came) and answers the [`Effect`]s to carry out, in order
//! (frames to send, call-log writes, timers to set or cancel, participants to tell
//! presence). The [`Hub`](super::hub::Hub) drives it: it turns its messages into events,
//! asks presence and the database what an event needs to know, and carries out the
//! effects.
//!
//! Everything in it is plain data: calls, users and sessions by id (never an actor's
//! address), deadlines as times (never timer handles). A deadline's event names the time
//! it was set for, and counts only if that is still the deadline: a stale timer is a no-op
//! whatever the driver did with it. So the same machine could keep its state in a shared
//! store and be driven by several nodes.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{
    presence::OnlineInfo,
    protocol::{
        CallId, FrameId, Media, RoomName, RoomRef, ServerMsg, SessionId, SharedStr, Status, UserId,
        UserRef,
    },
    ws_error,
};
use crate::{
    db::{
        self,
        models::{CallState, Capabilities, RoomKind},
    },
    error::{ApiError, ErrorCode},
};
use bytestring::ByteString;

/// A time, in milliseconds on the driver's clock (the hub uses the wall clock, which the
/// call log stores).
pub(crate) type Ms = i64;

/// The settings the lifecycle depends on.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// How long an invitation rings before it is missed (`--ring-timeout-ms`).
    pub ring_ms: Ms,
    /// How long a participant whose connection dropped stays in their calls
    /// (`--call-reconnect-grace-ms`; 0: they leave at once).
    pub grace_ms: Ms,
    /// Most people one call room holds, counting invitations still ringing into it.
    pub room_cap: usize,
}

/// What a session asks of a call.
#[derive(Debug, Clone)]
pub enum CallAction {
    Invite {
        to: UserId,
        media: Media,
        room: Option<(RoomName, RoomRef)>,
    },
    Accept(String),
    Decline(String),
    Cancel(String),
    Hangup(String),
}

impl CallAction {
    /// The call an answer, a cancel or a hang-up is about (`None`: an invitation).
    pub fn call_id(&self) -> Option<&str> {
        match self {
            CallAction::Invite { .. } => None,
            CallAction::Accept(id)
            | CallAction::Decline(id)
            | CallAction::Cancel(id)
            | CallAction::Hangup(id) => Some(id),
        }
    }
}

/// Who sent a call request: the user, what their account may do, and which connection (with
/// the frame id its reply echoes).
#[derive(Debug, Clone)]
pub struct Requester {
    pub user: UserRef,
    pub caps: Capabilities,
    pub session: SessionId,
    pub reply: Option<FrameId>,
}

/// What the hub found out about the person being invited.
#[derive(Debug, Clone)]
pub enum Callee {
    /// Online, as presence sees them.
    Online(OnlineInfo),
    /// Registered but not connected (`banned`: the account is banned, which callers are not
    /// told).
    Offline { nickname: String, banned: bool },
    /// No such user.
    Unknown,
}

/// A timer the driver keeps for the machine; at most one per key runs at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Timer {
    /// An invitation's ring deadline.
    Ring(CallId),
    /// The end of a user's reconnect grace.
    Grace(UserId),
}

/// Something that happened, for the machine to act on.
#[derive(Debug)]
pub enum Event {
    /// A call frame from one session (the event's origin).
    Request(Requester, CallAction),
    /// The callee of an invitation (which passed its first checks) was looked up;
    /// `call_id` is the id the new call gets if it rings.
    CalleeFound {
        by: Requester,
        to: UserId,
        media: Media,
        room: Option<(RoomName, RoomRef)>,
        callee: Callee,
        call_id: CallId,
    },
    /// A new call's log entry (see [`Effect::StoreCall`]) is stored: it may ring.
    Stored { call_id: CallId },
    /// A new call's log entry could not be stored: the invitation fails; the error goes to
    /// the origin (the inviting connection) with `reply`.
    StoreFailed {
        call_id: CallId,
        reply: Option<FrameId>,
        error: Refusal,
    },
    /// Several nodes: a new call was not stored because the callee's own invitation to the
    /// caller, which another node runs (`theirs`, made with `media`), rang already (glare
    /// across nodes, found in the log): the new call is dropped unheard, and with the same
    /// media the invitation answers theirs ([`Effect::AcceptElsewhere`]); with other media
    /// it is refused, as [`Event::Request`] refuses glare on one node.
    Crossed {
        call_id: CallId,
        theirs: CallId,
        media: Media,
    },
    /// A timer set for `at` came.
    Deadline { timer: Timer, at: Ms },
    /// `call.missed` reached `seen` (at least one) of the callee's connections
    /// (see [`Effect::AnnounceMissed`]).
    MissedAnnounced {
        call_id: CallId,
        callee: UserId,
        seen: bool,
    },
    /// A connection of `user` opened (the event's origin).
    Connected { user: UserId },
    /// `user` still has missed calls nobody told them about (the connection that was to be
    /// told closed first).
    MissedUnseen { user: UserId },
    /// `user`'s last connection closed (`left`: on purpose, with a close frame).
    Disconnected { user: UserId, left: bool },
    /// `user` is entering the call room `room` (answered to the origin if refused).
    EnterCallRoom { user: UserId, room: RoomName },
    /// The server is stopping.
    Shutdown,
}

/// Where a frame goes.
#[derive(Debug, Clone, PartialEq)]
pub enum To {
    /// The connection the event came from.
    Origin,
    /// One connection.
    Session(SessionId),
    /// Every connection of a user, but `except`.
    User {
        user: UserId,
        except: Option<SessionId>,
    },
}

/// An error for a client, as it goes on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl From<&ApiError> for Refusal {
    /// What a client is told of `e` (internal causes hidden, and logged).
    fn from(e: &ApiError) -> Self {
        Refusal::new(e.code(), ws_error(e))
    }
}

/// A call's answer already came (or it ended): accept, decline and cancel are too late.
fn already_answered() -> Refusal {
    Refusal::new(ErrorCode::Conflict, "this call was already answered")
}

/// Glare with other media: `caller`'s invitation (a `media` call) rings for the one who
/// invited them; they answer that one instead.
fn calling_you_already(caller: &str, media: Media) -> Refusal {
    Refusal::new(
        ErrorCode::Conflict,
        format!(
            "{caller} is calling you already ({} call): answer that call",
            media.as_str()
        ),
    )
}

/// A call frame, before it is encoded (the wire shape is [`ServerMsg`]'s).
#[derive(Debug, Clone)]
pub enum Frame {
    Ringing {
        reply: Option<FrameId>,
        call_id: CallId,
        to: UserRef,
        media: Media,
        room: RoomName,
    },
    Incoming {
        call_id: CallId,
        from: UserRef,
        media: Media,
        room: RoomName,
    },
    Accepted {
        reply: Option<FrameId>,
        call_id: CallId,
        room: RoomName,
        media: Media,
    },
    AnsweredElsewhere {
        call_id: CallId,
    },
    Declined {
        call_id: CallId,
    },
    Cancelled {
        call_id: CallId,
    },
    Missed {
        call_id: CallId,
    },
    Ended {
        call_id: CallId,
        by: UserRef,
        dropped: bool,
    },
    Left {
        call_id: CallId,
        user: UserRef,
        dropped: bool,
    },
    /// The plain acknowledgement of a request.
    Ack {
        reply: Option<FrameId>,
    },
}

impl Frame {
    /// The frame as it goes on the wire.
    pub fn encode(&self) -> ByteString {
        match self {
            Frame::Ringing {
                reply,
                call_id,
                to,
                media,
                room,
            } => ServerMsg::CallRinging {
                id: reply.as_ref(),
                call_id,
                to,
                media: *media,
                room,
            },
            Frame::Incoming {
                call_id,
                from,
                media,
                room,
            } => ServerMsg::CallIncoming {
                call_id,
                from,
                media: *media,
                room,
            },
            Frame::Accepted {
                reply,
                call_id,
                room,
                media,
            } => ServerMsg::CallAccepted {
                id: reply.as_ref(),
                call_id,
                room,
                media: *media,
            },
            Frame::AnsweredElsewhere { call_id } => ServerMsg::CallAnsweredElsewhere { call_id },
            Frame::Declined { call_id } => ServerMsg::CallDeclined { call_id },
            Frame::Cancelled { call_id } => ServerMsg::CallCancelled { call_id },
            Frame::Missed { call_id } => ServerMsg::CallMissed { call_id },
            Frame::Ended {
                call_id,
                by,
                dropped,
            } => ServerMsg::CallEnded {
                call_id,
                by,
                dropped: *dropped,
            },
            Frame::Left {
                call_id,
                user,
                dropped,
            } => ServerMsg::CallLeft {
                call_id,
                user,
                dropped: *dropped,
            },
            Frame::Ack { reply } => ServerMsg::Ack {
                id: reply.as_ref(),
                msg_id: None,
                created_at: None,
            },
        }
        .encode()
    }
}

/// A new call's log entry (its room created if need be, and for a call room both people
/// made members), stored before it rings.
#[derive(Debug, Clone)]
pub struct NewCallEntry {
    pub call_id: CallId,
    pub room: RoomName,
    pub room_kind: RoomKind,
    /// Made in a room of its own or in the two people's conversation, not into a running
    /// call: only such an invitation can cross one of the callee's (glare).
    pub own_room: bool,
    pub caller: UserId,
    pub callee: UserId,
    pub media: Media,
    pub at: Ms,
}

/// One write to the call log, in the order the machine made them.
#[derive(Debug, Clone, PartialEq)]
pub enum LogWrite {
    /// The call moved to `state` at `at`.
    State {
        call_id: CallId,
        state: CallState,
        at: Ms,
    },
    /// A ringing call was missed at `at`; `seen`: the callee was told at once.
    Missed { call_id: CallId, seen: bool, at: Ms },
    /// Every call still live in the log is closed (the server is stopping).
    CloseDangling,
}

/// Something for the driver to do, in the order given.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Send a frame.
    Send { to: To, frame: Frame },
    /// Answer a request with an error (`reply`: the request's frame id).
    Refuse {
        to: To,
        reply: Option<FrameId>,
        error: Refusal,
    },
    /// Look the invited user up, then send [`Event::CalleeFound`].
    LookUpCallee {
        to: UserId,
        media: Media,
        room: Option<(RoomName, RoomRef)>,
    },
    /// Store a new call's log entry, then send [`Event::Stored`] (or
    /// [`Event::StoreFailed`]).
    StoreCall(NewCallEntry),
    /// Write to the call log.
    Log(LogWrite),
    /// Send `call.missed` to every connection of `callee`, then send
    /// [`Event::MissedAnnounced`] saying whether one got it.
    AnnounceMissed { call_id: CallId, callee: UserId },
    /// Tell the origin connection the calls `user` missed (marking them seen in the log).
    TellMissedCalls { user: UserId },
    /// Start `timer` for `at` (replacing the one with that key), then send
    /// [`Event::Deadline`] when it comes.
    SetTimer { timer: Timer, at: Ms },
    /// Stop `timer` (its deadline no longer counts anyway).
    CancelTimer(Timer),
    /// Tell presence who takes part in the call held in `room` (nobody: it is over), so
    /// they are `in_call` even while reconnecting.
    Participants { room: RoomName, users: Vec<UserId> },
    /// No live call refers to this connection any more: forget how to reach it.
    Release(SessionId),
    /// The origin's invitation accepts `call_id`, which another node runs (see
    /// [`Event::Crossed`]): its request goes there as an accept.
    AcceptElsewhere { call_id: CallId },
}

/// Where a live call stands.
#[derive(Debug)]
enum Phase {
    /// Its log entry is being stored; the caller's `call.ringing` answers `reply` then.
    Storing { reply: Option<FrameId> },
    /// Ringing until `deadline`.
    Ringing { deadline: Ms },
    /// Answered; it runs in its room.
    Accepted,
}

impl Phase {
    /// Not answered yet (ringing, or about to).
    fn unanswered(&self) -> bool {
        !matches!(self, Phase::Accepted)
    }
}

/// The callee's own invitation to the caller, which crossed a call while that was still
/// being stored: it is answered as an acceptance as soon as the call rings.
#[derive(Debug)]
struct Crossing {
    session: SessionId,
    reply: Option<FrameId>,
}

/// The two ends of a call, for actions only one of them may take.
#[derive(Debug, Clone, Copy)]
enum Side {
    Caller,
    Callee,
}

/// A live call (one invitation): ringing, or accepted and running in its room.
#[derive(Debug)]
struct LiveCall {
    id: CallId,
    caller: UserRef,
    /// The connection that sent the invitation: it hears the answer.
    caller_session: SessionId,
    callee: UserRef,
    media: Media,
    room: RoomName,
    /// Whether the invitation opened a conversation of its own (not one into a running
    /// call): only such invitations can cross (glare).
    own_room: bool,
    crossing: Option<Crossing>,
    phase: Phase,
}

impl LiveCall {
    /// The `call.incoming` frame announcing this call to the callee's connections.
    fn incoming(&self) -> Frame {
        Frame::Incoming {
            call_id: self.id.clone(),
            from: self.caller.clone(),
            media: self.media,
            room: self.room.clone(),
        }
    }
}

/// Of the invitations that make up one conversation, the one `user` knows (they sent or
/// answered it; the call id their page holds), else any: the id to name the call by to them.
fn call_known_to<'a>(
    calls: impl IntoIterator<Item = &'a LiveCall> + Clone,
    user: UserId,
) -> Option<&'a LiveCall> {
    calls
        .clone()
        .into_iter()
        .find(|c| c.caller.id == user || c.callee.id == user)
        .or_else(|| calls.into_iter().next())
}

/// Who is taking part in the conversation held in one room.
#[derive(Debug, Default)]
struct CallRoom {
    participants: Vec<UserRef>,
}

impl CallRoom {
    /// Whether `user` takes part in this conversation.
    fn has(&self, user: UserId) -> bool {
        self.participants.iter().any(|p| p.id == user)
    }
}

/// Every live call and what hangs on them; see the module docs.
#[derive(Debug)]
pub struct CallMachine {
    config: Config,
    /// By call id; ordered, so the effects of one event come in the same order every time.
    calls: BTreeMap<SharedStr, LiveCall>,
    /// The conversations running, by room.
    rooms: HashMap<RoomName, CallRoom>,
    /// Users whose last connection dropped while they were in a call, with the end of their
    /// reconnect grace: their calls hold them until then; entering a call's room ends it.
    held: HashMap<UserId, Ms>,
    /// Users with missed calls they have not been told about (in the log as unseen): their
    /// next connection is told (`calls.missed`). Everyone else connects without a database
    /// read.
    unseen_missed: HashSet<UserId>,
}

impl CallMachine {
    /// No calls; `unseen_missed`: the users the call log holds unseen missed calls for.
    pub fn new(config: Config, unseen_missed: HashSet<UserId>) -> Self {
        CallMachine {
            config,
            calls: BTreeMap::new(),
            rooms: HashMap::new(),
            held: HashMap::new(),
            unseen_missed,
        }
    }

    /// How many calls are live (ringing or running).
    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// Whether `call_id` is live here (being stored, ringing or running): with several
    /// nodes, a call this machine does not know is run by another node's.
    pub(crate) fn knows(&self, call_id: &str) -> bool {
        self.calls.contains_key(call_id)
    }

    /// The state `action` by `by` would move a ringing call to (accepted, declined or
    /// cancelled), if it is one the machine would carry out; `None` for anything else (which
    /// the machine answers as usual). With several nodes the driver records that move in the
    /// shared log first, and lets the machine carry it out only if the log agrees.
    pub(crate) fn answers(&self, by: &Requester, action: &CallAction) -> Option<CallState> {
        let (key, wanted) = match action {
            CallAction::Invite { .. } => return None,
            CallAction::Accept(key) => (key, Some((Side::Callee, CallState::Accepted))),
            CallAction::Decline(key) => (key, Some((Side::Callee, CallState::Declined))),
            CallAction::Cancel(key) => (key, Some((Side::Caller, CallState::Cancelled))),
            CallAction::Hangup(key) => (key, None),
        };
        let call = self.calls.get(key.as_str())?;
        if !matches!(call.phase, Phase::Ringing { .. }) {
            return None;
        }
        let me = by.user.id;
        let (side, state) = wanted.unwrap_or(if call.caller.id == me {
            (Side::Caller, CallState::Cancelled)
        } else {
            (Side::Callee, CallState::Declined)
        });
        let party = match side {
            Side::Caller => &call.caller,
            Side::Callee => &call.callee,
        };
        (party.id == me).then_some(state)
    }

    /// Whether `call_id` rings until `at` (its ring deadline, set for `at`, counts).
    pub(crate) fn rings_until(&self, call_id: &CallId, at: Ms) -> bool {
        self.calls
            .get(&call_id.0)
            .is_some_and(|c| matches!(c.phase, Phase::Ringing { deadline } if deadline == at))
    }

    /// Whether a call this machine runs is held in `room`.
    pub(crate) fn runs_in(&self, room: &RoomName) -> bool {
        self.rooms.contains_key(room) || self.calls.values().any(|c| &c.room == room)
    }

    /// Whether a live call still refers to `session` (it sent the invitation, or a crossing
    /// one waiting for it): the driver keeps a way to reach it meanwhile.
    pub(crate) fn refers_to(&self, session: &SessionId) -> bool {
        self.calls.values().any(|c| {
            c.caller_session == *session
                || c.crossing.as_ref().is_some_and(|x| x.session == *session)
        })
    }

    /// Acts on `event`, which happened at `now`; answers what to do, in order.
    pub fn handle(&mut self, now: Ms, event: Event) -> Vec<Effect> {
        let mut out = Vec::new();
        match event {
            Event::Request(by, action) => {
                if let Err(error) = self.request(now, &by, action, &mut out) {
                    out.push(Effect::Refuse {
                        to: To::Origin,
                        reply: by.reply,
                        error,
                    });
                }
            }
            Event::CalleeFound {
                by,
                to,
                media,
                room,
                callee,
                call_id,
            } => {
                if let Err(error) = self.ring(now, &by, to, media, room, callee, call_id, &mut out)
                {
                    out.push(Effect::Refuse {
                        to: To::Origin,
                        reply: by.reply,
                        error,
                    });
                }
            }
            Event::Stored { call_id } => self.start_ringing(now, &call_id, &mut out),
            Event::StoreFailed {
                call_id,
                reply,
                error,
            } => {
                if let Some(call) = self.calls.remove(&call_id.0) {
                    self.abandon(call, error.clone(), &mut out);
                }
                out.push(Effect::Refuse {
                    to: To::Origin,
                    reply,
                    error,
                });
            }
            Event::Crossed {
                call_id,
                theirs,
                media,
            } => self.crossed(&call_id, theirs, media, &mut out),
            Event::Deadline {
                timer: Timer::Ring(call_id),
                at,
            } => self.ring_deadline(&call_id, at, &mut out),
            Event::Deadline {
                timer: Timer::Grace(user),
                at,
            } => {
                if self.held.get(&user) == Some(&at) {
                    self.held.remove(&user);
                    self.leave_all_calls(now, user, true, &mut out);
                }
            }
            Event::MissedAnnounced {
                call_id,
                callee,
                seen,
            } => {
                out.push(Effect::Log(LogWrite::Missed {
                    call_id,
                    seen,
                    at: now,
                }));
                if !seen {
                    // Written before the callee's next connection reads it: one queue.
                    self.unseen_missed.insert(callee);
                }
            }
            Event::Connected { user } => {
                for call in self.calls.values() {
                    if call.callee.id == user && matches!(call.phase, Phase::Ringing { .. }) {
                        out.push(Effect::Send {
                            to: To::Origin,
                            frame: call.incoming(),
                        });
                    }
                }
                if self.unseen_missed.remove(&user) {
                    out.push(Effect::TellMissedCalls { user });
                }
            }
            Event::MissedUnseen { user } => {
                self.unseen_missed.insert(user);
            }
            Event::Disconnected { user, left } => self.disconnected(now, user, left, &mut out),
            Event::EnterCallRoom { user, room } => {
                if !self.rooms.get(&room).is_some_and(|cr| cr.has(user)) {
                    out.push(Effect::Refuse {
                        to: To::Origin,
                        reply: None,
                        error: Refusal::new(
                            ErrorCode::Forbidden,
                            format!(
                                "no call is running in room '{}' with you in it",
                                room.as_str()
                            ),
                        ),
                    });
                } else if self.held.remove(&user).is_some() {
                    out.push(Effect::CancelTimer(Timer::Grace(user)));
                }
            }
            Event::Shutdown => {
                for call in std::mem::take(&mut self.calls).into_values() {
                    if matches!(call.phase, Phase::Ringing { .. }) {
                        out.push(Effect::CancelTimer(Timer::Ring(call.id)));
                    }
                }
                self.rooms.clear();
                for (user, _) in self.held.drain() {
                    out.push(Effect::CancelTimer(Timer::Grace(user)));
                }
                out.push(Effect::Log(LogWrite::CloseDangling));
            }
        }
        out
    }

    /// A call frame from `by`.
    fn request(
        &mut self,
        now: Ms,
        by: &Requester,
        action: CallAction,
        out: &mut Vec<Effect>,
    ) -> Result<(), Refusal> {
        let ack = |out: &mut Vec<Effect>| {
            out.push(Effect::Send {
                to: To::Origin,
                frame: Frame::Ack {
                    reply: by.reply.clone(),
                },
            })
        };
        match action {
            CallAction::Invite { to, media, room } => {
                self.check_invite(by, to, media, room.as_ref())?;
                out.push(Effect::LookUpCallee { to, media, room });
            }
            CallAction::Accept(call_id) => {
                self.call_as(&call_id, by.user.id, Side::Callee, "accept")?;
                self.accept(
                    now,
                    &call_id,
                    To::Origin,
                    by.reply.clone(),
                    &by.session,
                    out,
                )?;
            }
            CallAction::Decline(call_id) => {
                self.call_as(&call_id, by.user.id, Side::Callee, "decline")?;
                self.decline(now, &call_id, &by.session, out)?;
                ack(out);
            }
            CallAction::Cancel(call_id) => {
                self.call_as(&call_id, by.user.id, Side::Caller, "cancel")?;
                let call = self
                    .cancel(now, &call_id, out)
                    .ok_or_else(already_answered)?;
                self.release(&[call], out);
                ack(out);
            }
            CallAction::Hangup(call_id) => {
                let call = self.live_call(&call_id)?;
                let me = by.user.id;
                let unanswered = call.phase.unanswered();
                if unanswered && call.caller.id == me {
                    if let Some(call) = self.cancel(now, &call_id, out) {
                        self.release(&[call], out);
                    }
                } else if unanswered && call.callee.id == me {
                    self.decline(now, &call_id, &by.session, out)?;
                } else if !unanswered && self.rooms.get(&call.room).is_some_and(|cr| cr.has(me)) {
                    let room = call.room.clone();
                    self.leave_call_room(now, &room, &by.user, false, out);
                } else {
                    return Err(Refusal::new(
                        ErrorCode::Forbidden,
                        "you are not in this call",
                    ));
                }
                ack(out);
            }
        }
        Ok(())
    }

    /// The live call `call_id`, or `not_found`.
    fn live_call(&self, call_id: &str) -> Result<&LiveCall, Refusal> {
        self.calls.get(call_id).ok_or_else(|| {
            Refusal::new(
                ErrorCode::NotFound,
                format!(
                    "no live call '{}'",
                    call_id.chars().take(64).collect::<String>()
                ),
            )
        })
    }

    /// Checks that `call_id` is live and `user` is on `side` of it; otherwise `not_found`,
    /// or `forbidden` naming the action (`verb`) only that side may take.
    fn call_as(&self, call_id: &str, user: UserId, side: Side, verb: &str) -> Result<(), Refusal> {
        let call = self.live_call(call_id)?;
        let (party, role) = match side {
            Side::Caller => (&call.caller, "caller"),
            Side::Callee => (&call.callee, "callee"),
        };
        if party.id != user {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                format!("only the {role} can {verb} a call"),
            ));
        }
        Ok(())
    }

    /// The invitation checks that need only the machine's own state (made before the
    /// callee is looked up, and again after).
    fn check_invite(
        &self,
        by: &Requester,
        to: UserId,
        media: Media,
        room: Option<&(RoomName, RoomRef)>,
    ) -> Result<(), Refusal> {
        if to == by.user.id {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "you cannot call yourself",
            ));
        }
        if !media.allowed_by(by.caps) {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                format!("your account cannot make {} calls", media.as_str()),
            ));
        }
        if let Some((room, kind)) = room {
            if matches!(kind, RoomRef::Direct(..)) {
                return Err(Refusal::new(
                    ErrorCode::BadRequest,
                    "a direct room is for its two people; bring a third person into a call \
                     room (or a public channel) instead",
                ));
            }
            let cr = self
                .rooms
                .get(room)
                .filter(|cr| cr.has(by.user.id))
                .ok_or_else(|| {
                    Refusal::new(
                        ErrorCode::Forbidden,
                        format!("you are not in a call in room '{}'", room.as_str()),
                    )
                })?;
            if cr.has(to) {
                return Err(Refusal::new(ErrorCode::Conflict, "already in this call"));
            }
            let ringing = self
                .calls
                .values()
                .filter(|c| &c.room == room && c.phase.unanswered())
                .count();
            if cr.participants.len() + ringing >= self.config.room_cap {
                return Err(Refusal::new(
                    ErrorCode::Conflict,
                    format!(
                        "room '{}' is full ({} members)",
                        room.as_str(),
                        self.config.room_cap
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The callee was looked up: check them, then log the call (it rings once stored), or
    /// answer a crossing invitation.
    #[allow(clippy::too_many_arguments)]
    fn ring(
        &mut self,
        now: Ms,
        by: &Requester,
        to: UserId,
        media: Media,
        room: Option<(RoomName, RoomRef)>,
        callee: Callee,
        call_id: CallId,
        out: &mut Vec<Effect>,
    ) -> Result<(), Refusal> {
        let info = match callee {
            Callee::Online(info) => info,
            Callee::Offline {
                nickname,
                banned: false,
            } => {
                return Err(Refusal::new(
                    ErrorCode::Unavailable,
                    format!("{nickname} is offline"),
                ))
            }
            Callee::Offline { banned: true, .. } | Callee::Unknown => {
                return Err(Refusal::new(
                    ErrorCode::NotFound,
                    format!("no user {}", to.0),
                ))
            }
        };
        self.check_invite(by, to, media, room.as_ref())?;
        if room.is_none() {
            if let Some(key) = self.crossing_invitation(by.user.id, to) {
                return self.merge_crossing(now, key, by, media, out);
            }
        }
        match info.status {
            Status::Busy | Status::Away => {
                return Err(Refusal::new(
                    ErrorCode::Conflict,
                    format!("{} is {}", info.nickname, info.status.as_str()),
                ))
            }
            Status::InCall => {
                return Err(Refusal::new(
                    ErrorCode::Conflict,
                    format!("{} is already in a call", info.nickname),
                ))
            }
            Status::Online | Status::Offline => {}
        }
        if !media.allowed_by(info.capabilities) {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                format!("{} cannot take {} calls", info.nickname, media.as_str()),
            ));
        }
        let own_room = room.is_none();
        let (room, room_kind) = match room {
            Some((room, _)) => (room, RoomKind::Call),
            None if media == Media::Chat => {
                let name = db::rooms::direct_room_name(by.user.id.0, to.0);
                let (room, _) =
                    RoomName::parse(&name).map_err(|e| Refusal::from(&ApiError::Internal(e)))?;
                (room, RoomKind::Direct)
            }
            None => {
                let (room, _) = RoomName::parse(&db::rooms::call_room_name(&call_id.0))
                    .map_err(|e| Refusal::from(&ApiError::Internal(e)))?;
                (room, RoomKind::Call)
            }
        };
        out.push(Effect::StoreCall(NewCallEntry {
            call_id: call_id.clone(),
            room: room.clone(),
            room_kind,
            own_room,
            caller: by.user.id,
            callee: to,
            media,
            at: now,
        }));
        self.calls.insert(
            call_id.0.clone(),
            LiveCall {
                id: call_id,
                caller: by.user.clone(),
                caller_session: by.session.clone(),
                callee: UserRef {
                    id: to,
                    nickname: info.nickname,
                },
                media,
                room,
                own_room,
                crossing: None,
                phase: Phase::Storing {
                    reply: by.reply.clone(),
                },
            },
        );
        Ok(())
    }

    /// The call is stored: the caller hears `call.ringing`, the callee's connections
    /// `call.incoming`, and the ring deadline is set; a crossing invitation answers it now.
    fn start_ringing(&mut self, now: Ms, call_id: &CallId, out: &mut Vec<Effect>) {
        let deadline = now.saturating_add(self.config.ring_ms);
        let Some(call) = self.calls.get_mut(&call_id.0) else {
            // Cancelled while it was being stored.
            return;
        };
        let Phase::Storing { reply } =
            std::mem::replace(&mut call.phase, Phase::Ringing { deadline })
        else {
            return;
        };
        out.push(Effect::Send {
            to: To::Session(call.caller_session.clone()),
            frame: Frame::Ringing {
                reply,
                call_id: call.id.clone(),
                to: call.callee.clone(),
                media: call.media,
                room: call.room.clone(),
            },
        });
        // A crossing invitation of the callee's answers this one below: ringing them would
        // only race the `call.accepted` they are about to get.
        if call.crossing.is_none() {
            out.push(Effect::Send {
                to: To::User {
                    user: call.callee.id,
                    except: None,
                },
                frame: call.incoming(),
            });
        }
        out.push(Effect::SetTimer {
            timer: Timer::Ring(call.id.clone()),
            at: deadline,
        });
        if let Some(crossing) = call.crossing.take() {
            let to = To::Session(crossing.session.clone());
            if let Err(error) = self.accept(
                now,
                &call_id.0,
                to.clone(),
                crossing.reply.clone(),
                &crossing.session,
                out,
            ) {
                out.push(Effect::Refuse {
                    to,
                    reply: crossing.reply,
                    error,
                });
            }
            if !self.refers_to(&crossing.session) {
                out.push(Effect::Release(crossing.session));
            }
        }
    }

    /// Nobody answered: both sides hear `call.missed`; the log says whether the callee saw
    /// it (see [`Event::MissedAnnounced`]).
    fn ring_deadline(&mut self, call_id: &CallId, at: Ms, out: &mut Vec<Effect>) {
        if !self
            .calls
            .get(&call_id.0)
            .is_some_and(|c| matches!(c.phase, Phase::Ringing { deadline } if deadline == at))
        {
            return;
        }
        let Some(call) = self.calls.remove(&call_id.0) else {
            return;
        };
        out.push(Effect::Send {
            to: To::Session(call.caller_session.clone()),
            frame: Frame::Missed {
                call_id: call.id.clone(),
            },
        });
        out.push(Effect::AnnounceMissed {
            call_id: call.id.clone(),
            callee: call.callee.id,
        });
        self.release(&[call], out);
    }

    /// Removes an unanswered call and stops its ring timer.
    fn take_unanswered(&mut self, call_id: &str, out: &mut Vec<Effect>) -> Option<LiveCall> {
        if !self
            .calls
            .get(call_id)
            .is_some_and(|c| c.phase.unanswered())
        {
            return None;
        }
        let call = self.calls.remove(call_id)?;
        if matches!(call.phase, Phase::Ringing { .. }) {
            out.push(Effect::CancelTimer(Timer::Ring(call.id.clone())));
        }
        Some(call)
    }

    /// Ends an unanswered call, `cancelled` by the caller (or because nobody is left to
    /// talk to); answers it so the caller can [`release`](Self::release) it.
    fn cancel(&mut self, now: Ms, call_id: &str, out: &mut Vec<Effect>) -> Option<LiveCall> {
        let call = self.take_unanswered(call_id, out)?;
        out.push(Effect::Send {
            to: To::User {
                user: call.callee.id,
                except: None,
            },
            frame: Frame::Cancelled {
                call_id: call.id.clone(),
            },
        });
        out.push(Effect::Log(LogWrite::State {
            call_id: call.id.clone(),
            state: CallState::Cancelled,
            at: now,
        }));
        Some(call)
    }

    /// The callee (on `session`) said no: the caller hears `call.declined`, the callee's
    /// other connections stop ringing.
    fn decline(
        &mut self,
        now: Ms,
        call_id: &str,
        session: &SessionId,
        out: &mut Vec<Effect>,
    ) -> Result<(), Refusal> {
        let call = self
            .take_unanswered(call_id, out)
            .ok_or_else(already_answered)?;
        out.push(Effect::Send {
            to: To::Session(call.caller_session.clone()),
            frame: Frame::Declined {
                call_id: call.id.clone(),
            },
        });
        out.push(Effect::Send {
            to: To::User {
                user: call.callee.id,
                except: Some(session.clone()),
            },
            frame: Frame::AnsweredElsewhere {
                call_id: call.id.clone(),
            },
        });
        out.push(Effect::Log(LogWrite::State {
            call_id: call.id.clone(),
            state: CallState::Declined,
            at: now,
        }));
        self.release(&[call], out);
        Ok(())
    }

    /// The callee (on `session`) answers an unanswered call: both ends hear
    /// `call.accepted` (the answering connection, at `reply_to`, with its frame's `reply`
    /// id), the callee's other connections stop ringing, and both take part in the call's
    /// room.
    fn accept(
        &mut self,
        now: Ms,
        call_id: &str,
        reply_to: To,
        reply: Option<FrameId>,
        session: &SessionId,
        out: &mut Vec<Effect>,
    ) -> Result<(), Refusal> {
        let mut call = self
            .take_unanswered(call_id, out)
            .ok_or_else(already_answered)?;
        call.phase = Phase::Accepted;
        let cr = self.rooms.entry(call.room.clone()).or_default();
        for user in [&call.caller, &call.callee] {
            if !cr.has(user.id) {
                cr.participants.push(user.clone());
            }
        }
        self.report_participants(&call.room, out);
        out.push(Effect::Send {
            to: reply_to,
            frame: Frame::Accepted {
                reply,
                call_id: call.id.clone(),
                room: call.room.clone(),
                media: call.media,
            },
        });
        out.push(Effect::Send {
            to: To::Session(call.caller_session.clone()),
            frame: Frame::Accepted {
                reply: None,
                call_id: call.id.clone(),
                room: call.room.clone(),
                media: call.media,
            },
        });
        out.push(Effect::Send {
            to: To::User {
                user: call.callee.id,
                except: Some(session.clone()),
            },
            frame: Frame::AnsweredElsewhere {
                call_id: call.id.clone(),
            },
        });
        out.push(Effect::Log(LogWrite::State {
            call_id: call.id.clone(),
            state: CallState::Accepted,
            at: now,
        }));
        self.calls.insert(call.id.0.clone(), call);
        Ok(())
    }

    /// The invitation from `callee` to `caller` that is not answered yet, if any: `caller`
    /// inviting them back now is glare.
    fn crossing_invitation(&self, caller: UserId, callee: UserId) -> Option<SharedStr> {
        self.calls
            .iter()
            .find(|(_, c)| {
                c.own_room && c.caller.id == callee && c.callee.id == caller && c.phase.unanswered()
            })
            .map(|(k, _)| k.clone())
    }

    /// Glare: `by` invites the person whose invitation to them rings (`key`). With the same
    /// media it is an acceptance of that call (one call, one log entry); with other media it
    /// is refused (`conflict`) and theirs rings on, for the user to answer.
    fn merge_crossing(
        &mut self,
        now: Ms,
        key: SharedStr,
        by: &Requester,
        media: Media,
        out: &mut Vec<Effect>,
    ) -> Result<(), Refusal> {
        let Some(call) = self.calls.get_mut(&key) else {
            return Err(already_answered());
        };
        if call.media != media {
            return Err(calling_you_already(&call.caller.nickname, call.media));
        }
        match call.phase {
            // Still being stored: answered the moment it rings.
            Phase::Storing { .. } if call.crossing.is_none() => {
                call.crossing = Some(Crossing {
                    session: by.session.clone(),
                    reply: by.reply.clone(),
                });
                Ok(())
            }
            Phase::Ringing { .. } => {
                self.accept(now, &key, To::Origin, by.reply.clone(), &by.session, out)
            }
            _ => Err(already_answered()),
        }
    }

    /// Glare across nodes ([`Event::Crossed`]): the invitation that was being stored is
    /// dropped (nobody heard of it but its caller, who is answered now), and a crossing
    /// invitation that waited for it is refused (`theirs` is the call now).
    fn crossed(&mut self, call_id: &CallId, theirs: CallId, media: Media, out: &mut Vec<Effect>) {
        // Only a call being stored can cross one in the log.
        let Some(Phase::Storing { reply }) = self.calls.get(&call_id.0).map(|c| &c.phase) else {
            return;
        };
        let reply = reply.clone();
        let Some(call) = self.calls.remove(&call_id.0) else {
            return;
        };
        let refusal =
            (call.media != media).then(|| calling_you_already(&call.callee.nickname, media));
        self.abandon(call, already_answered(), out);
        match refusal {
            Some(error) => out.push(Effect::Refuse {
                to: To::Origin,
                reply,
                error,
            }),
            None => out.push(Effect::AcceptElsewhere { call_id: theirs }),
        }
    }

    /// A call that will not ring after all (its store failed, or it crossed one in the log):
    /// an invitation of the callee's that waited for it (a crossing one) is refused with
    /// `error`, and the connections only it referred to are released.
    fn abandon(&self, call: LiveCall, error: Refusal, out: &mut Vec<Effect>) {
        if let Some(crossing) = &call.crossing {
            out.push(Effect::Refuse {
                to: To::Session(crossing.session.clone()),
                reply: crossing.reply.clone(),
                error,
            });
        }
        self.release(&[call], out);
    }

    /// `user`'s last connection closed: their outgoing invitations are cancelled; they
    /// leave their calls now, or when the reconnect grace ends if it dropped.
    fn disconnected(&mut self, now: Ms, user: UserId, left: bool, out: &mut Vec<Effect>) {
        let outgoing: Vec<SharedStr> = self
            .calls
            .iter()
            .filter(|(_, c)| c.caller.id == user && c.phase.unanswered())
            .map(|(k, _)| k.clone())
            .collect();
        let mut gone = Vec::new();
        for key in outgoing {
            gone.extend(self.cancel(now, &key, out));
        }
        self.release(&gone, out);
        let in_a_call = self.rooms.values().any(|cr| cr.has(user));
        if left || self.config.grace_ms <= 0 || !in_a_call {
            self.leave_all_calls(now, user, !left, out);
            return;
        }
        let deadline = now.saturating_add(self.config.grace_ms);
        self.held.insert(user, deadline);
        out.push(Effect::SetTimer {
            timer: Timer::Grace(user),
            at: deadline,
        });
    }

    /// Tells presence who takes part in the call held in `room` (nobody once it is over).
    fn report_participants(&self, room: &RoomName, out: &mut Vec<Effect>) {
        let users = self
            .rooms
            .get(room)
            .map(|cr| cr.participants.iter().map(|p| p.id).collect())
            .unwrap_or_default();
        out.push(Effect::Participants {
            room: room.clone(),
            users,
        });
    }

    /// Takes `user` out of every call they are in (hang-up semantics for each) because
    /// their connection ended: `dropped` if it did not end on purpose and they did not come
    /// back.
    fn leave_all_calls(&mut self, now: Ms, user_id: UserId, dropped: bool, out: &mut Vec<Effect>) {
        let rooms: Vec<(RoomName, UserRef)> = self
            .rooms
            .iter()
            .filter_map(|(name, cr)| {
                cr.participants
                    .iter()
                    .find(|p| p.id == user_id)
                    .map(|p| (name.clone(), p.clone()))
            })
            .collect();
        for (room, user) in rooms {
            self.leave_call_room(now, &room, &user, dropped, out);
        }
    }

    /// Takes `user` out of the conversation in `room` (`dropped`: their connection did,
    /// they did not hang up); ends it if fewer than two remain.
    fn leave_call_room(
        &mut self,
        now: Ms,
        room: &RoomName,
        user: &UserRef,
        dropped: bool,
        out: &mut Vec<Effect>,
    ) {
        let Some(cr) = self.rooms.get_mut(room) else {
            return;
        };
        let before = cr.participants.len();
        cr.participants.retain(|p| p.id != user.id);
        if cr.participants.len() >= 2 {
            let left = cr.participants.len() < before;
            self.report_participants(room, out);
            if left {
                self.tell_call_left(room, user, dropped, out);
            }
            return;
        }
        let remaining = self
            .rooms
            .remove(room)
            .map(|cr| cr.participants)
            .unwrap_or_default();
        self.report_participants(room, out);
        let ids: Vec<SharedStr> = self
            .calls
            .iter()
            .filter(|(_, c)| &c.room == room)
            .map(|(k, _)| k.clone())
            .collect();
        let mut ended: Vec<LiveCall> = Vec::new();
        let mut cancelled: Vec<LiveCall> = Vec::new();
        for key in ids {
            if self.calls.get(&key).is_some_and(|c| c.phase.unanswered()) {
                // Nobody is left to talk to: an invitation into this call is void.
                cancelled.extend(self.cancel(now, &key, out));
            } else if let Some(call) = self.calls.remove(&key) {
                out.push(Effect::Log(LogWrite::State {
                    call_id: call.id.clone(),
                    state: CallState::Ended,
                    at: now,
                }));
                ended.push(call);
            }
        }
        for p in &remaining {
            if let Some(call) = call_known_to(&ended, p.id) {
                out.push(Effect::Send {
                    to: To::User {
                        user: p.id,
                        except: None,
                    },
                    frame: Frame::Ended {
                        call_id: call.id.clone(),
                        by: user.clone(),
                        dropped,
                    },
                });
            }
        }
        ended.append(&mut cancelled);
        self.release(&ended, out);
    }

    /// Tells everyone still in the call held in `room` that `user` left it (`dropped`: by
    /// the grace expiring after their connection dropped), each with a `call_id` they know.
    fn tell_call_left(
        &self,
        room: &RoomName,
        user: &UserRef,
        dropped: bool,
        out: &mut Vec<Effect>,
    ) {
        let Some(cr) = self.rooms.get(room) else {
            return;
        };
        // Only accepted invitations: an unanswered one is nobody's call yet.
        let running: Vec<&LiveCall> = self
            .calls
            .values()
            .filter(|c| &c.room == room && matches!(c.phase, Phase::Accepted))
            .collect();
        for p in &cr.participants {
            if let Some(call) = call_known_to(running.iter().copied(), p.id) {
                out.push(Effect::Send {
                    to: To::User {
                        user: p.id,
                        except: None,
                    },
                    frame: Frame::Left {
                        call_id: call.id.clone(),
                        user: user.clone(),
                        dropped,
                    },
                });
            }
        }
    }

    /// After `gone` left the live calls: the connections no live call refers to any more
    /// are released (each once).
    fn release(&self, gone: &[LiveCall], out: &mut Vec<Effect>) {
        let mut released: Vec<&SessionId> = Vec::new();
        for call in gone {
            let sessions = std::iter::once(&call.caller_session)
                .chain(call.crossing.iter().map(|x| &x.session));
            for session in sessions {
                if !released.contains(&session) && !self.refers_to(session) {
                    released.push(session);
                    out.push(Effect::Release(session.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ring timeout and reconnect grace of these tests.
    const RING: Ms = 30_000;
    const GRACE: Ms = 20_000;
    /// When each test starts.
    const T0: Ms = 1_000_000;

    /// A machine with the tests' timings and a room cap of 3.
    fn machine() -> CallMachine {
        CallMachine::new(
            Config {
                ring_ms: RING,
                grace_ms: GRACE,
                room_cap: 3,
            },
            HashSet::new(),
        )
    }

    /// Every capability.
    const ALL: Capabilities = Capabilities {
        video: true,
        audio: true,
        text: true,
    };

    /// User `id`: 1 ana, 2 bia, 3 caio, 4 duda.
    fn user(id: i64) -> UserRef {
        let names = ["", "ana", "bia", "caio", "duda"];
        UserRef {
            id: UserId(id),
            nickname: SharedStr::from(names[id as usize]),
        }
    }

    /// The connection called `name`.
    fn session(name: &str) -> SessionId {
        SessionId(SharedStr::from(name))
    }

    /// User `id` on connection `session`, sending a frame with id `reply`.
    fn by(id: i64, on: &str, reply: i64) -> Requester {
        Requester {
            user: user(id),
            caps: ALL,
            session: session(on),
            reply: Some(FrameId::Num(reply)),
        }
    }

    /// User `id` online, as presence would describe them.
    fn online(id: i64, status: Status, capabilities: Capabilities) -> Callee {
        Callee::Online(OnlineInfo {
            nickname: user(id).nickname,
            status,
            capabilities,
        })
    }

    /// The call called `id`.
    fn call(id: &str) -> CallId {
        CallId(SharedStr::from(id))
    }

    /// The room called `name`.
    fn room(name: &str) -> RoomName {
        RoomName::parse(name).expect("a valid room name").0
    }

    /// A frame in one line: its type, `#id`, call id, then its other fields (users by
    /// nickname), all read back from the bytes that go on the wire.
    fn frame(f: &Frame) -> String {
        let v: serde_json::Value = serde_json::from_str(&f.encode()).expect("a JSON frame");
        let obj = v.as_object().expect("an object");
        let mut s = obj["type"].as_str().expect("a type").to_owned();
        if let Some(id) = obj.get("id") {
            s += &format!(" #{id}");
        }
        if let Some(c) = obj.get("call_id") {
            s += &format!(" {}", c.as_str().expect("a call id"));
        }
        for (k, v) in obj {
            if ["type", "id", "call_id"].contains(&k.as_str()) {
                continue;
            }
            let v = match v {
                serde_json::Value::Object(o) => o["nickname"].as_str().expect("a user").to_owned(),
                serde_json::Value::String(x) => x.clone(),
                other => other.to_string(),
            };
            s += &format!(" {k}={v}");
        }
        s
    }

    /// Where a frame goes, in a word or three.
    fn to(t: &To) -> String {
        match t {
            To::Origin => "origin".to_owned(),
            To::Session(s) => s.0.to_string(),
            To::User { user, except: None } => format!("user {}", user.0),
            To::User {
                user,
                except: Some(s),
            } => format!("user {} but {}", user.0, s.0),
        }
    }

    /// Effects in one line each, so a test states them exactly and readably.
    fn show(effects: &[Effect]) -> Vec<String> {
        effects
            .iter()
            .map(|e| match e {
                Effect::Send { to: t, frame: f } => format!("{} <- {}", to(t), frame(f)),
                Effect::Refuse {
                    to: t,
                    reply,
                    error,
                } => format!(
                    "{} <- error{} {}: {}",
                    to(t),
                    reply
                        .as_ref()
                        .map(|r| format!(" #{r:?}"))
                        .unwrap_or_default(),
                    serde_json::to_value(error.code)
                        .expect("a code")
                        .as_str()
                        .expect("text"),
                    error.message
                ),
                Effect::LookUpCallee { to, media, room } => format!(
                    "look up {} {}{}",
                    to.0,
                    media.as_str(),
                    room.as_ref()
                        .map(|r| format!(" in {}", r.0.as_str()))
                        .unwrap_or_default()
                ),
                Effect::StoreCall(e) => format!(
                    "store {} {} {:?} {}->{} {} @{}",
                    e.call_id.0,
                    e.room.as_str(),
                    e.room_kind,
                    e.caller.0,
                    e.callee.0,
                    e.media.as_str(),
                    e.at - T0
                ),
                Effect::Log(LogWrite::State { call_id, state, at }) => {
                    format!("log {} {} @{}", call_id.0, state.as_str(), at - T0)
                }
                Effect::Log(LogWrite::Missed { call_id, seen, at }) => {
                    format!("log {} missed seen={seen} @{}", call_id.0, at - T0)
                }
                Effect::Log(LogWrite::CloseDangling) => "log close dangling".to_owned(),
                Effect::AnnounceMissed { call_id, callee } => {
                    format!("announce missed {} to user {}", call_id.0, callee.0)
                }
                Effect::TellMissedCalls { user } => format!("tell missed calls of {}", user.0),
                Effect::SetTimer { timer, at } => format!("set {} @{}", timer_name(timer), at - T0),
                Effect::CancelTimer(timer) => format!("cancel {}", timer_name(timer)),
                Effect::Participants { room, users } => format!(
                    "participants {} {:?}",
                    room.as_str(),
                    users.iter().map(|u| u.0).collect::<Vec<_>>()
                ),
                Effect::Release(s) => format!("release {}", s.0),
                Effect::AcceptElsewhere { call_id } => format!("accept {} elsewhere", call_id.0),
            })
            .collect()
    }

    /// A timer's key in words.
    fn timer_name(t: &Timer) -> String {
        match t {
            Timer::Ring(c) => format!("ring {}", c.0),
            Timer::Grace(u) => format!("grace {}", u.0),
        }
    }

    /// Runs `event` at `T0 + at` and shows its effects.
    fn run(m: &mut CallMachine, at: Ms, event: Event) -> Vec<String> {
        show(&m.handle(T0 + at, event))
    }

    /// `by` sends a call frame at `T0 + at`.
    fn request(m: &mut CallMachine, at: Ms, by: Requester, action: CallAction) -> Vec<String> {
        run(m, at, Event::Request(by, action))
    }

    /// The lookup of a video invitation's callee answered, for a call of its own.
    fn found_video(
        m: &mut CallMachine,
        at: Ms,
        from: Requester,
        to: i64,
        callee: Callee,
        call_id: &str,
    ) -> Vec<String> {
        found(m, at, from, to, Media::Video, None, callee, call_id)
    }

    /// The lookup of an invitation's callee answered (`into`: a running call's room).
    #[allow(clippy::too_many_arguments)]
    fn found(
        m: &mut CallMachine,
        at: Ms,
        from: Requester,
        to: i64,
        media: Media,
        into: Option<&str>,
        callee: Callee,
        call_id: &str,
    ) -> Vec<String> {
        let room = into.map(|r| RoomName::parse(r).expect("a valid room"));
        let event = Event::CalleeFound {
            by: from,
            to: UserId(to),
            media,
            room,
            callee,
            call_id: call(call_id),
        };
        run(m, at, event)
    }

    /// `from` calls `to` (online, free) at `T0 + at`: looked up, stored, ringing.
    fn ring(m: &mut CallMachine, at: Ms, from: Requester, to: i64, media: Media, call_id: &str) {
        let callee = online(to, Status::Online, ALL);
        found(m, at, from, to, media, None, callee, call_id);
        run(
            m,
            at,
            Event::Stored {
                call_id: call(call_id),
            },
        );
    }

    /// `from` brings `to` into the call running in `into`.
    fn ring_into(m: &mut CallMachine, at: Ms, from: Requester, to: i64, into: &str, id: &str) {
        let callee = online(to, Status::Online, ALL);
        found(m, at, from, to, Media::Video, Some(into), callee, id);
        run(m, at, Event::Stored { call_id: call(id) });
    }

    /// `call.accept`.
    fn accept(call_id: &str) -> CallAction {
        CallAction::Accept(call_id.to_owned())
    }

    /// `call.cancel`.
    fn cancel(call_id: &str) -> CallAction {
        CallAction::Cancel(call_id.to_owned())
    }

    /// `call.decline`.
    fn decline(call_id: &str) -> CallAction {
        CallAction::Decline(call_id.to_owned())
    }

    /// `call.hangup`.
    fn hangup(call_id: &str) -> CallAction {
        CallAction::Hangup(call_id.to_owned())
    }

    /// The ring timer of `call_id`, set for `T0 + at`, came.
    fn ring_deadline(call_id: &str, at: Ms) -> Event {
        Event::Deadline {
            timer: Timer::Ring(call(call_id)),
            at: T0 + at,
        }
    }

    /// The grace timer of `user`, set for `T0 + at`, came.
    fn grace_deadline(user: i64, at: Ms) -> Event {
        Event::Deadline {
            timer: Timer::Grace(UserId(user)),
            at: T0 + at,
        }
    }

    /// Ana (on s-a1) calls Bia, who answers on s-b1: a running video call in `call:c-1`.
    fn running_call(m: &mut CallMachine) {
        ring(m, 0, by(1, "s-a1", 1), 2, Media::Video, "c-1");
        request(m, 1_000, by(2, "s-b1", 1), accept("c-1"));
    }

    #[test]
    fn an_invitation_is_checked_looked_up_stored_and_then_rings_until_its_deadline() {
        let mut m = machine();
        let invite = CallAction::Invite {
            to: UserId(2),
            media: Media::Video,
            room: None,
        };
        assert_eq!(
            request(&mut m, 0, by(1, "s-a1", 7), invite),
            ["look up 2 video"]
        );
        let callee = online(2, Status::Online, ALL);
        assert_eq!(
            found_video(&mut m, 5, by(1, "s-a1", 7), 2, callee, "c-1"),
            ["store c-1 call:c-1 Call 1->2 video @5"]
        );
        assert_eq!(m.live_calls(), 1);
        assert!(m.refers_to(&session("s-a1")));
        assert_eq!(
            run(
                &mut m,
                10,
                Event::Stored {
                    call_id: call("c-1")
                }
            ),
            [
                "s-a1 <- call.ringing #7 c-1 media=video room=call:c-1 to=bia",
                "user 2 <- call.incoming c-1 from=ana media=video room=call:c-1",
                "set ring c-1 @30010",
            ]
        );
    }

    #[test]
    fn a_chat_invitation_rings_in_the_pairs_direct_room() {
        let mut m = machine();
        let callee = online(1, Status::Online, ALL);
        assert_eq!(
            found(
                &mut m,
                0,
                by(2, "s-b1", 3),
                1,
                Media::Chat,
                None,
                callee,
                "c-1"
            ),
            ["store c-1 dm:1:2 Direct 2->1 chat @0"]
        );
    }

    #[test]
    fn nobody_answering_by_the_ring_deadline_misses_the_call_for_both_and_the_log_says_if_it_was_seen(
    ) {
        let mut m = machine();
        ring(&mut m, 0, by(1, "s-a1", 1), 2, Media::Video, "c-1");
        assert_eq!(
            run(&mut m, RING, ring_deadline("c-1", RING)),
            [
                "s-a1 <- call.missed c-1",
                "announce missed c-1 to user 2",
                "release s-a1",
            ]
        );
        assert_eq!(m.live_calls(), 0);
        let told = Event::MissedAnnounced {
            call_id: call("c-1"),
            callee: UserId(2),
            seen: false,
        };
        assert_eq!(
            run(&mut m, RING + 1, told),
            ["log c-1 missed seen=false @30001"]
        );
        // Bia's next connection is told once; the one after is not.
        let connect = || Event::Connected { user: UserId(2) };
        assert_eq!(run(&mut m, RING + 2, connect()), ["tell missed calls of 2"]);
        assert!(run(&mut m, RING + 3, connect()).is_empty());
    }

    #[test]
    fn a_missed_call_the_callee_heard_at_once_is_logged_seen_and_not_told_again() {
        let mut m = machine();
        ring(&mut m, 0, by(1, "s-a1", 1), 2, Media::Video, "c-1");
        run(&mut m, RING, ring_deadline("c-1", RING));
        let told = Event::MissedAnnounced {
            call_id: call("c-1"),
            callee: UserId(2),
            seen: true,
        };
        assert_eq!(run(&mut m, RING, told), ["log c-1 missed seen=true @30000"]);
        assert!(run(&mut m, RING, Event::Connected { user: UserId(2) }).is_empty());
    }

    #[test]
    fn a_user_whose_missed_call_was_not_told_because_the_connection_closed_is_told_next_time() {
        let mut m = CallMachine::new(machine().config, HashSet::from([UserId(2)]));
        let connect = || Event::Connected { user: UserId(2) };
        assert_eq!(run(&mut m, 0, connect()), ["tell missed calls of 2"]);
        assert!(run(&mut m, 1, Event::MissedUnseen { user: UserId(2) }).is_empty());
        assert_eq!(run(&mut m, 2, connect()), ["tell missed calls of 2"]);
    }

    #[test]
    fn accepting_tells_both_ends_stops_the_callees_other_devices_and_logs_it() {
        let mut m = machine();
        ring(&mut m, 0, by(1, "s-a1", 1), 2, Media::Video, "c-1");
        assert_eq!(
            request(&mut m, 1_000, by(2, "s-b1", 4), accept("c-1")),
            [
                "cancel ring c-1",
                "participants call:c-1 [1, 2]",
                "origin <- call.accepted #4 c-1 media=video room=call:c-1",
                "s-a1 <- call.accepted c-1 media=video room=call:c-1",
                "user 2 but s-b1 <- call.answered_elsewhere c-1",
                "log c-1 accepted @1000",
            ]
        );
        assert_eq!(m.live_calls(), 1);
    }

    #[test]
    fn accepting_on_a_second_device_is_refused_as_already_answered_and_changes_nothing() {
        let mut m = machine();
        running_call(&mut m);
        assert_eq!(
            request(&mut m, 1_001, by(2, "s-b2", 9), accept("c-1")),
            ["origin <- error #Num(9) conflict: this call was already answered"]
        );
    }

    #[test]
    fn only_the_callee_may_accept_or_decline_and_only_a_live_call() {
        let mut m = machine();
        ring(&mut m, 0, by(1, "s-a1", 1), 2, Media::Video, "c-1");
        assert_eq!(
            request(&mut m, 1, by(1, "s-a1", 2), accept("c-1")),
            ["origin <- error #Num(2) forbidden: only the callee can accept a call"]
        );
        assert_eq!(
            request(&mut m, 1, by(3, "s-c1", 2), decline("c-1")),
            ["origin <- error #Num(2) forbidden: only the callee can decline a call"]
        );
        assert_eq!(
            request(&mut m, 1, by(2, "s-b1", 2), accept("c-9")),
            ["origin <- error #Num(2) not_found: no live call 'c-9'"]
        );
    }

    #[test]
    fn declining_tells_the_caller_stops_the_other_devices_logs_it_and_acks() {
        let mut m = machine();
        ring(&mut m, 0, by(1, "s-a1", 1), 2, Media::Video, "c-1");
        assert_eq!(
            request(&mut m, 2_000, by(2, "s-b1", 5), decline("c-1")),
            [
                "cancel ring c-1",
                "s-a1 <- call.declined c-1",
                "user 2 but s-b1 <- call.answered_elsewhere c-1",
                "log c-1 declined @2000",
                "release s-a1",
                "origin <- ack #5",
            ]
        );
        assert_eq!(m.live_calls(), 0);
    }

    #[test]
    fn cancelling_tells_every_device_of_the_callee_logs_it_and_acks_and_only_the_caller_may() {
        let mut m = machine();
        ring(&mut m, 0, by(1, "s-a1", 1), 2, Media::Video, "c-1");
        assert_eq!(
            request(&mut m, 1, by(2, "s-b1", 2), cancel("c-1")),
            ["origin <- error #Num(2) forbidden: only the caller can cancel a call"]
        );
        assert_eq!(
            request(&mut m, 3_000, by(1, "s-a1", 2), cancel("c-1")),
            [
                "cancel ring c-1",
                "user 2 <- call.cancelled c-1",
                "log c-1 cancelled @3000",
                "release s-a1",
                "origin <- ack #2",
            ]
        );
        assert_eq!(
            request(&mut m, 3_001, by(1, "s-a1", 3), cancel("c-1")),
            ["origin <- error #Num(3) not_found: no live call 'c-1'"]
        );
    }

    #[test]
    fn cancelling_an_answered_call_is_too_late() {
        let mut m = machine();
        running_call(&mut m);
        assert_eq!(
            request(&mut m, 2_000, by(1, "s-a1", 3), cancel("c-1")),
            ["origin <- error #Num(3) conflict: this call was already answered"]
        );
    }

    #[test]
    fn hanging_up_a_ringing_call_cancels_it_for_the_caller_and_declines_it_for_the_callee() {
        let mut m = machine();
        ring(&mut m, 0, by(1, "s-a1", 1), 2, Media::Video, "c-1");
        assert_eq!(
            request(&mut m, 10, by(1, "s-a1", 2), hangup("c-1")),
            [
                "cancel ring c-1",
                "user 2 <- call.cancelled c-1",
                "log c-1 cancelled @10",
                "release s-a1",
                "origin <- ack #2",
            ]
        );
        ring(&mut m, 20, by(1, "s-a1", 3), 2, Media::Audio, "c-2");
        assert_eq!(
            request(&mut m, 30, by(2, "s-b1", 4), hangup("c-2")),
            [
                "cancel ring c-2",
                "s-a1 <- call.declined c-2",
                "user 2 but s-b1 <- call.answered_elsewhere c-2",
                "log c-2 declined @30",
                "release s-a1",
                "origin <- ack #4",
            ]
        );
    }

    #[test]
    fn hanging_up_a_call_of_two_ends_it_for_the_other_and_a_stranger_may_not() {
        let mut m = machine();
        running_call(&mut m);
        assert_eq!(
            request(&mut m, 5_000, by(3, "s-c1", 2), hangup("c-1")),
            ["origin <- error #Num(2) forbidden: you are not in this call"]
        );
        assert_eq!(
            request(&mut m, 5_000, by(2, "s-b1", 2), hangup("c-1")),
            [
                "participants call:c-1 []",
                "log c-1 ended @5000",
                "user 1 <- call.ended c-1 by=bia dropped=false",
                "release s-a1",
                "origin <- ack #2",
            ]
        );
        assert_eq!(m.live_calls(), 0);
        assert_eq!(
            run(
                &mut m,
                5_001,
                Event::EnterCallRoom {
                    user: UserId(1),
                    room: room("call:c-1")
                }
            ),
            ["origin <- error forbidden: no call is running in room 'call:c-1' with you in it"]
        );
    }

    #[test]
    fn a_call_room_admits_only_the_participants_of_its_call() {
        let mut m = machine();
        running_call(&mut m);
        let enter = |user| Event::EnterCallRoom {
            user: UserId(user),
            room: room("call:c-1"),
        };
        assert!(run(&mut m, 2_000, enter(2)).is_empty());
        assert_eq!(
            run(&mut m, 2_000, enter(3)),
            ["origin <- error forbidden: no call is running in room 'call:c-1' with you in it"]
        );
    }

    #[test]
    fn accept_racing_the_ring_timeout_accept_first_wins_and_the_late_deadline_is_a_no_op() {
        let mut m = machine();
        ring(&mut m, 0, by(1, "s-a1", 1), 2, Media::Video, "c-1");
        let accepted = request(&mut m, RING, by(2, "s-b1", 4), accept("c-1"));
        assert!(accepted.contains(&"log c-1 accepted @30000".to_owned()));
        // The timer was cancelled, but had it fired already, its event counts for nothing.
        assert!(run(&mut m, RING, ring_deadline("c-1", RING)).is_empty());
        assert_eq!(m.live_calls(), 1);
    }

    #[test]
    fn accept_racing_the_ring_timeout_timeout_first_wins_and_the_late_accept_is_refused() {
        let mut m = machine();
        ring(&mut m, 0, by(1, "s-a1", 1), 2, Media::Video, "c-1");
        let missed = run(&mut m, RING, ring_deadline("c-1", RING));
        assert_eq!(missed[0], "s-a1 <- call.missed c-1");
        assert_eq!(
            request(&mut m, RING, by(2, "s-b1", 4), accept("c-1")),
            ["origin <- error #Num(4) not_found: no live call 'c-1'"]
        );
    }

    #[test]
    fn a_deadline_that_is_not_the_calls_current_one_is_ignored() {
        let mut m = machine();
        ring(&mut m, 0, by(1, "s-a1", 1), 2, Media::Video, "c-1");
        assert!(run(&mut m, RING, ring_deadline("c-1", RING - 1)).is_empty());
        assert_eq!(m.live_calls(), 1);
    }

    #[test]
    fn glare_with_the_same_media_answers_the_ringing_call_instead_of_making_a_second() {
        let mut m = machine();
        ring(&mut m, 0, by(1, "s-a1", 1), 2, Media::Video, "c-1");
        let callee = online(1, Status::Online, ALL);
        assert_eq!(
            found_video(&mut m, 100, by(2, "s-b1", 8), 1, callee, "c-2"),
            [
                "cancel ring c-1",
                "participants call:c-1 [1, 2]",
                "origin <- call.accepted #8 c-1 media=video room=call:c-1",
                "s-a1 <- call.accepted c-1 media=video room=call:c-1",
                "user 2 but s-b1 <- call.answered_elsewhere c-1",
                "log c-1 accepted @100",
            ]
        );
        assert_eq!(m.live_calls(), 1);
    }

    #[test]
    fn glare_with_other_media_is_refused_and_the_first_call_rings_on() {
        let mut m = machine();
        ring(&mut m, 0, by(1, "s-a1", 1), 2, Media::Video, "c-1");
        let callee = online(1, Status::Online, ALL);
        assert_eq!(
            found(
                &mut m,
                100,
                by(2, "s-b1", 8),
                1,
                Media::Audio,
                None,
                callee,
                "c-2"
            ),
            [
                "origin <- error #Num(8) conflict: ana is calling you already (video call): \
                 answer that call"
            ]
        );
        assert_eq!(
            request(&mut m, 200, by(2, "s-b1", 9), accept("c-1"))[0],
            "cancel ring c-1"
        );
    }

    #[test]
    fn glare_while_the_first_call_is_being_stored_is_answered_the_moment_it_rings() {
        let mut m = machine();
        let callee = online(2, Status::Online, ALL);
        found_video(&mut m, 0, by(1, "s-a1", 1), 2, callee, "c-1");
        let callee = online(1, Status::Online, ALL);
        assert!(found_video(&mut m, 1, by(2, "s-b1", 8), 1, callee, "c-2").is_empty());
        assert!(m.refers_to(&session("s-b1")));
        assert_eq!(
            run(
                &mut m,
                2,
                Event::Stored {
                    call_id: call("c-1")
                }
            ),
            [
                "s-a1 <- call.ringing #1 c-1 media=video room=call:c-1 to=bia",
                "set ring c-1 @30002",
                "cancel ring c-1",
                "participants call:c-1 [1, 2]",
                "s-b1 <- call.accepted #8 c-1 media=video room=call:c-1",
                "s-a1 <- call.accepted c-1 media=video room=call:c-1",
                "user 2 but s-b1 <- call.answered_elsewhere c-1",
                "log c-1 accepted @2",
                "release s-b1",
            ]
        );
        assert_eq!(m.live_calls(), 1);
    }

    #[test]
    fn an_invitation_crossing_one_another_node_runs_accepts_that_one_and_is_forgotten() {
        let mut m = machine();
        let callee = online(2, Status::Online, ALL);
        found_video(&mut m, 0, by(1, "s-a1", 1), 2, callee, "c-1");
        // Bia's invitation to ana from this node crosses c-1 while it is being stored.
        let callee = online(1, Status::Online, ALL);
        assert!(found_video(&mut m, 1, by(2, "s-b1", 8), 1, callee, "c-2").is_empty());
        let crossed = Event::Crossed {
            call_id: call("c-1"),
            theirs: call("c-9"),
            media: Media::Video,
        };
        assert_eq!(
            run(&mut m, 2, crossed),
            [
                "s-b1 <- error #Num(8) conflict: this call was already answered",
                "release s-a1",
                "release s-b1",
                "accept c-9 elsewhere",
            ]
        );
        assert_eq!(m.live_calls(), 0);
        // With other media: refused, naming theirs; nothing is left either.
        let callee = online(2, Status::Online, ALL);
        found_video(&mut m, 3, by(1, "s-a1", 2), 2, callee, "c-3");
        let crossed = Event::Crossed {
            call_id: call("c-3"),
            theirs: call("c-9"),
            media: Media::Audio,
        };
        assert_eq!(
            run(&mut m, 4, crossed),
            [
                "release s-a1",
                "origin <- error #Num(2) conflict: bia is calling you already (audio call): \
                 answer that call",
            ]
        );
        assert_eq!(m.live_calls(), 0);
    }

    #[test]
    fn a_failed_store_refuses_the_invitation_and_any_crossing_one_and_forgets_the_call() {
        let mut m = machine();
        let callee = online(2, Status::Online, ALL);
        found_video(&mut m, 0, by(1, "s-a1", 1), 2, callee, "c-1");
        let callee = online(1, Status::Online, ALL);
        found_video(&mut m, 1, by(2, "s-b1", 8), 1, callee, "c-2");
        let failed = Event::StoreFailed {
            call_id: call("c-1"),
            reply: Some(FrameId::Num(1)),
            error: Refusal::new(ErrorCode::Internal, "internal server error"),
        };
        assert_eq!(
            run(&mut m, 2, failed),
            [
                "s-b1 <- error #Num(8) internal: internal server error",
                "release s-a1",
                "release s-b1",
                "origin <- error #Num(1) internal: internal server error",
            ]
        );
        assert_eq!(m.live_calls(), 0);
        assert!(run(
            &mut m,
            3,
            Event::Stored {
                call_id: call("c-1")
            }
        )
        .is_empty());
    }

    #[test]
    fn invitations_are_refused_for_the_callees_status_capabilities_or_absence() {
        let mut m = machine();
        let mut refused = |callee: Callee| {
            let mut effects = found_video(&mut m, 0, by(1, "s-a1", 1), 2, callee, "c-1");
            assert_eq!(effects.len(), 1, "{effects:?}");
            effects.remove(0)
        };
        let no_video = Capabilities {
            video: false,
            ..ALL
        };
        assert_eq!(
            refused(online(2, Status::Busy, ALL)),
            "origin <- error #Num(1) conflict: bia is busy"
        );
        assert_eq!(
            refused(online(2, Status::Away, ALL)),
            "origin <- error #Num(1) conflict: bia is away"
        );
        assert_eq!(
            refused(online(2, Status::InCall, ALL)),
            "origin <- error #Num(1) conflict: bia is already in a call"
        );
        assert_eq!(
            refused(online(2, Status::Online, no_video)),
            "origin <- error #Num(1) forbidden: bia cannot take video calls"
        );
        assert_eq!(
            refused(Callee::Offline {
                nickname: "bia".into(),
                banned: false
            }),
            "origin <- error #Num(1) unavailable: bia is offline"
        );
        assert_eq!(
            refused(Callee::Offline {
                nickname: "bia".into(),
                banned: true
            }),
            "origin <- error #Num(1) not_found: no user 2"
        );
        assert_eq!(
            refused(Callee::Unknown),
            "origin <- error #Num(1) not_found: no user 2"
        );
        assert_eq!(m.live_calls(), 0);
    }

    #[test]
    fn invitations_are_refused_for_the_caller_before_anyone_is_looked_up() {
        let mut m = machine();
        let invite = |to, media| CallAction::Invite {
            to: UserId(to),
            media,
            room: None,
        };
        assert_eq!(
            request(&mut m, 0, by(1, "s-a1", 1), invite(1, Media::Video)),
            ["origin <- error #Num(1) bad_request: you cannot call yourself"]
        );
        let mut text_only = by(1, "s-a1", 2);
        text_only.caps = Capabilities {
            text: true,
            ..Capabilities::default()
        };
        assert_eq!(
            request(&mut m, 0, text_only, invite(2, Media::Audio)),
            ["origin <- error #Num(2) forbidden: your account cannot make audio calls"]
        );
    }

    #[test]
    fn bringing_someone_into_a_call_needs_the_caller_in_it_the_callee_not_and_not_a_direct_room() {
        let mut m = machine();
        running_call(&mut m);
        let into = |to, name: &str| CallAction::Invite {
            to: UserId(to),
            media: Media::Video,
            room: Some(RoomName::parse(name).expect("a valid room")),
        };
        assert_eq!(
            request(&mut m, 2_000, by(3, "s-c1", 1), into(4, "call:c-1")),
            ["origin <- error #Num(1) forbidden: you are not in a call in room 'call:c-1'"]
        );
        assert_eq!(
            request(&mut m, 2_000, by(1, "s-a1", 2), into(2, "call:c-1")),
            ["origin <- error #Num(2) conflict: already in this call"]
        );
        assert_eq!(
            request(&mut m, 2_000, by(1, "s-a1", 3), into(2, "dm:1:2")),
            [
                "origin <- error #Num(3) bad_request: a direct room is for its two people; \
                 bring a third person into a call room (or a public channel) instead"
            ]
        );
        assert_eq!(
            request(&mut m, 2_000, by(1, "s-a1", 4), into(3, "call:c-1")),
            ["look up 3 video in call:c-1"]
        );
    }

    #[test]
    fn the_room_cap_counts_the_participants_and_the_invitations_still_ringing_into_it() {
        let mut m = machine();
        running_call(&mut m);
        ring_into(&mut m, 2_000, by(1, "s-a1", 2), 3, "call:c-1", "c-2");
        let callee = online(4, Status::Online, ALL);
        assert_eq!(
            found(
                &mut m,
                2_001,
                by(2, "s-b1", 3),
                4,
                Media::Video,
                Some("call:c-1"),
                callee,
                "c-3"
            ),
            ["origin <- error #Num(3) conflict: room 'call:c-1' is full (3 members)"]
        );
    }

    #[test]
    fn a_three_way_call_goes_on_when_one_leaves_and_the_others_hear_call_left() {
        let mut m = machine();
        running_call(&mut m);
        ring_into(&mut m, 2_000, by(1, "s-a1", 2), 3, "call:c-1", "c-2");
        assert_eq!(
            request(&mut m, 3_000, by(3, "s-c1", 1), accept("c-2")),
            [
                "cancel ring c-2",
                "participants call:c-1 [1, 2, 3]",
                "origin <- call.accepted #1 c-2 media=video room=call:c-1",
                "s-a1 <- call.accepted c-2 media=video room=call:c-1",
                "user 3 but s-c1 <- call.answered_elsewhere c-2",
                "log c-2 accepted @3000",
            ]
        );
        // Each hears the call id they know: Bia c-1, Caio c-2.
        assert_eq!(
            request(&mut m, 4_000, by(1, "s-a1", 3), hangup("c-1")),
            [
                "participants call:c-1 [2, 3]",
                "user 2 <- call.left c-1 dropped=false user=ana",
                "user 3 <- call.left c-2 dropped=false user=ana",
                "origin <- ack #3",
            ]
        );
        assert_eq!(
            request(&mut m, 5_000, by(3, "s-c1", 2), hangup("c-2")),
            [
                "participants call:c-1 []",
                "log c-1 ended @5000",
                "log c-2 ended @5000",
                "user 2 <- call.ended c-1 by=caio dropped=false",
                "release s-a1",
                "origin <- ack #2",
            ]
        );
        assert_eq!(m.live_calls(), 0);
    }

    #[test]
    fn a_call_that_ends_cancels_the_invitations_still_ringing_into_it() {
        let mut m = machine();
        running_call(&mut m);
        ring_into(&mut m, 2_000, by(1, "s-a1", 2), 3, "call:c-1", "c-2");
        assert_eq!(
            request(&mut m, 3_000, by(2, "s-b1", 3), hangup("c-1")),
            [
                "participants call:c-1 []",
                "log c-1 ended @3000",
                "cancel ring c-2",
                "user 3 <- call.cancelled c-2",
                "log c-2 cancelled @3000",
                "user 1 <- call.ended c-1 by=bia dropped=false",
                "release s-a1",
                "origin <- ack #3",
            ]
        );
    }

    #[test]
    fn a_dropped_participant_is_held_for_the_grace_and_leaves_with_dropped_when_it_expires() {
        let mut m = machine();
        running_call(&mut m);
        let dropped = Event::Disconnected {
            user: UserId(2),
            left: false,
        };
        assert_eq!(run(&mut m, 2_000, dropped), ["set grace 2 @22000"]);
        assert_eq!(
            run(&mut m, 2_000 + GRACE, grace_deadline(2, 2_000 + GRACE)),
            [
                "participants call:c-1 []",
                "log c-1 ended @22000",
                "user 1 <- call.ended c-1 by=bia dropped=true",
                "release s-a1",
            ]
        );
    }

    #[test]
    fn rejoining_the_call_room_within_the_grace_keeps_the_call_and_the_old_deadline_does_nothing() {
        let mut m = machine();
        running_call(&mut m);
        let dropped = || Event::Disconnected {
            user: UserId(2),
            left: false,
        };
        run(&mut m, 2_000, dropped());
        let enter = Event::EnterCallRoom {
            user: UserId(2),
            room: room("call:c-1"),
        };
        assert_eq!(run(&mut m, 3_000, enter), ["cancel grace 2"]);
        assert!(run(&mut m, 22_000, grace_deadline(2, 22_000)).is_empty());
        // A second drop starts a new grace; only its own deadline counts.
        assert_eq!(run(&mut m, 10_000, dropped()), ["set grace 2 @30000"]);
        assert!(run(&mut m, 22_000, grace_deadline(2, 22_000)).is_empty());
        assert_eq!(run(&mut m, 30_000, grace_deadline(2, 30_000)).len(), 4);
    }

    #[test]
    fn closing_on_purpose_leaves_calls_at_once_and_cancels_outgoing_invitations() {
        let mut m = machine();
        running_call(&mut m);
        ring(&mut m, 2_000, by(2, "s-b1", 7), 3, Media::Audio, "c-2");
        let left = Event::Disconnected {
            user: UserId(2),
            left: true,
        };
        assert_eq!(
            run(&mut m, 3_000, left),
            [
                "cancel ring c-2",
                "user 3 <- call.cancelled c-2",
                "log c-2 cancelled @3000",
                "release s-b1",
                "participants call:c-1 []",
                "log c-1 ended @3000",
                "user 1 <- call.ended c-1 by=bia dropped=false",
                "release s-a1",
            ]
        );
    }

    #[test]
    fn a_drop_with_no_grace_leaves_at_once_as_dropped() {
        let mut m = machine();
        m.config.grace_ms = 0;
        running_call(&mut m);
        let dropped = Event::Disconnected {
            user: UserId(2),
            left: false,
        };
        assert_eq!(
            run(&mut m, 2_000, dropped),
            [
                "participants call:c-1 []",
                "log c-1 ended @2000",
                "user 1 <- call.ended c-1 by=bia dropped=true",
                "release s-a1",
            ]
        );
    }

    #[test]
    fn incoming_invitations_ring_on_when_the_callee_drops_and_a_new_connection_hears_them() {
        let mut m = machine();
        ring(&mut m, 0, by(1, "s-a1", 1), 2, Media::Video, "c-1");
        let dropped = Event::Disconnected {
            user: UserId(2),
            left: false,
        };
        assert!(run(&mut m, 1_000, dropped).is_empty());
        assert_eq!(
            run(&mut m, 2_000, Event::Connected { user: UserId(2) }),
            ["origin <- call.incoming c-1 from=ana media=video room=call:c-1"]
        );
    }

    #[test]
    fn a_call_still_being_stored_is_not_announced_and_is_cancelled_if_its_caller_goes() {
        let mut m = machine();
        let callee = online(2, Status::Online, ALL);
        found_video(&mut m, 0, by(1, "s-a1", 1), 2, callee, "c-1");
        assert!(run(&mut m, 1, Event::Connected { user: UserId(2) }).is_empty());
        let left = Event::Disconnected {
            user: UserId(1),
            left: true,
        };
        assert_eq!(
            run(&mut m, 2, left),
            [
                "user 2 <- call.cancelled c-1",
                "log c-1 cancelled @2",
                "release s-a1",
            ]
        );
        assert!(run(
            &mut m,
            3,
            Event::Stored {
                call_id: call("c-1")
            }
        )
        .is_empty());
    }

    #[test]
    fn shutdown_stops_every_timer_forgets_every_call_and_closes_the_log() {
        let mut m = machine();
        running_call(&mut m);
        ring(&mut m, 2_000, by(2, "s-b1", 7), 3, Media::Audio, "c-2");
        run(
            &mut m,
            3_000,
            Event::Disconnected {
                user: UserId(1),
                left: false,
            },
        );
        assert_eq!(
            run(&mut m, 4_000, Event::Shutdown),
            ["cancel ring c-2", "cancel grace 1", "log close dangling"]
        );
        assert_eq!(m.live_calls(), 0);
    }

    #[test]
    fn call_frames_encode_exactly_as_the_protocol_documents() {
        let ana = user(1);
        let c = call("c-1");
        let r = room("call:c-1");
        let cases = [
            (
                Frame::Ringing {
                    reply: Some(FrameId::Num(1)),
                    call_id: c.clone(),
                    to: user(2),
                    media: Media::Video,
                    room: r.clone(),
                },
                r#"{"type":"call.ringing","id":1,"call_id":"c-1","to":{"id":2,"nickname":"bia"},"media":"video","room":"call:c-1"}"#,
            ),
            (
                Frame::Incoming {
                    call_id: c.clone(),
                    from: ana.clone(),
                    media: Media::Audio,
                    room: r.clone(),
                },
                r#"{"type":"call.incoming","call_id":"c-1","from":{"id":1,"nickname":"ana"},"media":"audio","room":"call:c-1"}"#,
            ),
            (
                Frame::Accepted {
                    reply: None,
                    call_id: c.clone(),
                    room: r.clone(),
                    media: Media::Video,
                },
                r#"{"type":"call.accepted","call_id":"c-1","room":"call:c-1","media":"video"}"#,
            ),
            (
                Frame::Ended {
                    call_id: c.clone(),
                    by: ana.clone(),
                    dropped: true,
                },
                r#"{"type":"call.ended","call_id":"c-1","by":{"id":1,"nickname":"ana"},"dropped":true}"#,
            ),
            (
                Frame::Left {
                    call_id: c.clone(),
                    user: ana,
                    dropped: false,
                },
                r#"{"type":"call.left","call_id":"c-1","user":{"id":1,"nickname":"ana"},"dropped":false}"#,
            ),
            (
                Frame::AnsweredElsewhere { call_id: c.clone() },
                r#"{"type":"call.answered_elsewhere","call_id":"c-1"}"#,
            ),
            (
                Frame::Ack {
                    reply: Some(FrameId::Str("x".into())),
                },
                r#"{"type":"ack","id":"x"}"#,
            ),
        ];
        for (frame, wire) in cases {
            assert_eq!(&*frame.encode(), wire);
        }
    }
}
