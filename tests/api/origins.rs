//! Cross-site request forgery: a state-changing request sent by a browser on behalf of a
//! page of another origin (another port of the host, a sibling subdomain) is refused even
//! though the `SameSite=Strict` cookie goes along; the app's own pages, bearer clients and
//! clients outside any browser are not affected.

use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, Reply, TestApp, TestUser, PASSWORD};

/// Logs `nickname` in and returns the `Cookie` header value the browser would send.
async fn cookie_of(app: &TestApp, nickname: &str) -> String {
    let login = app.login(nickname, PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let set = login
        .headers
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .expect("text");
    set.split(';').next().expect("name=value").to_owned()
}

/// An admin's browser cookie and a victim to ban.
async fn admin_and_victim(app: &TestApp) -> (TestUser, String, TestUser) {
    let admin = app.admin("chefe").await;
    let cookie = cookie_of(app, "chefe").await;
    let victim = app.user("vitima").await;
    (admin, cookie, victim)
}

/// `POST /api/admin/users/{victim}/ban` with `headers`, as a browser or client sends it.
async fn post_ban(app: &TestApp, victim: &TestUser, headers: &[(&str, &str)]) -> Reply {
    app.request_with(
        "POST",
        &format!("/api/admin/users/{}/ban", victim.id),
        headers,
        None,
    )
    .await
}

async fn banned(app: &TestApp, admin: &TestUser, victim: &TestUser) -> bool {
    let res = app
        .get(
            &format!("/api/admin/users/{}", victim.id),
            Some(&admin.token),
        )
        .await;
    res.body["user"]["banned"].as_bool().expect("banned flag")
}

#[actix_web::test]
async fn a_ban_posted_by_a_page_on_another_port_of_the_same_host_is_refused_and_bans_nobody() {
    let app = spawn_app().await;
    let (admin, cookie, victim) = admin_and_victim(&app).await;
    let other_port = format!("http://127.0.0.1:{}", app.port + 1);
    let res = post_ban(
        &app,
        &victim,
        &[
            ("Cookie", &cookie),
            ("Origin", &other_port),
            ("Sec-Fetch-Site", "same-site"),
        ],
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    assert_eq!(res.error_code(), "forbidden");
    assert!(!banned(&app, &admin, &victim).await);
}

#[actix_web::test]
async fn an_older_browser_that_only_sends_origin_is_judged_by_it() {
    let app = spawn_app().await;
    let (admin, cookie, victim) = admin_and_victim(&app).await;
    let sibling = "http://blog.localhost";
    let res = post_ban(&app, &victim, &[("Cookie", &cookie), ("Origin", sibling)]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    assert!(res.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains(sibling));
    assert!(!banned(&app, &admin, &victim).await);

    let res = post_ban(
        &app,
        &victim,
        &[("Cookie", &cookie), ("Origin", &app.address)],
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(banned(&app, &admin, &victim).await);
}

#[actix_web::test]
async fn the_apps_own_page_still_changes_things_with_its_cookie() {
    let app = spawn_app().await;
    let (admin, cookie, victim) = admin_and_victim(&app).await;
    let res = post_ban(
        &app,
        &victim,
        &[
            ("Cookie", &cookie),
            ("Origin", &app.address),
            ("Sec-Fetch-Site", "same-origin"),
        ],
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(banned(&app, &admin, &victim).await);
    let out = app
        .request_with(
            "POST",
            "/api/logout",
            &[("Cookie", &cookie), ("Sec-Fetch-Site", "same-origin")],
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
}

#[actix_web::test]
async fn a_forged_logout_or_profile_change_leaves_the_session_and_profile_as_they_were() {
    let app = spawn_app().await;
    app.user("rita").await;
    let cookie = cookie_of(&app, "rita").await;
    let forged = [
        ("Cookie", cookie.as_str()),
        ("Sec-Fetch-Site", "same-site"),
        ("Origin", "http://127.0.0.1:1"),
    ];
    let out = app.request_with("POST", "/api/logout", &forged, None).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    let patch = app
        .request_with(
            "PATCH",
            "/api/me",
            &forged,
            Some(json!({"capabilities": ["text"]})),
        )
        .await;
    assert_eq!(patch.status, StatusCode::FORBIDDEN);
    let me = app
        .request_with("GET", "/api/me", &[("Cookie", &cookie)], None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "the session still works");
    assert_eq!(me.body["capabilities"], json!(["video", "audio", "text"]));
}

#[actix_web::test]
async fn logging_in_from_another_sites_page_is_refused() {
    let app = spawn_app().await;
    app.user("tina").await;
    let res = app
        .request_with(
            "POST",
            "/api/login",
            &[
                ("Sec-Fetch-Site", "cross-site"),
                ("Origin", "https://evil.example"),
            ],
            Some(json!({"nickname": "tina", "password": PASSWORD})),
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.headers.get("set-cookie").is_none());
}

#[actix_web::test]
async fn bearer_clients_are_not_affected_by_origin() {
    let app = spawn_app().await;
    let admin = app.admin("chefe").await;
    let victim = app.user("vitima").await;
    let bearer = format!("Bearer {}", admin.token);
    let res = post_ban(
        &app,
        &victim,
        &[
            ("Authorization", &bearer),
            ("Origin", "https://elsewhere.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
}

#[actix_web::test]
async fn an_origin_listed_in_allowed_origins_may_change_things() {
    let app = spawn_app_with(|s| s.allowed_origins = vec!["https://app.uni.example".into()]).await;
    let (admin, cookie, victim) = admin_and_victim(&app).await;
    let res = post_ban(
        &app,
        &victim,
        &[
            ("Cookie", &cookie),
            ("Origin", "https://app.uni.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(banned(&app, &admin, &victim).await);
}
