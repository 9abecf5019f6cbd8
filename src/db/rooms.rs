//! Queries on `rooms` and `room_members`.

use diesel::prelude::*;

use super::{
    models::{Room, RoomKind},
    now_ms,
    schema::{room_members, rooms},
};

/// The wire name of the direct room of two users: the same whoever asks.
pub(crate) fn direct_room_name(a: i64, b: i64) -> String {
    format!("dm:{}:{}", a.min(b), a.max(b))
}

/// The two users of a direct room's name, if it is one.
pub(crate) fn direct_room_users(name: &str) -> Option<(i64, i64)> {
    let rest = name.strip_prefix("dm:")?;
    let (a, b) = rest.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Finds a room by its wire name.
pub(crate) fn find_by_name(conn: &mut SqliteConnection, name: &str) -> QueryResult<Option<Room>> {
    rooms::table
        .filter(rooms::name.eq(name))
        .select(Room::as_select())
        .first(conn)
        .optional()
}

/// Returns the room called `name`, creating it with `kind` if it does not exist yet.
pub fn get_or_create(
    conn: &mut SqliteConnection,
    name: &str,
    kind: RoomKind,
    created_by: Option<i64>,
) -> QueryResult<Room> {
    diesel::insert_or_ignore_into(rooms::table)
        .values((
            rooms::name.eq(name),
            rooms::kind.eq(kind.as_str()),
            rooms::created_by.eq(created_by),
            rooms::created_at.eq(now_ms()),
        ))
        .execute(conn)?;
    rooms::table
        .filter(rooms::name.eq(name))
        .select(Room::as_select())
        .first(conn)
}

/// Makes `user_id` a member of the room (no-op if already one).
pub(crate) fn add_member(
    conn: &mut SqliteConnection,
    room_id: i64,
    user_id: i64,
) -> QueryResult<()> {
    diesel::insert_or_ignore_into(room_members::table)
        .values((
            room_members::room_id.eq(room_id),
            room_members::user_id.eq(user_id),
            room_members::joined_at.eq(now_ms()),
        ))
        .execute(conn)
        .map(drop)
}

/// Whether `user_id` is a member of the room.
pub(crate) fn is_member(
    conn: &mut SqliteConnection,
    room_id: i64,
    user_id: i64,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        room_members::table
            .filter(room_members::room_id.eq(room_id))
            .filter(room_members::user_id.eq(user_id)),
    ))
    .get_result(conn)
}

/// The member ids of a room.
pub fn members(conn: &mut SqliteConnection, room_id: i64) -> QueryResult<Vec<i64>> {
    room_members::table
        .filter(room_members::room_id.eq(room_id))
        .select(room_members::user_id)
        .order(room_members::joined_at)
        .load(conn)
}

/// Whether `user_id` may read and enter `room`: anyone for a public channel, the pair for a
/// direct room, members for a call room or a group conversation.
pub(crate) fn may_enter(
    conn: &mut SqliteConnection,
    room: &Room,
    user_id: i64,
) -> QueryResult<bool> {
    match room.kind() {
        RoomKind::Public => Ok(true),
        RoomKind::Direct => {
            Ok(direct_room_users(&room.name).is_some_and(|(a, b)| a == user_id || b == user_id))
        }
        RoomKind::Call | RoomKind::Group => is_member(conn, room.id, user_id),
    }
}
