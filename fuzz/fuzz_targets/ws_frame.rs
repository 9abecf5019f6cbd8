//! A client's WebSocket text frame, as the session reads it before dispatch
//! (`SessionActor::on_text` in src/realtime/session.rs): parsed by
//! `realtime::protocol::parse`, counted by type, and either answered with an `error` frame
//! that echoes the frame's `id` or handed on; a `signal`'s `data` is relayed byte for byte.
//!
//! actix-ws only ever hands the session valid UTF-8 (a text frame that is not closes the
//! connection), so other inputs stop at that check, as they do in the server.
//!
//! Beyond "no panic": every frame the server would send back is valid JSON of the right
//! `type`; an accepted frame's fields keep the protocol's limits; and one frame's heap use
//! stays within `tertulia_fuzz::budget` (no allocation sized by what the input claims).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{value::RawValue, Value};
use tertulia::{
    error::ErrorCode,
    realtime::{
        metrics::RealtimeMetrics,
        protocol::{
            self, ClientMsg, FrameId, RoomName, ServerMsg, SessionId, SharedStr,
            MAX_CLIENT_MSG_ID_CHARS, MAX_TEXT_CHARS,
        },
    },
};

/// The series the session counts frames in, registered once (not part of an input's cost).
static METRICS: OnceLock<RealtimeMetrics> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let metrics = METRICS.get_or_init(RealtimeMetrics::default);
    tertulia_fuzz::checked(data.len(), || read(text, metrics));
});

/// The JSON text of a frame the server sends, checked to be one object of type `kind`.
fn sent(frame: &str, kind: &str) -> Value {
    let value: Value = serde_json::from_str(frame)
        .unwrap_or_else(|e| panic!("the server would send invalid JSON ({e}): {frame}"));
    assert_eq!(value["type"], kind, "{frame}");
    value
}

/// A relayed `signal` as its receiver reads it: `data` is what the sender wrote, byte for
/// byte, inside a well-formed frame.
///
/// Read as `RawValue` reads it, not into a `Value`: `data` is checked for JSON's grammar
/// only, so a string in it may hold an escaped lone surrogate (`"\ude00"`: valid grammar,
/// read by browsers' `JSON.parse`, refused by strict decoders such as serde_json's `String`),
/// and it is relayed as it came.
fn relayed(frame: &str, data: &str) {
    #[derive(serde::Deserialize)]
    struct Relayed<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        #[serde(borrow)]
        data: &'a RawValue,
    }
    let read: Relayed<'_> = serde_json::from_str(frame)
        .unwrap_or_else(|e| panic!("the server would relay an ill-formed signal ({e}): {frame}"));
    assert_eq!(read.kind, "signal");
    assert_eq!(
        read.data.get(),
        data,
        "signal data is relayed byte for byte"
    );
}

/// The `id` as the server echoes it.
fn echoed(id: Option<&FrameId>) -> Value {
    id.map_or(Value::Null, |id| {
        serde_json::to_value(id).expect("an id is plain JSON")
    })
}

/// What the session does with one text frame before dispatch, and what dispatch does with it
/// without another actor.
fn read(text: &str, metrics: &RealtimeMetrics) {
    let frame = match protocol::parse(text) {
        Err(bad) => {
            metrics.frame_in_invalid();
            let reply = protocol::error_frame(bad.id.as_ref(), ErrorCode::BadRequest, &bad.message);
            metrics.frame_out(reply.as_bytes());
            let value = sent(&reply, "error");
            assert_eq!(value["code"], "bad_request");
            assert_eq!(
                value.get("id").cloned().unwrap_or(Value::Null),
                echoed(bad.id.as_ref())
            );
            return;
        }
        Ok(frame) => frame,
    };
    metrics.frame_in(frame.msg.type_name());
    assert!(protocol::CLIENT_TYPES.contains(&frame.msg.type_name()));
    let id = frame.id.as_ref();
    let pong = ServerMsg::Pong { id }.encode();
    assert_eq!(
        sent(&pong, "pong")
            .get("id")
            .cloned()
            .unwrap_or(Value::Null),
        echoed(id)
    );
    match &frame.msg {
        ClientMsg::Signal {
            room, kind, data, ..
        } => {
            // Relayed as the room does, from a session of this server.
            let from = SessionId(SharedStr::from("s-aaaaaaaaaaaaa"));
            let (room_name, _) = RoomName::parse("call:c-1").expect("a valid room name");
            let out = ServerMsg::Signal {
                room: &room_name,
                from: &from,
                kind: *kind,
                data,
            }
            .encode();
            relayed(&out, data.get());
            // A signal for a room not joined is refused naming the room, cut to 64 chars.
            let named: String = room.chars().take(64).collect();
            let refusal = format!("you have not joined room '{named}'");
            let reply = protocol::error_frame(id, ErrorCode::Forbidden, &refusal);
            sent(&reply, "error");
        }
        ClientMsg::ChatSend {
            room,
            client_msg_id,
            text,
        } => {
            let chars = text.chars().count();
            assert!((1..=MAX_TEXT_CHARS).contains(&chars) && !text.trim().is_empty());
            assert!((1..=MAX_CLIENT_MSG_ID_CHARS).contains(&client_msg_id.chars().count()));
            reparses(room);
        }
        ClientMsg::RoomJoin { room, kind, .. } | ClientMsg::ChatHistory { room, kind, .. } => {
            assert_eq!(reparses(room), *kind);
        }
        ClientMsg::RoomLeave { room } | ClientMsg::ChatTyping { room } => {
            reparses(room);
        }
        ClientMsg::CallInvite {
            room: Some((room, kind)),
            ..
        } => {
            assert_eq!(reparses(room), *kind);
        }
        _ => {}
    }
}

/// A room name the parser accepted is accepted again, as the same kind of room (rooms are
/// looked up and stored by it).
fn reparses(room: &RoomName) -> protocol::RoomRef {
    let (again, kind) = RoomName::parse(room.as_str()).expect("an accepted room name parses again");
    assert_eq!(&again, room);
    kind
}
