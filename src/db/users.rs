//! Queries on `users` and their themes.

use std::collections::HashMap;

use diesel::prelude::*;

use super::{
    models::{Capabilities, Capability, NewUser, Role, User},
    on_backend,
    schema::{themes, user_themes, users},
    DbConnection,
};

/// Inserts a user and links their themes, in one transaction.
pub fn create(conn: &mut DbConnection, new: &NewUser<'_>, theme_ids: &[i64]) -> QueryResult<User> {
    // A plain transaction: it nests (as a savepoint) inside a caller's immediate one.
    conn.transaction(|conn| {
        let user: User = on_backend!(conn, c => diesel::insert_into(users::table)
        .values(new)
        .returning(User::as_returning())
        .get_result(c))?;
        link_themes(conn, user.id, theme_ids)?;
        Ok(user)
    })
}

fn link_themes(conn: &mut DbConnection, user_id: i64, theme_ids: &[i64]) -> QueryResult<()> {
    let rows: Vec<_> = theme_ids
        .iter()
        .map(|&theme_id| {
            (
                user_themes::user_id.eq(user_id),
                user_themes::theme_id.eq(theme_id),
            )
        })
        .collect();
    on_backend!(conn, c => diesel::insert_into(user_themes::table)
        .values(&rows)
        .on_conflict_do_nothing()
        .execute(c))
    .map(drop)
}

/// Replaces the set of themes a user follows.
pub(crate) fn set_themes(
    conn: &mut DbConnection,
    user_id: i64,
    theme_ids: &[i64],
) -> QueryResult<()> {
    conn.transaction(|conn| {
        diesel::delete(user_themes::table.filter(user_themes::user_id.eq(user_id)))
            .execute(conn)?;
        link_themes(conn, user_id, theme_ids)
    })
}

/// Finds a user by nickname, ignoring case.
pub(crate) fn find_by_nickname(
    conn: &mut DbConnection,
    nickname: &str,
) -> QueryResult<Option<User>> {
    // The column is COLLATE NOCASE (SQLite, ASCII case) or `nocase` (PostgreSQL, ICU: any
    // case), so `=` already ignores case and uses the index.
    users::table
        .filter(users::nickname.eq(nickname))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Finds a user by id.
pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// The users with these ids (unknown ids are skipped), by id.
pub(crate) fn find_many(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<User>> {
    users::table
        .filter(users::id.eq_any(ids))
        .select(User::as_select())
        .order(users::id)
        .load(conn)
}

/// The theme names each of `user_ids` follows, sorted by name.
pub(crate) fn themes_of(
    conn: &mut DbConnection,
    user_ids: &[i64],
) -> QueryResult<HashMap<i64, Vec<String>>> {
    let rows: Vec<(i64, String)> = user_themes::table
        .inner_join(themes::table)
        .filter(user_themes::user_id.eq_any(user_ids))
        .select((user_themes::user_id, themes::name))
        .order((user_themes::user_id, themes::name))
        .load(conn)?;
    let mut map: HashMap<i64, Vec<String>> = HashMap::new();
    for (user_id, name) in rows {
        map.entry(user_id).or_default().push(name);
    }
    Ok(map)
}

/// Updates what a user can do.
pub(crate) fn set_capabilities(
    conn: &mut DbConnection,
    user_id: i64,
    caps: Capabilities,
) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set((
            users::can_video.eq(caps.video),
            users::can_audio.eq(caps.audio),
            users::can_text.eq(caps.text),
        ))
        .execute(conn)
        .map(drop)
}

/// Stores a new password hash.
pub(crate) fn set_password_hash(
    conn: &mut DbConnection,
    user_id: i64,
    hash: &str,
) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set(users::password_hash.eq(hash))
        .execute(conn)
        .map(drop)
}

/// Sets `last_seen_at` of these users to `now` (one statement; see [`super::Touches`]).
pub(crate) fn touch_last_seen(
    conn: &mut DbConnection,
    user_ids: &[i64],
    now: i64,
) -> QueryResult<usize> {
    diesel::update(users::table.filter(users::id.eq_any(user_ids)))
        .set(users::last_seen_at.eq(Some(now)))
        .execute(conn)
}

/// The nicknames of `ids` (duplicates and unknown ids are fine), for labelling rows that
/// point at users.
pub fn nicknames(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<HashMap<i64, String>> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    Ok(users::table
        .filter(users::id.eq_any(&ids))
        .select((users::id, users::nickname))
        .load::<(i64, String)>(conn)?
        .into_iter()
        .collect())
}

/// Changes a user's role.
pub fn set_role(conn: &mut DbConnection, user_id: i64, role: Role) -> QueryResult<usize> {
    diesel::update(users::table.find(user_id))
        .set(users::role.eq(role.as_str()))
        .execute(conn)
}

/// Which users a directory page shows; every field narrows the list.
#[derive(Debug, Clone, Default)]
pub struct DirectoryFilter {
    /// Only followers of this theme.
    pub theme_id: Option<i64>,
    /// Only users who can do this.
    pub capability: Option<Capability>,
    /// `Some(false)`: hide banned users (what non-admins see); `None`: banned or not.
    pub banned: Option<bool>,
    /// Only these users (e.g. the ones online right now, as presence knows them).
    pub only_ids: Option<Vec<i64>>,
    /// Not these users (e.g. `online=false`: everyone presence does not know).
    pub except_ids: Option<Vec<i64>>,
    /// Only nicknames containing this text (ASCII letters in any case).
    pub nickname_contains: Option<String>,
}

/// The users matching `filter`, as a boxed query (shared by the page and its count).
fn filtered(
    filter: &DirectoryFilter,
    backend: super::Backend,
) -> users::BoxedQuery<'_, super::MultiBackend> {
    let mut query = users::table.into_boxed();
    if let Some(theme_id) = filter.theme_id {
        query = query.filter(
            users::id.eq_any(
                user_themes::table
                    .filter(user_themes::theme_id.eq(theme_id))
                    .select(user_themes::user_id),
            ),
        );
    }
    query = match filter.capability {
        None => query,
        Some(Capability::Video) => query.filter(users::can_video.eq(true)),
        Some(Capability::Audio) => query.filter(users::can_audio.eq(true)),
        Some(Capability::Text) => query.filter(users::can_text.eq(true)),
    };
    if let Some(banned) = filter.banned {
        query = query.filter(users::banned.eq(banned));
    }
    if let Some(ids) = &filter.only_ids {
        query = query.filter(users::id.eq_any(ids));
    }
    if let Some(ids) = &filter.except_ids {
        query = query.filter(users::id.ne_all(ids));
    }
    if let Some(text) = &filter.nickname_contains {
        // LIKE's own characters stand for themselves.
        let pattern = format!(
            "%{}%",
            text.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        query = match backend {
            // SQLite's LIKE ignores ASCII case.
            super::Backend::Sqlite => query.filter(users::nickname.like(pattern).escape('\\')),
            // PostgreSQL refuses LIKE on the column's case-insensitive (nondeterministic)
            // collation: both sides lowered under ICU's deterministic root collation.
            super::Backend::Postgres => query.filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>(
                    r#"lower(users.nickname COLLATE "und-x-icu") LIKE lower("#,
                )
                .bind::<diesel::sql_types::Text, _>(pattern)
                .sql(r#" COLLATE "und-x-icu") ESCAPE '\'"#),
            ),
        };
    }
    query
}

/// One page of the users matching `filter`, by nickname (case-insensitively), and how many
/// match in all.
pub fn directory(
    conn: &mut DbConnection,
    filter: &DirectoryFilter,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<User>, i64)> {
    conn.transaction(|conn| {
        let backend = conn.backend();
        let total = filtered(filter, backend).count().get_result(conn)?;
        let page = filtered(filter, backend)
            .select(User::as_select())
            .order((users::nickname, users::id))
            .limit(limit)
            .offset(offset)
            .load(conn)?;
        Ok((page, total))
    })
}

/// Bans or unbans a user; returns how many rows changed (0: no such user).
pub fn set_banned(conn: &mut DbConnection, user_id: i64, banned: bool) -> QueryResult<usize> {
    diesel::update(users::table.find(user_id))
        .set(users::banned.eq(banned))
        .execute(conn)
}

/// Deletes a user; their sessions, theme links, memberships, messages and calls go with them
/// (`ON DELETE CASCADE`). Returns how many rows went (0: no such user).
pub fn delete(conn: &mut DbConnection, user_id: i64) -> QueryResult<usize> {
    diesel::delete(users::table.find(user_id)).execute(conn)
}

/// How many users there are: all, banned, admins.
pub fn counts(conn: &mut DbConnection) -> QueryResult<(i64, i64, i64)> {
    let all = users::table.count().get_result(conn)?;
    let banned = users::table
        .filter(users::banned.eq(true))
        .count()
        .get_result(conn)?;
    let admins = users::table
        .filter(users::role.eq(Role::Admin.as_str()))
        .count()
        .get_result(conn)?;
    Ok((all, banned, admins))
}
