//! The admin API under `/api/admin`.

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, PASSWORD};

/// A direct database connection, to set up what the API cannot (messages, calls).
fn db(app: &TestApp) -> tertulia::db::DbConn {
    tertulia::db::build_pool(&app.settings.database_url, 1)
        .expect("pool")
        .get()
        .expect("connection")
}

fn theme_id(themes: &Value, name: &str) -> i64 {
    themes["themes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("theme {name} in {themes}"))["id"]
        .as_i64()
        .unwrap()
}

/// Every admin route, with a well-formed body where one is expected, so that only the
/// caller's role can explain a refusal.
fn every_admin_route(user_id: i64) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("GET", "/api/admin/users".into(), None),
        ("GET", "/api/admin/users?banned=true".into(), None),
        ("GET", format!("/api/admin/users/{user_id}"), None),
        ("POST", format!("/api/admin/users/{user_id}/ban"), None),
        ("POST", format!("/api/admin/users/{user_id}/unban"), None),
        ("DELETE", format!("/api/admin/users/{user_id}"), None),
        (
            "PUT",
            format!("/api/admin/users/{user_id}/role"),
            Some(json!({"role": "admin"})),
        ),
        (
            "DELETE",
            format!("/api/admin/users/{user_id}/sessions"),
            None,
        ),
        (
            "POST",
            "/api/admin/themes".into(),
            Some(json!({"name": "Xadrez", "description": "chess"})),
        ),
        (
            "PATCH",
            "/api/admin/themes/1".into(),
            Some(json!({"name": "Renamed"})),
        ),
        ("DELETE", "/api/admin/themes/1".into(), None),
        ("GET", "/api/admin/stats".into(), None),
        ("GET", "/api/admin/no-such-admin-route".into(), None),
        // A malformed body must not get past the role check either.
        ("POST", "/api/admin/themes".into(), Some(json!({"nope": 1}))),
    ]
}

#[actix_web::test]
async fn every_admin_route_refuses_anonymous_with_401_and_non_admins_with_403() {
    let app = spawn_app().await;
    let user = app.user("plain").await;
    for (method, path, body) in every_admin_route(user.id) {
        let anonymous = app.request(method, &path, None, body.clone()).await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {}",
            anonymous.body
        );
        assert_eq!(anonymous.error_code(), "unauthorized");
        let refused = app.request(method, &path, Some(&user.token), body).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            refused.body
        );
        assert_eq!(refused.error_code(), "forbidden");
    }
    // Nothing happened: the user is neither banned, promoted nor deleted, no theme changed.
    let me = app.get("/api/me", Some(&user.token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["role"], "user");
    let themes = app.get("/api/themes", None).await;
    theme_id(&themes.body, "Tecnologia");
    assert!(!themes.body.to_string().contains("Xadrez"));
}

#[actix_web::test]
async fn an_admin_lists_every_user_including_banned_ones_and_can_filter_by_ban() {
    let app = spawn_app().await;
    let admin = app.admin("boss").await;
    let troll = app.user("troll").await;
    app.user("ana").await;
    let ban = app
        .post(
            &format!("/api/admin/users/{}/ban", troll.id),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(ban.status, StatusCode::OK, "{}", ban.body);

    let all = app.get("/api/admin/users", Some(&admin.token)).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    let names: Vec<&str> = all.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["nickname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ana", "boss", "troll"]);
    assert_eq!(all.body["total"], 3);
    assert!(!all.body.to_string().contains("argon2"));

    let banned = app
        .get("/api/admin/users?banned=true", Some(&admin.token))
        .await;
    assert_eq!(banned.body["total"], 1);
    assert_eq!(banned.body["users"][0]["nickname"], "troll");
    assert_eq!(banned.body["users"][0]["banned"], true);

    // The directory leaves banned users out, except for admins.
    let directory = app.get("/api/users", Some(&admin.token)).await;
    assert_eq!(directory.body["total"], 3);
    let ana = app.login("ana", PASSWORD).await;
    let ana_token = ana.body["token"].as_str().unwrap();
    let directory = app.get("/api/users", Some(ana_token)).await;
    assert_eq!(directory.body["total"], 2);
}

#[actix_web::test]
async fn an_admin_sees_a_users_detail_and_live_sessions_without_any_secret() {
    let app = spawn_app().await;
    let admin = app.admin("boss").await;
    let ana = app.user_with("ana", &["Jogos"], &["text"]).await;
    app.login("ana", PASSWORD).await;

    let res = app
        .get(&format!("/api/admin/users/{}", ana.id), Some(&admin.token))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["user"]["nickname"], "ana");
    assert_eq!(res.body["user"]["themes"], json!(["Jogos"]));
    assert_eq!(res.body["sessions"].as_array().unwrap().len(), 2);
    assert!(res.body["sessions"][0]["expires_at"].is_i64());
    let text = res.body.to_string();
    assert!(!text.contains(&ana.token) && !text.contains("hash") && !text.contains("argon2"));

    let missing = app.get("/api/admin/users/999999", Some(&admin.token)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "not_found");
    let bad = app.get("/api/admin/users/abc", Some(&admin.token)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "bad_request");
}

#[actix_web::test]
async fn a_banned_user_cannot_log_in_and_their_tokens_stop_working_until_unbanned() {
    let app = spawn_app().await;
    let admin = app.admin("boss").await;
    let troll = app.user("troll").await;
    let second = app.login("troll", PASSWORD).await;
    let second_token = second.body["token"].as_str().unwrap().to_owned();

    let ban = app
        .post(
            &format!("/api/admin/users/{}/ban", troll.id),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(ban.status, StatusCode::OK, "{}", ban.body);
    assert_eq!(ban.body["banned"], true);
    for token in [&troll.token, &second_token] {
        let me = app.get("/api/me", Some(token)).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.body);
    }
    let login = app.login("troll", PASSWORD).await;
    assert_eq!(login.status, StatusCode::FORBIDDEN, "{}", login.body);
    assert!(login.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("banned"));

    let unban = app
        .post(
            &format!("/api/admin/users/{}/unban", troll.id),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(unban.status, StatusCode::OK, "{}", unban.body);
    assert_eq!(unban.body["banned"], false);
    assert_eq!(app.login("troll", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/me", Some(&troll.token)).await.status,
        StatusCode::UNAUTHORIZED,
        "the ban ended the old sessions for good"
    );

    let missing = app
        .post("/api/admin/users/999999/ban", Some(&admin.token), json!({}))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn an_admin_cannot_ban_delete_or_demote_themselves() {
    let app = spawn_app().await;
    let admin = app.admin("boss").await;
    let me = admin.id;
    for (method, path, body, verb) in [
        ("POST", format!("/api/admin/users/{me}/ban"), None, "ban"),
        ("DELETE", format!("/api/admin/users/{me}"), None, "delete"),
        (
            "PUT",
            format!("/api/admin/users/{me}/role"),
            Some(json!({"role": "user"})),
            "demote",
        ),
    ] {
        let res = app.request(method, &path, Some(&admin.token), body).await;
        assert_eq!(
            res.status,
            StatusCode::CONFLICT,
            "{method} {path}: {}",
            res.body
        );
        let message = res.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("cannot {verb} yourself")),
            "{message}"
        );
    }
    let still = app.get("/api/me", Some(&admin.token)).await;
    assert_eq!(still.status, StatusCode::OK);
    assert_eq!(still.body["role"], "admin");
    assert_eq!(still.body["banned"], false);
}

#[actix_web::test]
async fn deleting_a_user_removes_their_account_and_sessions() {
    let app = spawn_app().await;
    let admin = app.admin("boss").await;
    let gone = app.user("gone").await;
    let res = app
        .request(
            "DELETE",
            &format!("/api/admin/users/{}", gone.id),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.body);
    assert_eq!(
        app.get("/api/me", Some(&gone.token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("gone", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let detail = app
        .get(&format!("/api/admin/users/{}", gone.id), Some(&admin.token))
        .await;
    assert_eq!(detail.status, StatusCode::NOT_FOUND);
    let again = app
        .request(
            "DELETE",
            &format!("/api/admin/users/{}", gone.id),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    // The nickname is free again.
    app.user("gone").await;
}

#[actix_web::test]
async fn an_admin_promotes_a_user_who_then_reaches_admin_routes_and_demotes_them_again() {
    let app = spawn_app().await;
    let admin = app.admin("boss").await;
    let ana = app.user("ana").await;
    let role = |r: &str| json!({"role": r});
    let path = format!("/api/admin/users/{}/role", ana.id);

    let up = app
        .request("PUT", &path, Some(&admin.token), Some(role("admin")))
        .await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.body);
    assert_eq!(up.body["role"], "admin");
    assert_eq!(
        app.get("/api/admin/stats", Some(&ana.token)).await.status,
        StatusCode::OK
    );

    let down = app
        .request("PUT", &path, Some(&admin.token), Some(role("user")))
        .await;
    assert_eq!(down.body["role"], "user");
    assert_eq!(
        app.get("/api/admin/stats", Some(&ana.token)).await.status,
        StatusCode::FORBIDDEN
    );

    let bad = app
        .request("PUT", &path, Some(&admin.token), Some(role("god")))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let missing = app
        .request(
            "PUT",
            "/api/admin/users/999999/role",
            Some(&admin.token),
            Some(role("admin")),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn kicking_a_user_ends_every_session_but_they_may_log_in_again() {
    let app = spawn_app().await;
    let admin = app.admin("boss").await;
    let ana = app.user("ana").await;
    app.login("ana", PASSWORD).await;
    let res = app
        .request(
            "DELETE",
            &format!("/api/admin/users/{}/sessions", ana.id),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["revoked"], 2);
    assert_eq!(
        app.get("/api/me", Some(&ana.token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.login("ana", PASSWORD).await.status, StatusCode::OK);
    let missing = app
        .request(
            "DELETE",
            "/api/admin/users/999999/sessions",
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn an_admin_creates_renames_and_describes_themes() {
    let app = spawn_app().await;
    let admin = app.admin("boss").await;
    let token = Some(admin.token.as_str());

    let created = app
        .post(
            "/api/admin/themes",
            token,
            json!({"name": " Xadrez ", "description": "Aberturas e finais"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["name"], "Xadrez");
    assert_eq!(created.body["followers"], 0);
    let id = created.body["id"].as_i64().unwrap();

    let follower = app.user_with("ana", &["xadrez"], &["text"]).await;

    let renamed = app
        .request(
            "PATCH",
            &format!("/api/admin/themes/{id}"),
            token,
            Some(json!({"name": "Chess"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "Chess");
    assert_eq!(renamed.body["description"], "Aberturas e finais");
    assert_eq!(renamed.body["followers"], 1);
    let described = app
        .request(
            "PATCH",
            &format!("/api/admin/themes/{id}"),
            token,
            Some(json!({"description": "Openings"})),
        )
        .await;
    assert_eq!(described.body["name"], "Chess");
    assert_eq!(described.body["description"], "Openings");

    let me = app.get("/api/me", Some(&follower.token)).await;
    assert_eq!(
        me.body["themes"],
        json!(["Chess"]),
        "followers follow the renamed theme"
    );
    let listed = app.get("/api/themes", None).await;
    assert_eq!(theme_id(&listed.body, "Chess"), id);
}

#[actix_web::test]
async fn bad_theme_changes_are_refused_with_clear_errors() {
    let app = spawn_app().await;
    let admin = app.admin("boss").await;
    let token = Some(admin.token.as_str());
    let themes = app.get("/api/themes", None).await;
    let games = theme_id(&themes.body, "Jogos");

    let cases = [
        (
            "POST",
            "/api/admin/themes".to_owned(),
            json!({"name": "tecnologia"}),
            StatusCode::CONFLICT,
            "already exists",
        ),
        (
            "POST",
            "/api/admin/themes".to_owned(),
            json!({"name": "  "}),
            StatusCode::BAD_REQUEST,
            "1 to 48",
        ),
        (
            "POST",
            "/api/admin/themes".to_owned(),
            json!({"name": "x".repeat(49)}),
            StatusCode::BAD_REQUEST,
            "1 to 48",
        ),
        (
            "POST",
            "/api/admin/themes".to_owned(),
            json!({"name": "a\u{7}b"}),
            StatusCode::BAD_REQUEST,
            "control",
        ),
        (
            "POST",
            "/api/admin/themes".to_owned(),
            json!({"name": "Ok", "description": "d".repeat(501)}),
            StatusCode::BAD_REQUEST,
            "at most 500",
        ),
        (
            "PATCH",
            format!("/api/admin/themes/{games}"),
            json!({}),
            StatusCode::BAD_REQUEST,
            "nothing to change",
        ),
        (
            "PATCH",
            format!("/api/admin/themes/{games}"),
            json!({"name": "FUTEBOL"}),
            StatusCode::CONFLICT,
            "already exists",
        ),
        (
            "PATCH",
            "/api/admin/themes/999999".to_owned(),
            json!({"name": "New"}),
            StatusCode::NOT_FOUND,
            "no theme",
        ),
    ];
    for (method, path, body, status, needle) in cases {
        let res = app.request(method, &path, token, Some(body.clone())).await;
        assert_eq!(res.status, status, "{method} {path} {body}: {}", res.body);
        let message = res.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    let missing = app
        .request("DELETE", "/api/admin/themes/999999", token, None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn deleting_a_theme_unlinks_its_followers_who_keep_their_accounts_and_other_themes() {
    let app = spawn_app().await;
    let admin = app.admin("boss").await;
    let ana = app.user_with("ana", &["Jogos", "Futebol"], &["text"]).await;
    let bia = app.user_with("bia", &["Jogos"], &["text"]).await;
    let themes = app.get("/api/themes", None).await;
    let games = theme_id(&themes.body, "Jogos");

    let res = app
        .request(
            "DELETE",
            &format!("/api/admin/themes/{games}"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.body);

    let ana_me = app.get("/api/me", Some(&ana.token)).await;
    assert_eq!(ana_me.status, StatusCode::OK);
    assert_eq!(ana_me.body["themes"], json!(["Futebol"]));
    let bia_me = app.get("/api/me", Some(&bia.token)).await;
    assert_eq!(bia_me.status, StatusCode::OK);
    assert_eq!(bia_me.body["themes"], json!([]));
    let after = app.get("/api/themes", None).await;
    assert!(!after.body["themes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "Jogos"));
    let filtered = app.get("/api/users?theme=Jogos", Some(&ana.token)).await;
    assert_eq!(filtered.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.login("bia", PASSWORD).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn stats_count_users_sessions_themes_messages_and_calls() {
    use tertulia::db::{self, models};
    let app = spawn_app().await;
    let admin = app.admin("boss").await;
    let ana = app.user("ana").await;
    let bia = app.user("bia").await;
    app.post(
        &format!("/api/admin/users/{}/ban", bia.id),
        Some(&admin.token),
        json!({}),
    )
    .await;
    {
        let mut conn = db(&app);
        let room =
            db::rooms::get_or_create(&mut conn, "canal1", models::RoomKind::Public, None).unwrap();
        for n in 0..3 {
            db::messages::insert(
                &mut conn,
                &models::NewMessage {
                    room_id: room.id,
                    sender_id: ana.id,
                    client_msg_id: format!("m{n}"),
                    body: "olá".into(),
                    created_at: db::now_ms(),
                },
            )
            .unwrap();
        }
        db::calls::create(
            &mut conn,
            &models::NewCall {
                call_key: "c1",
                room_id: None,
                caller_id: ana.id,
                callee_id: admin.id,
                media: "video",
                state: "ringing",
                created_at: db::now_ms(),
                owner_node: None,
            },
        )
        .unwrap();
    }

    let res = app.get("/api/admin/stats", Some(&admin.token)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["users"], 3);
    assert_eq!(res.body["banned_users"], 1);
    assert_eq!(res.body["admins"], 1);
    assert_eq!(res.body["themes"], 8);
    assert_eq!(
        res.body["sessions"], 2,
        "boss and ana; bia's ended with the ban"
    );
    assert_eq!(res.body["messages"], 3);
    assert_eq!(res.body["calls"], 1);
}

#[actix_web::test]
async fn admin_changes_survive_a_restart() {
    let app = spawn_app().await;
    let admin = app.admin("boss").await;
    let troll = app.user("troll").await;
    let ana = app.user("ana").await;
    let token = Some(admin.token.as_str());
    app.post(
        &format!("/api/admin/users/{}/ban", troll.id),
        token,
        json!({}),
    )
    .await;
    app.request(
        "PUT",
        &format!("/api/admin/users/{}/role", ana.id),
        token,
        Some(json!({"role": "admin"})),
    )
    .await;
    let created = app
        .post(
            "/api/admin/themes",
            token,
            json!({"name": "Xadrez", "description": "chess"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let themes = app.get("/api/themes", None).await;
    let books = theme_id(&themes.body, "Livros");
    app.request("DELETE", &format!("/api/admin/themes/{books}"), token, None)
        .await;

    let app = app.restart().await;

    assert_eq!(
        app.login("troll", PASSWORD).await.status,
        StatusCode::FORBIDDEN
    );
    let ana_again = app.login("ana", PASSWORD).await;
    assert_eq!(ana_again.body["user"]["role"], "admin");
    let themes = app.get("/api/themes", None).await;
    let xadrez = theme_id(&themes.body, "Xadrez");
    assert!(xadrez > 0);
    assert!(!themes.body.to_string().contains("Livros"));
    assert_eq!(
        app.get("/api/admin/stats", Some(&admin.token)).await.status,
        StatusCode::OK,
        "the admin's session survives too"
    );
}

#[actix_web::test]
async fn theme_descriptions_are_stored_per_language_and_the_admin_api_sets_both() {
    let app = spawn_app().await;
    let admin = app.admin("boss").await;
    let token = Some(admin.token.as_str());

    // The shipped themes read in one language per page, not half and half.
    let shipped = app.get("/api/themes", None).await;
    let books = shipped.body["themes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Livros")
        .unwrap()
        .clone();
    assert_eq!(
        books["descriptions"]["pt-BR"],
        "Clubes de leitura, ficção, não ficção e poesia."
    );
    assert_eq!(
        books["descriptions"]["en"],
        "Book clubs, fiction, non-fiction and poetry."
    );

    let created = app
        .post(
            "/api/admin/themes",
            token,
            json!({
                "name": "Xadrez",
                "descriptions": {"en": " Openings and endgames ", "pt-BR": "Aberturas e finais"},
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        created.body["descriptions"],
        json!({"en": "Openings and endgames", "pt-BR": "Aberturas e finais"})
    );
    let id = created.body["id"].as_i64().unwrap();

    // One language changed, the other kept; an empty text removes one.
    let changed = app
        .request(
            "PATCH",
            &format!("/api/admin/themes/{id}"),
            token,
            Some(json!({"descriptions": {"en": "Chess: openings and endgames"}})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(
        changed.body["descriptions"],
        json!({"en": "Chess: openings and endgames", "pt-BR": "Aberturas e finais"})
    );
    let removed = app
        .request(
            "PATCH",
            &format!("/api/admin/themes/{id}"),
            token,
            Some(json!({"descriptions": {"pt-BR": ""}})),
        )
        .await;
    assert_eq!(
        removed.body["descriptions"],
        json!({"en": "Chess: openings and endgames"})
    );
    let listed = app.get("/api/themes", None).await;
    let chess = listed.body["themes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(chess["descriptions"], removed.body["descriptions"]);

    // A language the app does not speak, or an over-long text, is refused and changes nothing.
    for body in [
        json!({"descriptions": {"fr": "Échecs"}}),
        json!({"descriptions": {"en": "d".repeat(501)}}),
    ] {
        let refused = app
            .request(
                "PATCH",
                &format!("/api/admin/themes/{id}"),
                token,
                Some(body),
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    }
    let refused = app
        .post(
            "/api/admin/themes",
            token,
            json!({"name": "Damas", "descriptions": {"es": "Damas"}}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.body["error"]["field"], "descriptions");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("en, pt-BR"),
        "{}",
        refused.body
    );
    let after = app.get("/api/themes", None).await;
    assert!(!after.body.to_string().contains("Damas"));
    assert!(!after.body.to_string().contains("Échecs"));
}
