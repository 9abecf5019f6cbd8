//! The database: SQLite (the default, a file) or PostgreSQL (a `postgres://` URL), through one
//! Diesel connection type, [`DbConnection`]; an r2d2 pool of them with their settings; the
//! embedded migrations of each backend; and [`run`], the one way handlers reach it without
//! blocking an async worker.
//!
//! One file per table holds that table's queries, written once for both backends; [`models`]
//! holds the rows. Where the two backends must differ (SQLite's pragmas and `BEGIN
//! IMMEDIATE`, PostgreSQL's row lock per chat room, `ON CONFLICT`, which Diesel's multi-backend
//! type does not offer) the code says so through [`on_backend!`] or a `match` on
//! [`DbConnection`], in this module and in `messages.rs`, `rooms.rs`, `users.rs`.
//!
//! # Layout
//!
//! - [`Backend`]: which database a URL names, by its scheme alone (SQLite accepts any string
//!   as a file name, so trying each backend in turn would create a file called `postgres:`).
//! - [`DbConnection`]: `#[derive(MultiConnection)]` over `PgConnection` and
//!   `SqliteConnection`; [`Manager`] opens the one the URL names for the pool.
//! - [`open`]: the start-up path: one probe connection whose failure is explained in one line
//!   ([`OpenError`]), SQLite switched to WAL once, the pool, then the migrations
//!   ([`migrate`]), refusing a database that a newer Tertulia migrated.
//! - `migrate_data.rs`: `tertulia migrate-data`, a SQLite community copied into PostgreSQL.

pub mod calls;
pub mod conversations;
pub mod messages;
pub mod migrate_data;
pub mod models;
pub mod rooms;
pub mod schema;
pub mod sessions;
pub mod themes;
pub mod touches;
pub mod users;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::{
    connection::{AnsiTransactionManager, SimpleConnection, TransactionManager},
    migration::MigrationSource,
    pg::Pg,
    r2d2::{CustomizeConnection, ManageConnection, Pool, PooledConnection, R2D2Connection},
    sqlite::Sqlite,
    Connection, PgConnection, RunQueryDsl, SqliteConnection,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
pub use touches::Touches;

use crate::error::{ApiError, ApiResult};

/// The SQLite migrations in `migrations/sqlite/`, compiled into the binary.
pub(crate) const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// The PostgreSQL migrations in `migrations/postgres/`, compiled into the binary: the same
/// versions as SQLite's, each giving the same tables (`src/db/schema.rs` for both).
pub(crate) const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a connection waits on a locked database before giving up.
const BUSY_TIMEOUT_MS: u32 = 5_000;

/// WAL pages after which a committing connection copies the WAL back into the database
/// (SQLite's default: 1,000, about 4 MiB). Chat commits touch the same hot pages again and
/// again (each room's and sender's index leaf), and a checkpoint writes each page once and
/// fsyncs: ten times fewer checkpoints cost less per message (docs/benchmarks.md). The WAL
/// file grows to about 40 MiB. With [`Durability::Full`] every commit is already on disk, so
/// this changes only the WAL's size; with [`Durability::Normal`] it is also how much of the
/// latest commits a power loss may take.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// How long PostgreSQL may take to accept a connection before it counts as unreachable.
const PG_CONNECT_TIMEOUT_SECS: u32 = 5;

/// Which database a `--database-url` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A file path (the default, `tertulia.db`), or any string that is not a PostgreSQL URL.
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
}

impl Backend {
    /// The backend `url` names, by its scheme alone.
    pub fn of(url: &str) -> Backend {
        let lower = url.get(..13).unwrap_or(url).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// One database connection, SQLite or PostgreSQL: every query in `src/db/` is written once
/// against it. Diesel builds each statement for the backend it holds.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// A PostgreSQL server.
    Postgres(PgConnection),
    /// A SQLite file.
    Sqlite(SqliteConnection),
}

/// Runs `$body` with `$c` bound to the concrete connection inside a [`DbConnection`]: for the
/// few statements Diesel's multi-backend type cannot build (`ON CONFLICT`, `FOR UPDATE`). The
/// body is the same text for both backends and compiled once for each.
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgres($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_backend;

impl DbConnection {
    /// Which backend this connection talks to.
    pub fn backend(&self) -> Backend {
        match self {
            DbConnection::Postgres(_) => Backend::Postgres,
            DbConnection::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// Shared pool of database connections.
pub type DbPool = Pool<Manager>;
/// One connection borrowed from the pool.
pub type DbConn = PooledConnection<Manager>;

/// Opens connections of the backend the URL names (never trying one backend, then another).
#[derive(Debug, Clone)]
pub struct Manager {
    url: String,
    backend: Backend,
    health: std::sync::Arc<Health>,
}

impl Manager {
    /// A manager for `url`.
    pub fn new(url: &str) -> Manager {
        Manager {
            url: url.to_owned(),
            backend: Backend::of(url),
            health: std::sync::Arc::default(),
        }
    }
}

/// What a pool has seen of its database lately, so that it checks a connection it hands out
/// (`SELECT 1`, a round trip to PostgreSQL) only when that check can tell something: after a
/// quiet moment, or after a failure. While connections keep coming back in good order the
/// database is there; a connection that failed is marked broken ([`mark_if_broken`]) and
/// dropped, and the failure makes the pool check every connection again for a while, so a
/// restarted PostgreSQL costs at most the requests in flight on connections it broke.
#[derive(Debug, Default)]
struct Health {
    /// When a connection last came back in good order (ms since the epoch).
    last_good: std::sync::atomic::AtomicI64,
    /// When a connection last failed its check or came back broken.
    last_failure: std::sync::atomic::AtomicI64,
}

/// A connection is handed out unchecked only if one came back in good order this recently ...
const UNCHECKED_AFTER_GOOD_MS: i64 = 1_000;
/// ... and none failed this recently.
const CHECKED_AFTER_FAILURE_MS: i64 = 10_000;

impl Health {
    fn note(&self, good: bool) {
        let at = if good {
            &self.last_good
        } else {
            &self.last_failure
        };
        at.store(now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a connection handed out now needs checking first.
    fn check_needed(&self) -> bool {
        let now = now_ms();
        let good = self.last_good.load(std::sync::atomic::Ordering::Relaxed);
        let failed = self.last_failure.load(std::sync::atomic::Ordering::Relaxed);
        now - good >= UNCHECKED_AFTER_GOOD_MS || now - failed < CHECKED_AFTER_FAILURE_MS
    }
}

/// After `result` of work on `conn` failed: if the connection itself no longer answers (its
/// server restarted, or ended it), it is marked broken, so the pool drops it when it comes
/// back instead of handing it out again. Answers whether it was.
fn mark_if_broken<T, E>(conn: &mut DbConnection, result: &Result<T, E>) -> bool {
    if result.is_ok() || conn.ping().is_ok() {
        return false;
    }
    on_backend!(conn, c => AnsiTransactionManager::transaction_manager_status_mut(c).set_in_error());
    true
}

/// What a request that failed on a connection the database broke is told: the database is
/// away (503), not an internal error.
fn database_away() -> ApiError {
    ApiError::Unavailable("the database is not answering".to_owned())
}

/// Opens one connection to `url` of `backend`.
fn connect(backend: Backend, url: &str) -> diesel::ConnectionResult<DbConnection> {
    match backend {
        Backend::Postgres => {
            PgConnection::establish(&with_connect_timeout(url)).map(DbConnection::Postgres)
        }
        Backend::Sqlite => SqliteConnection::establish(url).map(DbConnection::Sqlite),
    }
}

/// `url` with libpq's `connect_timeout` unless it has one: a server that drops packets would
/// otherwise hold a connection attempt (and the pool, and `/readyz`) for minutes.
fn with_connect_timeout(url: &str) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout={PG_CONNECT_TIMEOUT_SECS}")
}

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        connect(self.backend, &self.url).map_err(diesel::r2d2::Error::ConnectionError)
    }

    /// `SELECT 1`, when [`Health`] says it can tell something.
    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        if !self.health.check_needed() {
            return Ok(());
        }
        let checked = conn.ping().map_err(diesel::r2d2::Error::QueryError);
        if checked.is_err() {
            self.health.note(false);
        }
        checked
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        let broken = std::thread::panicking() || conn.is_broken();
        self.health.note(!broken);
        broken
    }
}

/// What an acknowledgement (a chat `ack`, a `201`) promises: SQLite's `PRAGMA synchronous`,
/// PostgreSQL's `synchronous_commit`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// Every commit is flushed to disk before it is acknowledged: nothing acknowledged is
    /// lost, even on a power loss or an OS crash (SQLite `synchronous = FULL`, PostgreSQL
    /// `synchronous_commit = on`).
    #[default]
    Full,
    /// Commits reach the log (safe when the process crashes) and are flushed a little later:
    /// a power loss or OS crash (on PostgreSQL, a crash of the server) may lose the latest
    /// acknowledged commits, never corrupt the database (SQLite `synchronous = NORMAL`,
    /// PostgreSQL `synchronous_commit = off`). Faster where fsync is slow.
    Normal,
}

impl Durability {
    /// The `PRAGMA synchronous` value.
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }

    /// The `synchronous_commit` value.
    fn pg_setting(self) -> &'static str {
        match self {
            Durability::Full => "on",
            Durability::Normal => "off",
        }
    }
}

/// Sets what every connection needs, one statement each, as it joins the pool.
#[derive(Debug, Clone, Copy)]
struct Settings {
    durability: Durability,
}

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for Settings {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        match conn {
            // WAL is switched on once, before the pool opens (see `prepare_sqlite`): it is a
            // property of the file, and switching it from every new connection at once is
            // what made fresh starts log `database is locked`.
            DbConnection::Sqlite(conn) => conn
                .batch_execute(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};"))
                .and_then(|()| {
                    conn.batch_execute(&format!(
                        "PRAGMA synchronous = {};",
                        self.durability.pragma()
                    ))
                })
                .and_then(|()| conn.batch_execute("PRAGMA foreign_keys = ON;"))
                .and_then(|()| {
                    conn.batch_execute(&format!(
                        "PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};"
                    ))
                }),
            // Explicit, so a server configured with `synchronous_commit = off` does not
            // quietly weaken what an ack promises; a lock wait gives up as SQLite's busy
            // timeout does (a chat write then gets an error, not an endless wait);
            // timestamps are UTC milliseconds anyway.
            DbConnection::Postgres(conn) => conn
                .batch_execute(&format!(
                    "SET synchronous_commit = {};",
                    self.durability.pg_setting()
                ))
                .and_then(|()| {
                    conn.batch_execute(&format!("SET lock_timeout = {BUSY_TIMEOUT_MS};"))
                })
                .and_then(|()| conn.batch_execute("SET TIME ZONE 'UTC';")),
        }
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Why the database could not be opened, in one line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Nothing answers at the PostgreSQL address (down, wrong host or port, firewalled).
    #[error(
        "cannot reach the PostgreSQL server of {url}: {detail}; start it, or correct the host \
         and port in --database-url / DATABASE_URL"
    )]
    Unreachable { url: String, detail: String },
    /// The server answered and refused the user or password.
    #[error(
        "PostgreSQL refused the credentials of {url}: {detail}; correct the user and password \
         in --database-url / DATABASE_URL (or the server's pg_hba.conf)"
    )]
    Credentials { url: String, detail: String },
    /// The server has no database of that name.
    #[error(
        "the PostgreSQL database of {url} does not exist: {detail}; create it (e.g. \
         `createdb -O <user> <name>`) or correct --database-url / DATABASE_URL"
    )]
    MissingDatabase { url: String, detail: String },
    /// Any other failure to open the database (a SQLite file that cannot be created, …).
    #[error("cannot open database {url}: {detail}")]
    Other { url: String, detail: String },
    /// The database records a migration this binary does not know.
    #[error(
        "database {url} was migrated by a newer Tertulia (migration {version} is unknown to \
         this one); run that newer version, or restore a backup taken before the upgrade"
    )]
    NewerSchema { url: String, version: String },
    /// A migration failed.
    #[error("cannot migrate database {url}: {detail}")]
    Migration { url: String, detail: String },
}

impl OpenError {
    /// Explains a failed first connection to `url`.
    fn from_connect(backend: Backend, url: &str, error: &diesel::ConnectionError) -> OpenError {
        let full = error.to_string();
        // libpq's messages run over several lines; the first says what happened.
        let detail = full
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .trim_start_matches("FATAL:")
            .trim()
            .to_owned();
        let url = redact_url(url);
        if backend == Backend::Sqlite {
            return OpenError::Other { url, detail };
        }
        let lower = full.to_ascii_lowercase();
        if lower.contains("database") && lower.contains("does not exist") {
            OpenError::MissingDatabase { url, detail }
        } else if lower.contains("password authentication failed")
            || lower.contains("no password supplied")
            || (lower.contains("role") && lower.contains("does not exist"))
            || lower.contains("pg_hba.conf")
            || lower.contains("authentication")
        {
            OpenError::Credentials { url, detail }
        } else if lower.contains("connection refused")
            || lower.contains("could not translate host name")
            || lower.contains("timeout expired")
            || lower.contains("no route to host")
            || lower.contains("network is unreachable")
            || lower.contains("could not connect")
            || lower.contains("connection to server")
        {
            OpenError::Unreachable { url, detail }
        } else {
            OpenError::Other { url, detail }
        }
    }
}

/// `url` with its password (if any) replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    if Backend::of(url) == Backend::Sqlite {
        return url.to_owned();
    }
    redact_userinfo(url)
}

/// A `scheme://user:password@host/…` URL (any scheme: also the broker's `redis://`) with its
/// password replaced by `***`.
pub fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Opens one connection to `url` and, for SQLite, switches the file to WAL once (a property
/// of the file; done here, on one connection, so the pool's connections never race to do it).
fn probe(url: &str) -> Result<DbConnection, OpenError> {
    let backend = Backend::of(url);
    let mut conn = connect(backend, url).map_err(|e| OpenError::from_connect(backend, url, &e))?;
    if let DbConnection::Sqlite(c) = &mut conn {
        c.batch_execute(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};"))
            .and_then(|()| c.batch_execute("PRAGMA journal_mode = WAL;"))
            .map_err(|e| OpenError::Other {
                url: url.to_owned(),
                detail: e.to_string(),
            })?;
    }
    Ok(conn)
}

/// Opens (creating a SQLite file if needed) the database at `url` and returns a pool of `size`
/// connections, with the default [`Durability`]; applies no migration.
pub fn build_pool(url: &str, size: u32) -> Result<DbPool, OpenError> {
    drop(probe(url)?);
    pool(url, size, Durability::default())
}

/// The pool itself, once [`probe`] has succeeded.
fn pool(url: &str, size: u32, durability: Durability) -> Result<DbPool, OpenError> {
    Pool::builder()
        .max_size(size.max(1))
        .connection_timeout(Duration::from_secs(10))
        .connection_customizer(Box::new(Settings { durability }))
        .build(Manager::new(url))
        .map_err(|e| OpenError::Other {
            url: redact_url(url),
            detail: e.to_string(),
        })
}

/// The start-up path: a first connection (its failure explained), the migrations (a database
/// from a newer version refused), then the pool of `size` connections with `durability`.
/// Returns the pool and the migrations it applied.
pub fn open(
    url: &str,
    size: u32,
    durability: Durability,
) -> Result<(DbPool, Vec<String>), OpenError> {
    let mut conn = probe(url)?;
    let applied = migrate(&mut conn).map_err(|e| match e {
        MigrateError::Newer(version) => OpenError::NewerSchema {
            url: redact_url(url),
            version,
        },
        MigrateError::Failed(detail) => OpenError::Migration {
            url: redact_url(url),
            detail,
        },
    })?;
    drop(conn);
    Ok((pool(url, size, durability)?, applied))
}

/// The PostgreSQL advisory lock key under which migrations run (any constant of this
/// application's own).
const MIGRATION_LOCK: i64 = 0x7465_7274_756c_6961; // "tertulia"

/// Why [`migrate`] stopped.
#[derive(Debug)]
pub(crate) enum MigrateError {
    /// The database has this migration, which the binary does not know.
    Newer(String),
    /// A migration or the bookkeeping failed.
    Failed(String),
}

/// Applies every pending migration of the connection's backend; returns the versions applied.
/// Refuses (applying nothing) a database that records a migration this binary does not have.
pub(crate) fn migrate(conn: &mut DbConnection) -> Result<Vec<String>, MigrateError> {
    match conn {
        DbConnection::Postgres(c) => {
            // Several nodes may start at once on one database: one migrates while the others
            // wait on this lock, then find nothing left to do.
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                .map_err(|e| MigrateError::Failed(e.to_string()))?;
            let done = migrate_with::<Pg, _>(c, PG_MIGRATIONS);
            let _ = c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
            done
        }
        DbConnection::Sqlite(c) => migrate_with::<Sqlite, _>(c, SQLITE_MIGRATIONS),
    }
}

fn migrate_with<DB, C>(
    conn: &mut C,
    source: EmbeddedMigrations,
) -> Result<Vec<String>, MigrateError>
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB>,
    EmbeddedMigrations: MigrationSource<DB>,
{
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| MigrateError::Failed(e.to_string());
    let known: Vec<String> = MigrationSource::<DB>::migrations(&source)
        .map_err(failed)?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    let applied = conn.applied_migrations().map_err(failed)?;
    if let Some(unknown) = applied
        .iter()
        .map(ToString::to_string)
        .find(|v| !known.contains(v))
    {
        return Err(MigrateError::Newer(unknown));
    }
    conn.run_pending_migrations(source)
        .map(|done| done.iter().map(ToString::to_string).collect())
        .map_err(failed)
}

/// Runs `f` in a transaction that will write: on SQLite `BEGIN IMMEDIATE` (the write lock at
/// once, so a transaction that reads first never fails to upgrade its lock; a transaction
/// that SQLite has to abort instead waits `busy_timeout`), on PostgreSQL a plain `BEGIN`
/// (its statements take row locks). Inside another transaction, a savepoint.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let nested =
        <DbConnection as TransactionManager<DbConnection>>::transaction_manager_status_mut(conn)
            .transaction_depth()?
            .is_some();
    if nested {
        return conn.transaction(f);
    }
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        }
        DbConnection::Postgres(c) => {
            <AnsiTransactionManager as TransactionManager<PgConnection>>::begin_transaction(c)?
        }
    }
    match f(conn) {
        Ok(value) => {
            <DbConnection as TransactionManager<DbConnection>>::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            <DbConnection as TransactionManager<DbConnection>>::rollback_transaction(conn)?;
            Err(e)
        }
    }
}

/// Runs `f` with a pooled connection on the blocking thread pool, never on an async worker.
pub async fn run<F, T>(pool: &DbPool, f: F) -> ApiResult<T>
where
    F: FnOnce(&mut DbConnection) -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get()?;
        let result = f(&mut conn);
        if mark_if_broken(&mut conn, &result) {
            return Err(database_away());
        }
        result
    })
    .await
    .map_err(ApiError::from)?
}

/// How long `/readyz` waits for a connection before it answers 503.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the database answers a query now (for `/readyz`): a connection within
/// [`READY_TIMEOUT`] (the pool replaces the ones a restarted server broke) and a query on it.
pub async fn ping(pool: &DbPool) -> ApiResult<()> {
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get_timeout(READY_TIMEOUT)?;
        let answered = conn.batch_execute("SELECT 1;").and_then(|()| {
            diesel::sql_query("SELECT 1 FROM users LIMIT 1")
                .execute(&mut *conn)
                .map(drop)
        });
        if mark_if_broken(&mut conn, &answered) {
            return Err(database_away());
        }
        Ok(answered?)
    })
    .await
    .map_err(ApiError::from)?
}

/// Milliseconds since the Unix epoch (UTC, whatever the machine's or the database's time
/// zone): the unit of every timestamp column.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::Health;

    #[test]
    fn a_connection_is_checked_until_one_came_back_good_and_again_after_a_failure() {
        let health = Health::default();
        assert!(health.check_needed(), "nothing seen yet");
        health.note(true);
        assert!(!health.check_needed(), "one just came back in good order");
        health.note(false);
        assert!(health.check_needed(), "one just failed");
        health.note(true);
        assert!(health.check_needed(), "a failure counts for a while");
    }
}
