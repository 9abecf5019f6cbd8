//! [`Touches`]: write-behind for "was used now" timestamps (a user's `last_seen_at`, a login
//! session's `last_used_at`), so that a crowd arriving at once costs a few transactions
//! rather than one commit (and fsync) per person.

use std::sync::{Arc, Mutex, PoisonError};

use diesel::QueryResult;

use super::DbConnection;

use super::DbPool;

/// One statement's worth of a write: sets the timestamp of these rows to the given time.
pub type Write = fn(&mut DbConnection, &[i64], i64) -> QueryResult<usize>;

/// Most rows one statement names (well below SQLite's limit of bound parameters).
const CHUNK: usize = 1_000;

/// Stores the current time for the rows it is given, batched: a touch while nothing is being
/// written starts a write at once; touches meanwhile wait and go together in the next one.
pub struct Touches {
    pool: DbPool,
    /// What is stored, for the log ("last_seen_at").
    what: &'static str,
    /// Sets the timestamp of these rows (at most [`CHUNK`]) to `now`.
    write: Write,
    state: Mutex<Pending>,
}

/// What waits, behind the lock.
#[derive(Default)]
struct Pending {
    ids: Vec<i64>,
    /// A write is under way (it takes what waits before it ends).
    writing: bool,
}

impl Touches {
    /// Touches of `what`, stored by `write` through `pool`.
    pub fn new(pool: DbPool, what: &'static str, write: Write) -> Arc<Self> {
        Arc::new(Touches {
            pool,
            what,
            write,
            state: Mutex::default(),
        })
    }

    /// Records that row `id` was used now; it is stored shortly, on the blocking pool, never
    /// on the caller's thread. Call it on an actix thread (it may spawn the writer there).
    pub(crate) fn touch(self: &Arc<Self>, id: i64) {
        {
            let mut pending = self.lock();
            pending.ids.push(id);
            if pending.writing {
                return;
            }
            pending.writing = true;
        }
        let touches = Arc::clone(self);
        actix_web::rt::spawn(async move { touches.drain().await });
    }

    /// Writes what waits, one transaction at a time, until nothing does.
    async fn drain(&self) {
        loop {
            let ids = {
                let mut pending = self.lock();
                if pending.ids.is_empty() {
                    pending.writing = false;
                    return;
                }
                std::mem::take(&mut pending.ids)
            };
            let (write, count) = (self.write, ids.len());
            let done = super::run(&self.pool, move |conn| Ok(store(conn, write, ids)?)).await;
            if let Err(e) = done {
                log::warn!("cannot store {} of {count} row(s): {e}", self.what);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // Plain fields: a panic while holding the lock leaves them consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sets the timestamp of `ids` (duplicates are fine) to now with `write`, in one transaction.
fn store(conn: &mut DbConnection, write: Write, mut ids: Vec<i64>) -> QueryResult<()> {
    use diesel::Connection;
    let now = super::now_ms();
    ids.sort_unstable();
    ids.dedup();
    conn.transaction(|conn| {
        for chunk in ids.chunks(CHUNK) {
            write(conn, chunk, now)?;
        }
        Ok(())
    })
}
