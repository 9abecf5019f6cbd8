//! Counters of the realtime core, kept lock-free so the hot paths only add to atomics.
//!
//! [`RealtimeMetrics::render`] writes them in the Prometheus text format, ready to be
//! appended to `/metrics`.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
};

use super::protocol::{CLIENT_TYPES, SERVER_TYPES};

/// Close codes counted one by one; anything else is counted as `other`.
const CLOSE_CODES: [u16; 9] = [1000, 1001, 1002, 1007, 1008, 1009, 1011, 1013, 4001];

/// Live gauges and running totals of the WebSocket side.
#[derive(Debug, Default)]
pub struct RealtimeMetrics {
    connections: AtomicU64,
    rooms: AtomicU64,
    calls: AtomicU64,
    frames_in: [AtomicU64; CLIENT_TYPES.len()],
    frames_in_invalid: AtomicU64,
    frames_out: [AtomicU64; SERVER_TYPES.len() + 1],
    closes: [AtomicU64; CLOSE_CODES.len() + 1],
}

impl RealtimeMetrics {
    /// Sets the number of open connections.
    pub fn connections_open(&self, n: usize) {
        self.connections.store(n as u64, Ordering::Relaxed);
    }

    /// Sets the number of live rooms.
    pub fn rooms_live(&self, n: usize) {
        self.rooms.store(n as u64, Ordering::Relaxed);
    }

    /// Sets the number of live (ringing or accepted) calls.
    pub fn calls_live(&self, n: usize) {
        self.calls.store(n as u64, Ordering::Relaxed);
    }

    /// Counts one client frame of a known `type`.
    pub fn frame_in(&self, type_name: &str) {
        match CLIENT_TYPES.iter().position(|t| *t == type_name) {
            Some(i) => self.frames_in[i].fetch_add(1, Ordering::Relaxed),
            None => self.frames_in_invalid.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Counts one client frame that could not be parsed.
    pub fn frame_in_invalid(&self) {
        self.frames_in_invalid.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one frame queued to a client, by the `type` its text starts with.
    pub fn frame_out(&self, frame: &str) {
        // Every server frame is serialized with `type` first: `{"type":"<name>",...`.
        let name = frame
            .strip_prefix("{\"type\":\"")
            .and_then(|rest| rest.split_once('"'))
            .map_or("", |(name, _)| name);
        let i = SERVER_TYPES
            .iter()
            .position(|t| *t == name)
            .unwrap_or(SERVER_TYPES.len());
        self.frames_out[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one connection closed by the server with `code`.
    pub fn close(&self, code: u16) {
        let i = CLOSE_CODES
            .iter()
            .position(|c| *c == code)
            .unwrap_or(CLOSE_CODES.len());
        self.closes[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Live connections, rooms and calls.
    pub fn gauges(&self) -> (u64, u64, u64) {
        (
            self.connections.load(Ordering::Relaxed),
            self.rooms.load(Ordering::Relaxed),
            self.calls.load(Ordering::Relaxed),
        )
    }

    /// The counters in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let (conns, rooms, calls) = self.gauges();
        let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            &mut out,
            "tertulia_ws_connections",
            "Open WebSocket connections.",
            conns,
        );
        gauge(
            &mut out,
            "tertulia_rooms_live",
            "Rooms with at least one member.",
            rooms,
        );
        gauge(
            &mut out,
            "tertulia_calls_live",
            "Calls ringing or in progress.",
            calls,
        );
        let _ = writeln!(
            out,
            "# HELP tertulia_ws_frames_in_total Client frames received, by type.\n\
             # TYPE tertulia_ws_frames_in_total counter"
        );
        for (t, n) in CLIENT_TYPES.iter().zip(&self.frames_in) {
            let _ = writeln!(
                out,
                "tertulia_ws_frames_in_total{{type=\"{t}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "tertulia_ws_frames_in_total{{type=\"invalid\"}} {}",
            self.frames_in_invalid.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP tertulia_ws_frames_out_total Frames queued to clients, by type.\n\
             # TYPE tertulia_ws_frames_out_total counter"
        );
        for (i, n) in self.frames_out.iter().enumerate() {
            let t = SERVER_TYPES.get(i).copied().unwrap_or("other");
            let _ = writeln!(
                out,
                "tertulia_ws_frames_out_total{{type=\"{t}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tertulia_ws_closes_total Connections closed by the server, by close code.\n\
             # TYPE tertulia_ws_closes_total counter"
        );
        for (i, n) in self.closes.iter().enumerate() {
            let code = CLOSE_CODES
                .get(i)
                .map_or_else(|| "other".to_owned(), u16::to_string);
            let _ = writeln!(
                out,
                "tertulia_ws_closes_total{{code=\"{code}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        out
    }
}
