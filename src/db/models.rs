//! Rows as Diesel reads and writes them, and the small value types stored in their columns.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::schema::{sessions, themes, users};
pub use crate::domain::{Capabilities, Capability, Role};

/// A registered person, as stored (the hash never leaves the server: see [`crate::http::users::UserView`]).
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = users)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct User {
    pub id: i64,
    pub nickname: String,
    pub password_hash: String,
    pub can_video: bool,
    pub can_audio: bool,
    pub can_text: bool,
    pub role: String,
    pub banned: bool,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
}

impl User {
    /// Whether this user may use the admin API.
    pub(crate) fn is_admin(&self) -> bool {
        self.role == Role::Admin.as_str()
    }

    /// What this user can do in a conversation.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            video: self.can_video,
            audio: self.can_audio,
            text: self.can_text,
        }
    }
}

/// A user about to be inserted.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub nickname: &'a str,
    pub password_hash: &'a str,
    pub can_video: bool,
    pub can_audio: bool,
    pub can_text: bool,
    pub role: &'a str,
    pub created_at: i64,
}

/// A theme people can follow.
#[derive(
    Debug, Clone, Queryable, Selectable, Identifiable, Insertable, Serialize, utoipa::ToSchema,
)]
#[diesel(table_name = themes)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Theme {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub created_at: i64,
}

/// A theme about to be inserted.
#[derive(Debug, Insertable)]
#[diesel(table_name = themes)]
pub struct NewTheme<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub created_at: i64,
}

/// A login session; `token_hash` is the SHA-256 of the secret the client holds.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = sessions)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Session {
    pub id: i64,
    pub token_hash: String,
    pub user_id: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: i64,
    pub user_agent: Option<String>,
}

/// A session about to be inserted.
#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user_id: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: i64,
    pub user_agent: Option<&'a str>,
}

/// What kind of room a room is, which decides who may enter it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// A channel anyone logged in can join by name (the seed's `canal1`).
    Public,
    /// The one room of a pair of users; its chat survives between their talks.
    Direct,
    /// A call's room: its invited members only.
    Call,
    /// A group conversation: its members only.
    Group,
}

impl RoomKind {
    /// The value stored in `rooms.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Public => "public",
            RoomKind::Direct => "direct",
            RoomKind::Call => "call",
            RoomKind::Group => "group",
        }
    }

    /// Reads a stored kind; unknown values are the most restrictive.
    pub fn parse(s: &str) -> RoomKind {
        match s {
            "public" => RoomKind::Public,
            "direct" => RoomKind::Direct,
            "group" => RoomKind::Group,
            _ => RoomKind::Call,
        }
    }
}

/// A room as stored; `name` is what clients use on the wire.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = super::schema::rooms)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Room {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub created_by: Option<i64>,
    pub created_at: i64,
}

impl Room {
    /// The room's kind.
    pub fn kind(&self) -> RoomKind {
        RoomKind::parse(&self.kind)
    }
}

/// A stored chat message.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = super::schema::messages)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Message {
    pub id: i64,
    pub room_id: i64,
    pub sender_id: i64,
    pub client_msg_id: String,
    pub body: String,
    pub created_at: i64,
}

/// A chat message about to be stored.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = super::schema::messages)]
pub struct NewMessage {
    pub room_id: i64,
    pub sender_id: i64,
    pub client_msg_id: String,
    pub body: String,
    pub created_at: i64,
}

/// Where a call stands; every state but `Ringing` and `Accepted` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Ringing,
    Accepted,
    Declined,
    Missed,
    Cancelled,
    Ended,
}

impl CallState {
    /// The value stored in `calls.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Ringing => "ringing",
            CallState::Accepted => "accepted",
            CallState::Declined => "declined",
            CallState::Missed => "missed",
            CallState::Cancelled => "cancelled",
            CallState::Ended => "ended",
        }
    }

    /// Reads a stored state.
    pub fn parse(s: &str) -> Option<CallState> {
        Some(match s {
            "ringing" => CallState::Ringing,
            "accepted" => CallState::Accepted,
            "declined" => CallState::Declined,
            "missed" => CallState::Missed,
            "cancelled" => CallState::Cancelled,
            "ended" => CallState::Ended,
            _ => return None,
        })
    }
}

/// One entry of the call log.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = super::schema::calls)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Call {
    pub id: i64,
    pub call_key: String,
    pub room_id: Option<i64>,
    pub caller_id: i64,
    pub callee_id: i64,
    pub media: String,
    pub state: String,
    pub created_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub seen_by_callee: bool,
}

/// A call about to be logged (it starts ringing).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = super::schema::calls)]
pub struct NewCall<'a> {
    pub call_key: &'a str,
    pub room_id: Option<i64>,
    pub caller_id: i64,
    pub callee_id: i64,
    pub media: &'a str,
    pub state: &'a str,
    pub created_at: i64,
    /// The node whose hub runs the call (several nodes); `None` for a server alone.
    pub owner_node: Option<&'a str>,
}
