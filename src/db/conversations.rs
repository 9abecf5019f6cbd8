//! Queries on conversations (protocol revision 1.3): direct rooms (`dm:a:b`) and group rooms
//! (`group:g-…`), whose members are their `room_members` rows, each with the newest message
//! that member has read (`last_read_msg_id`). Unread counts are computed, never stored: the
//! messages after that position sent by someone else.

use std::collections::HashMap;

use diesel::prelude::*;

use super::{
    models::{Message, Room, RoomKind},
    now_ms, on_backend,
    schema::{messages, room_members, rooms, users},
    DbConnection,
};

/// The stored kinds that are conversations.
const CONVERSATION_KINDS: [&str; 2] = ["direct", "group"];

/// One of a user's conversations, as the list shows it.
pub struct Conversation {
    pub room: Room,
    /// The members, this user included: id and nickname, oldest member first.
    pub members: Vec<(i64, String)>,
    /// The newest message, if any.
    pub last: Option<Message>,
    /// The newest `msg_id` this user has read (0: none).
    pub last_read: i64,
    /// Messages from others after `last_read`.
    pub unread: i64,
}

/// `user_id`'s conversations, newest message first (a conversation without messages by its
/// creation time), at most `limit`.
pub fn list(conn: &mut DbConnection, user_id: i64, limit: usize) -> QueryResult<Vec<Conversation>> {
    let rows: Vec<(Room, i64)> = room_members::table
        .inner_join(rooms::table)
        .filter(room_members::user_id.eq(user_id))
        .filter(rooms::kind.eq_any(CONVERSATION_KINDS))
        .select((Room::as_select(), room_members::last_read_msg_id))
        .load(conn)?;
    let mut found = Vec::with_capacity(rows.len());
    for (room, last_read) in rows {
        let last: Option<Message> = messages::table
            .filter(messages::room_id.eq(room.id))
            .order(messages::id.desc())
            .select(Message::as_select())
            .first(conn)
            .optional()?;
        found.push((room, last_read, last));
    }
    // Newest first: by last message id (ids grow with time), else by the room's creation.
    found.sort_by_key(|(room, _, last)| {
        std::cmp::Reverse(
            last.as_ref()
                .map_or((room.created_at, 0), |m| (m.created_at, m.id)),
        )
    });
    found.truncate(limit);
    found
        .into_iter()
        .map(|(room, last_read, last)| {
            let members = members_named(conn, room.id)?;
            let unread = unread(conn, room.id, user_id, last_read)?;
            Ok(Conversation {
                room,
                members,
                last,
                last_read,
                unread,
            })
        })
        .collect()
}

/// The members of a room with their nicknames, oldest member first.
pub fn members_named(conn: &mut DbConnection, room_id: i64) -> QueryResult<Vec<(i64, String)>> {
    room_members::table
        .inner_join(users::table)
        .filter(room_members::room_id.eq(room_id))
        .order((room_members::joined_at, room_members::user_id))
        .select((users::id, users::nickname))
        .load(conn)
}

/// Messages from others in the room after `last_read`.
pub fn unread(
    conn: &mut DbConnection,
    room_id: i64,
    user_id: i64,
    last_read: i64,
) -> QueryResult<i64> {
    messages::table
        .filter(messages::room_id.eq(room_id))
        .filter(messages::id.gt(last_read))
        .filter(messages::sender_id.ne(user_id))
        .count()
        .get_result(conn)
}

/// Moves `user_id`'s read position in the room forward to `msg_id` (never back, never past
/// the room's newest message). `None`: the user is not a member of it. Else the position now
/// and the unread count it leaves.
pub fn mark_read(
    conn: &mut DbConnection,
    room_id: i64,
    user_id: i64,
    msg_id: i64,
) -> QueryResult<Option<(i64, i64)>> {
    crate::db::write_transaction(conn, |conn| {
        let Some(was) = room_members::table
            .filter(room_members::room_id.eq(room_id))
            .filter(room_members::user_id.eq(user_id))
            .select(room_members::last_read_msg_id)
            .first::<i64>(conn)
            .optional()?
        else {
            return Ok(None);
        };
        let newest: Option<i64> = messages::table
            .filter(messages::room_id.eq(room_id))
            .select(diesel::dsl::max(messages::id))
            .first(conn)?;
        let now = msg_id.min(newest.unwrap_or(0)).max(was);
        if now != was {
            diesel::update(
                room_members::table
                    .filter(room_members::room_id.eq(room_id))
                    .filter(room_members::user_id.eq(user_id)),
            )
            .set(room_members::last_read_msg_id.eq(now))
            .execute(conn)?;
        }
        Ok(Some((now, unread(conn, room_id, user_id, now)?)))
    })
}

/// After a commit: each sender has read their own new message (their position moves to it),
/// `sent` being (room, sender, msg_id); all in one transaction (one commit for the batch).
pub fn sent(conn: &mut DbConnection, sent: &[(i64, i64, i64)]) -> QueryResult<()> {
    if sent.is_empty() {
        return Ok(());
    }
    crate::db::write_transaction(conn, |conn| {
        for &(room_id, user_id, msg_id) in sent {
            diesel::update(
                room_members::table
                    .filter(room_members::room_id.eq(room_id))
                    .filter(room_members::user_id.eq(user_id))
                    .filter(room_members::last_read_msg_id.lt(msg_id)),
            )
            .set(room_members::last_read_msg_id.eq(msg_id))
            .execute(conn)?;
        }
        Ok(())
    })
}

/// The member ids of each of `room_ids` (conversation rooms; others have none listed here).
pub fn members_of(
    conn: &mut DbConnection,
    room_ids: &[i64],
) -> QueryResult<HashMap<i64, Vec<i64>>> {
    let rows: Vec<(i64, i64)> = room_members::table
        .inner_join(rooms::table)
        .filter(room_members::room_id.eq_any(room_ids))
        .filter(rooms::kind.eq_any(CONVERSATION_KINDS))
        .select((room_members::room_id, room_members::user_id))
        .load(conn)?;
    let mut by_room: HashMap<i64, Vec<i64>> = HashMap::new();
    for (room, user) in rows {
        by_room.entry(room).or_default().push(user);
    }
    Ok(by_room)
}

/// Creates the group room `name` with `members` (the creator first), each having read
/// nothing yet (there is nothing).
pub fn create_group(conn: &mut DbConnection, name: &str, members: &[i64]) -> QueryResult<Room> {
    crate::db::write_transaction(conn, |conn| {
        let row = (
            rooms::name.eq(name),
            rooms::kind.eq(RoomKind::Group.as_str()),
            rooms::created_by.eq(members.first().copied()),
            rooms::created_at.eq(now_ms()),
        );
        let room = on_backend!(&mut *conn, c => diesel::insert_into(rooms::table)
            .values(row)
            .returning(Room::as_returning())
            .get_result(c))?;
        for (i, user) in members.iter().enumerate() {
            add_member(conn, room.id, *user, now_ms() + i as i64)?;
        }
        Ok(room)
    })
}

/// Adds `user_id` to a conversation as of `at`, having read what is there already (a new
/// member of a group is not shown its whole past as unread). No-op if already a member.
pub fn add_member(conn: &mut DbConnection, room_id: i64, user_id: i64, at: i64) -> QueryResult<()> {
    let newest: Option<i64> = messages::table
        .filter(messages::room_id.eq(room_id))
        .select(diesel::dsl::max(messages::id))
        .first(conn)?;
    let row = (
        room_members::room_id.eq(room_id),
        room_members::user_id.eq(user_id),
        room_members::joined_at.eq(at),
        room_members::last_read_msg_id.eq(newest.unwrap_or(0)),
    );
    // `ON CONFLICT DO NOTHING`, which Diesel's multi-backend type cannot build.
    on_backend!(conn, c => diesel::insert_into(room_members::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c))
    .map(drop)
}
