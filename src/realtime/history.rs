//! Who may enter a room, and its history as frames carry it: the one place stored rows
//! become [`ChatView`]s, for `room.joined`, `chat.history`, live chat and the HTTP API alike.

use crate::db::DbConnection;

use super::protocol::{ChatView, RoomName, RoomRef, SharedStr, UserId, UserRef};
use crate::{
    db::{
        self,
        messages::Cursor,
        models::{Room, RoomKind},
    },
    error::ApiError,
};

/// Default page size of chat history, over HTTP and WebSocket alike (and of `room.joined`
/// without `since`).
pub(crate) const HISTORY_PAGE: i64 = 50;

/// A history page as frames carry it: the messages (oldest first) and whether more remain
/// in the page's direction (see [`db::messages::page`]).
pub(crate) type HistoryPage = (Vec<ChatView>, bool);

/// A page of `room`'s history at `cursor` (`limit` messages, [`HISTORY_PAGE`] by default)
/// and whether more remain that way, under the same access rule as joining. A room never
/// created yet has an empty history.
pub(crate) fn history_page(
    conn: &mut DbConnection,
    room: &RoomName,
    kind: RoomRef,
    user: UserId,
    cursor: Cursor,
    limit: Option<i64>,
) -> Result<HistoryPage, ApiError> {
    let Some(row) = enter_room(conn, room.as_str(), kind, user, false)? else {
        return Ok((Vec::new(), false));
    };
    Ok(room_page(
        conn,
        room,
        row.id,
        cursor,
        limit.unwrap_or(HISTORY_PAGE),
    )?)
}

/// A page of the stored room `room_id` (called `room`) as frames carry it: the one place
/// stored rows become [`ChatView`]s, for `room.joined`, `chat.history` and the HTTP API
/// alike. No access check: the caller has made it.
pub(crate) fn room_page(
    conn: &mut DbConnection,
    room: &RoomName,
    room_id: i64,
    cursor: Cursor,
    limit: i64,
) -> diesel::QueryResult<HistoryPage> {
    let (rows, has_more) = db::messages::page(conn, room_id, cursor, limit)?;
    let names = db::messages::sender_names(conn, &rows)?;
    let views = rows
        .into_iter()
        .map(|m| {
            let nick = names.get(&m.sender_id).map_or("", String::as_str);
            chat_view(room, m, nick)
        })
        .collect();
    Ok((views, has_more))
}

/// Finds (and with `create`, creates) the room called `name` and checks that `user` may
/// enter it: anyone a public channel, the pair their direct room, members a call room or a
/// group conversation (which only `conversation.invite` creates).
/// `Ok(None)`: no such room and `create` is false.
pub(crate) fn enter_room(
    conn: &mut DbConnection,
    name: &str,
    kind: RoomRef,
    user: UserId,
    create: bool,
) -> Result<Option<Room>, ApiError> {
    let forbidden = || ApiError::Forbidden(format!("you may not enter room '{name}'"));
    let room = match kind {
        RoomRef::Public if create => Some(db::rooms::get_or_create(
            conn,
            name,
            RoomKind::Public,
            Some(user.0),
        )?),
        RoomRef::Direct(a, b) => {
            if user != a && user != b {
                return Err(forbidden());
            }
            let other = if user == a { b } else { a };
            match db::users::find(conn, other.0)? {
                Some(_) if create => {
                    let room =
                        db::rooms::get_or_create(conn, name, RoomKind::Direct, Some(user.0))?;
                    // Both are members of their conversation from the start (revision 1.3):
                    // it is in both lists, and what arrives in it counts as unread for them.
                    let at = db::now_ms();
                    db::conversations::add_member(conn, room.id, a.0, at)?;
                    db::conversations::add_member(conn, room.id, b.0, at)?;
                    Some(room)
                }
                Some(_) => db::rooms::find_by_name(conn, name)?,
                None => return Err(ApiError::NotFound(format!("no user {}", other.0))),
            }
        }
        RoomRef::Public | RoomRef::Call | RoomRef::Group => db::rooms::find_by_name(conn, name)?,
    };
    match room {
        // A call room or group that does not exist is as closed as one that does.
        None if matches!(kind, RoomRef::Call | RoomRef::Group) => Err(forbidden()),
        None => Ok(None),
        Some(room) if db::rooms::may_enter(conn, &room, user.0)? => Ok(Some(room)),
        Some(_) => Err(forbidden()),
    }
}

/// A stored message as frames carry it, its sender known by nickname.
pub(crate) fn chat_view(room: &RoomName, m: db::models::Message, nickname: &str) -> ChatView {
    let from = UserRef {
        id: UserId(m.sender_id),
        nickname: SharedStr::from(nickname),
    };
    chat_view_from(room.clone(), m, from)
}

/// A stored message as frames carry it, sent by `from` (`m`'s sender).
pub(crate) fn chat_view_from(room: RoomName, m: db::models::Message, from: UserRef) -> ChatView {
    ChatView {
        room,
        msg_id: m.id,
        client_msg_id: m.client_msg_id,
        from,
        text: m.body,
        created_at: m.created_at,
    }
}
