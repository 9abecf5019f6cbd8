//! [`Touches`]: write-behind for "was used now" timestamps (a user's `last_seen_at`, a login
//! session's `last_used_at`), so that a crowd arriving at once costs a few transactions
//! rather than one commit (and fsync) per person.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use diesel::QueryResult;

use super::DbConnection;

use super::DbPool;

/// One statement's worth of a write: sets the timestamp of these rows to the given time.
pub type Write = fn(&mut DbConnection, &[i64], i64) -> QueryResult<usize>;

/// Most rows one statement names (well below SQLite's limit of bound parameters).
const CHUNK: usize = 1_000;

/// In a crowd, writes of one [`Touches`] begin at most one per `WRITE_GAP` (after a burst
/// of [`WRITE_BURST`]): what arrives meanwhile waits and goes in the next write.
///
/// Written back to back, as they were, the writes of a reconnect storm (15,000 users back in
/// ten seconds, each touching `last_seen_at`) were a transaction every few milliseconds, each
/// a commit, an fsync and the WAL frames of every page its few dozen rows touched: 15 % of
/// the server's core while it was taking the handshakes (docs/benchmarks.md, issue 17). A
/// second apart they are ten transactions of 1,500 rows. A touch after a quiet moment is
/// still written at once.
pub const WRITE_GAP: Duration = Duration::from_secs(1);
/// Writes that may begin one right after another (a few people arriving and leaving within
/// a second are each stored at once) before they are spaced by [`WRITE_GAP`].
pub const WRITE_BURST: u32 = 4;

/// Stores the current time for the rows it is given, batched: a touch while nothing is being
/// written starts a write at once, unless [`WRITE_BURST`] writes began in the last moments,
/// then when the pace of one per [`WRITE_GAP`] allows; touches meanwhile wait and go
/// together in the next one.
pub struct Touches {
    pool: DbPool,
    /// What is stored, for the log ("last_seen_at").
    what: &'static str,
    /// Sets the timestamp of these rows (at most [`CHUNK`]) to `now`.
    write: Write,
    /// Writes begin at most one per `gap` ([`WRITE_GAP`]) after a burst of `burst`.
    gap: Duration,
    burst: u32,
    state: Mutex<Pending>,
}

/// What waits, behind the lock.
#[derive(Default)]
struct Pending {
    ids: Vec<i64>,
    /// A write is under way or due (it takes what waits before it ends).
    writing: bool,
    /// The writes that may begin now (a token bucket: up to `burst`, one more every `gap`),
    /// as of `counted_at`.
    credit: f64,
    counted_at: Option<Instant>,
}

impl Pending {
    /// When the next write may begin (`None`: now), with `credit` brought up to `now`.
    fn next_write(&mut self, now: Instant, gap: Duration, burst: u32) -> Option<Instant> {
        let earned = match self.counted_at {
            Some(at) => now.saturating_duration_since(at).as_secs_f64() / gap.as_secs_f64(),
            None => f64::from(burst),
        };
        self.credit = (self.credit + earned).min(f64::from(burst));
        self.counted_at = Some(now);
        // (A hair under one is one: the sleep computed from it may land a rounding short.)
        if self.credit >= 1.0 - 1e-9 {
            None
        } else {
            Some(now + gap.mul_f64(1.0 - self.credit))
        }
    }
}

impl Touches {
    /// Touches of `what`, stored by `write` through `pool`.
    pub fn new(pool: DbPool, what: &'static str, write: Write) -> Arc<Self> {
        Self::with_pace(pool, what, write, WRITE_GAP, WRITE_BURST)
    }

    /// As [`Touches::new`], with writes one per `gap` after a burst of `burst`.
    pub fn with_pace(
        pool: DbPool,
        what: &'static str,
        write: Write,
        gap: Duration,
        burst: u32,
    ) -> Arc<Self> {
        Arc::new(Touches {
            pool,
            what,
            write,
            gap,
            burst: burst.max(1),
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

    /// Writes what waits, one transaction at a time at the pace of `gap` and `burst`, until
    /// nothing does.
    async fn drain(&self) {
        loop {
            let due = self.lock().next_write(Instant::now(), self.gap, self.burst);
            if let Some(due) = due {
                actix_web::rt::time::sleep_until(due.into()).await;
                continue;
            }
            let ids = {
                let mut pending = self.lock();
                if pending.ids.is_empty() {
                    pending.writing = false;
                    return;
                }
                pending.credit -= 1.0;
                std::mem::take(&mut pending.ids)
            };
            self.store(ids).await;
        }
    }

    /// Writes what waits now, without waiting for the gap (at shutdown: what a write due
    /// later would have stored).
    pub async fn flush(&self) {
        let ids = std::mem::take(&mut self.lock().ids);
        if !ids.is_empty() {
            self.store(ids).await;
        }
    }

    async fn store(&self, ids: Vec<i64>) {
        let (write, count) = (self.write, ids.len());
        let done = super::run(&self.pool, move |conn| Ok(store(conn, write, ids)?)).await;
        if let Err(e) = done {
            log::warn!("cannot store {} of {count} row(s): {e}", self.what);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What `record` was asked to store, one entry per statement.
    static WRITES: Mutex<Vec<Vec<i64>>> = Mutex::new(Vec::new());

    fn record(_: &mut DbConnection, ids: &[i64], _now: i64) -> QueryResult<usize> {
        WRITES.lock().unwrap().push(ids.to_vec());
        Ok(ids.len())
    }

    fn writes() -> Vec<Vec<i64>> {
        WRITES.lock().unwrap().clone()
    }

    #[actix_web::test]
    async fn touches_soon_after_a_write_wait_for_the_gap_and_go_together() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("touches.db");
        let (pool, _) =
            crate::db::open(url.to_str().unwrap(), 2, crate::db::Durability::Full).unwrap();
        let touches = Touches::with_pace(pool, "test", record, Duration::from_secs(3_600), 1);
        // After a quiet time a touch is written at once.
        touches.touch(1);
        for _ in 0..1_000 {
            if !writes().is_empty() {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(writes(), vec![vec![1]]);
        // The next write is due an hour after the first: these wait (written back to back,
        // they would have gone at once).
        touches.touch(3);
        touches.touch(2);
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(writes(), vec![vec![1]]);
        // Shutdown does not wait for the gap.
        touches.flush().await;
        assert_eq!(writes(), vec![vec![1], vec![2, 3]]);
    }
}
