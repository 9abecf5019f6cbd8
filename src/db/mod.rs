//! The database: an r2d2 pool of SQLite connections, their pragmas, the embedded migrations,
//! and [`run`], the one way handlers reach it without blocking an async worker.
//!
//! One file per table holds that table's queries; [`models`] holds the rows.

pub mod calls;
pub mod conversations;
pub mod messages;
pub mod models;
pub mod rooms;
pub mod schema;
pub mod sessions;
pub mod themes;
pub mod touches;
pub mod users;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::{
    connection::SimpleConnection,
    r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection},
    SqliteConnection,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
pub use touches::Touches;

use crate::error::{ApiError, ApiResult};

/// The migrations in `migrations/`, compiled into the binary.
pub(crate) const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

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

/// Shared pool of SQLite connections.
pub type DbPool = Pool<ConnectionManager<SqliteConnection>>;
/// One connection borrowed from the pool.
pub type DbConn = PooledConnection<ConnectionManager<SqliteConnection>>;

/// How SQLite makes a commit durable (`PRAGMA synchronous`), i.e. what an acknowledgement
/// (a chat `ack`, a `201`) promises.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// Every commit is fsynced to the WAL before it is acknowledged: nothing acknowledged is
    /// lost, even on a power loss or an OS crash (`synchronous = FULL`).
    #[default]
    Full,
    /// Commits reach the WAL (safe when the process crashes) and are fsynced at the next
    /// checkpoint: a power loss or OS crash may lose the latest acknowledged commits, never
    /// corrupt the database (`synchronous = NORMAL`). Faster where fsync is slow.
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
}

/// Sets the pragmas every connection needs, one statement each, as it joins the pool.
#[derive(Debug, Clone, Copy)]
struct SqlitePragmas {
    durability: Durability,
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        // busy_timeout first, so the WAL switch itself waits for a concurrent opener.
        conn.batch_execute(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};"))
            .and_then(|()| conn.batch_execute("PRAGMA journal_mode = WAL;"))
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
            })
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens (creating if needed) the database at `url` and returns a pool of `size` connections,
/// with the default [`Durability`].
pub fn build_pool(url: &str, size: u32) -> Result<DbPool, diesel::r2d2::PoolError> {
    build_pool_with(url, size, Durability::default())
}

/// [`build_pool`] with the given [`Durability`].
pub(crate) fn build_pool_with(
    url: &str,
    size: u32,
    durability: Durability,
) -> Result<DbPool, diesel::r2d2::PoolError> {
    let manager = ConnectionManager::<SqliteConnection>::new(url);
    Pool::builder()
        .max_size(size.max(1))
        .connection_timeout(Duration::from_secs(10))
        .connection_customizer(Box::new(SqlitePragmas { durability }))
        .build(manager)
}

/// Applies every pending migration; returns the versions applied.
pub(crate) fn run_migrations(conn: &mut SqliteConnection) -> Result<Vec<String>, String> {
    conn.run_pending_migrations(MIGRATIONS)
        .map(|done| done.iter().map(ToString::to_string).collect())
        .map_err(|e| e.to_string())
}

/// Runs `f` with a pooled connection on the blocking thread pool, never on an async worker.
pub async fn run<F, T>(pool: &DbPool, f: F) -> ApiResult<T>
where
    F: FnOnce(&mut SqliteConnection) -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .await
    .map_err(ApiError::from)?
}

/// Milliseconds since the Unix epoch: the unit of every timestamp column.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
