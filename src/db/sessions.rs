//! Queries on `sessions`: login tokens, stored only as their SHA-256.

use diesel::prelude::*;

use super::{
    models::{NewSession, Session, User},
    now_ms, on_backend,
    schema::{sessions, users},
    DbConnection,
};

/// `last_used_at` is only stored again when it is this stale, so busy clients do not write
/// on every request.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Stores a new session for `user_id` and returns it.
pub fn create(conn: &mut DbConnection, new: &NewSession<'_>) -> QueryResult<Session> {
    on_backend!(conn, c => diesel::insert_into(sessions::table)
        .values(new)
        .returning(Session::as_returning())
        .get_result(c))
}

/// The live (unexpired) session with this token hash, and its user. Reads only: the caller
/// stores `last_used_at` when [`touch_due`] (batched, through [`super::Touches`]).
pub(crate) fn find_live(
    conn: &mut DbConnection,
    token_hash: &str,
) -> QueryResult<Option<(Session, User)>> {
    let now = now_ms();
    let found = sessions::table
        .inner_join(users::table)
        .filter(sessions::token_hash.eq(token_hash))
        .filter(sessions::expires_at.gt(now))
        .select((Session::as_select(), User::as_select()))
        .first::<(Session, User)>(conn)
        .optional()?;
    Ok(found)
}

/// Whether `session`'s `last_used_at` is stale enough to be stored again now.
pub(crate) fn touch_due(session: &Session) -> bool {
    now_ms() - session.last_used_at > TOUCH_EVERY_MS
}

/// Sets `last_used_at` of these sessions to `now` (one statement; see [`super::Touches`]).
pub(crate) fn touch(conn: &mut DbConnection, session_ids: &[i64], now: i64) -> QueryResult<usize> {
    diesel::update(sessions::table.filter(sessions::id.eq_any(session_ids)))
        .set(sessions::last_used_at.eq(now))
        .execute(conn)
}

/// Ends one session.
pub(crate) fn revoke(conn: &mut DbConnection, session_id: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.find(session_id)).execute(conn)
}

/// Ends every session of a user; returns how many there were.
pub(crate) fn revoke_all(conn: &mut DbConnection, user_id: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
}

/// Ends every session of a user except `keep`; returns how many there were.
pub(crate) fn revoke_others(
    conn: &mut DbConnection,
    user_id: i64,
    keep: i64,
) -> QueryResult<usize> {
    diesel::delete(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::id.ne(keep)),
    )
    .execute(conn)
}

/// Removes expired sessions; returns how many.
pub(crate) fn purge_expired(conn: &mut DbConnection) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at.le(now_ms()))).execute(conn)
}

/// A user's live sessions, newest first.
pub(crate) fn live_for(conn: &mut DbConnection, user_id: i64) -> QueryResult<Vec<Session>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::expires_at.gt(now_ms()))
        .select(Session::as_select())
        .order(sessions::id.desc())
        .load(conn)
}

/// How many live sessions there are.
pub(crate) fn count_live(conn: &mut DbConnection) -> QueryResult<i64> {
    sessions::table
        .filter(sessions::expires_at.gt(now_ms()))
        .count()
        .get_result(conn)
}
