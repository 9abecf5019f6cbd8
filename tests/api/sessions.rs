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
