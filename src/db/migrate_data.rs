//! `tertulia migrate-data --from tertulia.db --to postgres://…`: a community that started on
//! SQLite moves to PostgreSQL. Every row of every table is copied, ids kept (so `msg_id`s,
//! call ids and links stay what clients know), into an empty, migrated PostgreSQL database in
//! one transaction: a failure leaves the target as it was. Then each identity sequence is set
//! past the largest id copied, so new rows never collide. Login sessions are copied too:
//! people stay signed in across the move.

use std::path::Path;

use diesel::prelude::*;

use super::{
    models::{Call, Message, Room, Session, Theme, User},
    schema::{
        calls, messages, room_members, rooms, sessions, theme_descriptions, themes, user_themes,
        users,
    },
    Backend, DbConnection,
};

/// Rows per `INSERT` (PostgreSQL binds at most 65,535 parameters per statement).
const CHUNK: usize = 2_000;

/// How many rows of each table were copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copied {
    pub users: usize,
    pub themes: usize,
    pub theme_descriptions: usize,
    pub user_themes: usize,
    pub sessions: usize,
    pub rooms: usize,
    pub room_members: usize,
    pub messages: usize,
    pub calls: usize,
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "users {}, themes {}, theme descriptions {}, follows {}, sessions {}, rooms {}, \
             room members {}, messages {}, calls {}",
            self.users,
            self.themes,
            self.theme_descriptions,
            self.user_themes,
            self.sessions,
            self.rooms,
            self.room_members,
            self.messages,
            self.calls
        )
    }
}

/// Copies the SQLite database `from` into the PostgreSQL database `to` (both migrated first to
/// this version's schema). Refuses a target that already holds people, rooms, messages, calls
/// or sessions; the themes a fresh target was seeded with are replaced by the source's.
pub fn copy(from: &str, to: &str) -> Result<Copied, String> {
    if Backend::of(from) != Backend::Sqlite {
        return Err(format!(
            "--from must be a SQLite file, not {}",
            super::redact_url(from)
        ));
    }
    if !Path::new(from).is_file() {
        return Err(format!("--from {from}: no such SQLite file"));
    }
    if Backend::of(to) != Backend::Postgres {
        return Err(format!(
            "--to must be a postgres:// URL, not {to} (migrate-data moves a SQLite community to \
             PostgreSQL)"
        ));
    }
    let mut source = open(from)?;
    let mut target = open(to)?;
    let (DbConnection::Sqlite(sqlite), DbConnection::Postgres(pg)) = (&mut source, &mut target)
    else {
        return Err("unexpected backends".to_owned());
    };
    pg.transaction(|pg| copy_all(sqlite, pg))
        .map_err(|e| match e {
            CopyError::NotEmpty(what) => format!(
                "the target database is not empty ({what}); migrate-data copies into an empty \
                 database only: create a new one (createdb), run `tertulia migrate \
                 --database-url <it>` or nothing, and try again"
            ),
            CopyError::Db(e) => format!("copy failed, nothing was written to the target: {e}"),
        })
}

/// Opens and migrates one side.
fn open(url: &str) -> Result<DbConnection, String> {
    let mut conn = super::probe(url).map_err(|e| e.to_string())?;
    super::migrate(&mut conn).map_err(|e| match e {
        super::MigrateError::Newer(v) => format!(
            "{} was migrated by a newer Tertulia (migration {v}); use that version's \
             migrate-data",
            super::redact_url(url)
        ),
        super::MigrateError::Failed(e) => {
            format!("cannot migrate {}: {e}", super::redact_url(url))
        }
    })?;
    Ok(conn)
}

/// Why the copy's transaction rolled back.
#[derive(Debug)]
enum CopyError {
    NotEmpty(String),
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for CopyError {
    fn from(e: diesel::result::Error) -> Self {
        CopyError::Db(e)
    }
}

fn copy_all(sqlite: &mut SqliteConnection, pg: &mut PgConnection) -> Result<Copied, CopyError> {
    let held = [
        ("users", users::table.count().get_result::<i64>(pg)?),
        ("rooms", rooms::table.count().get_result::<i64>(pg)?),
        ("messages", messages::table.count().get_result::<i64>(pg)?),
        ("calls", calls::table.count().get_result::<i64>(pg)?),
        ("sessions", sessions::table.count().get_result::<i64>(pg)?),
    ];
    let non_empty: Vec<String> = held
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{n} {what}"))
        .collect();
    if !non_empty.is_empty() {
        return Err(CopyError::NotEmpty(non_empty.join(", ")));
    }
    // A fresh target holds only the seeded themes and their descriptions (nobody follows
    // them yet): the source's, with their ids, replace them.
    diesel::delete(theme_descriptions::table).execute(pg)?;
    diesel::delete(themes::table).execute(pg)?;

    let mut copied = Copied::default();
    let all_users: Vec<User> = users::table
        .select(User::as_select())
        .order(users::id)
        .load(sqlite)?;
    copied.users = insert_chunks(pg, &all_users, |pg, rows| {
        diesel::insert_into(users::table).values(rows).execute(pg)
    })?;
    let all_themes: Vec<Theme> = themes::table
        .select(Theme::as_select())
        .order(themes::id)
        .load(sqlite)?;
    copied.themes = insert_chunks(pg, &all_themes, |pg, rows| {
        diesel::insert_into(themes::table).values(rows).execute(pg)
    })?;
    let described: Vec<(i64, String, String)> = theme_descriptions::table
        .select((
            theme_descriptions::theme_id,
            theme_descriptions::language,
            theme_descriptions::description,
        ))
        .load(sqlite)?;
    copied.theme_descriptions = insert_chunks(pg, &described, |pg, rows| {
        let rows: Vec<_> = rows
            .iter()
            .map(|(t, l, d)| {
                (
                    theme_descriptions::theme_id.eq(*t),
                    theme_descriptions::language.eq(l),
                    theme_descriptions::description.eq(d),
                )
            })
            .collect();
        diesel::insert_into(theme_descriptions::table)
            .values(&rows)
            .execute(pg)
    })?;
    let follows: Vec<(i64, i64)> = user_themes::table
        .select((user_themes::user_id, user_themes::theme_id))
        .load(sqlite)?;
    copied.user_themes = insert_chunks(pg, &follows, |pg, rows| {
        let rows: Vec<_> = rows
            .iter()
            .map(|&(u, t)| (user_themes::user_id.eq(u), user_themes::theme_id.eq(t)))
            .collect();
        diesel::insert_into(user_themes::table)
            .values(&rows)
            .execute(pg)
    })?;
    let all_sessions: Vec<Session> = sessions::table
        .select(Session::as_select())
        .order(sessions::id)
        .load(sqlite)?;
    copied.sessions = insert_chunks(pg, &all_sessions, |pg, rows| {
        diesel::insert_into(sessions::table)
            .values(rows)
            .execute(pg)
    })?;
    let all_rooms: Vec<Room> = rooms::table
        .select(Room::as_select())
        .order(rooms::id)
        .load(sqlite)?;
    copied.rooms = insert_chunks(pg, &all_rooms, |pg, rows| {
        diesel::insert_into(rooms::table).values(rows).execute(pg)
    })?;
    let members: Vec<(i64, i64, i64, i64)> = room_members::table
        .select((
            room_members::room_id,
            room_members::user_id,
            room_members::joined_at,
            room_members::last_read_msg_id,
        ))
        .load(sqlite)?;
    copied.room_members = insert_chunks(pg, &members, |pg, rows| {
        let rows: Vec<_> = rows
            .iter()
            .map(|&(r, u, at, read)| {
                (
                    room_members::room_id.eq(r),
                    room_members::user_id.eq(u),
                    room_members::joined_at.eq(at),
                    room_members::last_read_msg_id.eq(read),
                )
            })
            .collect();
        diesel::insert_into(room_members::table)
            .values(&rows)
            .execute(pg)
    })?;
    // Messages page by page: the one table that may not fit in memory at once.
    let mut after = 0_i64;
    loop {
        let page: Vec<Message> = messages::table
            .filter(messages::id.gt(after))
            .select(Message::as_select())
            .order(messages::id)
            .limit(CHUNK as i64 * 10)
            .load(sqlite)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        copied.messages += insert_chunks(pg, &page, |pg, rows| {
            diesel::insert_into(messages::table)
                .values(rows)
                .execute(pg)
        })?;
    }
    let all_calls: Vec<Call> = calls::table
        .select(Call::as_select())
        .order(calls::id)
        .load(sqlite)?;
    copied.calls = insert_chunks(pg, &all_calls, |pg, rows| {
        diesel::insert_into(calls::table).values(rows).execute(pg)
    })?;

    for table in ["users", "themes", "sessions", "rooms", "messages", "calls"] {
        reset_sequence(pg, table)?;
    }
    Ok(copied)
}

/// Inserts `rows` in chunks; returns how many went in.
fn insert_chunks<T>(
    pg: &mut PgConnection,
    rows: &[T],
    insert: impl Fn(&mut PgConnection, &[T]) -> QueryResult<usize>,
) -> QueryResult<usize> {
    rows.chunks(CHUNK).map(|chunk| insert(pg, chunk)).sum()
}

/// Sets `table`'s identity sequence so the next id is one past the largest copied.
fn reset_sequence(pg: &mut PgConnection, table: &str) -> QueryResult<()> {
    // `table` is one of this module's own names, never input.
    diesel::sql_query(format!(
        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
         COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
    ))
    .execute(pg)
    .map(drop)
}
