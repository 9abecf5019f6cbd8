//! A WebSocket upgrade's credential: the server remembers tokens that recently opened a
//! connection, and whatever revokes a session or changes its user takes effect on the very
//! next upgrade all the same.

use std::time::Duration;

use serde_json::json;
use tertulia::{
    auth,
    db::{self, models::NewSession},
};

use crate::{
    helpers::{spawn_app, PASSWORD},
    ws_client::{connect, try_connect, ConnectOpts, WsClient},
};

/// Opens a connection with `token` (so the server has checked and remembered it) and closes
/// it again.
async fn use_token(app: &crate::helpers::TestApp, token: &str) {
    let mut ws = upgrade(app, token).await.expect("upgrade");
    assert_eq!(ws.recv().await["type"], "welcome");
    ws.close().await;
}

/// An upgrade with `token`: the connection, or the status it was refused with.
async fn upgrade(app: &crate::helpers::TestApp, token: &str) -> Result<WsClient, u16> {
    try_connect(
        app,
        ConnectOpts {
            token: Some(token),
            ..Default::default()
        },
    )
    .await
}

/// The status of an upgrade with `token`: `None` when it was accepted.
async fn upgrade_refusal(app: &crate::helpers::TestApp, token: &str) -> Option<u16> {
    upgrade(app, token).await.err()
}

/// The `user` the `welcome` of a new connection with `token` describes.
async fn welcomed_user(app: &crate::helpers::TestApp, token: &str) -> serde_json::Value {
    let mut ws = upgrade(app, token).await.expect("upgrade");
    let welcome = ws.recv().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    welcome["user"].clone()
}

#[actix_web::test]
async fn a_logged_out_token_cannot_open_a_websocket_even_right_after_it_opened_one() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    use_token(&app, &ana.token).await;
    use_token(&app, &ana.token).await;
    let res = app.post("/api/logout", Some(&ana.token), json!({})).await;
    assert_eq!(res.status.as_u16(), 204, "{}", res.body);
    assert_eq!(upgrade_refusal(&app, &ana.token).await, Some(401));
}

#[actix_web::test]
async fn a_ban_or_a_kick_refuses_the_next_upgrade_of_a_token_that_just_connected() {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let admin = app.admin("chefe").await;
    use_token(&app, &ana.token).await;
    use_token(&app, &bia.token).await;
    let ban = format!("/api/admin/users/{}/ban", ana.id);
    let res = app.post(&ban, Some(&admin.token), json!({})).await;
    assert!(res.status.is_success(), "{}", res.body);
    assert_eq!(upgrade_refusal(&app, &ana.token).await, Some(401));
    let kick = format!("/api/admin/users/{}/sessions", bia.id);
    let res = app.request("DELETE", &kick, Some(&admin.token), None).await;
    assert!(res.status.is_success(), "{}", res.body);
    assert_eq!(upgrade_refusal(&app, &bia.token).await, Some(401));
}

#[actix_web::test]
async fn a_password_change_refuses_the_other_tokens_at_once_and_keeps_this_one() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let login = app.login("ana", PASSWORD).await;
    let other = login.body["token"].as_str().unwrap().to_owned();
    use_token(&app, &ana.token).await;
    use_token(&app, &other).await;
    let change = json!({"current_password": PASSWORD, "new_password": "another long secret"});
    let res = app
        .request("PATCH", "/api/me", Some(&ana.token), Some(change))
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.body);
    assert_eq!(upgrade_refusal(&app, &other).await, Some(401));
    assert_eq!(upgrade_refusal(&app, &ana.token).await, None);
}

#[actix_web::test]
async fn a_profile_change_shows_in_the_welcome_of_the_next_connection() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    use_token(&app, &ana.token).await;
    let res = app
        .request(
            "PATCH",
            "/api/me",
            Some(&ana.token),
            Some(json!({"themes": ["Jogos"], "capabilities": ["text"]})),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.body);
    let user = welcomed_user(&app, &ana.token).await;
    assert_eq!(user["themes"], json!(["Jogos"]), "{user}");
    assert_eq!(user["capabilities"], json!(["text"]), "{user}");
}

#[actix_web::test]
async fn themes_chosen_at_login_show_on_the_users_other_tokens_too() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    use_token(&app, &ana.token).await;
    let res = app
        .post(
            "/api/login",
            None,
            json!({"nickname": "ana", "password": PASSWORD, "themes": ["Jogos"]}),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.body);
    let user = welcomed_user(&app, &ana.token).await;
    assert_eq!(user["themes"], json!(["Jogos"]), "{user}");
}

#[actix_web::test]
async fn a_token_whose_session_expired_cannot_open_a_websocket_though_it_just_opened_one() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    // A session of ana's that ends a few seconds from now.
    let token = "a-token-of-a-session-that-ends-soon";
    let lifetime = Duration::from_secs(5);
    let pool = db::build_pool(&app.settings.database_url, 1).unwrap();
    let now = db::now_ms();
    db::sessions::create(
        &mut pool.get().unwrap(),
        &NewSession {
            token_hash: &auth::token_hash(token),
            user_id: ana.id,
            created_at: now,
            expires_at: now + lifetime.as_millis() as i64,
            last_used_at: now,
            user_agent: None,
        },
    )
    .unwrap();
    use_token(&app, token).await;
    tokio::time::sleep(lifetime + Duration::from_millis(200)).await;
    assert_eq!(upgrade_refusal(&app, token).await, Some(401));
    // The user's other session is unaffected.
    let ws = connect(&app, &ana).await;
    ws.close().await;
}
