//! `GET /api/users`: the lobby directory.

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, PASSWORD};

fn nicknames(body: &Value) -> Vec<&str> {
    body["users"]
        .as_array()
        .expect("users array")
        .iter()
        .map(|u| u["nickname"].as_str().expect("nickname"))
        .collect()
}

#[actix_web::test]
async fn the_directory_lists_users_by_nickname_with_themes_and_capabilities_but_no_secret() {
    let app = spawn_app().await;
    let viewer = app.user("zeca").await;
    app.user_with("Bia", &["Jogos", "Futebol"], &["text"]).await;
    app.user_with("ana", &["Livros"], &["video", "audio"]).await;

    let res = app.get("/api/users", Some(&viewer.token)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        nicknames(&res.body),
        ["ana", "Bia", "zeca"],
        "case-insensitive order"
    );
    assert_eq!(res.body["total"], 3);
    assert_eq!(res.body["page"], 1);
    assert_eq!(res.body["per_page"], 50);
    let bia = &res.body["users"][1];
    assert_eq!(bia["themes"], json!(["Futebol", "Jogos"]));
    assert_eq!(bia["capabilities"], json!(["text"]));
    let text = res.body.to_string();
    assert!(!text.contains(PASSWORD));
    assert!(!text.contains("argon2") && !text.contains("password") && !text.contains("hash"));
}

#[actix_web::test]
async fn the_directory_filters_by_theme_and_by_capability() {
    let app = spawn_app().await;
    let viewer = app.user_with("viewer", &["Livros"], &["text"]).await;
    app.user_with("gamer1", &["Jogos"], &["video", "text"])
        .await;
    app.user_with("gamer2", &["jogos", "Futebol"], &["text"])
        .await;
    app.user_with("fan", &["Futebol"], &["video"]).await;
    let token = Some(viewer.token.as_str());

    let games = app.get("/api/users?theme=JOGOS", token).await;
    assert_eq!(games.status, StatusCode::OK, "{}", games.body);
    assert_eq!(nicknames(&games.body), ["gamer1", "gamer2"]);
    assert_eq!(games.body["total"], 2);

    let video = app.get("/api/users?capability=video", token).await;
    assert_eq!(nicknames(&video.body), ["fan", "gamer1"]);

    let both = app
        .get("/api/users?theme=Futebol&capability=video", token)
        .await;
    assert_eq!(nicknames(&both.body), ["fan"]);

    let nobody = app.get("/api/users?theme=Idiomas", token).await;
    assert_eq!(nobody.status, StatusCode::OK);
    assert_eq!(nicknames(&nobody.body), Vec::<&str>::new());
    assert_eq!(nobody.body["total"], 0);
}

#[actix_web::test]
async fn the_directory_is_paginated_and_reports_the_total() {
    let app = spawn_app().await;
    let viewer = app.user("user0").await;
    for i in 1..5 {
        app.user(&format!("user{i}")).await;
    }
    let token = Some(viewer.token.as_str());
    let mut seen = Vec::new();
    for page in 1..=3 {
        let res = app
            .get(&format!("/api/users?page={page}&per_page=2"), token)
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.body["total"], 5);
        assert_eq!(res.body["page"], page);
        assert_eq!(res.body["per_page"], 2);
        seen.extend(nicknames(&res.body).into_iter().map(str::to_owned));
    }
    assert_eq!(seen, ["user0", "user1", "user2", "user3", "user4"]);
    let past = app.get("/api/users?page=9&per_page=2", token).await;
    assert_eq!(past.status, StatusCode::OK);
    assert_eq!(nicknames(&past.body), Vec::<&str>::new());
    assert_eq!(past.body["total"], 5);
}

#[actix_web::test]
async fn banned_users_are_left_out_of_the_directory() {
    let app = spawn_app().await;
    let viewer = app.user("viewer").await;
    let bad = app.user("troll").await;
    let pool = tertulia::db::build_pool(&app.settings.database_url, 1).unwrap();
    tertulia::db::users::set_banned(&mut pool.get().unwrap(), bad.id, true).unwrap();

    let res = app.get("/api/users", Some(&viewer.token)).await;
    assert_eq!(nicknames(&res.body), ["viewer"]);
    assert_eq!(res.body["total"], 1);
}

#[actix_web::test]
async fn the_directory_needs_a_login() {
    let app = spawn_app().await;
    let res = app.get("/api/users", None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.error_code(), "unauthorized");
    let res = app.get("/api/users", Some("not-a-token")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn bad_directory_filters_and_pages_are_explained_400s() {
    let app = spawn_app().await;
    let viewer = app.user("viewer").await;
    for (query, needle) in [
        ("theme=Astrologia", "unknown theme 'Astrologia'"),
        ("capability=telepathy", "invalid query"),
        ("page=0", "page starts at 1"),
        ("page=-1", "invalid query"),
        ("page=abc", "invalid query"),
        ("per_page=0", "per_page must be 1 to 200"),
        ("per_page=201", "per_page must be 1 to 200"),
    ] {
        let res = app
            .get(&format!("/api/users?{query}"), Some(&viewer.token))
            .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{query}: {}", res.body);
        assert_eq!(res.error_code(), "bad_request");
        let message = res.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{query}: {message}");
    }
}

#[actix_web::test]
async fn the_directory_searches_online_nicknames_in_any_case_and_takes_like_characters_literally() {
    let app = spawn_app().await;
    let viewer = app.user("viewer").await;
    let mariana = app.user("Mariana").await;
    app.user("mario_b").await;
    app.user("ana").await;
    let mut online = crate::ws_client::connect(&app, &mariana).await;
    // Presence has her once her own arrival is pushed back to her.
    online.presence_of(mariana.id).await;
    let token = Some(viewer.token.as_str());

    let found = app.get("/api/users?q=MARI", token).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert_eq!(nicknames(&found.body), ["Mariana", "mario_b"]);
    let online_only = app.get("/api/users?q=mari&online=true", token).await;
    assert_eq!(nicknames(&online_only.body), ["Mariana"]);
    assert_eq!(online_only.body["users"][0]["status"], "online");
    // `_` is a character, not LIKE's "any one character".
    let literal = app.get("/api/users?q=o_b", token).await;
    assert_eq!(nicknames(&literal.body), ["mario_b"]);
    let none = app.get("/api/users?q=a_a", token).await;
    assert_eq!(nicknames(&none.body), Vec::<&str>::new());
    let empty = app.get("/api/users?q=", token).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST, "{}", empty.body);
    drop(online);
}
