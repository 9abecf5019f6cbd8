//! [`Hub`]: the registry of live rooms (room name → [`RoomActor`]) and the owner of every
//! live call: invitations, their ring timeouts, who is in which call, and the call log.
//!
//! Everything it does to the database goes through one ordered queue run on the blocking
//! pool, so a call's log entry moves ringing → accepted → ended in that order and the hub's
//! mailbox never waits on I/O.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use bytestring::ByteString;
use diesel::SqliteConnection;
use tokio::sync::mpsc;

use super::{
    metrics::RealtimeMetrics,
    presence::{CallParticipants, Lookup, OnlineInfo, PresenceActor, SendToUser},
    protocol::{
        error_frame, CallId, FrameId, Media, MissedView, RoomName, RoomRef, ServerMsg, SessionId,
        SharedStr, Status, UserId, UserRef,
    },
    room::RoomActor,
    session::Outbox,
    ws_error, Deliver,
};
use crate::{
    config::Settings,
    db::{
        self,
        models::{CallState, Capabilities, NewCall, RoomKind},
        DbPool,
    },
    error::ApiError,
};

/// One database write of the call log, run in order with the others.
type DbJob = Box<dyn FnOnce(&mut SqliteConnection) -> diesel::QueryResult<()> + Send>;

/// Where a call stands while it is live.
enum CallPhase {
    /// Ringing; the handle cancels the ring timeout.
    Ringing(Option<SpawnHandle>),
    Accepted,
}

/// The two ends of a call, for actions only one of them may take.
#[derive(Debug, Clone, Copy)]
enum Side {
    Caller,
    Callee,
}

/// A call's answer already came (or it ended): accept, decline and cancel are too late.
fn already_answered() -> ApiError {
    ApiError::Conflict("this call was already answered".into())
}

/// A live call (one invitation): ringing, or accepted and running in its room.
struct LiveCall {
    id: CallId,
    caller: UserRef,
    /// The session that sent the invitation: it hears the answer.
    caller_session: Outbox,
    callee: UserRef,
    media: Media,
    room: RoomName,
    /// Whether the invitation opened a conversation of its own (not one into a running call):
    /// only such invitations can cross (glare).
    own_room: bool,
    /// The callee's own invitation to the caller, which crossed this one while it was still
    /// being stored: it is answered as an acceptance as soon as this one rings.
    crossing: Option<CallRequest>,
    phase: CallPhase,
}

impl LiveCall {
    /// The `call.incoming` frame announcing this call to the callee's connections.
    fn incoming_frame(&self) -> ByteString {
        ServerMsg::CallIncoming {
            call_id: &self.id,
            from: &self.caller,
            media: self.media,
            room: &self.room,
        }
        .encode()
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
struct CallRoom {
    participants: Vec<UserRef>,
}

impl CallRoom {
    /// Whether `user` takes part in this conversation.
    fn has(&self, user: UserId) -> bool {
        self.participants.iter().any(|p| p.id == user)
    }
}

/// Room registry and call lifecycle.
pub struct Hub {
    pool: DbPool,
    settings: Arc<Settings>,
    presence: Addr<PresenceActor>,
    metrics: Arc<RealtimeMetrics>,
    rooms: HashMap<RoomName, Addr<RoomActor>>,
    calls: HashMap<SharedStr, LiveCall>,
    call_rooms: HashMap<RoomName, CallRoom>,
    /// Users whose last connection dropped while they were in a call: their calls hold them
    /// until the timer (the reconnect grace) fires; rejoining a call's room cancels it.
    held: HashMap<UserId, SpawnHandle>,
    /// Users with missed calls they have not been told about (in the log as unseen): their
    /// next connection is told (`calls.missed`). Everyone else connects without a database
    /// read.
    unseen_missed: HashSet<UserId>,
    db_jobs: Option<mpsc::UnboundedSender<DbJob>>,
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
    ) -> Self {
        Hub {
            pool,
            settings,
            presence,
            metrics,
            rooms: HashMap::new(),
            calls: HashMap::new(),
            call_rooms: HashMap::new(),
            held: HashMap::new(),
            unseen_missed,
            db_jobs: None,
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

    fn log_state(&self, call_id: &CallId, state: CallState) {
        let key = call_id.0.to_string();
        self.db(Box::new(move |conn| {
            db::calls::set_state(conn, &key, state).map(drop)
        }));
    }

    fn count_calls(&self) {
        self.metrics.calls_live(self.calls.len());
    }

    fn send_to_user(&self, user_id: UserId, frame: ByteString, except: Option<SessionId>) {
        self.presence.do_send(SendToUser {
            user_id,
            frame,
            except,
        });
    }

    /// Ends a ringing call without an answer from the callee: `cancelled` by the caller.
    fn cancel(&mut self, call_id: &str, ctx: &mut Context<Self>) -> Option<LiveCall> {
        let call = self.take_ringing(call_id, ctx)?;
        self.send_to_user(
            call.callee.id,
            ServerMsg::CallCancelled { call_id: &call.id }.encode(),
            None,
        );
        self.log_state(&call.id, CallState::Cancelled);
        Some(call)
    }

    /// Removes a ringing call and stops its ring timer.
    fn take_ringing(&mut self, call_id: &str, ctx: &mut Context<Self>) -> Option<LiveCall> {
        if !matches!(
            self.calls.get(call_id).map(|c| &c.phase),
            Some(CallPhase::Ringing(_))
        ) {
            return None;
        }
        let call = self.calls.remove(call_id)?;
        if let CallPhase::Ringing(Some(timer)) = call.phase {
            ctx.cancel_future(timer);
        }
        self.count_calls();
        Some(call)
    }

    /// Tells presence who takes part in the call held in `room` (nobody once it is over), so
    /// a participant who is reconnecting still counts as `in_call`, and so do the others.
    fn report_participants(&self, room: &RoomName) {
        let users = self
            .call_rooms
            .get(room)
            .map(|cr| cr.participants.iter().map(|p| p.id).collect())
            .unwrap_or_default();
        self.presence.do_send(CallParticipants {
            room: room.clone(),
            users,
        });
    }

    /// Takes `user` out of every call they are in (hang-up semantics for each) because
    /// their connection ended: `dropped` if it did not end on purpose and they did not come
    /// back.
    fn leave_all_calls(&mut self, user_id: UserId, dropped: bool, ctx: &mut Context<Self>) {
        let rooms: Vec<(RoomName, UserRef)> = self
            .call_rooms
            .iter()
            .filter_map(|(name, cr)| {
                cr.participants
                    .iter()
                    .find(|p| p.id == user_id)
                    .map(|p| (name.clone(), p.clone()))
            })
            .collect();
        for (room, user) in rooms {
            self.leave_call_room(&room, &user, dropped, ctx);
        }
    }

    /// Takes `user` out of the conversation in `room` (`dropped`: their connection did, they
    /// did not hang up); ends it if fewer than two remain.
    fn leave_call_room(
        &mut self,
        room: &RoomName,
        user: &UserRef,
        dropped: bool,
        ctx: &mut Context<Self>,
    ) {
        let Some(cr) = self.call_rooms.get_mut(room) else {
            return;
        };
        let before = cr.participants.len();
        cr.participants.retain(|p| p.id != user.id);
        if cr.participants.len() >= 2 {
            let left = cr.participants.len() < before;
            self.report_participants(room);
            if left {
                self.tell_call_left(room, user, dropped);
            }
            return;
        }
        let remaining = self
            .call_rooms
            .remove(room)
            .map(|cr| cr.participants)
            .unwrap_or_default();
        self.report_participants(room);
        let ids: Vec<SharedStr> = self
            .calls
            .iter()
            .filter(|(_, c)| &c.room == room)
            .map(|(k, _)| k.clone())
            .collect();
        let mut ended: Vec<LiveCall> = Vec::new();
        for key in ids {
            if matches!(
                self.calls.get(&key).map(|c| &c.phase),
                Some(CallPhase::Ringing(_))
            ) {
                // Nobody is left to talk to: an invitation into this call is void.
                self.cancel(&key, ctx);
            } else if let Some(call) = self.calls.remove(&key) {
                self.log_state(&call.id, CallState::Ended);
                ended.push(call);
            }
        }
        for p in &remaining {
            if let Some(call) = call_known_to(&ended, p.id) {
                self.send_to_user(
                    p.id,
                    ServerMsg::CallEnded {
                        call_id: &call.id,
                        by: user,
                        dropped,
                    }
                    .encode(),
                    None,
                );
            }
        }
        self.count_calls();
    }

    /// Tells everyone still in the call held in `room` that `user` left it (`dropped`: by
    /// the grace expiring after their connection dropped), each with a `call_id` they know.
    fn tell_call_left(&self, room: &RoomName, user: &UserRef, dropped: bool) {
        let Some(cr) = self.call_rooms.get(room) else {
            return;
        };
        // Only accepted invitations: a still ringing one is nobody's call yet.
        let running: Vec<&LiveCall> = self
            .calls
            .values()
            .filter(|c| &c.room == room && matches!(c.phase, CallPhase::Accepted))
            .collect();
        for p in &cr.participants {
            if let Some(call) = call_known_to(running.iter().copied(), p.id) {
                self.send_to_user(
                    p.id,
                    ServerMsg::CallLeft {
                        call_id: &call.id,
                        user,
                        dropped,
                    }
                    .encode(),
                    None,
                );
            }
        }
    }

    /// Sends `call.ringing` / `call.incoming` and starts the ring timeout.
    fn start_ringing(
        &mut self,
        key: SharedStr,
        reply_id: Option<FrameId>,
        ctx: &mut Context<Self>,
    ) {
        let ring = Duration::from_millis(self.settings.ring_timeout_ms);
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        call.caller_session.do_send(Deliver(
            ServerMsg::CallRinging {
                id: reply_id.as_ref(),
                call_id: &call.id,
                to: &call.callee,
                media: call.media,
                room: &call.room,
            }
            .encode(),
        ));
        // A crossing invitation of the callee's answers this one below: ringing them would
        // only race the `call.accepted` they are about to get.
        if call.crossing.is_none() {
            self.send_to_user(call.callee.id, call.incoming_frame(), None);
        }
        let timer_key = key.clone();
        let timer = ctx.run_later(ring, move |act, ctx| act.ring_timeout(&timer_key, ctx));
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.phase = CallPhase::Ringing(Some(timer));
        if let Some(crossing) = call.crossing.take() {
            if let Err(e) = self.accept(&key, &crossing, ctx) {
                crossing.reply_error(&e);
            }
        }
    }

    /// Nobody answered: both sides hear `call.missed`; the log says whether the callee saw it.
    fn ring_timeout(&mut self, key: &str, ctx: &mut Context<Self>) {
        let Some(call) = self.calls.remove(key) else {
            return;
        };
        self.count_calls();
        let frame = ServerMsg::CallMissed { call_id: &call.id }.encode();
        call.caller_session.do_send(Deliver(frame.clone()));
        let told = self.presence.send(SendToUser {
            user_id: call.callee.id,
            frame,
            except: None,
        });
        let call_key = call.id.0.to_string();
        let callee = call.callee.id;
        ctx.spawn(
            async move { told.await.unwrap_or(0) > 0 }
                .into_actor(self)
                .map(move |seen, act, _| {
                    act.db(Box::new(move |conn| {
                        db::calls::set_missed(conn, &call_key, seen).map(drop)
                    }));
                    if !seen {
                        // Written before the callee's next connection reads it: one queue.
                        act.unseen_missed.insert(callee);
                    }
                }),
        );
    }

    /// The invitation checks that need only the hub's own state.
    fn check_invite(
        &self,
        req: &CallRequest,
        to: UserId,
        media: Media,
        room: Option<&(RoomName, RoomRef)>,
    ) -> Result<(), ApiError> {
        if to == req.user.id {
            return Err(ApiError::BadRequest("you cannot call yourself".to_owned()));
        }
        if !media.allowed_by(req.caps) {
            return Err(ApiError::Forbidden(format!(
                "your account cannot make {} calls",
                media.as_str()
            )));
        }
        if let Some((room, kind)) = room {
            if matches!(kind, RoomRef::Direct(..)) {
                return Err(ApiError::BadRequest(
                    "a direct room is for its two people; bring a third person into a call \
                     room (or a public channel) instead"
                        .to_owned(),
                ));
            }
            let cr = self
                .call_rooms
                .get(room)
                .filter(|cr| cr.has(req.user.id))
                .ok_or_else(|| {
                    ApiError::Forbidden(format!(
                        "you are not in a call in room '{}'",
                        room.as_str()
                    ))
                })?;
            if cr.has(to) {
                return Err(ApiError::Conflict("already in this call".to_owned()));
            }
            let ringing = self
                .calls
                .values()
                .filter(|c| &c.room == room && matches!(c.phase, CallPhase::Ringing(_)))
                .count();
            if cr.participants.len() + ringing >= self.settings.room_member_cap {
                return Err(ApiError::Conflict(format!(
                    "room '{}' is full ({} members)",
                    room.as_str(),
                    self.settings.room_member_cap
                )));
            }
        }
        Ok(())
    }

    /// The callee is known and online: check them, log the call, then ring.
    fn ring(
        &mut self,
        req: CallRequest,
        callee: UserRef,
        info: OnlineInfo,
        media: Media,
        room: Option<(RoomName, RoomRef)>,
        ctx: &mut Context<Self>,
    ) -> Result<(), ApiError> {
        self.check_invite(&req, callee.id, media, room.as_ref())?;
        if room.is_none() {
            if let Some(key) = self.crossing_invitation(req.user.id, callee.id) {
                return self.merge_crossing(key, req, media, ctx);
            }
        }
        match info.status {
            Status::Busy | Status::Away => {
                return Err(ApiError::Conflict(format!(
                    "{} is {}",
                    info.nickname,
                    info.status.as_str()
                )))
            }
            Status::InCall => {
                return Err(ApiError::Conflict(format!(
                    "{} is already in a call",
                    info.nickname
                )))
            }
            Status::Online | Status::Offline => {}
        }
        if !media.allowed_by(info.capabilities) {
            return Err(ApiError::Forbidden(format!(
                "{} cannot take {} calls",
                info.nickname,
                media.as_str()
            )));
        }
        let call_id = CallId::random();
        let own_room = room.is_none();
        let (room, room_kind) = match room {
            Some((room, _)) => (room, RoomKind::Call),
            None if media == Media::Chat => {
                let name = db::rooms::direct_room_name(req.user.id.0, callee.id.0);
                let (room, _) = RoomName::parse(&name).map_err(ApiError::Internal)?;
                (room, RoomKind::Direct)
            }
            None => {
                let (room, _) =
                    RoomName::parse(&format!("call:{}", call_id.0)).map_err(ApiError::Internal)?;
                (room, RoomKind::Call)
            }
        };
        let key = call_id.0.clone();
        self.calls.insert(
            key.clone(),
            LiveCall {
                id: call_id.clone(),
                caller: req.user.clone(),
                caller_session: req.deliver.clone(),
                callee: callee.clone(),
                media,
                room: room.clone(),
                own_room,
                crossing: None,
                phase: CallPhase::Ringing(None),
            },
        );
        self.count_calls();
        let (caller_id, callee_id) = (req.user.id.0, callee.id.0);
        let room_name = room.as_str().to_owned();
        let pool = self.pool.clone();
        let stored = async move {
            db::run(&pool, move |conn| {
                conn.immediate_transaction(|conn| {
                    let room =
                        db::rooms::get_or_create(conn, &room_name, room_kind, Some(caller_id))?;
                    if room_kind == RoomKind::Call {
                        db::rooms::add_member(conn, room.id, caller_id)?;
                        db::rooms::add_member(conn, room.id, callee_id)?;
                    }
                    db::calls::create(
                        conn,
                        &NewCall {
                            call_key: &call_id.0,
                            room_id: Some(room.id),
                            caller_id,
                            callee_id,
                            media: media.as_str(),
                            state: CallState::Ringing.as_str(),
                            created_at: db::now_ms(),
                        },
                    )?;
                    Ok(())
                })
            })
            .await
        };
        let reply_id = req.id.clone();
        let deliver = req.deliver.clone();
        ctx.spawn(stored.into_actor(self).map(move |res, act, ctx| match res {
            Ok(()) => act.start_ringing(key, reply_id, ctx),
            Err(e) => {
                if let Some(crossing) = act.calls.remove(&key).and_then(|c| c.crossing) {
                    crossing.reply_error(&e);
                }
                act.count_calls();
                deliver.do_send(Deliver(error_frame(
                    reply_id.as_ref(),
                    e.code(),
                    &ws_error(&e),
                )));
            }
        }));
        Ok(())
    }

    /// The live call `call_id`, or `not_found`.
    fn live_call(&self, call_id: &str) -> Result<&LiveCall, ApiError> {
        self.calls.get(call_id).ok_or_else(|| {
            ApiError::NotFound(format!(
                "no live call '{}'",
                call_id.chars().take(64).collect::<String>()
            ))
        })
    }

    /// Checks that `call_id` is live and `user` is on `side` of it; otherwise `not_found`, or
    /// `forbidden` naming the action (`verb`) only that side may take.
    fn call_as(
        &self,
        call_id: &str,
        user: &UserRef,
        side: Side,
        verb: &str,
    ) -> Result<(), ApiError> {
        let call = self.live_call(call_id)?;
        let (party, role) = match side {
            Side::Caller => (&call.caller, "caller"),
            Side::Callee => (&call.callee, "callee"),
        };
        if party.id != user.id {
            return Err(ApiError::Forbidden(format!(
                "only the {role} can {verb} a call"
            )));
        }
        Ok(())
    }

    fn handle_action(&mut self, req: CallRequest, ctx: &mut Context<Self>) -> Result<(), ApiError> {
        let ack = |req: &CallRequest| {
            req.deliver.do_send(Deliver(
                ServerMsg::Ack {
                    id: req.id.as_ref(),
                    msg_id: None,
                    created_at: None,
                }
                .encode(),
            ));
        };
        match req.action.clone() {
            CallAction::Invite { to, media, room } => {
                self.check_invite(&req, to, media, room.as_ref())?;
                let lookup = self.presence.send(Lookup { user_id: to });
                let pool = self.pool.clone();
                let found = async move {
                    match lookup.await {
                        Ok(Some(info)) => Ok(info),
                        Ok(None) => {
                            let user =
                                db::run(&pool, move |c| Ok(db::users::find(c, to.0)?)).await?;
                            match user {
                                Some(u) if !u.banned => {
                                    Err(ApiError::Unavailable(format!("{} is offline", u.nickname)))
                                }
                                _ => Err(ApiError::NotFound(format!("no user {}", to.0))),
                            }
                        }
                        Err(_) => Err(ApiError::Internal("presence is not answering".into())),
                    }
                };
                ctx.spawn(found.into_actor(self).map(move |res, act, ctx| {
                    let result = res.and_then(|info: OnlineInfo| {
                        let callee = UserRef {
                            id: to,
                            nickname: info.nickname.clone(),
                        };
                        act.ring(req.clone(), callee, info, media, room, ctx)
                    });
                    if let Err(e) = result {
                        req.reply_error(&e);
                    }
                }));
            }
            CallAction::Accept(call_id) => {
                self.call_as(&call_id, &req.user, Side::Callee, "accept")?;
                self.accept(&call_id, &req, ctx)?;
            }
            CallAction::Decline(call_id) => {
                self.call_as(&call_id, &req.user, Side::Callee, "decline")?;
                self.decline(&call_id, &req, ctx)?;
                ack(&req);
            }
            CallAction::Cancel(call_id) => {
                self.call_as(&call_id, &req.user, Side::Caller, "cancel")?;
                self.cancel(&call_id, ctx).ok_or_else(already_answered)?;
                ack(&req);
            }
            CallAction::Hangup(call_id) => {
                let call = self.live_call(&call_id)?;
                let me = req.user.id;
                match call.phase {
                    CallPhase::Ringing(_) if call.caller.id == me => {
                        self.cancel(&call_id, ctx);
                    }
                    CallPhase::Ringing(_) if call.callee.id == me => {
                        self.decline(&call_id, &req, ctx)?;
                    }
                    CallPhase::Accepted
                        if self.call_rooms.get(&call.room).is_some_and(|cr| cr.has(me)) =>
                    {
                        let room = call.room.clone();
                        self.leave_call_room(&room, &req.user, false, ctx);
                    }
                    _ => return Err(ApiError::Forbidden("you are not in this call".to_owned())),
                }
                ack(&req);
            }
        }
        Ok(())
    }

    /// The callee (`req`) answers a ringing call: both ends hear `call.accepted` (the
    /// answering frame's reply carries its `id`), the callee's other devices stop ringing, and
    /// both take part in the call's room.
    fn accept(
        &mut self,
        call_id: &str,
        req: &CallRequest,
        ctx: &mut Context<Self>,
    ) -> Result<(), ApiError> {
        let mut call = self
            .take_ringing(call_id, ctx)
            .ok_or_else(already_answered)?;
        call.phase = CallPhase::Accepted;
        let cr = self
            .call_rooms
            .entry(call.room.clone())
            .or_insert_with(|| CallRoom {
                participants: Vec::new(),
            });
        for user in [&call.caller, &call.callee] {
            if !cr.has(user.id) {
                cr.participants.push(user.clone());
            }
        }
        self.report_participants(&call.room);
        req.deliver.do_send(Deliver(
            ServerMsg::CallAccepted {
                id: req.id.as_ref(),
                call_id: &call.id,
                room: &call.room,
                media: call.media,
            }
            .encode(),
        ));
        call.caller_session.do_send(Deliver(
            ServerMsg::CallAccepted {
                id: None,
                call_id: &call.id,
                room: &call.room,
                media: call.media,
            }
            .encode(),
        ));
        self.send_to_user(
            call.callee.id,
            ServerMsg::CallAnsweredElsewhere { call_id: &call.id }.encode(),
            Some(req.session.clone()),
        );
        self.log_state(&call.id, CallState::Accepted);
        self.calls.insert(call.id.0.clone(), call);
        self.count_calls();
        Ok(())
    }

    /// The invitation from `callee` to `caller` that is still ringing, if any: `caller`
    /// inviting them back now is glare.
    fn crossing_invitation(&self, caller: UserId, callee: UserId) -> Option<SharedStr> {
        self.calls
            .iter()
            .find(|(_, c)| {
                c.own_room
                    && c.caller.id == callee
                    && c.callee.id == caller
                    && matches!(c.phase, CallPhase::Ringing(_))
            })
            .map(|(k, _)| k.clone())
    }

    /// Glare: `req` invites the person whose invitation to them rings (`key`). With the same
    /// media it is an acceptance of that call (one call, one log entry); with other media it
    /// is refused (`conflict`) and theirs rings on, for the user to answer.
    fn merge_crossing(
        &mut self,
        key: SharedStr,
        req: CallRequest,
        media: Media,
        ctx: &mut Context<Self>,
    ) -> Result<(), ApiError> {
        let Some(call) = self.calls.get_mut(&key) else {
            return Err(already_answered());
        };
        if call.media != media {
            return Err(ApiError::Conflict(format!(
                "{} is calling you already ({} call): answer that call",
                call.caller.nickname,
                call.media.as_str()
            )));
        }
        match call.phase {
            // Still being stored: answered the moment it rings.
            CallPhase::Ringing(None) if call.crossing.is_none() => {
                call.crossing = Some(req);
                Ok(())
            }
            CallPhase::Ringing(Some(_)) => self.accept(&key, &req, ctx),
            _ => Err(already_answered()),
        }
    }

    /// The callee said no: the caller hears `call.declined`, the callee's other devices stop ringing.
    fn decline(
        &mut self,
        call_id: &str,
        req: &CallRequest,
        ctx: &mut Context<Self>,
    ) -> Result<(), ApiError> {
        let call = self
            .take_ringing(call_id, ctx)
            .ok_or_else(already_answered)?;
        call.caller_session.do_send(Deliver(
            ServerMsg::CallDeclined { call_id: &call.id }.encode(),
        ));
        self.send_to_user(
            call.callee.id,
            ServerMsg::CallAnsweredElsewhere { call_id: &call.id }.encode(),
            Some(req.session.clone()),
        );
        self.log_state(&call.id, CallState::Declined);
        Ok(())
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
pub struct GetRoom {
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
            if !self
                .call_rooms
                .get(&msg.name)
                .is_some_and(|cr| cr.has(msg.user))
            {
                return MessageResult(Err(ApiError::Forbidden(format!(
                    "no call is running in room '{}' with you in it",
                    msg.name.as_str()
                ))));
            }
            if let Some(timer) = self.held.remove(&msg.user) {
                ctx.cancel_future(timer);
            }
        }
        if let Some(addr) = self.rooms.get(&msg.name).filter(|a| a.connected()) {
            return MessageResult(Ok(addr.clone()));
        }
        let (name, kind, cap) = (msg.name.clone(), msg.kind, self.settings.room_member_cap);
        let (hub, presence) = (ctx.address(), self.presence.clone());
        let addr = RoomActor::start_in_arbiter(&msg.arbiter, move |_| {
            RoomActor::new(name, kind, cap, hub, presence)
        });
        self.rooms.insert(msg.name, addr.clone());
        self.metrics.rooms_live(self.rooms.len());
        MessageResult(Ok(addr))
    }
}

/// A room's last member left; it has stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RoomEmpty {
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

/// A call frame from one session; the hub answers that session directly.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct CallRequest {
    pub user: UserRef,
    pub caps: Capabilities,
    pub session: SessionId,
    pub deliver: Outbox,
    pub id: Option<FrameId>,
    pub action: CallAction,
}

impl CallRequest {
    fn reply_error(&self, e: &ApiError) {
        self.deliver.do_send(Deliver(error_frame(
            self.id.as_ref(),
            e.code(),
            &ws_error(e),
        )));
    }
}

impl Handler<CallRequest> for Hub {
    type Result = ();

    fn handle(&mut self, msg: CallRequest, ctx: &mut Self::Context) {
        let reply = msg.clone();
        if let Err(e) = self.handle_action(msg, ctx) {
            reply.reply_error(&e);
        }
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
pub struct UserOffline {
    pub user_id: UserId,
    /// The client closed its connection on purpose (a close frame with 1000, 1001 or no code).
    pub left: bool,
}

impl Handler<UserOffline> for Hub {
    type Result = ();

    fn handle(&mut self, msg: UserOffline, ctx: &mut Self::Context) {
        let user_id = msg.user_id;
        let outgoing: Vec<SharedStr> = self
            .calls
            .iter()
            .filter(|(_, c)| c.caller.id == user_id && matches!(c.phase, CallPhase::Ringing(_)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in outgoing {
            self.cancel(&key, ctx);
        }
        let grace = Duration::from_millis(self.settings.call_reconnect_grace_ms);
        let in_a_call = self.call_rooms.values().any(|cr| cr.has(user_id));
        if msg.left || grace.is_zero() || !in_a_call {
            self.leave_all_calls(user_id, !msg.left, ctx);
            return;
        }
        let timer = ctx.run_later(grace, move |act, ctx| {
            act.held.remove(&user_id);
            act.leave_all_calls(user_id, true, ctx);
        });
        if let Some(old) = self.held.insert(user_id, timer) {
            ctx.cancel_future(old);
        }
    }
}

/// A connection of a user registered with presence. Every invitation still ringing for them
/// is announced to it (`call.incoming` again), so a device that reconnects (or opens) while
/// it rings can answer; calls they missed while offline are told to it once (`calls.missed`,
/// marked seen in the log). (A held user is back in their call only once they rejoin its
/// room: see [`GetRoom`].)
#[derive(Message)]
#[rtype(result = "()")]
pub struct UserOnline {
    pub user_id: UserId,
    pub deliver: Outbox,
}

impl Handler<UserOnline> for Hub {
    type Result = ();

    fn handle(&mut self, msg: UserOnline, ctx: &mut Self::Context) {
        for call in self.calls.values() {
            if call.callee.id == msg.user_id && matches!(call.phase, CallPhase::Ringing(Some(_))) {
                msg.deliver.do_send(Deliver(call.incoming_frame()));
            }
        }
        if self.unseen_missed.remove(&msg.user_id) {
            let hub = ctx.address();
            self.db(Box::new(move |conn| {
                tell_missed(conn, msg.user_id, &msg.deliver, &hub)
            }));
        }
    }
}

/// Tells `deliver`'s connection the calls `user` missed, and marks them seen; if the
/// connection is already gone, leaves them unseen for the next one.
fn tell_missed(
    conn: &mut SqliteConnection,
    user: UserId,
    deliver: &Outbox,
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

    fn handle(&mut self, msg: MissedUnseen, _: &mut Self::Context) {
        self.unseen_missed.insert(msg.0);
    }
}

/// The server is stopping: every live call is closed in the log (ringing → missed, running →
/// ended); answers when that is stored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for Hub {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        for (_, call) in self.calls.drain() {
            if let CallPhase::Ringing(Some(timer)) = call.phase {
                ctx.cancel_future(timer);
            }
        }
        self.call_rooms.clear();
        for (_, timer) in self.held.drain() {
            ctx.cancel_future(timer);
        }
        self.count_calls();
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
pub struct HubStats;

impl Handler<HubStats> for Hub {
    type Result = MessageResult<HubStats>;

    fn handle(&mut self, _: HubStats, _: &mut Self::Context) -> Self::Result {
        MessageResult((self.rooms.len(), self.calls.len()))
    }
}
