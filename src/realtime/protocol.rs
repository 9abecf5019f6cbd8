//! The WebSocket wire protocol v1 (`docs/protocol.md`): one enum per direction.
//!
//! Client frames are parsed once, at the session boundary, into [`ClientFrame`]; every actor
//! behind the session only ever sees typed values. Server frames are [`ServerMsg`] values,
//! serialized once into a [`ByteString`] that is shared by every recipient of a fan-out.
//!
//! Parsing is two quick passes over the text instead of serde's internally tagged enums:
//! the first reads only `type` and `id`, the second reads the variant's own fields straight
//! from the text. That keeps `signal.data` an opaque borrowed [`RawValue`] (SDP is relayed
//! byte for byte, never rebuilt as a JSON tree) and avoids serde's intermediate buffering.

use std::sync::Arc;

use bytestring::ByteString;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

// The vocabulary the frames are made of; re-exported, as the wire's own names for it.
pub use crate::domain::{
    CallId, Capabilities, ChosenStatus, Cursor, Media, RoomName, RoomRef, SessionId, SharedStr,
    Status, UserId, MAX_ROOM_CHARS,
};
use crate::error::ErrorCode;

/// Most characters in a chat message's text.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Most characters in a client-chosen message id.
pub const MAX_CLIENT_MSG_ID_CHARS: usize = 128;
/// The `id` a client may put on any frame; echoed on the direct reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FrameId {
    Num(i64),
    Str(String),
}

/// The kind of a WebRTC signaling payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Offer,
    Answer,
    Candidate,
}

/// A frame from a client: its optional `id` and what it asks for.
#[derive(Debug)]
pub struct ClientFrame {
    pub id: Option<FrameId>,
    pub msg: ClientMsg,
}

/// Everything a client may send (`type` on the wire in brackets).
#[derive(Debug)]
pub enum ClientMsg {
    /// `ping`
    Ping,
    /// `presence.set`
    PresenceSet { status: ChosenStatus },
    /// `presence.subscribe` (revision 1.2): watch a theme's first `limit` people.
    PresenceSubscribe { theme: String, limit: Option<u16> },
    /// `presence.unsubscribe` (revision 1.2): stop watching a theme.
    PresenceUnsubscribe { theme: String },
    /// `call.invite`
    CallInvite {
        to: UserId,
        media: Media,
        room: Option<(RoomName, RoomRef)>,
    },
    /// `call.accept`
    CallAccept { call_id: String },
    /// `call.decline`
    CallDecline { call_id: String },
    /// `call.cancel`
    CallCancel { call_id: String },
    /// `call.hangup`
    CallHangup { call_id: String },
    /// `room.join`
    RoomJoin {
        room: RoomName,
        kind: RoomRef,
        since: Option<i64>,
    },
    /// `room.leave`
    RoomLeave { room: RoomName },
    /// `signal`
    Signal {
        room: String,
        to: String,
        kind: SignalKind,
        data: Box<RawValue>,
    },
    /// `chat.send`
    ChatSend {
        room: RoomName,
        client_msg_id: String,
        text: String,
    },
    /// `chat.typing`
    ChatTyping { room: RoomName },
    /// `chat.history`
    ChatHistory {
        room: RoomName,
        kind: RoomRef,
        /// From `before` (scrolling back) or `after` (catching up), never both.
        cursor: Cursor,
        limit: Option<i64>,
    },
    /// `conversations.list` (revision 1.3)
    ConversationsList,
    /// `conversation.read` (revision 1.3): the user has read `room` up to `msg_id`.
    ConversationRead { room: RoomName, msg_id: i64 },
    /// `conversation.invite` (revision 1.3): bring `user` into the conversation `room` (a
    /// direct one becomes a new group of three).
    ConversationInvite {
        room: RoomName,
        kind: RoomRef,
        user: UserId,
    },
}

impl ClientMsg {
    /// The wire `type`, for metrics and logs.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMsg::Ping => "ping",
            ClientMsg::PresenceSet { .. } => "presence.set",
            ClientMsg::PresenceSubscribe { .. } => "presence.subscribe",
            ClientMsg::PresenceUnsubscribe { .. } => "presence.unsubscribe",
            ClientMsg::CallInvite { .. } => "call.invite",
            ClientMsg::CallAccept { .. } => "call.accept",
            ClientMsg::CallDecline { .. } => "call.decline",
            ClientMsg::CallCancel { .. } => "call.cancel",
            ClientMsg::CallHangup { .. } => "call.hangup",
            ClientMsg::RoomJoin { .. } => "room.join",
            ClientMsg::RoomLeave { .. } => "room.leave",
            ClientMsg::Signal { .. } => "signal",
            ClientMsg::ChatSend { .. } => "chat.send",
            ClientMsg::ChatTyping { .. } => "chat.typing",
            ClientMsg::ChatHistory { .. } => "chat.history",
            ClientMsg::ConversationsList => "conversations.list",
            ClientMsg::ConversationRead { .. } => "conversation.read",
            ClientMsg::ConversationInvite { .. } => "conversation.invite",
        }
    }
}

/// Every client `type`, in a fixed order (metrics index frames by it).
pub const CLIENT_TYPES: [&str; 18] = [
    "ping",
    "presence.set",
    "presence.subscribe",
    "presence.unsubscribe",
    "call.invite",
    "call.accept",
    "call.decline",
    "call.cancel",
    "call.hangup",
    "room.join",
    "room.leave",
    "signal",
    "chat.send",
    "chat.typing",
    "chat.history",
    "conversations.list",
    "conversation.read",
    "conversation.invite",
];

/// Every server `type`, in a fixed order (metrics index frames by it).
pub(crate) const SERVER_TYPES: [&str; 29] = [
    "welcome",
    "presence.snapshot",
    "presence.update",
    "presence.batch",
    "presence.window",
    "presence.counts",
    "calls.missed",
    "call.ringing",
    "call.incoming",
    "call.accepted",
    "call.answered_elsewhere",
    "call.declined",
    "call.cancelled",
    "call.missed",
    "call.ended",
    "call.left",
    "room.joined",
    "room.peer_joined",
    "room.peer_left",
    "signal",
    "chat.message",
    "chat.typing",
    "chat.history",
    "conversations.list",
    "conversation.read",
    "conversation.updated",
    "ack",
    "pong",
    "error",
];

/// Why a frame could not be understood; the connection stays open.
#[derive(Debug)]
pub struct BadFrame {
    /// The frame's `id`, when at least that much could be read.
    pub id: Option<FrameId>,
    pub message: String,
}

/// First pass: only the envelope.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    id: Option<FrameId>,
}

#[derive(Deserialize)]
struct PresenceSetIn {
    status: ChosenStatus,
}

#[derive(Deserialize)]
struct PresenceSubscribeIn {
    theme: String,
    #[serde(default)]
    limit: Option<u16>,
}

#[derive(Deserialize)]
struct ThemeIn {
    theme: String,
}

/// How many people of a theme a connection watches unless it asks for another number
/// (revision 1.2): its own themes from the start, another theme's card when opened.
pub const PRESENCE_WINDOW: u16 = 50;
/// The most people of one theme a connection may watch (`presence.subscribe` `limit`).
pub const MAX_PRESENCE_WINDOW: u16 = 200;
/// Most characters in a theme name a client may name (`presence.subscribe`).
pub const MAX_THEME_CHARS: usize = 64;

/// Checks a theme name a client sent.
fn theme_name(name: String) -> Result<String, String> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_THEME_CHARS {
        return Err(format!("'theme' must be 1-{MAX_THEME_CHARS} characters"));
    }
    Ok(name)
}

#[derive(Deserialize)]
struct CallInviteIn {
    to: i64,
    media: Media,
    #[serde(default)]
    room: Option<String>,
}

#[derive(Deserialize)]
struct CallIdIn {
    call_id: String,
}

#[derive(Deserialize)]
struct RoomJoinIn {
    room: String,
    #[serde(default)]
    since: Option<i64>,
}

#[derive(Deserialize)]
struct RoomIn {
    room: String,
}

/// A `signal` frame whole, envelope included, so that [`parse`] can read the frame that is
/// most of the traffic in one pass.
#[derive(Deserialize)]
struct SignalIn {
    /// Known from the prefix (or from [`Head`]); present so that a second `type` is the
    /// same error on both paths.
    #[serde(rename = "type")]
    _type: serde::de::IgnoredAny,
    #[serde(default)]
    id: Option<FrameId>,
    room: String,
    to: String,
    kind: SignalKind,
    data: Box<RawValue>,
}

impl SignalIn {
    fn into_msg(self) -> ClientMsg {
        ClientMsg::Signal {
            room: self.room,
            to: self.to,
            kind: self.kind,
            data: self.data,
        }
    }
}

#[derive(Deserialize)]
struct ChatSendIn {
    room: String,
    client_msg_id: String,
    text: String,
}

#[derive(Deserialize)]
struct ConversationReadIn {
    room: String,
    msg_id: i64,
}

#[derive(Deserialize)]
struct ConversationInviteIn {
    room: String,
    user: i64,
}

#[derive(Deserialize)]
struct ChatHistoryIn {
    room: String,
    #[serde(default)]
    before: Option<i64>,
    /// Since protocol revision 1.1.
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

/// Parses one text frame into a typed [`ClientFrame`].
pub fn parse(text: &str) -> Result<ClientFrame, BadFrame> {
    // A `signal` as clients write it (`type` first) is read in one pass instead of two (the
    // envelope, then the fields: its payload scanned twice). Anything else, and any error,
    // takes the general path, whose answer is the rule.
    if text.starts_with(r#"{"type":"signal""#) {
        if let Ok(mut f) = serde_json::from_str::<SignalIn>(text) {
            let id = f.id.take();
            return Ok(ClientFrame {
                id,
                msg: f.into_msg(),
            });
        }
    }
    let head: Head<'_> = serde_json::from_str(text).map_err(|e| BadFrame {
        id: None,
        message: format!("not a JSON object with a 'type': {e}"),
    })?;
    let id = head.id;
    let Some(kind) = head.kind else {
        return Err(BadFrame {
            id,
            message: "missing 'type'".to_owned(),
        });
    };
    match parse_body(&kind, text) {
        Ok(msg) => Ok(ClientFrame { id, msg }),
        Err(message) => Err(BadFrame { id, message }),
    }
}

fn fields<'a, T: Deserialize<'a>>(kind: &str, text: &'a str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("invalid '{kind}' frame: {e}"))
}

fn room(name: &str) -> Result<(RoomName, RoomRef), String> {
    RoomName::parse(name)
}

/// A room name that must be a conversation's: a direct or group room.
fn conversation(name: &str) -> Result<(RoomName, RoomRef), String> {
    match room(name)? {
        found @ (_, RoomRef::Direct(..) | RoomRef::Group) => Ok(found),
        _ => Err(format!(
            "room '{name}' is not a conversation: use 'dm:<a>:<b>' or 'group:<key>'"
        )),
    }
}

fn parse_body(kind: &str, text: &str) -> Result<ClientMsg, String> {
    Ok(match kind {
        "ping" => ClientMsg::Ping,
        "presence.set" => {
            let f: PresenceSetIn = fields(kind, text)?;
            ClientMsg::PresenceSet { status: f.status }
        }
        "presence.subscribe" => {
            let f: PresenceSubscribeIn = fields(kind, text)?;
            if f.limit.is_some_and(|l| l == 0 || l > MAX_PRESENCE_WINDOW) {
                return Err(format!("'limit' must be 1-{MAX_PRESENCE_WINDOW}"));
            }
            ClientMsg::PresenceSubscribe {
                theme: theme_name(f.theme)?,
                limit: f.limit,
            }
        }
        "presence.unsubscribe" => {
            let f: ThemeIn = fields(kind, text)?;
            ClientMsg::PresenceUnsubscribe {
                theme: theme_name(f.theme)?,
            }
        }
        "call.invite" => {
            let f: CallInviteIn = fields(kind, text)?;
            if f.media == Media::Chat {
                // Revision 1.3: a chat is a conversation, written to at once, not a call.
                return Err(
                    "chat invitations were replaced by conversations in protocol revision 1.3: \
                     join the direct room 'dm:<low id>:<high id>' and send with 'chat.send'; \
                     the other person gets the message at once (see docs/protocol.md, \
                     Conversations)"
                        .to_owned(),
                );
            }
            let room = f.room.as_deref().map(room).transpose()?;
            ClientMsg::CallInvite {
                to: UserId(f.to),
                media: f.media,
                room,
            }
        }
        "call.accept" | "call.decline" | "call.cancel" | "call.hangup" => {
            let CallIdIn { call_id } = fields(kind, text)?;
            match kind {
                "call.accept" => ClientMsg::CallAccept { call_id },
                "call.decline" => ClientMsg::CallDecline { call_id },
                "call.cancel" => ClientMsg::CallCancel { call_id },
                _ => ClientMsg::CallHangup { call_id },
            }
        }
        "room.join" => {
            let f: RoomJoinIn = fields(kind, text)?;
            let (room, kind) = room(&f.room)?;
            ClientMsg::RoomJoin {
                room,
                kind,
                since: f.since,
            }
        }
        "room.leave" => {
            let f: RoomIn = fields(kind, text)?;
            ClientMsg::RoomLeave {
                room: room(&f.room)?.0,
            }
        }
        "signal" => fields::<SignalIn>(kind, text)?.into_msg(),
        "chat.send" => {
            let f: ChatSendIn = fields(kind, text)?;
            let chars = f.text.chars().count();
            if chars == 0 || chars > MAX_TEXT_CHARS || f.text.trim().is_empty() {
                return Err(format!("'text' must be 1-{MAX_TEXT_CHARS} characters"));
            }
            let id_chars = f.client_msg_id.chars().count();
            if id_chars == 0 || id_chars > MAX_CLIENT_MSG_ID_CHARS {
                return Err(format!(
                    "'client_msg_id' must be 1-{MAX_CLIENT_MSG_ID_CHARS} characters"
                ));
            }
            ClientMsg::ChatSend {
                room: room(&f.room)?.0,
                client_msg_id: f.client_msg_id,
                text: f.text,
            }
        }
        "chat.typing" => {
            let f: RoomIn = fields(kind, text)?;
            ClientMsg::ChatTyping {
                room: room(&f.room)?.0,
            }
        }
        "chat.history" => {
            let f: ChatHistoryIn = fields(kind, text)?;
            let (room, kind) = room(&f.room)?;
            ClientMsg::ChatHistory {
                room,
                kind,
                cursor: Cursor::from_request(f.before, f.after)?,
                limit: f.limit,
            }
        }
        "conversations.list" => ClientMsg::ConversationsList,
        "conversation.read" => {
            let f: ConversationReadIn = fields(kind, text)?;
            ClientMsg::ConversationRead {
                room: conversation(&f.room)?.0,
                msg_id: f.msg_id,
            }
        }
        "conversation.invite" => {
            let f: ConversationInviteIn = fields(kind, text)?;
            let (room, kind) = conversation(&f.room)?;
            ClientMsg::ConversationInvite {
                room,
                kind,
                user: UserId(f.user),
            }
        }
        other => {
            return Err(format!(
                "unknown type '{}'",
                other.chars().take(64).collect::<String>()
            ))
        }
    })
}

/// A user as frames name them (and room members' entries between nodes).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserRef {
    #[schema(value_type = i64)]
    pub id: UserId,
    #[schema(value_type = String)]
    pub nickname: SharedStr,
}

/// A member session of a room.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub peer_id: SessionId,
    pub user: UserRef,
    /// The receiver's role towards this peer in perfect negotiation.
    pub polite: bool,
}

/// The user in `welcome`.
#[derive(Debug, Clone, Serialize)]
pub struct WelcomeUser {
    pub id: UserId,
    pub nickname: SharedStr,
    pub capabilities: Capabilities,
    pub themes: Vec<String>,
    pub role: crate::domain::Role,
}

/// The limits in `welcome`.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    pub room_member_cap: usize,
    pub ring_timeout_ms: u64,
    /// How long a call waits for a participant whose connection dropped: clients keep that
    /// participant's tile ("reconnecting") about this long.
    pub call_reconnect_grace_ms: u64,
}

/// One user's presence, as in `presence.snapshot`, `presence.update` and `presence.batch`.
#[derive(Debug, Clone, Serialize)]
pub struct PresenceView {
    pub user_id: UserId,
    pub status: Status,
    pub nickname: SharedStr,
    pub capabilities: Capabilities,
    #[serde(serialize_with = "shared_list")]
    pub themes: Arc<[String]>,
}

fn shared_list<S: Serializer>(list: &Arc<[String]>, s: S) -> Result<S::Ok, S::Error> {
    list[..].serialize(s)
}

/// One user in `presence.snapshot`.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotUser<'a> {
    pub id: UserId,
    pub nickname: &'a SharedStr,
    pub status: Status,
    pub capabilities: Capabilities,
    pub themes: &'a [String],
}

/// A stored chat message as frames carry it (and `GET /api/rooms/{room}/messages`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChatView {
    #[schema(value_type = String)]
    pub room: RoomName,
    pub msg_id: i64,
    pub client_msg_id: String,
    pub from: UserRef,
    pub text: String,
    pub created_at: i64,
}

/// One conversation in `conversations.list` (revision 1.3).
#[derive(Debug, Clone, Serialize)]
pub struct ConversationView {
    pub room: RoomName,
    /// `direct` or `group`.
    pub kind: &'static str,
    /// Everyone in it, the receiver included, oldest member first.
    pub members: Vec<UserRef>,
    /// The newest message; `null` in a conversation nobody has written in yet.
    pub last_message: Option<ChatView>,
    /// The newest `msg_id` the receiver has read (0: none).
    pub last_read: i64,
    /// Messages from others after `last_read`.
    pub unread: i64,
}

/// A missed call in `calls.missed`.
#[derive(Debug, Clone, Serialize)]
pub struct MissedView {
    pub call_id: String,
    pub from: UserRef,
    pub media: Media,
    pub at: i64,
}

/// Everything the server sends (`type` on the wire in the rename).
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub enum ServerMsg<'a> {
    #[serde(rename = "welcome")]
    Welcome {
        session_id: &'a SessionId,
        user: &'a WelcomeUser,
        heartbeat_ms: u64,
        limits: &'a Limits,
    },
    #[serde(rename = "presence.snapshot")]
    PresenceSnapshot { users: Vec<SnapshotUser<'a>> },
    #[serde(rename = "presence.update")]
    PresenceUpdate(&'a PresenceView),
    #[serde(rename = "presence.batch")]
    PresenceBatch {
        /// Revision 1.2: the theme whose window these changes are (absent: people followed).
        #[serde(skip_serializing_if = "Option::is_none")]
        theme: Option<&'a str>,
        updates: &'a [PresenceView],
        /// Revision 1.2: people still online who left the theme's window.
        #[serde(skip_serializing_if = "<[UserId]>::is_empty")]
        left: &'a [UserId],
    },
    /// Revision 1.2: how many people are online in each theme (themes not listed: none).
    #[serde(rename = "presence.counts")]
    PresenceCounts {
        counts: &'a std::collections::BTreeMap<SharedStr, usize>,
    },
    #[serde(rename = "calls.missed")]
    CallsMissed { calls: &'a [MissedView] },
    #[serde(rename = "call.ringing")]
    CallRinging {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a FrameId>,
        call_id: &'a CallId,
        to: &'a UserRef,
        media: Media,
        room: &'a RoomName,
    },
    #[serde(rename = "call.incoming")]
    CallIncoming {
        call_id: &'a CallId,
        from: &'a UserRef,
        media: Media,
        room: &'a RoomName,
    },
    #[serde(rename = "call.accepted")]
    CallAccepted {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a FrameId>,
        call_id: &'a CallId,
        room: &'a RoomName,
        media: Media,
    },
    #[serde(rename = "call.answered_elsewhere")]
    CallAnsweredElsewhere { call_id: &'a CallId },
    #[serde(rename = "call.declined")]
    CallDeclined { call_id: &'a CallId },
    #[serde(rename = "call.cancelled")]
    CallCancelled { call_id: &'a CallId },
    #[serde(rename = "call.missed")]
    CallMissed { call_id: &'a CallId },
    #[serde(rename = "call.ended")]
    CallEnded {
        call_id: &'a CallId,
        by: &'a UserRef,
        /// `by` did not hang up: their connection dropped and they did not come back within
        /// the reconnect grace.
        dropped: bool,
    },
    /// Someone left a call that goes on (two or more remain): sent to each of those who
    /// remain, with the `call_id` they know, so their page drops that person's tile at once
    /// instead of waiting on a `room.peer_left` that says nothing about the call.
    #[serde(rename = "call.left")]
    CallLeft {
        call_id: &'a CallId,
        /// Who left.
        user: &'a UserRef,
        /// `user` did not hang up: their connection dropped and they did not come back
        /// within the reconnect grace.
        dropped: bool,
    },
    #[serde(rename = "room.joined")]
    RoomJoined {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a FrameId>,
        room: &'a RoomName,
        kind: &'static str,
        peers: &'a [PeerView],
        messages: &'a [ChatView],
        /// Only after a join with `since` (protocol revision 1.1): more missed messages
        /// remain after `messages`, to fetch with `chat.history` `after`.
        #[serde(skip_serializing_if = "Option::is_none")]
        has_more: Option<bool>,
    },
    #[serde(rename = "room.peer_joined")]
    RoomPeerJoined {
        room: &'a RoomName,
        peer: &'a PeerView,
    },
    #[serde(rename = "room.peer_left")]
    RoomPeerLeft {
        room: &'a RoomName,
        peer_id: &'a SessionId,
        /// The peer's connection ended (it did not leave on purpose): in a call room it may
        /// come back under a new `peer_id` within the reconnect grace.
        dropped: bool,
    },
    #[serde(rename = "signal")]
    Signal {
        room: &'a RoomName,
        from: &'a SessionId,
        kind: SignalKind,
        data: &'a RawValue,
    },
    #[serde(rename = "chat.message")]
    ChatMessage(&'a ChatView),
    #[serde(rename = "chat.typing")]
    ChatTyping {
        room: &'a RoomName,
        from: &'a UserRef,
    },
    #[serde(rename = "chat.history")]
    ChatHistory {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a FrameId>,
        room: &'a RoomName,
        messages: &'a [ChatView],
        /// More messages remain the way the page runs: older ones (`before`, or neither),
        /// newer ones (`after`).
        has_more: bool,
    },
    /// The receiver's conversations, newest first (revision 1.3).
    #[serde(rename = "conversations.list")]
    ConversationsList {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a FrameId>,
        conversations: &'a [ConversationView],
    },
    /// The receiver read `room` up to `msg_id` on one of their devices: every other one of
    /// their sessions is told, so unread counts agree everywhere (revision 1.3).
    #[serde(rename = "conversation.read")]
    ConversationRead {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a FrameId>,
        room: &'a RoomName,
        msg_id: i64,
        unread: i64,
    },
    /// A conversation's members changed (a group was made or someone was invited into it):
    /// every session of every member is told (revision 1.3).
    #[serde(rename = "conversation.updated")]
    ConversationUpdated {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a FrameId>,
        room: &'a RoomName,
        kind: &'static str,
        members: &'a [UserRef],
        /// Who brought the newest member in.
        by: &'a UserRef,
    },
    #[serde(rename = "ack")]
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a FrameId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        msg_id: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        created_at: Option<i64>,
    },
    #[serde(rename = "pong")]
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a FrameId>,
    },
    #[serde(rename = "error")]
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a FrameId>,
        code: ErrorCode,
        message: &'a str,
    },
}

impl ServerMsg<'_> {
    /// Serializes the frame once; the result is shared by every recipient.
    pub fn encode(&self) -> ByteString {
        match serde_json::to_string(self) {
            Ok(text) => ByteString::from(text),
            // Every field is a plain string, number, list or pre-validated raw JSON, so this
            // cannot happen; answer with a valid frame rather than panic if it ever does.
            Err(e) => {
                log::error!("cannot serialize a server frame: {e}");
                ByteString::from_static(
                    r#"{"type":"error","code":"internal","message":"internal server error"}"#,
                )
            }
        }
    }
}

/// Builds an `error` frame.
pub fn error_frame(id: Option<&FrameId>, code: ErrorCode, message: &str) -> ByteString {
    ServerMsg::Error { id, code, message }.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_fifteen_characters_prefixed_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| SessionId::random().0.as_str().to_owned())
            .collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 15, "{id}");
            assert!(id.starts_with("s-"), "{id}");
        }
    }

    /// What `parse` made of a frame, comparable across its two paths.
    fn outcome(text: &str) -> Result<String, String> {
        match parse(text) {
            Ok(ClientFrame {
                id,
                msg:
                    ClientMsg::Signal {
                        room,
                        to,
                        kind,
                        data,
                    },
            }) => Ok(format!("{id:?} {room} {to} {kind:?} {}", data.get())),
            Ok(other) => Ok(format!("{other:?}")),
            Err(bad) => Err(format!("{:?}: {}", bad.id, bad.message)),
        }
    }

    #[test]
    fn a_signal_with_type_first_reads_as_in_any_other_order_and_fails_alike() {
        let data = r#"{"candidate":"candidate:1 1 udp 2 10.0.0.1 5000 typ host","seq":7}"#;
        let first = format!(
            r#"{{"type":"signal","id":"a","room":"call:c-1","to":"s-2","kind":"candidate","data":{data}}}"#
        );
        let last = format!(
            r#"{{"id":"a","room":"call:c-1","to":"s-2","kind":"candidate","data":{data},"type":"signal"}}"#
        );
        let read = outcome(&first).expect("parses");
        assert_eq!(
            read,
            format!(r#"Some(Str("a")) call:c-1 s-2 Candidate {data}"#)
        );
        assert_eq!(outcome(&last), Ok(read));
        // Errors are the general path's, whichever order the fields come in.
        for (bad, message) in [
            (
                r#"{"type":"signal","id":3,"room":"call:c-1","kind":"offer","data":{}}"#,
                "Some(Num(3)): invalid 'signal' frame: missing field `to`",
            ),
            (
                r#"{"type":"signal","id":3,"room":"r","to":"s-2","kind":"hello","data":{}}"#,
                "Some(Num(3)): invalid 'signal' frame: unknown variant `hello`",
            ),
            (
                r#"{"type":"signal","id":3,"type":"ping"}"#,
                "None: not a JSON object with a 'type': duplicate field `type`",
            ),
            (
                r#"{"type":"signal","id":3,"room":"r","to":"s-2","kind":"offer"}}"#,
                "None: not a JSON object with a 'type': trailing characters",
            ),
        ] {
            let got = outcome(bad).expect_err(bad);
            assert!(got.starts_with(message), "{bad}: {got}");
        }
        // `type` first but not a signal: read by the general path.
        assert_eq!(
            outcome(r#"{"type":"signals","id":1}"#).unwrap_err(),
            "Some(Num(1)): unknown type 'signals'".to_owned()
        );
    }

    #[test]
    fn a_signal_keeps_its_data_byte_for_byte() {
        let text = r#"{"type":"signal","id":5,"room":"call:c-1","to":"s-2","kind":"offer","data":{"sdp":"v=0\r\n","x":[1, 2]}}"#;
        let frame = parse(text).expect("parses");
        assert_eq!(frame.id, Some(FrameId::Num(5)));
        let ClientMsg::Signal { data, kind, .. } = frame.msg else {
            panic!("not a signal")
        };
        assert_eq!(kind, SignalKind::Offer);
        assert_eq!(data.get(), r#"{"sdp":"v=0\r\n","x":[1, 2]}"#);
        let room = RoomName::parse("call:c-1").unwrap().0;
        let from = SessionId(SharedStr::from("s-1"));
        let out = ServerMsg::Signal {
            room: &room,
            from: &from,
            kind,
            data: &data,
        }
        .encode();
        assert_eq!(
            &*out,
            r#"{"type":"signal","room":"call:c-1","from":"s-1","kind":"offer","data":{"sdp":"v=0\r\n","x":[1, 2]}}"#
        );
    }

    #[test]
    fn unknown_types_and_bad_fields_keep_the_id() {
        let err = parse(r#"{"type":"nope","id":"a"}"#).unwrap_err();
        assert_eq!(err.id, Some(FrameId::Str("a".into())));
        let err = parse(r#"{"type":"chat.send","id":1,"room":"x"}"#).unwrap_err();
        assert!(err.message.contains("client_msg_id"), "{}", err.message);
        assert!(parse("[1,2]").is_err());
        assert!(parse("{}").is_err());
    }

    #[test]
    fn a_history_request_pages_one_way_only() {
        let frame =
            parse(r#"{"type":"chat.history","id":4,"room":"canal1","after":41}"#).expect("parses");
        assert!(matches!(
            frame.msg,
            ClientMsg::ChatHistory {
                cursor: Cursor::After(41),
                ..
            }
        ));
        let frame = parse(r#"{"type":"chat.history","room":"canal1"}"#).expect("parses");
        assert!(matches!(
            frame.msg,
            ClientMsg::ChatHistory {
                cursor: Cursor::Before(None),
                ..
            }
        ));
        let err = parse(r#"{"type":"chat.history","id":5,"room":"canal1","before":9,"after":3}"#)
            .unwrap_err();
        assert_eq!(err.id, Some(FrameId::Num(5)));
        assert!(
            err.message.contains("exclude each other"),
            "{}",
            err.message
        );
    }

    #[test]
    fn chat_invitations_are_refused_and_conversation_frames_take_conversations_only() {
        let err = parse(r#"{"type":"call.invite","id":1,"to":3,"media":"chat"}"#).unwrap_err();
        assert_eq!(err.id, Some(FrameId::Num(1)));
        assert!(err.message.contains("conversations"), "{}", err.message);
        assert!(parse(r#"{"type":"call.invite","to":3,"media":"video"}"#).is_ok());
        let frame = parse(r#"{"type":"conversation.read","room":"group:g-1a","msg_id":4}"#)
            .expect("parses");
        assert!(matches!(
            frame.msg,
            ClientMsg::ConversationRead { msg_id: 4, .. }
        ));
        let err =
            parse(r#"{"type":"conversation.read","id":2,"room":"canal1","msg_id":4}"#).unwrap_err();
        assert!(
            err.message.contains("not a conversation"),
            "{}",
            err.message
        );
        let frame =
            parse(r#"{"type":"conversation.invite","room":"dm:3:7","user":9}"#).expect("parses");
        assert!(matches!(
            frame.msg,
            ClientMsg::ConversationInvite {
                kind: RoomRef::Direct(UserId(3), UserId(7)),
                user: UserId(9),
                ..
            }
        ));
        assert!(parse(r#"{"type":"conversation.invite","room":"call:c-1","user":9}"#).is_err());
    }

    #[test]
    fn room_names_take_only_four_shapes() {
        assert_eq!(RoomName::parse("canal1").unwrap().1, RoomRef::Public);
        assert_eq!(
            RoomName::parse("dm:3:7").unwrap().1,
            RoomRef::Direct(UserId(3), UserId(7))
        );
        assert!(RoomName::parse("dm:7:3").is_err());
        assert!(RoomName::parse("dm:03:7").is_err());
        assert_eq!(RoomName::parse("call:c-12ab").unwrap().1, RoomRef::Call);
        assert_eq!(RoomName::parse("group:g-12ab").unwrap().1, RoomRef::Group);
        assert!(RoomName::parse("group:").is_err());
        assert!(RoomName::parse("group:a b").is_err());
        assert!(RoomName::parse("a b").is_err());
        assert!(RoomName::parse("").is_err());
        assert!(RoomName::parse(&"x".repeat(65)).is_err());
    }
}
