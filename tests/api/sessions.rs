//! Session housekeeping: expired sessions are deleted on an interval.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use diesel::{QueryDsl, RunQueryDsl, TextExpressionMethods};
use tertulia::db::{self, models::NewSession, schema::sessions};

use crate::helpers::spawn_app_with;

/// Generous: the machine may be busy; the purge runs every second here.
const PURGE_WAIT: Duration = Duration::from_secs(60);

#[actix_web::test]
async fn expired_sessions_are_purged_periodically_and_live_ones_kept() {
    let app = spawn_app_with(|s| s.session_purge_secs = 1).await;
    let ana = app.user("ana").await;
    let pool = db::build_pool(&app.settings.database_url, 1).unwrap();
    let mut conn = pool.get().unwrap();
    let now = db::now_ms();
    for (n, hash) in ["expired-1", "expired-2"].into_iter().enumerate() {
        db::sessions::create(
            &mut conn,
            &NewSession {
                token_hash: hash,
                user_id: ana.id,
                created_at: now - 10_000,
                expires_at: now - 1_000 * (n as i64 + 1),
                last_used_at: now - 10_000,
                user_agent: None,
            },
        )
        .unwrap();
    }
    let count_expired = |conn: &mut db::DbConn| -> i64 {
        sessions::table
            .filter(sessions::token_hash.like("expired-%"))
            .count()
            .get_result(conn)
            .unwrap()
    };
    assert_eq!(count_expired(&mut conn), 2);

    let started = Instant::now();
    while count_expired(&mut conn) > 0 {
        assert!(
            started.elapsed() < PURGE_WAIT,
            "expired sessions were never purged"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.get("/api/me", Some(&ana.token)).await.status,
        StatusCode::OK,
        "the live session is kept"
    );
}

/// `last_used_at` of the user's only login session.
fn last_used_at(pool: &db::DbPool, user_id: i64) -> i64 {
    use diesel::ExpressionMethods;
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .select(sessions::last_used_at)
        .first(&mut pool.get().unwrap())
        .unwrap()
}

/// Makes the user's sessions look unused for two minutes; returns that time.
fn make_stale(pool: &db::DbPool, user_id: i64) -> i64 {
    use diesel::ExpressionMethods;
    let stale = db::now_ms() - 120_000;
    diesel::update(sessions::table.filter(sessions::user_id.eq(user_id)))
        .set(sessions::last_used_at.eq(stale))
        .execute(&mut pool.get().unwrap())
        .unwrap();
    stale
}

/// Waits (generously) until the session's `last_used_at` has moved past `stale`.
async fn wait_for_touch(pool: &db::DbPool, user_id: i64, stale: i64) {
    let started = Instant::now();
    while last_used_at(pool, user_id) <= stale {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "last_used_at was not stored"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_stale_session_is_marked_used_by_a_request_and_by_a_websocket_upgrade() {
    let app = spawn_app_with(|_| {}).await;
    let ana = app.user("ana").await;
    let pool = db::build_pool(&app.settings.database_url, 1).unwrap();

    let stale = make_stale(&pool, ana.id);
    let me = app.get("/api/me", Some(&ana.token)).await;
    assert_eq!(me.status, StatusCode::OK);
    wait_for_touch(&pool, ana.id, stale).await;

    let stale = make_stale(&pool, ana.id);
    let ws = crate::ws_client::connect(&app, &ana).await;
    wait_for_touch(&pool, ana.id, stale).await;
    ws.close().await;
}
