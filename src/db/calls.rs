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
/// any final state. Only from the state each move starts from (an answer or a miss from
/// `ringing`, an end from `accepted`): the database is the referee between nodes, so of two
/// moves that race (an accept and the sweep of a dead node's calls) only one changes the
/// row; answers how many rows changed (0: another move won).
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
        CallState::Accepted => {
            diesel::update(target.filter(calls::state.eq(CallState::Ringing.as_str())))
                .set((
                    calls::state.eq(state.as_str()),
                    calls::answered_at.eq(Some(now)),
                ))
                .execute(conn)
        }
        CallState::Ended => {
            diesel::update(target.filter(calls::state.eq(CallState::Accepted.as_str())))
                .set((
                    calls::state.eq(state.as_str()),
                    calls::ended_at.eq(Some(now)),
                ))
                .execute(conn)
        }
        CallState::Declined | CallState::Missed | CallState::Cancelled => {
            diesel::update(target.filter(calls::state.eq(CallState::Ringing.as_str())))
                .set((
                    calls::state.eq(state.as_str()),
                    calls::ended_at.eq(Some(now)),
                ))
                .execute(conn)
        }
    }
}

/// The states of a live call (ringing, or running).
const LIVE: [&str; 2] = ["ringing", "accepted"];

/// Who runs the live call `call_key`: `None` when no such call is live, `Some(None)` when
/// it is run by a server alone (no node named).
pub(crate) fn live_owner(
    conn: &mut DbConnection,
    call_key: &str,
) -> QueryResult<Option<Option<String>>> {
    calls::table
        .filter(calls::call_key.eq(call_key))
        .filter(calls::state.eq_any(LIVE))
        .select(calls::owner_node)
        .first(conn)
        .optional()
}

/// Every node that runs live calls in the log.
pub(crate) fn live_owners(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    calls::table
        .filter(calls::state.eq_any(LIVE))
        .filter(calls::owner_node.is_not_null())
        .select(calls::owner_node.assume_not_null())
        .distinct()
        .load(conn)
}

/// The ringing calls run by `node` (which is gone) are missed at `now`, unseen: answers
/// `(call_key, caller_id, callee_id)` of each call this moved. Under PostgreSQL the rows are
/// locked by the update, so of several nodes sweeping at once each call moves for one.
pub(crate) fn miss_orphans(
    conn: &mut DbConnection,
    node: &str,
    now: i64,
) -> QueryResult<Vec<(String, i64, i64)>> {
    let target = calls::table
        .filter(calls::owner_node.eq(node))
        .filter(calls::state.eq(CallState::Ringing.as_str()));
    on_backend!(conn, c => diesel::update(target)
        .set((
            calls::state.eq(CallState::Missed.as_str()),
            calls::ended_at.eq(Some(now)),
            calls::seen_by_callee.eq(false),
        ))
        .returning((calls::call_key, calls::caller_id, calls::callee_id))
        .get_results(c))
}

/// The running calls of `node` (which is gone) are run by `to` from now on: answers
/// `(call_key, caller_id, callee_id)` of each call it took (once over all nodes).
pub(crate) fn adopt_orphans(
    conn: &mut DbConnection,
    node: &str,
    to: &str,
) -> QueryResult<Vec<(String, i64, i64)>> {
    let target = calls::table
        .filter(calls::owner_node.eq(node))
        .filter(calls::state.eq(CallState::Accepted.as_str()));
    on_backend!(conn, c => diesel::update(target)
        .set(calls::owner_node.eq(Some(to)))
        .returning((calls::call_key, calls::caller_id, calls::callee_id))
        .get_results(c))
}

/// Records that the callee of `call_key` has been told it was missed.
pub(crate) fn mark_seen_key(conn: &mut DbConnection, call_key: &str) -> QueryResult<usize> {
    diesel::update(calls::table.filter(calls::call_key.eq(call_key)))
        .set(calls::seen_by_callee.eq(true))
        .execute(conn)
}

/// A call with `user` in it, in the room called `room`, as the log has it (for a call room
/// entered on a node that does not run the call).
#[derive(Debug, PartialEq)]
pub(crate) enum InRoom {
    /// It runs, on that node (`None`: a server alone).
    Running(Option<String>),
    /// It still rings (an answer may be on its way to the log).
    Ringing,
    /// No such call.
    Nothing,
}

/// Where `user`'s call in the room called `room` stands in the log.
pub(crate) fn call_in_room(conn: &mut DbConnection, room: &str, user: i64) -> QueryResult<InRoom> {
    use super::schema::rooms;
    let calls: Vec<(String, Option<String>)> = calls::table
        .inner_join(rooms::table)
        .filter(rooms::name.eq(room))
        .filter(calls::state.eq_any(LIVE))
        .filter(calls::caller_id.eq(user).or(calls::callee_id.eq(user)))
        .select((calls::state, calls::owner_node))
        .load(conn)?;
    let running = calls
        .iter()
        .find(|(state, _)| state == CallState::Accepted.as_str());
    Ok(match running {
        Some((_, owner)) => InRoom::Running(owner.clone()),
        None if calls.is_empty() => InRoom::Nothing,
        None => InRoom::Ringing,
    })
}

/// A call ringing for its callee, as `call.incoming` announces it.
#[derive(Debug)]
pub(crate) struct Ringing {
    pub call_key: String,
    pub caller_id: i64,
    pub caller_nickname: String,
    pub media: String,
    pub room: Option<String>,
}

/// The calls ringing for `callee_id`, oldest first (for a connection that opens on a node
/// that does not run them).
pub(crate) fn ringing_for(conn: &mut DbConnection, callee_id: i64) -> QueryResult<Vec<Ringing>> {
    use super::schema::rooms;
    let rows: Vec<(String, i64, String, Option<String>)> = calls::table
        .left_join(rooms::table)
        .filter(calls::callee_id.eq(callee_id))
        .filter(calls::state.eq(CallState::Ringing.as_str()))
        .select((
            calls::call_key,
            calls::caller_id,
            calls::media,
            rooms::name.nullable(),
        ))
        .order(calls::id.asc())
        .load(conn)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let callers: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let names = super::users::nicknames(conn, &callers)?;
    Ok(rows
        .into_iter()
        .map(|(call_key, caller_id, media, room)| Ringing {
            call_key,
            caller_id,
            caller_nickname: names.get(&caller_id).cloned().unwrap_or_default(),
            media,
            room,
        })
        .collect())
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
/// `owner`: a node of several stopping (drained): only the calls it runs that ring are
/// missed (their callers are gone); its running calls stay, for a live node to take over
/// while their people reconnect to other nodes. `None`: every call (a server alone).
pub(crate) fn close_dangling(conn: &mut DbConnection, owner: Option<&str>) -> QueryResult<usize> {
    let ringing = set_state_where(conn, owner, CallState::Ringing, CallState::Missed)?;
    if owner.is_some() {
        return Ok(ringing);
    }
    let accepted = set_state_where(conn, owner, CallState::Accepted, CallState::Ended)?;
    Ok(ringing + accepted)
}

fn set_state_where(
    conn: &mut DbConnection,
    owner: Option<&str>,
    from: CallState,
    to: CallState,
) -> QueryResult<usize> {
    let values = (
        calls::state.eq(to.as_str()),
        calls::ended_at.eq(Some(now_ms())),
    );
    let target = calls::table.filter(calls::state.eq(from.as_str()));
    match owner {
        None => diesel::update(target).set(values).execute(conn),
        Some(node) => diesel::update(target.filter(calls::owner_node.eq(node)))
            .set(values)
            .execute(conn),
    }
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
    .and_then(|moved| match (moved, seen) {
        // Already missed (decided in the log first, with several nodes): the callee was told.
        (0, true) => mark_seen_key(conn, call_key),
        _ => Ok(moved),
    })
}

/// The state of the call `call_key` in the log, if it is there.
pub(crate) fn state_of(conn: &mut DbConnection, call_key: &str) -> QueryResult<Option<CallState>> {
    let state: Option<String> = calls::table
        .filter(calls::call_key.eq(call_key))
        .select(calls::state)
        .first(conn)
        .optional()?;
    Ok(state.as_deref().and_then(CallState::parse))
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
/// transaction (so they are announced once: of two connections opening at once, on two
/// nodes, only the one whose update marks a call seen tells it).
pub(crate) fn take_unseen_missed(
    conn: &mut DbConnection,
    callee_id: i64,
) -> QueryResult<Vec<(Call, String)>> {
    crate::db::write_transaction(conn, |conn| {
        let unseen = calls::table
            .filter(calls::callee_id.eq(callee_id))
            .filter(calls::state.eq(CallState::Missed.as_str()))
            .filter(calls::seen_by_callee.eq(false));
        let ids: Vec<i64> = on_backend!(conn, c => diesel::update(unseen)
            .set(calls::seen_by_callee.eq(true))
            .returning(calls::id)
            .get_results(c))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let missed: Vec<Call> = calls::table
            .filter(calls::id.eq_any(&ids))
            .select(Call::as_select())
            .order(calls::id.asc())
            .load(conn)?;
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

/// A call of `from` to `to` that still rings, run by a node other than `node`, made in a
/// room of its own or in the two people's direct conversation (not an invitation into a
/// running call): its `(call_key, media)`. Several nodes only (PostgreSQL): the pair of
/// people is locked first until the end of the transaction, so of two invitations crossing
/// on two nodes (each storing its own in such a transaction) the one stored second finds
/// the first.
pub(crate) fn crossing(
    conn: &mut DbConnection,
    from: i64,
    to: i64,
    node: &str,
) -> QueryResult<Option<(String, String)>> {
    use super::schema::rooms;
    if let DbConnection::Postgres(c) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind::<diesel::sql_types::Text, _>(format!(
                "tertulia:invitations:{}:{}",
                from.min(to),
                from.max(to)
            ))
            .execute(c)?;
    }
    let rows: Vec<(String, String, Option<String>)> = calls::table
        .left_join(rooms::table)
        .filter(calls::caller_id.eq(from))
        .filter(calls::callee_id.eq(to))
        .filter(calls::state.eq(CallState::Ringing.as_str()))
        .filter(calls::owner_node.ne(node))
        .select((calls::call_key, calls::media, rooms::name.nullable()))
        .order(calls::id.asc())
        .load(conn)?;
    let direct = super::rooms::direct_room_name(from, to);
    Ok(rows.into_iter().find_map(|(key, media, room)| {
        let own = room.as_deref() == Some(super::rooms::call_room_name(&key).as_str());
        let conversation = room.as_deref() == Some(direct.as_str());
        (own || conversation).then_some((key, media))
    }))
}

/// Ends the running call `call_key` at `now` if `user` is in it (a hang-up of a call whose
/// node is gone, before another has taken it over): answers its `[caller, callee]`, or
/// `None` if it does not run (with that user) in the log.
pub(crate) fn end_for(
    conn: &mut DbConnection,
    call_key: &str,
    user: i64,
    now: i64,
) -> QueryResult<Option<[i64; 2]>> {
    let target = calls::table
        .filter(calls::call_key.eq(call_key))
        .filter(calls::state.eq(CallState::Accepted.as_str()))
        .filter(calls::caller_id.eq(user).or(calls::callee_id.eq(user)));
    let ended: Option<(i64, i64)> = on_backend!(conn, c => diesel::update(target)
        .set((
            calls::state.eq(CallState::Ended.as_str()),
            calls::ended_at.eq(Some(now)),
        ))
        .returning((calls::caller_id, calls::callee_id))
        .get_result(c)
        .optional())?;
    Ok(ended.map(|(caller, callee)| [caller, callee]))
}
