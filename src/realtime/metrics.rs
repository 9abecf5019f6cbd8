//! The realtime core's series in the `/metrics` registry ([`crate::metrics::Metrics`]):
//! live connections, rooms and calls, frames in and out by type, closes by code.
//!
//! Every handle is taken once, when the actors start; the hot paths only bump atomics.

use super::protocol::{CLIENT_TYPES, SERVER_TYPES};
use crate::metrics::{Counter, Gauge, Metrics};

/// The code a connection is counted under when it was lost without a close frame (a reset,
/// or the client's side ended without one): RFC 6455's 1006, which is never sent on the wire.
pub(crate) const CLOSE_LOST: u16 = 1006;

/// Close codes counted one by one; anything else is counted as `other`.
const CLOSE_CODES: [u16; 10] = [
    1000, 1001, 1002, CLOSE_LOST, 1007, 1008, 1009, 1011, 1013, 4001,
];

const FRAMES_IN: &str = "tertulia_ws_frames_in_total";
const FRAMES_IN_HELP: &str = "WebSocket frames received from clients, by type";
const FRAMES_OUT: &str = "tertulia_ws_frames_out_total";
const FRAMES_OUT_HELP: &str = "WebSocket frames queued to clients, by type";
const CLOSES: &str = "tertulia_ws_closes_total";
const CLOSES_HELP: &str =
    "WebSocket connections ended, by the close code the server sent (1006: lost without a close frame)";

/// Handles on the realtime series.
#[derive(Debug)]
pub struct RealtimeMetrics {
    connections: Gauge,
    rooms: Gauge,
    calls: Gauge,
    /// By [`CLIENT_TYPES`] index, then one for frames that could not be parsed.
    frames_in: Vec<Counter>,
    /// By [`SERVER_TYPES`] index, then one for anything else.
    frames_out: Vec<Counter>,
    /// By [`CLOSE_CODES`] index, then one for other codes.
    closes: Vec<Counter>,
    /// Chat transactions committed, and the messages they carried (their ratio is the
    /// group commit's batch size).
    chat_commits: Counter,
    chat_committed: Counter,
    /// Chat messages a room of this node read from the database to deliver, because the
    /// broker had not brought them (several nodes: a gap, or the periodic catch-up).
    chat_caught_up: Counter,
    /// Live rooms this node counts for the whole cluster (several nodes): those with members
    /// here and on no node whose id sorts before this one's, so that a room with members on
    /// two nodes counts once in the cluster's total.
    rooms_counted_here: std::sync::atomic::AtomicI64,
}

impl Default for RealtimeMetrics {
    /// Handles on a private registry (nothing is exported).
    fn default() -> Self {
        RealtimeMetrics::new(&Metrics::new())
    }
}

impl RealtimeMetrics {
    /// Registers (or finds) every realtime series in `registry`.
    pub fn new(registry: &Metrics) -> Self {
        let frames_in = CLIENT_TYPES
            .iter()
            .copied()
            .chain(["invalid"])
            .map(|t| registry.counter(FRAMES_IN, FRAMES_IN_HELP, &[("type", t)]))
            .collect();
        let frames_out = SERVER_TYPES
            .iter()
            .copied()
            .chain(["other"])
            .map(|t| registry.counter(FRAMES_OUT, FRAMES_OUT_HELP, &[("type", t)]))
            .collect();
        let closes = CLOSE_CODES
            .iter()
            .map(u16::to_string)
            .chain(["other".to_owned()])
            .map(|code| registry.counter(CLOSES, CLOSES_HELP, &[("code", &code)]))
            .collect();
        RealtimeMetrics {
            connections: registry.gauge(
                "tertulia_ws_connections",
                "Open WebSocket connections",
                &[],
            ),
            rooms: registry.gauge("tertulia_rooms_live", "Rooms with at least one member", &[]),
            calls: registry.gauge("tertulia_calls_live", "Calls ringing or in progress", &[]),
            frames_in,
            frames_out,
            closes,
            chat_commits: registry.counter(
                "tertulia_chat_commits_total",
                "Chat transactions committed (group commit: each carries every message that waited)",
                &[],
            ),
            chat_committed: registry.counter(
                "tertulia_chat_committed_messages_total",
                "Chat messages carried by committed transactions, retries included",
                &[],
            ),
            chat_caught_up: registry.counter(
                "tertulia_chat_caught_up_total",
                "Chat messages delivered from the database because the broker did not bring them in time (several nodes)",
                &[],
            ),
            rooms_counted_here: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// Sets the number of open connections.
    pub(crate) fn connections_open(&self, n: usize) {
        self.connections.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets the number of live rooms.
    pub(crate) fn rooms_live(&self, n: usize) {
        self.rooms.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets the number of live (ringing or accepted) calls.
    pub(crate) fn calls_live(&self, n: usize) {
        self.calls.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts one client frame of a known `type`.
    pub fn frame_in(&self, type_name: &str) {
        let i = CLIENT_TYPES
            .iter()
            .position(|t| *t == type_name)
            .unwrap_or(CLIENT_TYPES.len());
        self.frames_in[i].inc();
    }

    /// Counts one client frame that could not be parsed.
    pub fn frame_in_invalid(&self) {
        self.frames_in[CLIENT_TYPES.len()].inc();
    }

    /// Counts one frame queued to a client, by the `type` its text starts with.
    pub fn frame_out(&self, frame: &[u8]) {
        // Every server frame is serialized with `type` first: `{"type":"<name>",...`.
        let name = frame
            .strip_prefix(b"{\"type\":\"")
            .and_then(|rest| rest.split(|&b| b == b'"').next())
            .unwrap_or_default();
        let i = SERVER_TYPES
            .iter()
            .position(|t| t.as_bytes() == name)
            .unwrap_or(SERVER_TYPES.len());
        self.frames_out[i].inc();
    }

    /// Counts one connection closed by the server with `code`.
    pub fn close(&self, code: u16) {
        let i = CLOSE_CODES
            .iter()
            .position(|c| *c == code)
            .unwrap_or(CLOSE_CODES.len());
        self.closes[i].inc();
    }

    /// Counts one committed chat transaction that carried `messages`.
    pub(crate) fn chat_commit(&self, messages: usize) {
        self.chat_commits.inc();
        self.chat_committed
            .add(u64::try_from(messages).unwrap_or(u64::MAX));
    }

    /// Counts chat messages delivered from the database rather than by the broker.
    pub(crate) fn chat_caught_up(&self, messages: usize) {
        self.chat_caught_up
            .add(u64::try_from(messages).unwrap_or(u64::MAX));
    }

    /// Live connections, rooms and calls.
    pub(crate) fn gauges(&self) -> (i64, i64, i64) {
        (self.connections.get(), self.rooms.get(), self.calls.get())
    }

    /// A room of this node starts (`true`) or stops (`false`) being one it counts for the
    /// cluster (see [`RealtimeMetrics::cluster_share`]).
    pub(crate) fn room_counted_here(&self, counted: bool) {
        let delta = if counted { 1 } else { -1 };
        self.rooms_counted_here
            .fetch_add(delta, std::sync::atomic::Ordering::Relaxed);
    }

    /// This node's part of the cluster's live connections, rooms and calls (the admin
    /// stats add up every node's): its connections and calls, and the rooms it counts.
    pub(crate) fn cluster_share(&self) -> (i64, i64, i64) {
        let rooms = self
            .rooms_counted_here
            .load(std::sync::atomic::Ordering::Relaxed);
        (self.connections.get(), rooms, self.calls.get())
    }
}
