//! Queries on `rooms` and `room_members`.

use diesel::prelude::*;

use super::{
    models::{Room, RoomKind},
    now_ms, on_backend,
    schema::{room_members, rooms},
    DbConnection,
};

/// The wire name of the direct room of two users: the same whoever asks.
pub(crate) fn direct_room_name(a: i64, b: i64) -> String {
    format!("dm:{}:{}", a.min(b), a.max(b))
}

/// The name of the room a call made on its own (not into a running call) is held in.
pub(crate) fn call_room_name(call_key: &str) -> String {
    format!("call:{call_key}")
}

/// The two users of a direct room's name, if it is one.
pub(crate) fn direct_room_users(name: &str) -> Option<(i64, i64)> {
    let rest = name.strip_prefix("dm:")?;
    let (a, b) = rest.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Finds a room by its wire name.
pub(crate) fn find_by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<Room>> {
    rooms::table
        .filter(rooms::name.eq(name))
        .select(Room::as_select())
        .first(conn)
        .optional()
}

/// Returns the room called `name`, creating it with `kind` if it does not exist yet.
pub fn get_or_create(
    conn: &mut DbConnection,
    name: &str,
    kind: RoomKind,
    created_by: Option<i64>,
) -> QueryResult<Room> {
    let row = (
        rooms::name.eq(name),
        rooms::kind.eq(kind.as_str()),
        rooms::created_by.eq(created_by),
        rooms::created_at.eq(now_ms()),
    );
    // `ON CONFLICT DO NOTHING`, which Diesel's multi-backend type cannot build.
    on_backend!(conn, c => diesel::insert_into(rooms::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c))?;
    rooms::table
        .filter(rooms::name.eq(name))
        .select(Room::as_select())
        .first(conn)
}

/// Makes `user_id` a member of the room (no-op if already one).
pub(crate) fn add_member(conn: &mut DbConnection, room_id: i64, user_id: i64) -> QueryResult<()> {
    let row = (
        room_members::room_id.eq(room_id),
        room_members::user_id.eq(user_id),
        room_members::joined_at.eq(now_ms()),
    );
    on_backend!(conn, c => diesel::insert_into(room_members::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c))
    .map(drop)
}

/// Whether `user_id` is a member of the room.
pub(crate) fn is_member(conn: &mut DbConnection, room_id: i64, user_id: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        room_members::table
            .filter(room_members::room_id.eq(room_id))
            .filter(room_members::user_id.eq(user_id)),
    ))
    .get_result(conn)
}

/// The member ids of a room.
pub fn members(conn: &mut DbConnection, room_id: i64) -> QueryResult<Vec<i64>> {
    room_members::table
        .filter(room_members::room_id.eq(room_id))
        .select(room_members::user_id)
        .order(room_members::joined_at)
        .load(conn)
}

/// Whether `user_id` may read and enter `room`: anyone for a public channel, the pair for a
/// direct room, members for a call room or a group conversation.
pub(crate) fn may_enter(conn: &mut DbConnection, room: &Room, user_id: i64) -> QueryResult<bool> {
    match room.kind() {
        RoomKind::Public => Ok(true),
        RoomKind::Direct => {
            Ok(direct_room_users(&room.name).is_some_and(|(a, b)| a == user_id || b == user_id))
        }
        RoomKind::Call | RoomKind::Group => is_member(conn, room.id, user_id),
    }
}
