//! Queries on `calls`, the call log.

use diesel::prelude::*;

use super::{
    models::{Call, CallState, NewCall},
    now_ms, on_backend,
    schema::calls,
    DbConnection,
};

/// Logs a new call.
pub fn create(conn: &mut DbConnection, new: &NewCall<'_>) -> QueryResult<Call> {
    on_backend!(conn, c => diesel::insert_into(calls::table)
        .values(new)
        .returning(Call::as_returning())
        .get_result(c))
}

/// Moves a call to `state` at `now` (ms), stamping `answered_at` on accept and `ended_at` on
/// any final state.
pub(crate) fn set_state(
    conn: &mut DbConnection,
    call_key: &str,
    state: CallState,
    now: i64,
) -> QueryResult<usize> {
    let target = calls::table.filter(calls::call_key.eq(call_key));
    match state {
        CallState::Ringing => diesel::update(target)
            .set(calls::state.eq(state.as_str()))
            .execute(conn),
        CallState::Accepted => diesel::update(target)
            .set((
                calls::state.eq(state.as_str()),
                calls::answered_at.eq(Some(now)),
            ))
            .execute(conn),
        _ => diesel::update(target)
            .set((
                calls::state.eq(state.as_str()),
                calls::ended_at.eq(Some(now)),
            ))
            .execute(conn),
    }
}

/// Missed calls the callee has not been told about yet, oldest first.
pub(crate) fn unseen_missed(conn: &mut DbConnection, callee_id: i64) -> QueryResult<Vec<Call>> {
    calls::table
        .filter(calls::callee_id.eq(callee_id))
        .filter(calls::state.eq(CallState::Missed.as_str()))
        .filter(calls::seen_by_callee.eq(false))
        .select(Call::as_select())
        .order(calls::id.asc())
        .load(conn)
}

/// Every user with missed calls they have not been told about.
pub(crate) fn callees_with_unseen_missed(conn: &mut DbConnection) -> QueryResult<Vec<i64>> {
    calls::table
        .filter(calls::state.eq(CallState::Missed.as_str()))
        .filter(calls::seen_by_callee.eq(false))
        .select(calls::callee_id)
        .distinct()
        .load(conn)
}

/// Records that the callee has been told about these calls.
pub(crate) fn mark_seen(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<usize> {
    diesel::update(calls::table.filter(calls::id.eq_any(ids)))
        .set(calls::seen_by_callee.eq(true))
        .execute(conn)
}

/// A user's calls, made or received, newest first.
pub(crate) fn log_for(conn: &mut DbConnection, user_id: i64, limit: i64) -> QueryResult<Vec<Call>> {
    calls::table
        .filter(
            calls::caller_id
                .eq(user_id)
                .or(calls::callee_id.eq(user_id)),
        )
        .select(Call::as_select())
        .order(calls::id.desc())
        .limit(limit.clamp(1, 500))
        .load(conn)
}

/// After a restart no call can still be live: ringing ones were missed, accepted ones ended.
pub(crate) fn close_dangling(conn: &mut DbConnection) -> QueryResult<usize> {
    let ringing = set_state_where(conn, CallState::Ringing, CallState::Missed)?;
    let accepted = set_state_where(conn, CallState::Accepted, CallState::Ended)?;
    Ok(ringing + accepted)
}

fn set_state_where(conn: &mut DbConnection, from: CallState, to: CallState) -> QueryResult<usize> {
    diesel::update(calls::table.filter(calls::state.eq(from.as_str())))
        .set((
            calls::state.eq(to.as_str()),
            calls::ended_at.eq(Some(now_ms())),
        ))
        .execute(conn)
}

/// How many calls are logged in all.
pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    calls::table.count().get_result(conn)
}

/// Marks a ringing call missed at `now` (ms); `seen` when the callee was told at once (they
/// were online).
pub(crate) fn set_missed(
    conn: &mut DbConnection,
    call_key: &str,
    seen: bool,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(
        calls::table
            .filter(calls::call_key.eq(call_key))
            .filter(calls::state.eq(CallState::Ringing.as_str())),
    )
    .set((
        calls::state.eq(CallState::Missed.as_str()),
        calls::ended_at.eq(Some(now)),
        calls::seen_by_callee.eq(seen),
    ))
    .execute(conn)
}

/// A user's call log with the other party's nickname, newest first.
pub(crate) fn log_with_names(
    conn: &mut DbConnection,
    user_id: i64,
    limit: i64,
) -> QueryResult<Vec<(Call, String)>> {
    let log = log_for(conn, user_id, limit)?;
    let others: Vec<i64> = log
        .iter()
        .map(|c| {
            if c.caller_id == user_id {
                c.callee_id
            } else {
                c.caller_id
            }
        })
        .collect();
    let names = super::users::nicknames(conn, &others)?;
    Ok(log
        .into_iter()
        .zip(others)
        .map(|(call, other)| (call, names.get(&other).cloned().unwrap_or_default()))
        .collect())
}

/// Unseen missed calls of a user with the caller's nickname, marked seen in the same
/// transaction (so they are announced once).
pub(crate) fn take_unseen_missed(
    conn: &mut DbConnection,
    callee_id: i64,
) -> QueryResult<Vec<(Call, String)>> {
    crate::db::write_transaction(conn, |conn| {
        let missed = unseen_missed(conn, callee_id)?;
        if missed.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = missed.iter().map(|c| c.id).collect();
        mark_seen(conn, &ids)?;
        let callers: Vec<i64> = missed.iter().map(|c| c.caller_id).collect();
        let names = super::users::nicknames(conn, &callers)?;
        Ok(missed
            .into_iter()
            .map(|c| {
                let name = names.get(&c.caller_id).cloned().unwrap_or_default();
                (c, name)
            })
            .collect())
    })
}
