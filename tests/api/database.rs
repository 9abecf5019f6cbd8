//! The database the server opens: what an acknowledgement promises.

use diesel::{
    sql_types::{Integer, Text},
    QueryableByName, RunQueryDsl,
};
use tertulia::{db::Durability, startup::open_database};

use crate::helpers::{drop_test_database, on_postgres, test_settings};

/// One row of `PRAGMA synchronous`: 1 is NORMAL, 2 is FULL.
#[derive(QueryableByName)]
struct Synchronous {
    #[diesel(sql_type = Integer)]
    synchronous: i32,
}

/// One row of PostgreSQL's `SHOW synchronous_commit`.
#[derive(QueryableByName)]
struct SynchronousCommit {
    #[diesel(sql_type = Text)]
    synchronous_commit: String,
}

/// What each of `n` connections held at once from the server's pool promises: SQLite's
/// `PRAGMA synchronous` (2 is FULL, 1 NORMAL), or on PostgreSQL `synchronous_commit` as the
/// same numbers (on: 2, off: 1).
fn synchronous_of_pool(durability: Option<Durability>, n: usize) -> Vec<i32> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(&dir);
    if let Some(d) = durability {
        settings.sqlite_synchronous = d;
    }
    let pool = open_database(&settings).expect("database opens");
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(pool.get().expect("connection"));
    }
    let levels = held
        .iter_mut()
        .map(|conn| {
            if on_postgres() {
                let level = diesel::sql_query("SHOW synchronous_commit")
                    .get_result::<SynchronousCommit>(&mut **conn)
                    .expect("setting")
                    .synchronous_commit;
                match level.as_str() {
                    "on" => 2,
                    "off" => 1,
                    _ => 0,
                }
            } else {
                diesel::sql_query("PRAGMA synchronous")
                    .get_result::<Synchronous>(&mut **conn)
                    .expect("pragma")
                    .synchronous
            }
        })
        .collect();
    drop(held);
    drop(pool);
    drop_test_database(&settings.database_url);
    levels
}

#[test]
fn by_default_every_connection_fsyncs_each_commit_so_nothing_acknowledged_is_lost() {
    assert_eq!(synchronous_of_pool(None, 3), vec![2, 2, 2]);
}

#[test]
fn sqlite_synchronous_normal_is_applied_to_every_connection_of_the_pool() {
    assert_eq!(
        synchronous_of_pool(Some(Durability::Normal), 3),
        vec![1, 1, 1]
    );
}
