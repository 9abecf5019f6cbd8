//! [`PresenceActor`]: who is online, on how many connections, with which status.
//!
//! It owns the lobby: every connected session is registered here, so it is also the one
//! place that can reach all of a user's sessions (calls ring every device; revocation closes
//! the matching ones).
//!
//! # Presence by subscription (protocol revision 1.2)
//!
//! A connection is not sent everyone. It watches a *window* of each theme it subscribes to
//! (its user's own themes from the start, another theme's card once opened): the first
//! `limit` people of that theme online, available first, then by name. Each theme keeps its
//! people in that order ([`ThemeLobby::order`]) and the sessions watching it
//! ([`ThemeLobby::watchers`]), so a change reaches only the watchers of the changed user's
//! themes, and only those whose window it changes. A connection also follows its own user
//! and everyone it shares a room with (a conversation, a call), and gets `presence.counts`:
//! how many are online in every theme.
//!
//! Changes are collected (`dirty`, `touched`) and pushed once per tick (less often in large
//! lobbies: see `next_push_in`): per theme, one diff of each window size against what its
//! watchers were last told ([`ThemeLobby::shown`]), serialized once and shared. An arrival
//! therefore costs the server a few ordered-set updates, its own snapshot (its windows, at
//! most [`PRESENCE_WINDOW`] entries a theme, cached between pushes) and a share of the next
//! push to the watchers whose window it enters: with windows of a fixed size, the chance
//! that an arrival enters one shrinks as the theme grows, so the cost of an arrival stays
//! flat as the lobby grows rather than growing with everyone online.
//!
//! It also runs every session's heartbeat: one sweep over the sessions pings each once per
//! `--heartbeat-ms` and closes those silent for longer than `--client-timeout-ms`, instead of
//! a timer in every session. Both the push tick and the sweep stop while nobody is
//! connected, so an idle server's presence thread sleeps.
//!
//! # Several nodes (`--broker`)
//!
//! The users of the other nodes are users here too, merged from those nodes' records
//! ([`remote`]): windows, counts and update frames treat them like any other. Sessions and
//! watchers are this node's only; a frame for a user also goes to the nodes holding their
//! other sessions. Without a broker none of it runs.

mod remote;

pub use remote::PresenceFeed;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use actix_ws::CloseCode;
use bytes::Bytes;
use bytestring::ByteString;

use super::{
    broker::{Broker, Inbound, Kind, Topic},
    hub::{Hub, UserOffline, UserOnline},
    metrics::RealtimeMetrics,
    outbox::{clock_ms, TextPieces},
    protocol::{
        error_frame, ChosenStatus, FrameId, PresenceView, RoomName, ServerMsg, SessionId,
        SharedStr, SnapshotUser, Status, UserId, PRESENCE_WINDOW,
    },
    session::SessionActor,
    CloseSession, Deliver, Delivery, SessionHandle, SessionMsg,
};
use crate::{
    config::Settings,
    db::{self, models::Capabilities, Touches},
    domain::Revoked,
    error::ErrorCode,
};

/// How `presence.snapshot` begins, up to its first entry.
const SNAPSHOT_OPEN: &str = r#"{"type":"presence.snapshot","users":["#;
/// How `presence.snapshot` ends, after its last entry, in a lobby without counts or windows.
#[cfg(test)]
const SNAPSHOT_CLOSE: &str = "]}";
/// `presence.counts` goes out at most this often (counts change with every arrival).
const COUNTS_EVERY: Duration = Duration::from_secs(1);
/// ... and takes at most this share (one in `COUNTS_SHARE`) of `--presence-frames-per-sec`:
/// a count push is a frame to every connection.
const COUNTS_SHARE: u32 = 5;
/// Counts unchanged this long after a change: the burst of arrivals (or departures) is over,
/// and its last counts may go out before their spaced time (see [`CountsPace`]).
const COUNTS_QUIET: Duration = Duration::from_millis(250);
/// Most themes one connection may watch at once (its own and the cards it opened).
const MAX_WATCHED_THEMES: usize = 64;
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
    /// The nickname as themes order people (lower case).
    sort_name: SharedStr,
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
    /// What other nodes hold of this user, and when their status and profile were set
    /// (`--broker` only: one pointer, `None`, in a single process).
    elsewhere: Option<Box<remote::Elsewhere>>,
    /// This user's entry of `presence.snapshot`, serialized; dropped on every change. A
    /// snapshot is then a concatenation, so many arrivals at once do not each re-serialize
    /// everyone.
    fragment: Option<String>,
}

impl OnlineUser {
    /// The user's presence on other nodes (none in a single process): online while either
    /// this or `sessions` is not empty.
    fn remote(&self) -> &[remote::RemoteEntry] {
        self.elsewhere.as_deref().map_or(&[], |e| &e.remote)
    }

    /// Their cluster part, made if they had none.
    fn elsewhere_mut(&mut self) -> &mut remote::Elsewhere {
        self.elsewhere.get_or_insert_with(Box::default)
    }

    fn status(&self) -> Status {
        if self.in_calls > 0 || self.remote().iter().any(|r| r.in_call) {
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

    /// Where this user stands in each of their themes' lists.
    fn place(&self, id: UserId) -> Place {
        Place {
            unavailable: self.status() != Status::Online,
            name: self.sort_name.clone(),
            id,
        }
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
    /// The themes whose window this session watches.
    watching: Vec<SharedStr>,
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
    /// The other nodes (`--broker`), or `None`.
    broker: Option<Broker>,
    /// The other nodes' users, and this node's records of its own (`--broker`).
    cluster: Option<remote::Cluster>,
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
    /// Each theme's people online and the sessions watching it.
    themes: HashMap<SharedStr, ThemeLobby>,
    /// Themes whose list changed (or one of whose people did) since the last push.
    touched: HashSet<SharedStr>,
    /// The users in each live room (any kind): people sharing one follow each other.
    rooms: HashMap<RoomName, Vec<UserId>>,
    /// The rooms each user is in (the other way round).
    rooms_of: HashMap<UserId, Vec<RoomName>>,
    /// The counts last pushed (`presence.counts`), also in every snapshot.
    counts: BTreeMap<SharedStr, usize>,
    /// `counts`, serialized.
    counts_json: String,
    /// When the next count push may go out.
    counts_pace: CountsPace,
}

/// When `presence.counts` may go out: [`COUNTS_EVERY`] apart, or further apart in a large
/// lobby (the spacing that keeps count pushes within their share of the frame budget: 3 s
/// at 15,000 connections), except once after a burst.
///
/// Spaced pushes alone left a lobby's counts wrong for up to a whole spacing after the last
/// arrival of a crowd (a connection storm of 15,000 was right only 2–3 s after its last
/// arrival; docs/benchmarks.md, issue 17). So once the counts have stopped changing for
/// [`COUNTS_QUIET`], their last change goes out early, at least `COUNTS_EVERY` after the
/// previous push; the push after an early one waits two spacings, so that pushes stay within
/// the budget on average, and a trickle of changes cannot make every push early.
#[derive(Debug, Clone, Copy)]
struct CountsPace {
    /// When some count last may have changed, if it did since the last push.
    changed_at: Option<Instant>,
    /// When the last push went out.
    last: Option<Instant>,
    /// When the next push may go out, however the counts change.
    due: Instant,
    /// The last push came early: no other may until `due`.
    early: bool,
}

impl CountsPace {
    fn new(now: Instant) -> Self {
        CountsPace {
            changed_at: None,
            last: None,
            due: now,
            early: false,
        }
    }

    /// Some count may have changed at `now`.
    fn changed(&mut self, now: Instant) {
        self.changed_at = Some(now);
    }

    /// Whether a push may go out at `now`.
    fn may_push(&self, now: Instant) -> bool {
        let Some(changed_at) = self.changed_at else {
            return false;
        };
        let Some(last) = self.last else {
            return true;
        };
        now >= self.due
            || (!self.early
                && now >= last + COUNTS_EVERY
                && now.saturating_duration_since(changed_at) >= COUNTS_QUIET)
    }

    /// The counts were looked at, at `now`: pushed (the next push is `spacing` later, or two
    /// spacings after an early one), or found unchanged (`pushed` false).
    fn done(&mut self, now: Instant, pushed: bool, spacing: Duration) {
        self.changed_at = None;
        if !pushed {
            return;
        }
        self.early = now < self.due;
        self.last = Some(now);
        let spacing = COUNTS_EVERY.max(spacing);
        self.due = now + if self.early { spacing * 2 } else { spacing };
    }
}

/// Where a person stands in a theme's list: available first, then by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    unavailable: bool,
    name: SharedStr,
    id: UserId,
}

/// One theme: its people online, in order, and who watches them.
#[derive(Default)]
struct ThemeLobby {
    /// Everyone online who follows the theme, available first, then by name.
    order: BTreeSet<Place>,
    /// The sessions watching a window of it.
    watchers: HashMap<SessionId, Watcher>,
    /// The first [`MAX_PRESENCE_WINDOW`] people as of the last push: what every watcher's
    /// window was (its first `limit` of these) after that push. The next push sends each
    /// window's difference from it.
    ///
    /// [`MAX_PRESENCE_WINDOW`]: super::protocol::MAX_PRESENCE_WINDOW
    shown: Vec<UserId>,
    /// The entries of the first [`PRESENCE_WINDOW`] of `shown`, each after a comma, and
    /// their ids as a JSON list: what snapshots list for this theme until the next push.
    page: Option<(Bytes, String)>,
}

impl ThemeLobby {
    fn is_idle(&self) -> bool {
        self.order.is_empty() && self.watchers.is_empty()
    }
}

/// A session watching a theme's window.
struct Watcher {
    /// How many people its window shows.
    limit: u16,
    deliver: Delivery,
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

impl PresenceActor {
    /// The entry of `user`'s session `id`, if it is still online.
    fn session_mut(&mut self, user: UserId, id: &SessionId) -> Option<&mut SessionEntry> {
        self.users
            .get_mut(&user)
            .and_then(|u| u.sessions.iter_mut().find(|s| &s.id == id))
    }

    /// A presence actor pushing diffs every `tick`, or less often when the pushes would
    /// exceed `frames_per_sec` (0: no limit).
    pub fn new(
        tick: Duration,
        frames_per_sec: u32,
        heartbeat: Heartbeat,
        metrics: Arc<RealtimeMetrics>,
        hub: Addr<Hub>,
        broker: Option<Broker>,
        last_seen: Arc<Touches>,
    ) -> Self {
        PresenceActor {
            tick: tick.max(Duration::from_millis(1)),
            frames_per_sec,
            heartbeat,
            ticking: false,
            sweeping: false,
            swept: 0,
            metrics,
            hub,
            cluster: broker.clone().map(remote::Cluster::new),
            broker,
            users: HashMap::new(),
            connections: 0,
            last_seen,
            dirty: HashSet::new(),
            departed: HashMap::new(),
            call_rooms: HashMap::new(),
            themes: HashMap::new(),
            touched: HashSet::new(),
            rooms: HashMap::new(),
            rooms_of: HashMap::new(),
            counts: BTreeMap::new(),
            counts_json: "{}".to_owned(),
            counts_pace: CountsPace::new(Instant::now()),
        }
    }

    /// With several nodes, keeps the users' connection counts on other nodes in
    /// `connections` (for the per-user cap); nothing without a broker.
    pub fn counting(mut self, connections: Arc<super::ConnectionCounts>) -> Self {
        if let Some(cluster) = &mut self.cluster {
            cluster.connections = Some(connections);
        }
        self
    }

    /// Pushes the changes collected since the last push to the sessions they concern,
    /// serialized once per window size and theme; answers how many frames that was.
    fn flush(&mut self) -> usize {
        if self.cluster.is_some() {
            self.publish_own();
        }
        let mut frames = 0;
        if !self.touched.is_empty() || !self.dirty.is_empty() {
            frames += self.push_windows();
            frames += self.push_follows();
            self.dirty.clear();
            self.departed.clear();
        }
        frames + self.push_counts()
    }

    /// Each touched theme's windows: to each watcher, what changed in its window since the
    /// last push (one frame per window size, shared), if anything did.
    fn push_windows(&mut self) -> usize {
        let mut frames = 0;
        for theme in std::mem::take(&mut self.touched) {
            let Some(lobby) = self.themes.get_mut(theme.as_str()) else {
                continue;
            };
            let now: Vec<UserId> = lobby
                .order
                .iter()
                .take(usize::from(super::protocol::MAX_PRESENCE_WINDOW))
                .map(|p| p.id)
                .collect();
            let mut limits: Vec<u16> = lobby.watchers.values().map(|w| w.limit).collect();
            limits.sort_unstable();
            limits.dedup();
            let diffs: Vec<(u16, Option<ByteString>)> = limits
                .into_iter()
                .map(|limit| {
                    let frame = window_diff(
                        &theme,
                        &lobby.shown,
                        &now,
                        usize::from(limit),
                        &self.dirty,
                        &self.users,
                        &self.departed,
                    );
                    (limit, frame)
                })
                .collect();
            // Most pushes change no window of a large theme (an arrival far down its list):
            // its watchers are then not even visited.
            if diffs.iter().any(|(_, frame)| frame.is_some()) {
                for watcher in lobby.watchers.values() {
                    let diff = diffs.iter().find(|(limit, _)| *limit == watcher.limit);
                    if let Some((_, Some(frame))) = diff {
                        watcher.deliver.do_send(Deliver(frame.clone()));
                        frames += 1;
                    }
                }
            }
            lobby.shown = now;
            lobby.page = None;
            if lobby.is_idle() {
                self.themes.remove(theme.as_str());
            }
        }
        frames
    }

    /// Each changed user, to their own sessions and to those of everyone who shares a room
    /// with them: one frame per recipient user, shared by their sessions.
    fn push_follows(&mut self) -> usize {
        let mut to: HashMap<UserId, Vec<PresenceView>> = HashMap::new();
        for id in &self.dirty {
            let view = match self.users.get(id) {
                Some(user) => user.view(*id),
                None => match self.departed.get(id) {
                    Some(view) => view.clone(),
                    None => continue,
                },
            };
            for room in self.rooms_of.get(id).into_iter().flatten() {
                for other in self.rooms.get(room).into_iter().flatten() {
                    if other != id {
                        to.entry(*other).or_default().push(view.clone());
                    }
                }
            }
            to.entry(*id).or_default().push(view);
        }
        let mut frames = 0;
        for (recipient, mut views) in to {
            let Some(user) = self.users.get(&recipient) else {
                continue;
            };
            views.sort_by_key(|v| v.user_id);
            views.dedup_by_key(|v| v.user_id);
            let frame = updates_frame(&views);
            for entry in &user.sessions {
                entry.deliver.do_send(Deliver(frame.clone()));
                frames += 1;
            }
        }
        frames
    }

    /// `presence.counts` to every session, when a count changed and the last push is long
    /// enough ago (see [`COUNTS_EVERY`], [`COUNTS_SHARE`]).
    fn push_counts(&mut self) -> usize {
        let now = Instant::now();
        if !self.counts_pace.may_push(now) {
            return 0;
        }
        let counts: BTreeMap<SharedStr, usize> = self
            .themes
            .iter()
            .filter(|(_, lobby)| !lobby.order.is_empty())
            .map(|(name, lobby)| (name.clone(), lobby.order.len()))
            .collect();
        if counts == self.counts {
            self.counts_pace.done(now, false, Duration::ZERO);
            return 0;
        }
        self.counts_json = serde_json::to_string(&counts).unwrap_or_else(|_| "{}".to_owned());
        self.counts = counts;
        let frame = ServerMsg::PresenceCounts {
            counts: &self.counts,
        }
        .encode();
        for entry in self.all_sessions() {
            entry.deliver.do_send(Deliver(frame.clone()));
        }
        let budget = (self.frames_per_sec / COUNTS_SHARE).max(1);
        let spacing = if self.frames_per_sec == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(self.connections as f64 / f64::from(budget))
        };
        self.counts_pace.done(now, true, spacing);
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
            // Presence lists only this node's sessions.
            let Some(connection) = entry.deliver.connection() else {
                continue;
            };
            let born = connection.born();
            if slices & (1 << ((born / step) % SWEEP_SLICES)) == 0 {
                continue;
            }
            if connection.silent_for(now) > self.heartbeat.timeout_ms {
                log::debug!("session {:?} timed out", entry.id);
                entry.send_close(CloseCode::Normal, "timed out", false);
            } else if !connection.opened_within(now, young) {
                connection.ping();
            }
        }
        ctx.run_later(Duration::from_millis(step.into()), |act, ctx| {
            act.sweep(ctx)
        });
    }

    /// A session arrived: the push tick and the heartbeat sweep run (again) if they had
    /// stopped.
    fn wake(&mut self, ctx: &mut Context<Self>) {
        self.ensure_ticking(ctx);
        if !self.sweeping {
            self.sweeping = true;
            let step = self.heartbeat.step_ms();
            self.swept = clock_ms() / step;
            ctx.run_later(Duration::from_millis(step.into()), |act, ctx| {
                act.sweep(ctx)
            });
        }
    }

    /// The push tick runs (again) if it had stopped: a change to push, or (several nodes)
    /// this node's records to publish.
    fn ensure_ticking(&mut self, ctx: &mut Context<Self>) {
        if !self.ticking {
            self.ticking = true;
            ctx.run_later(self.tick, |act, ctx| act.push_and_schedule(ctx));
        }
    }

    /// How many live calls this node sees `user_id` in (someone back within a call's
    /// reconnect grace is still in it).
    fn calls_holding(&self, user_id: UserId) -> u32 {
        self.call_rooms
            .values()
            .filter(|r| r.in_call().contains(&user_id))
            .count() as u32
    }

    /// `user_id` (just put in `users`) came online: listed, and pushed.
    fn came_online(&mut self, user_id: UserId) {
        self.dirty.insert(user_id);
        self.departed.remove(&user_id);
        self.enlist(user_id);
    }

    /// `user_id` went offline (no session on any node): unlisted, and pushed as offline.
    fn went_offline(&mut self, user_id: UserId) {
        if let Some(user) = self.users.remove(&user_id) {
            self.unlist(&user.place(user_id), &user.themes);
            let mut view = user.view(user_id);
            view.status = Status::Offline;
            self.departed.insert(user_id, view);
            self.dirty.insert(user_id);
        }
    }

    /// The `presence.snapshot` frame for a new connection of `user_id` (who is online) that
    /// watches `themes`: the user, each theme's window as of the last push, the counts as
    /// last pushed, and which ids each window holds. The next push sends the differences, so
    /// snapshot and the frames after it compose to the truth. Sent in pieces, the windows'
    /// entries shared with every other snapshot until the next push.
    fn snapshot(&mut self, user_id: UserId, themes: &[SharedStr]) -> TextPieces {
        let mut head = String::from(SNAPSHOT_OPEN);
        if let Some(user) = self.users.get_mut(&user_id) {
            head.push_str(user.fragment(user_id));
        }
        let mut pieces = vec![Bytes::from(head)];
        let mut tail = String::with_capacity(64 + self.counts_json.len());
        tail.push_str(r#"],"counts":"#);
        tail.push_str(&self.counts_json);
        tail.push_str(r#","windows":{"#);
        for (i, theme) in themes.iter().enumerate() {
            let (entries, ids) = self.page(theme);
            if !entries.is_empty() {
                pieces.push(entries);
            }
            if i > 0 {
                tail.push(',');
            }
            tail.push_str(&serde_json::to_string(theme.as_str()).unwrap_or_default());
            tail.push(':');
            tail.push_str(&ids);
        }
        tail.push_str("}}");
        pieces.push(Bytes::from(tail));
        TextPieces(pieces)
    }

    /// `theme`'s window of [`PRESENCE_WINDOW`] as of the last push: its entries (each after a
    /// comma) and their ids as a JSON list; cached until the next push.
    fn page(&mut self, theme: &SharedStr) -> (Bytes, String) {
        let Some(lobby) = self.themes.get_mut(theme.as_str()) else {
            return (Bytes::new(), "[]".to_owned());
        };
        if lobby.page.is_none() {
            let (entries, ids) = window_entries(
                &mut self.users,
                &lobby.shown,
                usize::from(PRESENCE_WINDOW),
                true,
            );
            lobby.page = Some((Bytes::from(entries), ids));
        }
        lobby.page.clone().unwrap_or_default()
    }

    /// The theme's lobby, made if it has none.
    fn lobby(&mut self, theme: &str) -> &mut ThemeLobby {
        if !self.themes.contains_key(theme) {
            self.themes
                .insert(SharedStr::from(theme), ThemeLobby::default());
        }
        // Inserted just above if it was missing.
        self.themes.get_mut(theme).expect("theme lobby")
    }

    /// Marks `theme` for the next push.
    fn touch(&mut self, theme: &str) {
        if !self.touched.contains(theme) {
            self.touched.insert(SharedStr::from(theme));
        }
    }

    /// Takes `user_id` out of their themes' lists (`place`: where they stood).
    fn unlist(&mut self, place: &Place, themes: &[String]) {
        for theme in themes {
            if let Some(lobby) = self.themes.get_mut(theme.as_str()) {
                lobby.order.remove(place);
            }
            self.touch(theme);
        }
        self.counts_pace.changed(Instant::now());
    }

    /// Puts `user_id` (online) into their themes' lists.
    fn enlist(&mut self, user_id: UserId) {
        let Some(user) = self.users.get(&user_id) else {
            return;
        };
        let (place, themes) = (user.place(user_id), Arc::clone(&user.themes));
        for theme in themes.iter() {
            self.lobby(theme).order.insert(place.clone());
            self.touch(theme);
        }
        self.counts_pace.changed(Instant::now());
    }

    /// Changes an online user (status, profile), moving them in their themes' lists; marks
    /// them dirty if `dirty` says their visible presence changed.
    fn change_user(&mut self, user_id: UserId, change: impl FnOnce(&mut OnlineUser) -> bool) {
        let Some(user) = self.users.get_mut(&user_id) else {
            return;
        };
        let (place, themes) = (user.place(user_id), Arc::clone(&user.themes));
        let dirty = change(user);
        user.fragment = None;
        if dirty {
            self.unlist(&place, &themes);
            self.enlist(user_id);
            self.dirty.insert(user_id);
        }
    }

    fn set_in_call(&mut self, user_id: UserId, delta: i32) {
        if self
            .users
            .get(&user_id)
            .is_some_and(|u| !u.sessions.is_empty())
        {
            self.own_changed(user_id);
        }
        self.change_user(user_id, |user| {
            let before = user.status();
            user.in_calls = user.in_calls.saturating_add_signed(delta);
            user.status() != before
        });
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

    /// `session_id` stops watching `theme`; a theme nobody follows or watches any more is
    /// forgotten once its last change is pushed.
    fn unwatch(&mut self, theme: &str, session_id: &SessionId) {
        if let Some(lobby) = self.themes.get_mut(theme) {
            lobby.watchers.remove(session_id);
            if lobby.is_idle() && !self.touched.contains(theme) {
                self.themes.remove(theme);
            }
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
        let entry = user.sessions.remove(at);
        if user.sessions.len() * 4 < user.sessions.capacity() {
            // A user's connections are usually few: what a burst of them grew is handed back.
            user.sessions.shrink_to(user.sessions.len() * 2);
        }
        let last = user.sessions.is_empty();
        let elsewhere = !user.remote().is_empty();
        self.own_changed(user_id);
        self.connections -= 1;
        self.metrics.connections_open(self.connections);
        for theme in &entry.watching {
            self.unwatch(theme, session_id);
        }
        if last {
            if !elsewhere {
                self.went_offline(user_id);
            }
            self.hub.do_send(UserOffline { user_id, left });
            self.last_seen.touch(user_id.0);
        }
    }
}

/// What changed in a window of `limit` people of `theme` between `before` and `after` (the
/// theme's first people at the last push and now), as a `presence.batch` for its watchers:
/// everyone in the window now who is new to it or changed (`dirty`), everyone who left it
/// by going offline (as offline), and in `left` those who left it but are still online.
/// `None` when the window is as it was.
fn window_diff(
    theme: &str,
    before: &[UserId],
    after: &[UserId],
    limit: usize,
    dirty: &HashSet<UserId>,
    users: &HashMap<UserId, OnlineUser>,
    departed: &HashMap<UserId, PresenceView>,
) -> Option<ByteString> {
    let before = &before[..before.len().min(limit)];
    let after = &after[..after.len().min(limit)];
    let sorted = |ids: &[UserId]| {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids
    };
    let (was, is) = (sorted(before), sorted(after));
    let mut updates = Vec::new();
    for id in after {
        if dirty.contains(id) || was.binary_search(id).is_err() {
            if let Some(user) = users.get(id) {
                updates.push(user.view(*id));
            }
        }
    }
    let mut left = Vec::new();
    for id in before {
        if is.binary_search(id).is_ok() {
            continue;
        }
        if users.contains_key(id) {
            left.push(*id);
        } else if let Some(view) = departed.get(id) {
            updates.push(view.clone());
        }
    }
    if updates.is_empty() && left.is_empty() {
        return None;
    }
    Some(
        ServerMsg::PresenceBatch {
            theme: Some(theme),
            updates: &updates,
            left: &left,
        }
        .encode(),
    )
}

/// The entries (each after a comma if `leading_commas`, else between commas) of the first
/// `limit` of `ids` who are online, and their ids as a JSON list.
fn window_entries(
    users: &mut HashMap<UserId, OnlineUser>,
    ids: &[UserId],
    limit: usize,
    leading_commas: bool,
) -> (String, String) {
    let mut entries = String::new();
    let mut list = String::from("[");
    for id in ids.iter().take(limit) {
        let Some(user) = users.get_mut(id) else {
            continue;
        };
        if leading_commas || !entries.is_empty() {
            entries.push(',');
        }
        entries.push_str(user.fragment(*id));
        if list.len() > 1 {
            list.push(',');
        }
        list.push_str(&id.0.to_string());
    }
    list.push(']');
    (entries, list)
}

/// `presence.update` for one change, `presence.batch` for several.
fn updates_frame(views: &[PresenceView]) -> ByteString {
    match views {
        [one] => ServerMsg::PresenceUpdate(one).encode(),
        many => ServerMsg::PresenceBatch {
            theme: None,
            updates: many,
            left: &[],
        }
        .encode(),
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

    fn started(&mut self, ctx: &mut Self::Context) {
        self.start_cluster(ctx);
    }
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
        let in_calls = self.calls_holding(msg.user_id);
        let user = self.users.entry(msg.user_id).or_insert_with(|| OnlineUser {
            sort_name: SharedStr::from(msg.nickname.to_lowercase()),
            nickname: msg.nickname.clone(),
            capabilities: msg.capabilities,
            themes: Arc::clone(&msg.themes),
            chosen: ChosenStatus::Online,
            // Back within a call's reconnect grace: still in that call.
            in_calls,
            sessions: Vec::new(),
            elsewhere: None,
            fragment: None,
        });
        // Online already if another node holds a session of theirs.
        let arrived = user.sessions.is_empty() && user.remote().is_empty();
        // A new session watches its user's themes (as they are now).
        let watching: Vec<SharedStr> = user
            .themes
            .iter()
            .map(|t| SharedStr::from(t.as_str()))
            .collect();
        user.sessions.push(SessionEntry {
            id: session_id.clone(),
            auth_session_id: msg.auth_session_id,
            deliver: deliver.clone(),
            close,
            watching: watching.clone(),
        });
        if arrived {
            self.last_seen.touch(msg.user_id.0);
            self.came_online(msg.user_id);
        }
        self.own_changed(msg.user_id);
        self.hub.do_send(UserOnline {
            user_id: msg.user_id,
            deliver: deliver.clone(),
        });
        for theme in &watching {
            self.lobby(theme).watchers.insert(
                session_id.clone(),
                Watcher {
                    limit: PRESENCE_WINDOW,
                    deliver: deliver.clone(),
                },
            );
        }
        self.connections += 1;
        self.metrics.connections_open(self.connections);
        MessageResult(self.snapshot(msg.user_id, &watching))
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
        self.own_changed(msg.user_id);
        let clustered = self.cluster.is_some();
        self.change_user(msg.user_id, |user| {
            let before = user.status();
            user.chosen = msg.status;
            if clustered {
                user.elsewhere_mut().chosen_at = db::now_ms();
            }
            user.status() != before
        });
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
        let at = db::now_ms();
        if let Some(broker) = &self.broker {
            // Every node that shows the user learns it (also those with no session of the
            // user's, whose records would not say it).
            broker.publish(
                &Topic::Presence,
                Kind::Presence,
                &remote::PresenceMsg::Profile(remote::Profile {
                    user: msg.user_id,
                    nickname: msg.nickname.clone(),
                    capabilities: msg.capabilities,
                    themes: msg.themes.to_vec(),
                    at,
                }),
            );
        }
        self.change_profile(msg.user_id, msg.nickname, msg.capabilities, msg.themes, at);
    }
}

impl PresenceActor {
    /// `user_id`'s profile as of `at` (ms), unless a later one is known.
    fn change_profile(
        &mut self,
        user_id: UserId,
        nickname: SharedStr,
        capabilities: Capabilities,
        themes: Arc<[String]>,
        at: i64,
    ) {
        if self
            .users
            .get(&user_id)
            .is_some_and(|u| !u.sessions.is_empty())
        {
            self.own_changed(user_id);
        }
        // The user's sessions keep watching what they watch: a client that wants its new
        // themes' windows subscribes to them (the browser app does).
        let clustered = self.cluster.is_some();
        self.change_user(user_id, |user| {
            if clustered {
                let elsewhere = user.elsewhere_mut();
                if at < elsewhere.profile_at {
                    return false;
                }
                elsewhere.profile_at = at;
            }
            user.sort_name = SharedStr::from(nickname.to_lowercase());
            user.nickname = nickname;
            user.capabilities = capabilities;
            user.themes = themes;
            true
        });
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
        if let Some(broker) = &self.broker {
            // The user's connections on the other nodes close too.
            broker.publish(
                &Topic::All,
                Kind::Session,
                &SessionMsg::Revoke {
                    user: msg.user_id,
                    which: msg.which,
                },
            );
        }
        self.revoke(msg.user_id, msg.which);
    }
}

impl PresenceActor {
    /// Closes (4001) the connections of this node that `which` of `user_id`'s login sessions
    /// opened.
    fn revoke(&self, user_id: UserId, which: Revoked) {
        let Some(user) = self.users.get(&user_id) else {
            return;
        };
        for entry in &user.sessions {
            let hit = match which {
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
        let here = self.send_to_user(msg.user_id, &msg.frame, msg.except.as_ref());
        if self.cluster.is_none() {
            return here;
        }
        here + self.send_to_remote(msg.user_id, &msg.frame, msg.except.as_ref())
    }
}

impl PresenceActor {
    /// Delivers `frame` to every session of `user_id` on this node but `except`; answers how
    /// many got it.
    fn send_to_user(
        &self,
        user_id: UserId,
        frame: &ByteString,
        except: Option<&SessionId>,
    ) -> usize {
        let Some(user) = self.users.get(&user_id) else {
            return 0;
        };
        let mut sent = 0;
        for entry in &user.sessions {
            if except == Some(&entry.id) {
                continue;
            }
            entry.deliver.do_send(Deliver(frame.clone()));
            sent += 1;
        }
        sent
    }
}

/// What another node asks of this node's sessions ([`Kind::Session`]).
impl Handler<Inbound> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: Inbound, _: &mut Self::Context) {
        let Some(asked) = msg.parse::<SessionMsg>() else {
            return;
        };
        match asked {
            SessionMsg::Frame {
                user,
                session,
                frame,
            } => {
                let entry = self
                    .users
                    .get(&user)
                    .and_then(|u| u.sessions.iter().find(|s| s.id == session));
                if let Some(entry) = entry {
                    entry.deliver.do_send(Deliver(ByteString::from(frame)));
                }
            }
            SessionMsg::ToUser {
                user,
                frame,
                except,
            } => {
                self.send_to_user(user, &ByteString::from(frame), except.as_ref());
            }
            SessionMsg::Revoke { user, which } => self.revoke(user, which),
        }
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

/// A session watches the first `limit` people of `theme` (`presence.subscribe`): it is sent
/// that window now (`presence.window`, or an `error`), and what changes in it afterwards.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Subscribe {
    pub user_id: UserId,
    pub session_id: SessionId,
    /// The frame's `id`, echoed on the reply.
    pub id: Option<FrameId>,
    pub theme: String,
    pub limit: u16,
}

impl Handler<Subscribe> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _: &mut Self::Context) {
        let Some(entry) = self.session_mut(msg.user_id, &msg.session_id) else {
            return;
        };
        let deliver = entry.deliver.clone();
        if !entry.watching.iter().any(|t| t.as_str() == msg.theme) {
            if entry.watching.len() >= MAX_WATCHED_THEMES {
                let message = format!(
                    "a connection may watch at most {MAX_WATCHED_THEMES} themes; unsubscribe from one first"
                );
                deliver.do_send(Deliver(error_frame(
                    msg.id.as_ref(),
                    ErrorCode::Conflict,
                    &message,
                )));
                return;
            }
            entry.watching.push(SharedStr::from(msg.theme.as_str()));
        }
        let lobby = self.lobby(&msg.theme);
        lobby.watchers.insert(
            msg.session_id,
            Watcher {
                limit: msg.limit,
                deliver: deliver.clone(),
            },
        );
        let online = lobby.order.len();
        let shown = lobby.shown.clone();
        // As of the last push, like a snapshot: the next push sends what changed since.
        let (entries, _) = window_entries(&mut self.users, &shown, usize::from(msg.limit), false);
        let mut frame = String::with_capacity(entries.len() + 128);
        frame.push_str(r#"{"type":"presence.window","#);
        if let Some(id) = &msg.id {
            frame.push_str(r#""id":"#);
            frame.push_str(&serde_json::to_string(id).unwrap_or_default());
            frame.push(',');
        }
        frame.push_str(r#""theme":"#);
        frame.push_str(&serde_json::to_string(&msg.theme).unwrap_or_default());
        frame.push_str(&format!(
            r#","limit":{},"online":{online},"users":["#,
            msg.limit
        ));
        frame.push_str(&entries);
        frame.push_str("]}");
        deliver.do_send(Deliver(ByteString::from(frame)));
    }
}

/// A session stops watching `theme` (`presence.unsubscribe`).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Unsubscribe {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub theme: String,
}

impl Handler<Unsubscribe> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Self::Context) {
        let Some(entry) = self.session_mut(msg.user_id, &msg.session_id) else {
            return;
        };
        entry.watching.retain(|t| t.as_str() != msg.theme);
        self.unwatch(&msg.theme, &msg.session_id);
    }
}

/// The users in a live room (any kind) changed: people who share a room follow each
/// other's presence. Empty: the room is gone.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RoomUsers {
    pub room: RoomName,
    /// Distinct, sorted.
    pub users: Vec<UserId>,
}

impl Handler<RoomUsers> for PresenceActor {
    type Result = ();

    fn handle(&mut self, msg: RoomUsers, _: &mut Self::Context) {
        let before = if msg.users.is_empty() {
            self.rooms.remove(&msg.room)
        } else {
            self.rooms.insert(msg.room.clone(), msg.users.clone())
        }
        .unwrap_or_default();
        let added: Vec<UserId> = msg
            .users
            .iter()
            .filter(|u| !before.contains(u))
            .copied()
            .collect();
        let gone: Vec<UserId> = before
            .iter()
            .filter(|u| !msg.users.contains(u))
            .copied()
            .collect();
        for user in &added {
            self.rooms_of
                .entry(*user)
                .or_default()
                .push(msg.room.clone());
        }
        for user in &gone {
            if let Some(rooms) = self.rooms_of.get_mut(user) {
                rooms.retain(|r| *r != msg.room);
                if rooms.is_empty() {
                    self.rooms_of.remove(user);
                }
            }
        }
        // Newcomers learn how the others are, and the others how the newcomers are; those
        // who left are shown as they are now (offline, if that is why they left).
        let view_of = |id: &UserId| -> Option<PresenceView> {
            self.users
                .get(id)
                .map(|u| u.view(*id))
                .or_else(|| self.departed.get(id).cloned())
        };
        let mut to: Vec<(UserId, Vec<PresenceView>)> = Vec::new();
        for user in &added {
            let views: Vec<PresenceView> = msg
                .users
                .iter()
                .filter(|u| *u != user)
                .filter_map(view_of)
                .collect();
            to.push((*user, views));
        }
        let news: Vec<PresenceView> = added.iter().chain(&gone).filter_map(view_of).collect();
        for user in msg.users.iter().filter(|u| !added.contains(u)) {
            to.push((*user, news.clone()));
        }
        for (recipient, views) in to {
            if views.is_empty() {
                continue;
            }
            if let Some(user) = self.users.get(&recipient) {
                let frame = updates_frame(&views);
                for entry in &user.sessions {
                    entry.deliver.do_send(Deliver(frame.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counts_of_a_burst_go_out_once_it_is_over_not_a_whole_spacing_after_the_last_push() {
        let ms = Duration::from_millis;
        let spacing = Duration::from_secs(3);
        let t0 = Instant::now();
        let mut pace = CountsPace::new(t0);
        assert!(!pace.may_push(t0), "nothing changed");
        pace.changed(t0);
        assert!(pace.may_push(t0), "the first change goes out at once");
        pace.done(t0, true, spacing);
        // A crowd keeps arriving for 1.1 s, then stops.
        for at in (100..=1_100).step_by(100) {
            pace.changed(t0 + ms(at));
            assert!(!pace.may_push(t0 + ms(at)), "mid-burst, at {at} ms");
        }
        assert!(!pace.may_push(t0 + ms(1_200)), "not quiet yet");
        // Quiet for COUNTS_QUIET: its last counts go out now, not at 3 s.
        assert!(pace.may_push(t0 + ms(1_350)));
        pace.done(t0 + ms(1_350), true, spacing);
        // The push after an early one waits two spacings; meanwhile no other comes early.
        pace.changed(t0 + ms(2_000));
        assert!(!pace.may_push(t0 + ms(3_000)));
        assert!(!pace.may_push(t0 + ms(7_300)));
        assert!(pace.may_push(t0 + ms(7_350)));
        pace.done(t0 + ms(7_350), true, spacing);
        // Counts looked at and found unchanged do not move the spacing.
        pace.changed(t0 + ms(10_400));
        assert!(pace.may_push(t0 + ms(10_400)));
        pace.done(t0 + ms(10_400), false, spacing);
        assert!(!pace.may_push(t0 + ms(10_500)), "nothing changed since");
    }

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

    fn online(name: &str) -> OnlineUser {
        OnlineUser {
            nickname: SharedStr::from(name),
            sort_name: SharedStr::from(name),
            capabilities: Capabilities::default(),
            themes: Arc::from(vec!["Jogos".to_owned()]),
            chosen: ChosenStatus::Online,
            in_calls: 0,
            sessions: Vec::new(),
            elsewhere: None,
            fragment: None,
        }
    }

    #[test]
    fn a_window_diff_has_newcomers_changes_and_departures_and_names_who_was_pushed_out() {
        let ids = |list: &[i64]| list.iter().map(|&i| UserId(i)).collect::<Vec<_>>();
        let mut users: HashMap<UserId, OnlineUser> = HashMap::new();
        for (id, name) in [(1, "ana"), (2, "bia"), (3, "carla"), (5, "aaron")] {
            users.insert(UserId(id), online(name));
        }
        let mut departed = HashMap::new();
        let mut gone = online("dora").view(UserId(4));
        gone.status = Status::Offline;
        departed.insert(UserId(4), gone);
        let dirty: HashSet<UserId> = [UserId(2), UserId(4), UserId(5)].into();
        // Window of 3: [ana, bia, dora] became [aaron, ana, bia]; carla, fourth, was pushed
        // out of a window of 4.
        let before = ids(&[1, 2, 4, 3]);
        let after = ids(&[5, 1, 2, 3]);
        let frame = window_diff("Jogos", &before, &after, 3, &dirty, &users, &departed)
            .expect("the window changed");
        let frame: serde_json::Value = serde_json::from_str(&frame).expect("JSON");
        assert_eq!(frame["theme"], "Jogos");
        let updates: Vec<(i64, &str)> = frame["updates"]
            .as_array()
            .expect("updates")
            .iter()
            .map(|u| {
                (
                    u["user_id"].as_i64().unwrap(),
                    u["status"].as_str().unwrap(),
                )
            })
            .collect();
        // aaron entered, bia changed, dora went offline; ana did not change.
        assert_eq!(updates, [(5, "online"), (2, "online"), (4, "offline")]);
        assert!(frame.get("left").is_none());
        let wider = window_diff(
            "Jogos",
            &before,
            &ids(&[5, 1, 2, 6]),
            4,
            &HashSet::new(),
            &users,
            &departed,
        )
        .expect("changed");
        let wider: serde_json::Value = serde_json::from_str(&wider).expect("JSON");
        assert_eq!(wider["left"], serde_json::json!([3]));
        assert!(window_diff(
            "Jogos",
            &before,
            &before,
            4,
            &HashSet::new(),
            &users,
            &departed
        )
        .is_none());
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
            sort_name: SharedStr::from("ana"),
            chosen: ChosenStatus::Busy,
            in_calls: 0,
            sessions: Vec::new(),
            elsewhere: None,
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
