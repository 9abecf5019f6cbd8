//! Register, login, logout and `/api/me`.

use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, TestApp, PASSWORD};

#[actix_web::test]
async fn register_returns_the_user_without_any_password_or_hash() {
    let app = spawn_app().await;
    let res = app
        .register(json!({
            "nickname": "ana",
            "password": PASSWORD,
            "themes": ["tecnologia", "Jogos"],
            "capabilities": ["video", "text"],
        }))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.body["nickname"], "ana");
    assert_eq!(res.body["themes"], json!(["Jogos", "Tecnologia"]));
    assert_eq!(res.body["capabilities"], json!(["video", "text"]));
    assert_eq!(res.body["role"], "user");
    let text = res.body.to_string();
    assert!(!text.contains(PASSWORD) && !text.contains("argon2") && !text.contains("password"));
}

#[actix_web::test]
async fn a_taken_nickname_gets_409_whatever_its_case() {
    let app = spawn_app().await;
    app.user("Bruno").await;
    let res = app
        .register(json!({"nickname": "bRUNO", "password": PASSWORD}))
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert_eq!(res.error_code(), "conflict");
    assert!(res.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("taken"));
}

#[actix_web::test]
async fn each_broken_rule_is_named_in_the_error() {
    let app = spawn_app().await;
    for (body, needle) in [
        (json!({"nickname": "ab", "password": PASSWORD}), "3 to 32"),
        (
            json!({"nickname": "a b c", "password": PASSWORD}),
            "only letters",
        ),
        (
            json!({"nickname": "carla", "password": "short"}),
            "at least 8",
        ),
        (
            json!({"nickname": "carla", "password": "carla"}),
            "at least 8",
        ),
        (
            json!({"nickname": "carla1234", "password": "CARLA1234"}),
            "nickname",
        ),
        (
            json!({"nickname": "carla", "password": PASSWORD, "themes": ["Nope"]}),
            "unknown theme(s): Nope",
        ),
        (
            json!({"nickname": "carla", "password": PASSWORD, "capabilities": []}),
            "at least one capability",
        ),
        (
            json!({"nickname": "carla", "password": PASSWORD, "capabilities": ["telepathy"]}),
            "unknown variant",
        ),
    ] {
        let res = app.register(body.clone()).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(res.error_code(), "bad_request");
        let message = res.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
}

#[actix_web::test]
async fn a_refused_registration_names_the_field_a_form_shows_it_beside() {
    let app = spawn_app().await;
    app.user("bruno").await;
    for (body, status, field) in [
        (
            json!({"nickname": "ab", "password": PASSWORD}),
            StatusCode::BAD_REQUEST,
            Some("nickname"),
        ),
        (
            json!({"nickname": "-carla", "password": PASSWORD}),
            StatusCode::BAD_REQUEST,
            Some("nickname"),
        ),
        (
            json!({"nickname": "carla", "password": "short"}),
            StatusCode::BAD_REQUEST,
            Some("password"),
        ),
        (
            json!({"nickname": "carla", "password": PASSWORD, "themes": ["Nope"]}),
            StatusCode::BAD_REQUEST,
            Some("themes"),
        ),
        (
            json!({"nickname": "carla", "password": PASSWORD, "capabilities": []}),
            StatusCode::BAD_REQUEST,
            Some("capabilities"),
        ),
        (
            json!({"nickname": "BRUNO", "password": PASSWORD}),
            StatusCode::CONFLICT,
            Some("nickname"),
        ),
        // Not about one field: no `field` at all.
        (
            json!({"nickname": "carla", "password": PASSWORD, "capabilities": ["telepathy"]}),
            StatusCode::BAD_REQUEST,
            None,
        ),
    ] {
        let res = app.register(body.clone()).await;
        assert_eq!(res.status, status, "{body}: {}", res.body);
        match field {
            Some(field) => assert_eq!(res.body["error"]["field"], field, "{body}"),
            None => assert!(
                res.body["error"].get("field").is_none(),
                "{body}: {}",
                res.body
            ),
        }
    }
    let login = app.login("carla", PASSWORD).await;
    assert_eq!(
        login.status,
        StatusCode::UNAUTHORIZED,
        "nothing was created"
    );
}

#[actix_web::test]
async fn login_sets_an_http_only_strict_cookie_and_returns_a_bearer_token() {
    let app = spawn_app().await;
    app.user("dora").await;
    let res = app.login("DORA", PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK);
    let token = res.body["token"].as_str().unwrap();
    assert!(token.len() >= 22, "at least 128 bits of token");
    assert_eq!(res.body["user"]["nickname"], "dora");
    let cookie = res.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.starts_with(&format!("tertulia_session={token}")));
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Strict"));
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP cookie is not Secure"
    );

    let me = app.get("/api/me", Some(token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["nickname"], "dora");
}

#[actix_web::test]
async fn the_session_cookie_alone_authenticates() {
    let app = spawn_app().await;
    let user = app.user("edu").await;
    let res = awc::Client::new()
        .get(format!("{}/api/me", app.address))
        .insert_header(("Cookie", format!("tertulia_session={}", user.token)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[actix_web::test]
async fn wrong_password_and_unknown_nickname_get_the_same_401() {
    let app = spawn_app().await;
    app.user("fabi").await;
    let wrong = app.login("fabi", "not the password").await;
    let unknown = app.login("nobody-here", "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn the_sixth_rapid_login_attempt_is_rate_limited_with_retry_after() {
    let app = spawn_app().await;
    let reg = app
        .register(json!({"nickname": "gil", "password": PASSWORD}))
        .await;
    assert_eq!(reg.status, StatusCode::CREATED);
    for _ in 0..5 {
        let res = app.login("gil", "wrong password").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    let res = app.login("gil", PASSWORD).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.error_code(), "rate_limited");
    let retry: u64 = res
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
}

#[actix_web::test]
async fn a_classroom_behind_one_address_all_log_in_and_successes_lock_nobody_out() {
    let app = spawn_app().await;
    let names: Vec<String> = (0..12).map(|i| format!("aluno{i}")).collect();
    for name in &names {
        let reg = app
            .register(json!({"nickname": name, "password": PASSWORD}))
            .await;
        assert_eq!(reg.status, StatusCode::CREATED);
    }
    // Twelve people log in from one address, some of them twice: more than the five
    // attempts a nickname may fail, none of them refused.
    for name in names.iter().chain(names.iter().take(6)) {
        let res = app.login(name, PASSWORD).await;
        assert_eq!(res.status, StatusCode::OK, "{name}: {}", res.body);
    }
    // A typo or two on the way does not lock its owner out either.
    for _ in 0..4 {
        assert_eq!(
            app.login("aluno0", "typo").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.login("aluno0", PASSWORD).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn failures_from_one_address_across_many_nicknames_are_limited_per_address() {
    let app = spawn_app_with(|s| s.login_ip_attempts = 3).await;
    for i in 0..3 {
        let res = app.login(&format!("guess{i}"), "wrong password").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    let res = app.login("guess9", "wrong password").await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.error_code(), "rate_limited");
}

/// Logs in as if through a proxy that says the client is `client`.
async fn login_via_proxy(
    app: &TestApp,
    client: &str,
    nickname: &str,
    password: &str,
) -> StatusCode {
    app.request_with(
        "POST",
        "/api/login",
        &[("X-Forwarded-For", client)],
        Some(json!({"nickname": nickname, "password": password})),
    )
    .await
    .status
}

#[actix_web::test]
async fn behind_a_trusted_proxy_each_client_address_has_its_own_limit() {
    let app = spawn_app_with(|s| {
        s.login_ip_attempts = 2;
        s.trusted_proxies = vec![tertulia::http::client_ip::parse_proxy("127.0.0.1").unwrap()];
    })
    .await;
    let a = "198.51.100.1";
    let b = "198.51.100.2";
    for nick in ["x1", "x2"] {
        assert_eq!(
            login_via_proxy(&app, a, nick, "nope").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_via_proxy(&app, a, "x3", "nope").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another person behind the same proxy is not held back by the first one's failures.
    assert_eq!(
        login_via_proxy(&app, b, "x3", "nope").await,
        StatusCode::UNAUTHORIZED
    );
}

#[actix_web::test]
async fn forwarding_headers_from_an_untrusted_peer_do_not_choose_its_address() {
    let app = spawn_app_with(|s| s.login_ip_attempts = 2).await;
    assert_eq!(
        login_via_proxy(&app, "203.0.113.1", "y1", "nope").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_via_proxy(&app, "203.0.113.2", "y2", "nope").await,
        StatusCode::UNAUTHORIZED
    );
    // A third made-up address is still the same peer: its failures are counted together.
    assert_eq!(
        login_via_proxy(&app, "203.0.113.3", "y3", "nope").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[actix_web::test]
async fn a_list_of_more_themes_than_anyone_follows_is_refused_before_any_lookup() {
    let app = spawn_app().await;
    let many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    let reg = app
        .register(json!({"nickname": "muitos", "password": PASSWORD, "themes": many}))
        .await;
    assert_eq!(reg.status, StatusCode::BAD_REQUEST);
    assert!(reg.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 100 themes"));
    let user = app.user("poucos").await;
    let patch = app
        .request(
            "PATCH",
            "/api/me",
            Some(&user.token),
            Some(json!({"themes": many})),
        )
        .await;
    assert_eq!(patch.status, StatusCode::BAD_REQUEST);
    let login = app
        .post(
            "/api/login",
            None,
            json!({"nickname": "poucos", "password": PASSWORD, "themes": many}),
        )
        .await;
    assert_eq!(login.status, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn logout_revokes_the_token_everywhere() {
    let app = spawn_app().await;
    let user = app.user("hugo").await;
    let res = app.post("/api/logout", Some(&user.token), json!({})).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    let me = app.get("/api/me", Some(&user.token)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me.error_code(), "unauthorized");
}

#[actix_web::test]
async fn a_session_expires_after_its_ttl() {
    let app = spawn_app_with(|s| s.session_ttl_hours = 0).await;
    let user = app.user("iris").await;
    let me = app.get("/api/me", Some(&user.token)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn me_without_credentials_is_401() {
    let app = spawn_app().await;
    let res = app.get("/api/me", None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = app.get("/api/me", Some("forged-token")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn patch_me_changes_themes_and_capabilities() {
    let app = spawn_app().await;
    let user = app.user("joao").await;
    let res = app
        .request(
            "PATCH",
            "/api/me",
            Some(&user.token),
            Some(json!({"themes": ["Futebol", "Basquete"], "capabilities": ["text"]})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["themes"], json!(["Basquete", "Futebol"]));
    assert_eq!(res.body["capabilities"], json!(["text"]));
    let me = app.get("/api/me", Some(&user.token)).await;
    assert_eq!(me.body["themes"], json!(["Basquete", "Futebol"]));
}

#[actix_web::test]
async fn login_can_replace_the_themes() {
    let app = spawn_app().await;
    app.user("kaka").await;
    let res = app
        .post(
            "/api/login",
            None,
            json!({"nickname": "kaka", "password": PASSWORD, "themes": ["Jogos"]}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["user"]["themes"], json!(["Jogos"]));
}

#[actix_web::test]
async fn a_password_change_needs_the_current_one_and_ends_other_sessions() {
    let app = spawn_app().await;
    let user = app.user("lia").await;
    let other = app.login("lia", PASSWORD).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let res = app
        .request(
            "PATCH",
            "/api/me",
            Some(&user.token),
            Some(json!({"new_password": "another good one"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let res = app
        .request(
            "PATCH",
            "/api/me",
            Some(&user.token),
            Some(json!({"current_password": "wrong wrong", "new_password": "another good one"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    let res = app
        .request(
            "PATCH",
            "/api/me",
            Some(&user.token),
            Some(json!({"current_password": PASSWORD, "new_password": "another good one"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        app.get("/api/me", Some(&user.token)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/me", Some(&other)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("lia", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("lia", "another good one").await.status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn accounts_and_sessions_survive_a_restart() {
    let app = spawn_app().await;
    let user = app.user("mia").await;
    let app = app.restart().await;
    let me = app.get("/api/me", Some(&user.token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(app.login("mia", PASSWORD).await.status, StatusCode::OK);
}
