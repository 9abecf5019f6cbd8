//! Queries on `messages`: idempotent inserts (a retried `client_msg_id` is the same message)
//! and history pages.

use diesel::{
    prelude::*,
    result::{DatabaseErrorKind, Error},
};

use super::{
    models::{Message, NewMessage},
    on_backend,
    schema::{messages, rooms},
    DbConnection,
};
pub use crate::domain::Cursor;

/// Most messages one history page may hold.
pub const MAX_PAGE: i64 = 200;

/// Stores each message unless its sender already stored one with that `client_msg_id`, all
/// in one transaction. Each message is one `INSERT … ON CONFLICT DO NOTHING RETURNING id`
/// (the same prepared statement every time): the unique index itself tells a new message
/// from a retry, and only retries are looked up. Returns, in order, the stored message and
/// whether it is new; a retry (also a second copy within `batch`) gets the first copy back.
/// On error the transaction is rolled back: nothing of the batch is stored.
///
/// A room's `msg_id`s commit in the order they are handed out, so a reader resuming with
/// `since` never skips one: SQLite has one writer at a time (`BEGIN IMMEDIATE`); on
/// PostgreSQL, where a sequence hands out ids in the order transactions ask for them and
/// they may commit in another, the transaction first locks the rows of the rooms it writes to
/// (`FOR NO KEY UPDATE`, in id order so two batches never deadlock), so a second writer to the
/// same room takes its ids only after the first has committed. The lock does not block the
/// foreign-key checks of other inserts (`FOR KEY SHARE`) nor writers to other rooms.
///
/// Not one multi-row `INSERT` for the batch: a statement that writes many rows and may fail
/// part-way needs SQLite's statement journal, which copies every page it touches (measured
/// in docs/benchmarks.md: more CPU per message than a statement per row).
pub fn insert_batch(
    conn: &mut DbConnection,
    batch: &[NewMessage],
) -> QueryResult<Vec<(Message, bool)>> {
    super::write_transaction(conn, |conn| {
        if let DbConnection::Postgres(pg) = conn {
            let mut rooms: Vec<i64> = batch.iter().map(|m| m.room_id).collect();
            rooms.sort_unstable();
            rooms.dedup();
            rooms::table
                .filter(rooms::id.eq_any(&rooms))
                .select(rooms::id)
                .order(rooms::id)
                .for_no_key_update()
                .load::<i64>(pg)?;
            return insert_batch_pg(pg, batch);
        }
        batch
            .iter()
            .map(|new| {
                // `ON CONFLICT`, which Diesel's multi-backend type cannot build.
                let id = on_backend!(&mut *conn, c => diesel::insert_into(messages::table)
                    .values(new)
                    .on_conflict((messages::sender_id, messages::client_msg_id))
                    .do_nothing()
                    .returning(messages::id)
                    .get_result::<i64>(c)
                    .optional())?;
                match id {
                    Some(id) => Ok((stored_as(new, id), true)),
                    None => first_copy(conn, new).map(|stored| (stored, false)),
                }
            })
            .collect()
    })
}

/// [`insert_batch`] on PostgreSQL, inside its transaction: the whole batch in one multi-row
/// `INSERT … ON CONFLICT DO NOTHING RETURNING`, since each statement is a round trip to the
/// server (a statement per message made a batch of 200 cost 40 ms: docs/benchmarks.md,
/// "PostgreSQL beside SQLite"). PostgreSQL has no statement journal to pay for it. The rows it
/// returns are the new messages; every other one (a retry, or a second copy within the batch)
/// is looked up as on SQLite.
fn insert_batch_pg(
    pg: &mut diesel::PgConnection,
    batch: &[NewMessage],
) -> QueryResult<Vec<(Message, bool)>> {
    let inserted: Vec<(i64, i64, String)> = diesel::insert_into(messages::table)
        .values(batch)
        .on_conflict((messages::sender_id, messages::client_msg_id))
        .do_nothing()
        .returning((messages::id, messages::sender_id, messages::client_msg_id))
        .get_results(pg)?;
    let mut new_ids: std::collections::HashMap<(i64, &str), i64> = inserted
        .iter()
        .map(|(id, sender, cmid)| ((*sender, cmid.as_str()), *id))
        .collect();
    batch
        .iter()
        .map(
            |new| match new_ids.remove(&(new.sender_id, new.client_msg_id.as_str())) {
                Some(id) => Ok((stored_as(new, id), true)),
                None => messages::table
                    .filter(messages::sender_id.eq(new.sender_id))
                    .filter(messages::client_msg_id.eq(&new.client_msg_id))
                    .select(Message::as_select())
                    .first(pg)
                    .map(|stored| (stored, false)),
            },
        )
        .collect()
}

/// The stored message a retry repeats.
fn first_copy(conn: &mut DbConnection, new: &NewMessage) -> QueryResult<Message> {
    messages::table
        .filter(messages::sender_id.eq(new.sender_id))
        .filter(messages::client_msg_id.eq(&new.client_msg_id))
        .select(Message::as_select())
        .first(conn)
}

/// Stores a group commit's messages: [`insert_batch`] for all of them, and if SQLite refuses
/// a row's data (a constraint: its sender or room was deleted meanwhile) each message again
/// in a transaction of its own, so only the refused one fails. `Ok`: one result per message,
/// in order; `Err`: the database failed (locked, I/O), nothing of the batch is stored.
pub fn store_batch(
    conn: &mut DbConnection,
    batch: &[NewMessage],
) -> QueryResult<Vec<QueryResult<(Message, bool)>>> {
    match insert_batch(conn, batch) {
        Ok(rows) => Ok(rows.into_iter().map(Ok).collect()),
        Err(Error::DatabaseError(kind, _)) if batch.len() > 1 && is_refused_data(&kind) => {
            Ok(batch.iter().map(|new| insert(conn, new)).collect())
        }
        Err(e) => Err(e),
    }
}

/// Whether an error is about one row's data rather than the database.
fn is_refused_data(kind: &DatabaseErrorKind) -> bool {
    matches!(
        kind,
        DatabaseErrorKind::ForeignKeyViolation
            | DatabaseErrorKind::NotNullViolation
            | DatabaseErrorKind::CheckViolation
    )
}

/// Stores one message idempotently; see [`insert_batch`].
pub fn insert(conn: &mut DbConnection, new: &NewMessage) -> QueryResult<(Message, bool)> {
    insert_batch(conn, std::slice::from_ref(new))?
        .pop()
        .ok_or(Error::NotFound)
}

/// The id of `room_id`'s latest message (`None`: it has none).
pub fn last_id(conn: &mut DbConnection, room_id: i64) -> QueryResult<Option<i64>> {
    messages::table
        .filter(messages::room_id.eq(room_id))
        .select(diesel::dsl::max(messages::id))
        .first(conn)
}

/// For each of `stored` (room id, message id, all committed), the id of its room's message
/// before it (0: the first of its room), by message id. Once a message is committed its
/// room's earlier messages are all committed (see [`insert_batch`]), so the answer is final.
/// Two indexed queries per room: the message before the room's first of `stored`, and the
/// room's ids from there to its last of `stored` (others' messages may lie between when a
/// batch was stored a message at a time).
pub fn previous_ids(
    conn: &mut DbConnection,
    stored: &[(i64, i64)],
) -> QueryResult<std::collections::HashMap<i64, i64>> {
    let mut by_room: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
    for &(room, id) in stored {
        let span = by_room.entry(room).or_insert((id, id));
        span.0 = span.0.min(id);
        span.1 = span.1.max(id);
    }
    let mut prev = std::collections::HashMap::with_capacity(stored.len());
    for (room, (first, last)) in by_room {
        let before: Option<i64> = messages::table
            .filter(messages::room_id.eq(room))
            .filter(messages::id.lt(first))
            .select(diesel::dsl::max(messages::id))
            .first(conn)?;
        let ids: Vec<i64> = messages::table
            .filter(messages::room_id.eq(room))
            .filter(messages::id.between(first, last))
            .order(messages::id.asc())
            .select(messages::id)
            .load(conn)?;
        let mut last_seen = before.unwrap_or(0);
        for id in ids {
            prev.insert(id, last_seen);
            last_seen = id;
        }
    }
    Ok(prev)
}

/// How many messages are stored in all.
pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    messages::table.count().get_result(conn)
}

/// One page of a room's history, oldest first, and whether more messages remain beyond it
/// in the page's direction: older ones for [`Cursor::Before`] (ask again with the first
/// `msg_id`), newer ones for [`Cursor::After`] (ask again with the last).
pub fn page(
    conn: &mut DbConnection,
    room_id: i64,
    cursor: Cursor,
    limit: i64,
) -> QueryResult<(Vec<Message>, bool)> {
    let limit = limit.clamp(1, MAX_PAGE);
    // One row more than the page tells whether more remain, without a count.
    let query = messages::table
        .filter(messages::room_id.eq(room_id))
        .select(Message::as_select())
        .limit(limit + 1)
        .into_boxed();
    let mut rows = match cursor {
        Cursor::Before(before_id) => {
            let mut query = query.order(messages::id.desc());
            if let Some(before_id) = before_id {
                query = query.filter(messages::id.lt(before_id));
            }
            query.load(conn)?
        }
        Cursor::After(after_id) => query
            .order(messages::id.asc())
            .filter(messages::id.gt(after_id))
            .load(conn)?,
    };
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    if matches!(cursor, Cursor::Before(_)) {
        rows.reverse();
    }
    Ok((rows, has_more))
}

/// The nicknames of the senders of `messages`.
pub(crate) fn sender_names(
    conn: &mut DbConnection,
    messages: &[Message],
) -> QueryResult<std::collections::HashMap<i64, String>> {
    let ids: Vec<i64> = messages.iter().map(|m| m.sender_id).collect();
    super::users::nicknames(conn, &ids)
}

/// The row `new` became when it was inserted with `id`.
fn stored_as(new: &NewMessage, id: i64) -> Message {
    Message {
        id,
        room_id: new.room_id,
        sender_id: new.sender_id,
        client_msg_id: new.client_msg_id.clone(),
        body: new.body.clone(),
        created_at: new.created_at,
    }
}
