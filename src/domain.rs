//! The server's vocabulary, shared by every layer: who (user, session ids), where (room
//! names and what kind of room each is), what people can do (capabilities, role), how they
//! show (presence status), what a call is for (media), and where a history page starts. The
//! database ([`crate::db`]), the HTTP API ([`crate::http`]) and the WebSocket protocol
//! ([`crate::realtime::protocol`]) all speak it; it depends on none of them.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Serialize, Serializer};

/// Most characters in a room name.
pub const MAX_ROOM_CHARS: usize = 64;

/// An immutable string shared without copying (names that are sent in many frames).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        SharedStr(Arc::from(s))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        SharedStr(Arc::from(s))
    }
}

impl std::ops::Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SharedStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Read back from what another node published (the broker's messages).
impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SharedStr::from)
    }
}

/// A registered user's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

/// One WebSocket connection's id (`s-…`); it is also that connection's `peer_id` in rooms.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub SharedStr);

impl SessionId {
    /// A fresh random id: 64 random bits in 13 base-32 digits. With its prefix that is 15
    /// bytes, so that the shared string (kept once per connection) fits 32 bytes of heap.
    pub fn random() -> Self {
        const DIGITS: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
        let mut bits = rand::random::<u64>();
        let mut id = String::with_capacity(15);
        id.push_str("s-");
        for _ in 0..13 {
            id.push(char::from(DIGITS[(bits & 31) as usize]));
            bits >>= 5;
        }
        SessionId(SharedStr::from(id))
    }
}

/// A call's id (`c-…`), also its `call_key` in the call log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CallId(pub SharedStr);

impl CallId {
    /// A fresh random id.
    pub fn random() -> Self {
        CallId(SharedStr::from(format!(
            "c-{:016x}{:08x}",
            rand::random::<u64>(),
            rand::random::<u32>()
        )))
    }
}

/// What kind of room a name denotes, which decides who may enter it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomRef {
    /// A public channel: anyone may join.
    Public,
    /// The direct room of two users (low id first).
    Direct(UserId, UserId),
    /// A call's room: its invited members only.
    Call,
    /// A group conversation (protocol revision 1.3): its members only.
    Group,
}

/// A validated room name (`canal1`, `dm:3:7`, `call:c-…`, `group:g-…`). Deserialized only
/// from what another node of this cluster published, which validated it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomName(pub SharedStr);

impl std::borrow::Borrow<str> for RoomName {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

impl RoomName {
    /// Checks a name against the four shapes a room name may take.
    pub fn parse(name: &str) -> Result<(RoomName, RoomRef), String> {
        let bad = || {
            format!(
                "invalid room '{}': use 1-{MAX_ROOM_CHARS} letters, digits, '-', '_' or '.', \
                 'dm:<a>:<b>', 'call:<call_id>' or 'group:<key>'",
                name.chars().take(MAX_ROOM_CHARS).collect::<String>()
            )
        };
        if name.is_empty() || name.len() > MAX_ROOM_CHARS {
            return Err(bad());
        }
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        let kind = if let Some(rest) = name.strip_prefix("dm:") {
            let (a, b) = rest.split_once(':').ok_or_else(bad)?;
            let (a, b): (i64, i64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            // One canonical name per pair, so a pair never has two direct rooms.
            if a >= b || format!("dm:{a}:{b}") != name {
                return Err(bad());
            }
            RoomRef::Direct(UserId(a), UserId(b))
        } else if let Some(rest) = name.strip_prefix("call:") {
            if !plain(rest) {
                return Err(bad());
            }
            RoomRef::Call
        } else if let Some(rest) = name.strip_prefix("group:") {
            if !plain(rest) {
                return Err(bad());
            }
            RoomRef::Group
        } else if plain(name) {
            RoomRef::Public
        } else {
            return Err(bad());
        };
        Ok((RoomName(SharedStr::from(name)), kind))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Statuses a user may choose; `in_call` and `offline` are set by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChosenStatus {
    Online,
    Busy,
    Away,
}

/// A user's status as everyone sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Online,
    Busy,
    Away,
    InCall,
    Offline,
}

impl From<ChosenStatus> for Status {
    fn from(s: ChosenStatus) -> Self {
        match s {
            ChosenStatus::Online => Status::Online,
            ChosenStatus::Busy => Status::Busy,
            ChosenStatus::Away => Status::Away,
        }
    }
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Busy => "busy",
            Status::Away => "away",
            Status::InCall => "in_call",
            Status::Offline => "offline",
        }
    }
}

/// What a call is for; each needs the matching capability on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Media {
    Video,
    Audio,
    Chat,
}

impl Media {
    /// The value stored in `calls.media`.
    pub fn as_str(self) -> &'static str {
        match self {
            Media::Video => "video",
            Media::Audio => "audio",
            Media::Chat => "chat",
        }
    }

    /// Reads a stored value (unknown: chat, the least demanding).
    pub fn parse(s: &str) -> Media {
        match s {
            "video" => Media::Video,
            "audio" => Media::Audio,
            _ => Media::Chat,
        }
    }

    /// Whether someone with `caps` can take part in a call of this media.
    pub(crate) fn allowed_by(self, caps: Capabilities) -> bool {
        match self {
            Media::Video => caps.video,
            Media::Audio => caps.audio,
            Media::Chat => caps.text,
        }
    }
}

/// What a user may do in a conversation; on the wire a list such as `["video", "text"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub video: bool,
    pub audio: bool,
    pub text: bool,
}

/// One capability, as clients name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Video,
    Audio,
    Text,
}

impl Capabilities {
    /// Collects a list of capabilities; duplicates are harmless.
    pub(crate) fn from_list(list: &[Capability]) -> Self {
        let mut caps = Capabilities::default();
        for cap in list {
            match cap {
                Capability::Video => caps.video = true,
                Capability::Audio => caps.audio = true,
                Capability::Text => caps.text = true,
            }
        }
        caps
    }

    /// The list form used on the wire, always in the order video, audio, text.
    pub(crate) fn to_list(self) -> Vec<Capability> {
        [
            (self.video, Capability::Video),
            (self.audio, Capability::Audio),
            (self.text, Capability::Text),
        ]
        .into_iter()
        .filter_map(|(on, cap)| on.then_some(cap))
        .collect()
    }

    /// Whether this set includes `cap`.
    pub fn has(self, cap: Capability) -> bool {
        match cap {
            Capability::Video => self.video,
            Capability::Audio => self.audio,
            Capability::Text => self.text,
        }
    }

    /// Whether nothing at all is enabled (not allowed for an account).
    pub fn is_empty(self) -> bool {
        !(self.video || self.audio || self.text)
    }
}

impl Serialize for Capabilities {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_list().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Capabilities {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Capability>::deserialize(d).map(|list| Capabilities::from_list(&list))
    }
}

impl utoipa::PartialSchema for Capabilities {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(<Capability as utoipa::PartialSchema>::schema())
            .description(Some("What the user can do: any of video, audio, text"))
            .into()
    }
}

impl utoipa::ToSchema for Capabilities {}

/// Who may do what on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    /// The value stored in `users.role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// Reads a stored role; anything unknown is treated as the least privileged.
    pub fn parse(s: &str) -> Role {
        if s == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

/// Where a history page starts, and which way it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The latest messages, or those older than this `msg_id`: scrolling back.
    Before(Option<i64>),
    /// The messages newer than this `msg_id`: catching up on what was missed.
    After(i64),
}

impl Cursor {
    /// The cursor a request's `before` and `after` ask for: they exclude each other (a page
    /// runs one way), and neither means the latest messages.
    pub(crate) fn from_request(before: Option<i64>, after: Option<i64>) -> Result<Cursor, String> {
        match (before, after) {
            (Some(_), Some(_)) => {
                Err("'before' and 'after' exclude each other: give one of them".to_owned())
            }
            (None, Some(after)) => Ok(Cursor::After(after)),
            (before, None) => Ok(Cursor::Before(before)),
        }
    }
}

/// Which of a user's sessions were just revoked, so their live sockets can be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Revoked {
    /// Exactly this session (logout).
    One(i64),
    /// Every session but this one (password change).
    AllBut(i64),
    /// Every session (ban, admin kick, delete).
    All,
}
