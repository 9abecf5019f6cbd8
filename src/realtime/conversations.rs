//! Conversations (protocol revision 1.3): a person's direct and group rooms, what they last
//! read in each, and who is in a group.
//!
//! A conversation is written to at once, never "invited" to: every message in it goes to
//! every session of every member (through presence, by user, see [`super::store`]), whether
//! or not that session has joined the room, so the other person is told at once and their
//! list shows it unread. Read positions live in `room_members.last_read_msg_id`; moving one
//! is told to the user's other sessions. Nothing here changes anyone's presence: only a call
//! does.
//!
//! Each request is a short database job; the session sends its answer (or error).

use std::sync::Arc;

use bytestring::ByteString;

use super::{
    history::chat_view,
    presence::SendToUser,
    protocol::{
        CallId, ConversationView, FrameId, RoomName, RoomRef, ServerMsg, SessionId, SharedStr,
        UserId, UserRef,
    },
    Realtime,
};
use crate::{
    db::{self, models::RoomKind},
    error::ApiError,
};

/// Most conversations one `conversations.list` holds (the newest).
pub(crate) const LIST_LIMIT: usize = 100;

fn user_ref(id: i64, nickname: &str) -> UserRef {
    UserRef {
        id: UserId(id),
        nickname: SharedStr::from(nickname),
    }
}

/// `conversations.list`: the user's conversations, newest first, with unread counts.
pub(crate) async fn list(
    rt: Arc<Realtime>,
    user: UserId,
    id: Option<FrameId>,
) -> Result<ByteString, ApiError> {
    let rows = db::run(&rt.pool, move |conn| {
        Ok(db::conversations::list(conn, user.0, LIST_LIMIT)?)
    })
    .await?;
    let mut views = Vec::with_capacity(rows.len());
    for c in rows {
        let Ok((room, _)) = RoomName::parse(&c.room.name) else {
            continue;
        };
        let members: Vec<UserRef> = c.members.iter().map(|(id, n)| user_ref(*id, n)).collect();
        let last_message = c.last.map(|m| {
            let nick = c
                .members
                .iter()
                .find(|(id, _)| *id == m.sender_id)
                .map_or("", |(_, n)| n.as_str());
            chat_view(&room, m, nick)
        });
        views.push(ConversationView {
            room,
            kind: c.room.kind().as_str(),
            members,
            last_message,
            last_read: c.last_read,
            unread: c.unread,
        });
    }
    Ok(ServerMsg::ConversationsList {
        id: id.as_ref(),
        conversations: &views,
    }
    .encode())
}

fn not_yours(room: &RoomName) -> ApiError {
    ApiError::Forbidden(format!(
        "'{}' is not a conversation of yours",
        room.as_str()
    ))
}

/// `conversation.read`: moves the user's read position forward; their other sessions are
/// told (the answer, with `id`, goes to this one).
pub(crate) async fn read(
    rt: Arc<Realtime>,
    user: UserId,
    session: SessionId,
    room: RoomName,
    msg_id: i64,
    id: Option<FrameId>,
) -> Result<ByteString, ApiError> {
    let name = room.as_str().to_owned();
    let moved = db::run(&rt.pool, move |conn| {
        let Some(row) = db::rooms::find_by_name(conn, &name)? else {
            return Ok(None);
        };
        Ok(db::conversations::mark_read(conn, row.id, user.0, msg_id)?)
    })
    .await?;
    let Some((now, unread)) = moved else {
        return Err(not_yours(&room));
    };
    let frame = |id| {
        ServerMsg::ConversationRead {
            id,
            room: &room,
            msg_id: now,
            unread,
        }
        .encode()
    };
    rt.presence.do_send(SendToUser {
        user_id: user,
        frame: frame(None),
        except: Some(session),
    });
    Ok(frame(id.as_ref()))
}

/// `conversation.invite`: `invited` joins the group `room`, or, from a direct room, a new
/// group of its two people and `invited`. Every member's sessions get
/// `conversation.updated`; the answer (with `id`) goes to the inviting session.
pub(crate) async fn invite(
    rt: Arc<Realtime>,
    by: UserRef,
    session: SessionId,
    room: RoomName,
    kind: RoomRef,
    invited: UserId,
    id: Option<FrameId>,
) -> Result<ByteString, ApiError> {
    let cap = rt.settings.room_member_cap;
    let name = room.as_str().to_owned();
    let inviter = by.id;
    let forbidden = not_yours(&room);
    let (room, members) = db::run(&rt.pool, move |conn| {
        let target = match db::users::find(conn, invited.0)? {
            Some(u) if !u.banned => u,
            _ => return Err(ApiError::NotFound(format!("no user {}", invited.0))),
        };
        if !target.can_text {
            return Err(ApiError::Forbidden(format!(
                "{} does not take text conversations",
                target.nickname
            )));
        }
        let room = match kind {
            RoomRef::Direct(a, b) => {
                if inviter != a && inviter != b {
                    return Err(forbidden);
                }
                if invited == a || invited == b {
                    return Err(ApiError::Conflict(format!(
                        "{} is already in this conversation",
                        target.nickname
                    )));
                }
                let key = CallId::random().0.as_str().replacen("c-", "g-", 1);
                let other = if inviter == a { b } else { a };
                db::conversations::create_group(
                    conn,
                    &format!("group:{key}"),
                    &[inviter.0, other.0, invited.0],
                )?
            }
            _ => {
                let Some(row) = db::rooms::find_by_name(conn, &name)? else {
                    return Err(forbidden);
                };
                if row.kind() != RoomKind::Group || !db::rooms::is_member(conn, row.id, inviter.0)?
                {
                    return Err(forbidden);
                }
                let members = db::rooms::members(conn, row.id)?;
                if members.contains(&invited.0) {
                    return Err(ApiError::Conflict(format!(
                        "{} is already in this conversation",
                        target.nickname
                    )));
                }
                if members.len() >= cap {
                    return Err(ApiError::Conflict(format!(
                        "this conversation is full ({cap} people)"
                    )));
                }
                db::conversations::add_member(conn, row.id, invited.0, db::now_ms())?;
                row
            }
        };
        let members = db::conversations::members_named(conn, room.id)?;
        Ok((room, members))
    })
    .await?;
    let (name, _) = RoomName::parse(&room.name).map_err(ApiError::Internal)?;
    let members: Vec<UserRef> = members.iter().map(|(id, n)| user_ref(*id, n)).collect();
    let frame = |id| {
        ServerMsg::ConversationUpdated {
            id,
            room: &name,
            kind: RoomKind::Group.as_str(),
            members: &members,
            by: &by,
        }
        .encode()
    };
    let shared = frame(None);
    for member in &members {
        rt.presence.do_send(SendToUser {
            user_id: member.id,
            frame: shared.clone(),
            except: (member.id == by.id).then(|| session.clone()),
        });
    }
    Ok(frame(id.as_ref()))
}
