//! [`PresenceActor`]: who is online, on how many connections, with which status.
//!
//! It owns the lobby: every connected session is registered here, so it is also the one
//! place that can reach all of a user's sessions (calls ring every device; revocation closes
//! the matching ones). Status changes are collected in a dirty set and pushed once per tick
//! (less often in large lobbies: see `next_push_in`), serialized once and shared by every
//! session, so a thousand arrivals cost each lobby session a frame or two, not a thousand.
//!
//! It also runs every session's heartbeat: one sweep over the sessions pings each once per
//! `--heartbeat-ms` and closes those silent for longer than `--client-timeout-ms`, instead of
//! a timer in every session. Both the push tick and the sweep stop while nobody is
//! connected, so an idle server's presence thread sleeps.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use actix_ws::CloseCode;
use bytes::Bytes;
use bytestring::ByteString;

use super::{
    hub::{Hub, UserOffline, UserOnline},
    metrics::RealtimeMetrics,
    outbox::{clock_ms, TextPieces},
    protocol::{
        ChosenStatus, PresenceView, RoomName, ServerMsg, SessionId, SharedStr, SnapshotUser,
        Status, UserId,
    },
    session::SessionActor,
    CloseSession, Deliver, Delivery, SessionHandle,
};
use crate::{
    config::Settings,
    db::{self, models::Capabilities, DbPool, Touches},
    domain::Revoked,
};

/// How `presence.snapshot` begins, up to its first entry.
const SNAPSHOT_OPEN: &str = r#"{"type":"presence.snapshot","users":["#;
/// How `presence.snapshot` ends, after its last entry.
const SNAPSHOT_CLOSE: &str = "]}";
/// The heartbeat sweep visits a tenth of the sessions every tenth of `--heartbeat-ms` (a
/// *step*), so that 15,000 pings are spread out rather than sent at once. A session's slice
/// is the step it connected in, so it is visited about one heartbeat after connecting, and
/// every heartbeat after that.
const SWEEP_SLICES: u32 = 10;

/// The heartbeat presence's sweep gives every session.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    /// Each session is pinged this often, in milliseconds (`--heartbeat-ms`).
    pub every_ms: u32,
    /// A session whose client was silent (no frame, no pong) for longer than this many
    /// milliseconds is closed, "timed out" (`--client-timeout-ms`).
    pub timeout_ms: u32,
}

impl Heartbeat {
    /// The heartbeat the server's settings ask for.
    pub(crate) fn from_settings(settings: &Settings) -> Self {
        Heartbeat {
            every_ms: u32::try_from(settings.heartbeat_ms.clamp(1, u64::from(u32::MAX / 4)))
                .unwrap_or(u32::MAX / 4),
            // Below a quarter of the clock's range, so that silences compare correctly.
            timeout_ms: u32::try_from(settings.client_timeout_ms.clamp(1, u64::from(u32::MAX / 4)))
                .unwrap_or(u32::MAX / 4),
        }
    }
}

impl Heartbeat {
    /// How far apart the sweep's slices are, in milliseconds.
    fn step_ms(&self) -> u32 {
        (self.every_ms / SWEEP_SLICES).max(1)
    }
}

/// One online user and their sessions.
struct OnlineUser {
    nickname: SharedStr,
    capabilities: Capabilities,
    themes: Arc<[String]>,
    /// What the user chose (`presence.set`); shown unless they are in a call.
    chosen: ChosenStatus,
    /// How many live call rooms hold this user together with someone else.
    in_calls: u32,
    /// This user's connections, oldest first. Kept here rather than in a table of every
    /// session: one entry each, no hash table (which doubles as it grows: at 15,000
    /// connections it held 32,768 buckets, 140 bytes per connection; this is 48).
    sessions: Vec<SessionEntry>,
    /// This user's entry of `presence.snapshot`, serialized; dropped on every change. A
    /// snapshot is then a concatenation, so many arrivals at once do not each re-serialize
    /// everyone.
    fragment: Option<String>,
}

impl OnlineUser {
    fn status(&self) -> Status {
        if self.in_calls > 0 {
            Status::InCall
        } else {
            self.chosen.into()
        }
    }

    /// The cached snapshot entry, serialized on first use after a change.
    fn fragment(&mut self, user_id: UserId) -> &str {
        if self.fragment.is_none() {
            let entry = SnapshotUser {
                id: user_id,
                nickname: &self.nickname,
                status: self.status(),
                capabilities: self.capabilities,
                themes: &self.themes,
            };
            self.fragment = Some(serde_json::to_string(&entry).unwrap_or_default());
        }
        self.fragment.as_deref().unwrap_or_default()
    }

    fn view(&self, user_id: UserId) -> PresenceView {
        PresenceView {
            user_id,
            status: self.status(),
            nickname: self.nickname.clone(),
            capabilities: self.capabilities,
            themes: Arc::clone(&self.themes),
        }
    }
}

/// One registered connection, in its user's list.
struct SessionEntry {
    id: SessionId,
    /// The login session (`sessions.id`) whose credential opened this connection.
    auth_session_id: i64,
    deliver: Delivery,
    close: actix::WeakAddr<SessionActor>,
}

impl SessionEntry {
    /// Tells the session to close its connection with `code` (nothing if it has stopped),
    /// after the frames already queued if `flush`.
    fn send_close(&self, code: CloseCode, reason: &'static str, flush: bool) {
        if let Some(session) = self.close.upgrade() {
            session.do_send(CloseSession {
                code,
                reason,
                flush,
            });
        }
    }
}

/// Tracks every online user across all their sessions and pushes presence diffs.
pub struct PresenceActor {
    /// The shortest time between two pushes (`--presence-tick-ms`).
    tick: Duration,
    /// `--presence-frames-per-sec`: pushes to many sessions are spaced further apart.
    frames_per_sec: u32,
    heartbeat: Heartbeat,
    /// The push tick is scheduled (it stops while nobody is connected).
    ticking: bool,
    /// The heartbeat sweep is scheduled (it stops while nobody is connected).
    sweeping: bool,
    /// The last step ([`clock_ms`] / step) whose slice the sweep visited.
    swept: u32,
    metrics: Arc<RealtimeMetrics>,
    hub: Addr<Hub>,
    users: HashMap<UserId, OnlineUser>,
    /// How many sessions are registered (the users' lists together).
    connections: usize,
    /// Users who came online or went offline: their `last_seen_at`, written together.
    last_seen: Arc<Touches>,
    /// Users whose visible presence changed since the last tick.
    dirty: HashSet<UserId>,
    /// Users who went offline since the last tick, with how they looked.
    departed: HashMap<UserId, PresenceView>,
    /// Who is in each live call room, from its room and from the hub.
    call_rooms: HashMap<RoomName, CallRoomUsersSeen>,
    /// The `presence.snapshot` of this tick, shared by its arrivals (see [`TickSnapshot`]).
    snapshot: Option<TickSnapshot>,
}

/// One call room's users as two actors see them; `in_call` is derived from both.
#[derive(Default)]
struct CallRoomUsersSeen {
    /// Users with a session in the room (its [`RoomActor`](super::room::RoomActor) reports).
    members: Vec<UserId>,
    /// The call's participants (the hub reports): they include someone whose connection
    /// dropped and who may still come back, so the others stay `in_call` meanwhile.
    participants: Vec<UserId>,
}

impl CallRoomUsersSeen {
    /// Everyone in this room's call once two distinct users are in it; nobody before.
    fn in_call(&self) -> Vec<UserId> {
        let mut users: Vec<UserId> = self
            .members
            .iter()
            .chain(&self.participants)
            .copied()
            .collect();
        users.sort_unstable();
        users.dedup();
        if users.len() < 2 {
            users.clear();
        }
        users
    }
}

/// The `presence.snapshot` every arrival of one tick starts from, serialized once.
///
/// It is everyone online when it was built, plus each user who arrived since (appended, so
/// a new connection always sees itself). Later status changes and departures are not
/// written into it: they are in `dirty` and reach every session registered by then —
/// including each arrival holding this snapshot — at the end of the tick, after the
/// snapshot. The flush that sends them therefore drops it, so snapshot and the diffs that
/// follow always compose to the truth.
///
/// A frame is two pieces sent as one fragmented message ([`TextPieces`]): the snapshot as
/// built, shared by every arrival of the tick, and the entries appended since with the
/// frame's close. Joining them copied the whole snapshot (hundreds of KB in a large lobby)
/// for every arrival, into freshly mapped pages.
struct TickSnapshot {
    /// The frame up to the last entry of the users online when it was built.
    base: Bytes,
    /// The entries of users who arrived since, each after a comma where one is due.
    added: String,
    /// Whose entry is in `base` or `added`.
    listed: HashSet<UserId>,
}

impl TickSnapshot {
    /// Adds `user_id`'s entry (`fragment`) unless it is listed already.
    fn append(&mut self, user_id: UserId, fragment: &str) {
        list(&mut self.listed, &mut self.added, user_id, fragment);
    }

    /// The frame as it stands, in two pieces.
    fn frame(&self) -> TextPieces {
        let mut rest = String::with_capacity(self.added.len() + SNAPSHOT_CLOSE.len());
        rest.push_str(&self.added);
        rest.push_str(SNAPSHOT_CLOSE);
        TextPieces(vec![self.base.clone(), Bytes::from(rest)])
    }
}

/// Writes `user_id`'s entry (`fragment`) into `out` unless `listed` has it, after a comma
/// unless it is the snapshot's first.
fn list(listed: &mut HashSet<UserId>, out: &mut String, user_id: UserId, fragment: &str) {
    if listed.insert(user_id) {
        if listed.len() > 1 {
            out.push(',');
        }
        out.push_str(fragment);
    }
}

impl PresenceActor {
    /// A presence actor pushing diffs every `tick`, or less often when the pushes would
    /// exceed `frames_per_sec` (0: no limit).
    pub fn new(
        pool: DbPool,
        tick: Duration,
        frames_per_sec: u32,
        heartbeat: Heartbeat,
        metrics: Arc<RealtimeMetrics>,
        hub: Addr<Hub>,
    ) -> Self {
        let last_seen = Touches::new(pool.clone(), "last_seen_at", db::users::touch_last_seen);
        PresenceActor {
            tick: tick.max(Duration::from_millis(1)),
            frames_per_sec,
            heartbeat,
            ticking: false,
            sweeping: false,
            swept: 0,
            metrics,
            hub,
            users: HashMap::new(),
            connections: 0,
            last_seen,
            dirty: HashSet::new(),
            departed: HashMap::new(),
            call_rooms: HashMap::new(),
            snapshot: None,
        }
    }

    /// Pushes the changes collected since the last push to every session, serialized once;
    /// answers how many frames that was.
    fn flush(&mut self) -> usize {
        if self.dirty.is_empty() {
            return 0;
        }
        // Arrivals after this flush do not get these changes: their snapshot must have them.
        self.snapshot = None;
        let mut updates: Vec<PresenceView> = Vec::with_capacity(self.dirty.len());
        for user_id in self.dirty.drain() {
            if let Some(user) = self.users.get(&user_id) {
                updates.push(user.view(user_id));
            } else if let Some(view) = self.departed.remove(&user_id) {
                updates.push(view);
            }
        }
        self.departed.clear();
        updates.sort_by_key(|v| v.user_id);
        let frame = match updates.as_slice() {
            [] => return 0,
            [one] => ServerMsg::PresenceUpdate(one).encode(),
            many => ServerMsg::PresenceBatch { updates: many }.encode(),
        };
        for entry in self.all_sessions() {
            entry.deliver.do_send(Deliver(frame.clone()));
        }
        self.connections
    }

    /// Every registered session.
    fn all_sessions(&self) -> impl Iterator<Item = &SessionEntry> {
        self.users.values().flat_map(|user| &user.sessions)
    }

    /// Pushes, then comes back when the next push is due (see [`next_push_in`]); stops
    /// once nobody is connected (the next connection starts it again).
    fn push_and_schedule(&mut self, ctx: &mut Context<Self>) {
        let frames = self.flush();
        if self.connections == 0 {
            self.ticking = false;
            return;
        }
        let wait = next_push_in(self.tick, frames, self.frames_per_sec);
        ctx.run_later(wait, |act, ctx| act.push_and_schedule(ctx));
    }

    /// The heartbeat, one step (a tenth of `--heartbeat-ms`) at a time: visits the slice of
    /// sessions of each step since the last visit (more than one if this timer came late),
    /// pinging each, or closing it ("timed out", frames still queued dropped) if its client
    /// has been silent for longer than `--client-timeout-ms`. A session's slice is the step
    /// it connected in, so it is pinged about one heartbeat after it connected (as with a
    /// timer of its own) and every heartbeat after; a silent one is closed within the
    /// timeout and one heartbeat. One that connected in this very step is left for the next
    /// round. Stops once nobody is connected.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.connections == 0 {
            self.sweeping = false;
            return;
        }
        let now = clock_ms();
        let step = self.heartbeat.step_ms();
        let current = now / step;
        // The slices of the steps since the last visit, a bit each (SWEEP_SLICES <= 32).
        let due = current.wrapping_sub(self.swept).min(SWEEP_SLICES);
        let mut slices = 0u32;
        for back in 0..due {
            slices |= 1 << (current.wrapping_sub(back) % SWEEP_SLICES);
        }
        self.swept = current;
        let young = self.heartbeat.every_ms / 2;
        for entry in self.all_sessions() {
            let born = entry.deliver.connection().born();
            if slices & (1 << ((born / step) % SWEEP_SLICES)) == 0 {
                continue;
            }
            if entry.deliver.connection().silent_for(now) > self.heartbeat.timeout_ms {
                log::debug!("session {:?} timed out", entry.id);
                entry.send_close(CloseCode::Normal, "timed out", false);
            } else if !entry.deliver.connection().opened_within(now, young) {
                entry.deliver.connection().ping();
            }
        }
        ctx.run_later(Duration::from_millis(step.into()), |act, ctx| {
            act.sweep(ctx)
        });
    }

    /// A session arrived: the push tick and the heartbeat sweep run (again) if they had
    /// stopped.
    fn wake(&mut self, ctx: &mut Context<Self>) {
        if !self.ticking {
            self.ticking = true;
            ctx.run_later(self.tick, |act, ctx| act.push_and_schedule(ctx));
        }
        if !self.sweeping {
            self.sweeping = true;
            let step = self.heartbeat.step_ms();
            self.swept = clock_ms() / step;
            ctx.run_later(Duration::from_millis(step.into()), |act, ctx| {
                act.sweep(ctx)
            });
        }
    }

    /// The `presence.snapshot` frame for a connection of `user_id` (who is online): this
    /// tick's [`TickSnapshot`], built from the users' cached entries on the tick's first
    /// arrival, with `user_id` appended if it is not listed yet.
    fn snapshot(&mut self, user_id: UserId) -> TextPieces {
        let snapshot = match &mut self.snapshot {
            Some(snapshot) => snapshot,
            None => {
                let mut ids: Vec<UserId> = self.users.keys().copied().collect();
                ids.sort_unstable();
                let mut open = String::with_capacity(48 + ids.len() * 128);
                open.push_str(SNAPSHOT_OPEN);
                let mut listed = HashSet::with_capacity(ids.len());
                for id in ids {
                    if let Some(user) = self.users.get_mut(&id) {
                        list(&mut listed, &mut open, id, user.fragment(id));
                    }
                }
                self.snapshot.insert(TickSnapshot {
                    base: Bytes::from(open),
                    added: String::new(),
                    listed,
                })
            }
        };
        if !snapshot.listed.contains(&user_id) {
            if let Some(user) = self.users.get_mut(&user_id) {
                snapshot.append(user_id, user.fragment(user_id));
            }
        }
        snapshot.frame()
    }

    fn set_in_call(&mut self, user_id: UserId, delta: i32) {
        if let Some(user) = self.users.get_mut(&user_id) {
            let before = user.status();
            user.in_calls = user.in_calls.saturating_add_signed(delta);
            user.fragment = None;
            if user.status() != before {
                self.dirty.insert(user_id);
            }
        }
    }

    /// Changes what is known of one call room's users and moves `in_call` accordingly.
    fn update_call_room(&mut self, room: RoomName, change: impl FnOnce(&mut CallRoomUsersSeen)) {
        let seen = self.call_rooms.entry(room.clone()).or_default();
        let before = seen.in_call();
        change(seen);
        let after = seen.in_call();
        if seen.members.is_empty() && seen.participants.is_empty() {
            self.call_rooms.remove(&room);
        }
        for user in before.iter().filter(|u| !after.contains(u)) {
            self.set_in_call(*user, -1);
        }
        for user in after.iter().filter(|u| !before.contains(u)) {
            self.set_in_call(*user, 1);
        }
    }

    /// `left`: the connection was closed on purpose (not dropped).
    fn remove_session(&mut self, session_id: &SessionId, user_id: UserId, left: bool) {
        let Some(user) = self.users.get_mut(&user_id) else {
            return;
        };
        let Some(at) = user.sessions.iter().position(|s| s.id == *session_id) else {
            return;
        };
        user.sessions.remove(at);
        if user.sessions.len() * 4 < user.sessions.capacity() {
            // A user's connections are usually few: what a burst of them grew is handed back.
            user.sessions.shrink_to(user.sessions.len() * 2);
        }
        self.connections -= 1;
        self.metrics.connections_open(self.connections);
        if user.sessions.is_empty() {
            if let Some(user) = self.users.remove(&user_id) {
                let mut view = user.view(user_id);
                view.status = Status::Offline;
                self.departed.insert(user_id, view);
                self.dirty.insert(user_id);
            }
            self.hub.do_send(UserOffline { user_id, left });
            self.last_seen.touch(user_id.0);
        }
    }
}

/// How long after a push of `frames` frames the next one is due: one `tick`, or as long as
/// those frames take at `frames_per_sec` if that is longer (0: no limit).
///
/// Every push is one frame per connection, and a frame costs the server about the same
/// whatever it holds (queueing, a write, the TCP stack: ~10 µs), so with thousands of
/// connections a push every 50 ms would take most of a core. Spacing pushes by the frames
/// they cost bounds that share; the changes meanwhile are coalesced into the next batch,
/// so nothing is lost, only delayed. Small lobbies keep the tick.
fn next_push_in(tick: Duration, frames: usize, frames_per_sec: u32) -> Duration {
    if frames_per_sec == 0 {
        return tick;
    }
    tick.max(Duration::from_secs_f64(
        frames as f64 / f64::from(frames_per_sec),
    ))
}

impl Actor for PresenceActor {
    type Context = Context<Self>;
}

/// A new session: registers it and answers with its `presence.snapshot` frame.
#[derive(Message)]
#[rtype(result = "TextPieces")]
pub struct Connect {
    pub handle: SessionHandle,
    pub user_id: UserId,
    pub auth_session_id: i64,
    pub nickname: SharedStr,
    pub capabilities: Capabilities,
    pub themes: Arc<[String]>,
}

impl Handler<Connect> for PresenceActor {
    type Result = MessageResult<Connect>;

    fn handle(&mut self, msg: Connect, ctx: &mut Self::Context) -> Self::Result {
        self.wake(ctx);
        let SessionHandle {
            id: session_id,
            deliver,
            close,
        } = msg.handle;
        let user = self.users.entry(msg.user_id).or_insert_with(|| OnlineUser {
            nickname: msg.nickname.clone(),
            capabilities: msg.capabilities,
            themes: Arc::clone(&msg.themes),
            chosen: ChosenStatus::Online,
            // Back within a call's reconnect grace: still in that call.
            in_calls: self
                .call_rooms
                .values()
                .filter(|r| r.in_call().contains(&msg.user_id))
                .count() as u32,
            sessions: Vec::new(),
            fragment: None,
        });
        if user.sessions.is_empty() {
            self.dirty.insert(msg.user_id);
            self.departed.remove(&msg.user_id);
            self.last_seen.touch(msg.user_id.0);
        }
        self.hub.do_send(UserOnline {
            user_id: msg.user_id,
            deliver: deliver.clone(),
        });
        user.sessions.push(SessionEntry {
            id: session_id,
            auth_session_id: msg.auth_session_id,
            deliver,
            close,
        });
        self.connections += 1;
        self.metrics.connections_open(self.connections);
        MessageResult(self.snapshot(msg.user_id))
    }
}

/// A session ended.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Disconnect {
    pub session_id: SessionId,
    /// Whose session it was.
    pub user_id: UserId,
    /// The client closed it on purpose (a close frame), rather than the network dropping it.
    pub left: bool,
}

impl Handler<Disconnect> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, _: &mut Self::Context) {
        self.remove_session(&msg.session_id, msg.user_id, msg.left);
    }
}

/// A user chose a status (`presence.set`).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SetStatus {
    pub user_id: UserId,
    pub status: ChosenStatus,
}

impl Handler<SetStatus> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: SetStatus, _: &mut Self::Context) {
        if let Some(user) = self.users.get_mut(&msg.user_id) {
            let before = user.status();
            user.chosen = msg.status;
            user.fragment = None;
            if user.status() != before {
                self.dirty.insert(msg.user_id);
            }
        }
    }
}

/// A user's nickname, capabilities or themes changed.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ProfileChanged {
    pub user_id: UserId,
    pub nickname: SharedStr,
    pub capabilities: Capabilities,
    pub themes: Arc<[String]>,
}

impl Handler<ProfileChanged> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: ProfileChanged, _: &mut Self::Context) {
        if let Some(user) = self.users.get_mut(&msg.user_id) {
            user.nickname = msg.nickname;
            user.capabilities = msg.capabilities;
            user.themes = msg.themes;
            user.fragment = None;
            self.dirty.insert(msg.user_id);
        }
    }
}

/// Some of a user's login sessions were revoked: close the connections they opened (4001).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RevokeSessions {
    pub user_id: UserId,
    pub which: Revoked,
}

impl Handler<RevokeSessions> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: RevokeSessions, _: &mut Self::Context) {
        let Some(user) = self.users.get(&msg.user_id) else {
            return;
        };
        for entry in &user.sessions {
            let hit = match msg.which {
                Revoked::One(id) => entry.auth_session_id == id,
                Revoked::AllBut(id) => entry.auth_session_id != id,
                Revoked::All => true,
            };
            if hit {
                entry.send_close(CloseCode::Other(4001), "session revoked", true);
            }
        }
    }
}

/// Closes every connection (server shutdown: 1001); answers how many there were.
#[derive(Message)]
#[rtype(result = "usize")]
pub(crate) struct CloseAll {
    pub code: CloseCode,
    pub reason: &'static str,
}

impl Handler<CloseAll> for PresenceActor {
    type Result = usize;

    fn handle(&mut self, msg: CloseAll, _: &mut Self::Context) -> usize {
        for entry in self.all_sessions() {
            entry.send_close(msg.code, msg.reason, true);
        }
        self.connections
    }
}

/// How many connections are open (shutdown waits for none).
#[derive(Message)]
#[rtype(result = "usize")]
pub(crate) struct CountSessions;

impl Handler<CountSessions> for PresenceActor {
    type Result = usize;

    fn handle(&mut self, _: CountSessions, _: &mut Self::Context) -> usize {
        self.connections
    }
}

/// Delivers a frame to every session of a user (but `except`); answers how many got it.
#[derive(Message)]
#[rtype(result = "usize")]
pub(crate) struct SendToUser {
    pub user_id: UserId,
    pub frame: ByteString,
    pub except: Option<SessionId>,
}

impl Handler<SendToUser> for PresenceActor {
    type Result = usize;

    fn handle(&mut self, msg: SendToUser, _: &mut Self::Context) -> usize {
        let Some(user) = self.users.get(&msg.user_id) else {
            return 0;
        };
        let mut sent = 0;
        for entry in &user.sessions {
            if msg.except.as_ref() == Some(&entry.id) {
                continue;
            }
            entry.deliver.do_send(Deliver(msg.frame.clone()));
            sent += 1;
        }
        sent
    }
}

/// What a caller needs to know about a callee who is online.
#[derive(Debug, Clone)]
pub struct OnlineInfo {
    pub nickname: SharedStr,
    pub status: Status,
    pub capabilities: Capabilities,
}

/// Looks up an online user.
#[derive(Message)]
#[rtype(result = "Option<OnlineInfo>")]
pub(crate) struct Lookup {
    pub user_id: UserId,
}

impl Handler<Lookup> for PresenceActor {
    type Result = Option<OnlineInfo>;

    fn handle(&mut self, msg: Lookup, _: &mut Self::Context) -> Option<OnlineInfo> {
        self.users.get(&msg.user_id).map(|u| OnlineInfo {
            nickname: u.nickname.clone(),
            status: u.status(),
            capabilities: u.capabilities,
        })
    }
}

/// Every online user's status (for the HTTP directory and admin stats).
#[derive(Message)]
#[rtype(result = "HashMap<i64, Status>")]
pub(crate) struct Statuses;

impl Handler<Statuses> for PresenceActor {
    type Result = MessageResult<Statuses>;

    fn handle(&mut self, _: Statuses, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.users
                .iter()
                .map(|(id, u)| (id.0, u.status()))
                .collect(),
        )
    }
}

/// A call room's distinct users changed; users sharing one with someone else are `in_call`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct CallRoomUsers {
    pub room: RoomName,
    pub users: Vec<UserId>,
}

impl Handler<CallRoomUsers> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: CallRoomUsers, _: &mut Self::Context) {
        self.update_call_room(msg.room, |seen| seen.members = msg.users);
    }
}

/// The participants of the call held in a room changed (the hub's view: someone whose
/// connection dropped is still in it during the reconnect grace). Empty: the call is over.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct CallParticipants {
    pub room: RoomName,
    pub users: Vec<UserId>,
}

impl Handler<CallParticipants> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: CallParticipants, _: &mut Self::Context) {
        self.update_call_room(msg.room, |seen| seen.participants = msg.users);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_to_many_sessions_are_spaced_by_their_frames_and_small_ones_by_the_tick() {
        let tick = Duration::from_millis(50);
        assert_eq!(next_push_in(tick, 0, 25_000), tick);
        assert_eq!(next_push_in(tick, 1_000, 25_000), tick);
        assert_eq!(
            next_push_in(tick, 5_000, 25_000),
            Duration::from_millis(200)
        );
        assert_eq!(next_push_in(tick, 5_000, 0), tick);
    }

    #[test]
    fn a_cached_snapshot_entry_is_what_serde_makes_of_the_snapshot() {
        let mut user = OnlineUser {
            nickname: SharedStr::from("ana"),
            capabilities: Capabilities {
                video: true,
                audio: false,
                text: true,
            },
            themes: Arc::from(vec!["Jogos".to_owned()]),
            chosen: ChosenStatus::Busy,
            in_calls: 0,
            sessions: Vec::new(),
            fragment: None,
        };
        let expected = ServerMsg::PresenceSnapshot {
            users: vec![SnapshotUser {
                id: UserId(7),
                nickname: &user.nickname,
                status: user.status(),
                capabilities: user.capabilities,
                themes: &user.themes,
            }],
        }
        .encode();
        let built = format!(
            "{SNAPSHOT_OPEN}{}{SNAPSHOT_CLOSE}",
            user.fragment(UserId(7))
        );
        assert_eq!(&*expected, built);
    }
}
