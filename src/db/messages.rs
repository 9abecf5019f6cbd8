//! Queries on `messages`: idempotent inserts (a retried `client_msg_id` is the same message)
//! and history pages.

use diesel::prelude::*;

use super::{
    models::{Message, NewMessage},
    schema::messages,
};

diesel::define_sql_function! {
    /// SQLite's rowid of the last row inserted on this connection.
    fn last_insert_rowid() -> diesel::sql_types::BigInt;
}

/// Most messages one history page may hold.
pub const MAX_PAGE: i64 = 200;

/// Stores each message unless its sender already stored one with that `client_msg_id`, all
/// in one transaction. Returns, in order, the stored message and whether it is new; a retry
/// gets the first copy back.
pub fn insert_batch(
    conn: &mut SqliteConnection,
    batch: &[NewMessage],
) -> QueryResult<Vec<(Message, bool)>> {
    conn.immediate_transaction(|conn| {
        batch
            .iter()
            .map(|new| {
                let inserted = diesel::insert_or_ignore_into(messages::table)
                    .values(new)
                    .execute(conn)?;
                if inserted == 1 {
                    // The row is what was inserted: only its id is new (no index lookup).
                    let id = diesel::select(last_insert_rowid()).get_result::<i64>(conn)?;
                    let stored = Message {
                        id,
                        room_id: new.room_id,
                        sender_id: new.sender_id,
                        client_msg_id: new.client_msg_id.clone(),
                        body: new.body.clone(),
                        created_at: new.created_at,
                    };
                    return Ok((stored, true));
                }
                let stored = messages::table
                    .filter(messages::sender_id.eq(new.sender_id))
                    .filter(messages::client_msg_id.eq(&new.client_msg_id))
                    .select(Message::as_select())
                    .first(conn)?;
                Ok((stored, false))
            })
            .collect()
    })
}

/// Stores one message idempotently; see [`insert_batch`].
pub fn insert(conn: &mut SqliteConnection, new: &NewMessage) -> QueryResult<(Message, bool)> {
    insert_batch(conn, std::slice::from_ref(new))?
        .pop()
        .ok_or(diesel::result::Error::NotFound)
}

/// Up to `limit` messages of a room older than `before` (all if `None`), oldest first.
pub fn before(
    conn: &mut SqliteConnection,
    room_id: i64,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<Message>> {
    let mut query = messages::table
        .filter(messages::room_id.eq(room_id))
        .select(Message::as_select())
        .order(messages::id.desc())
        .limit(limit.clamp(1, MAX_PAGE))
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(messages::id.lt(before));
    }
    let mut page = query.load(conn)?;
    page.reverse();
    Ok(page)
}

/// Up to `limit` messages of a room newer than `since`, oldest first (what a client missed).
pub fn since(
    conn: &mut SqliteConnection,
    room_id: i64,
    since: i64,
    limit: i64,
) -> QueryResult<Vec<Message>> {
    messages::table
        .filter(messages::room_id.eq(room_id))
        .filter(messages::id.gt(since))
        .select(Message::as_select())
        .order(messages::id.asc())
        .limit(limit.clamp(1, MAX_PAGE))
        .load(conn)
}

/// How many messages are stored in all.
pub fn count(conn: &mut SqliteConnection) -> QueryResult<i64> {
    messages::table.count().get_result(conn)
}

/// One page of a room's history older than `before` (all if `None`), oldest first, and
/// whether older messages remain.
pub fn page(
    conn: &mut SqliteConnection,
    room_id: i64,
    before_id: Option<i64>,
    limit: i64,
) -> QueryResult<(Vec<Message>, bool)> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut query = messages::table
        .filter(messages::room_id.eq(room_id))
        .select(Message::as_select())
        .order(messages::id.desc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(before_id) = before_id {
        query = query.filter(messages::id.lt(before_id));
    }
    let mut rows = query.load(conn)?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    rows.reverse();
    Ok((rows, has_more))
}

/// The nicknames of the senders of `messages`.
pub fn sender_names(
    conn: &mut SqliteConnection,
    messages: &[Message],
) -> QueryResult<std::collections::HashMap<i64, String>> {
    let ids: Vec<i64> = messages.iter().map(|m| m.sender_id).collect();
    super::users::nicknames(conn, &ids)
}
