//! Presence by subscription (protocol revision 1.2): a connection is sent the windows of the
//! themes it watches, the people it shares a room with, and every theme's count.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::{
    helpers::{spawn_app, TestApp, TestUser},
    ws_client::{connect, WsClient},
};

/// Whether a presence frame says anything about `user`.
fn mentions(frame: &Value, user: &TestUser) -> bool {
    let entries = |key: &str| frame[key].as_array().cloned().unwrap_or_default();
    frame["user_id"] == user.id
        || entries("users").iter().any(|u| u["id"] == user.id)
        || entries("updates").iter().any(|u| u["user_id"] == user.id)
        || entries("left").iter().any(|id| *id == user.id)
}

/// The user ids a `presence.window` lists, in order.
fn window_ids(frame: &Value) -> Vec<i64> {
    frame["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["id"].as_i64().expect("id"))
        .collect()
}

/// Reads `ws` until a `presence.counts` (or the snapshot) says exactly `expected`; answers
/// every frame read on the way.
async fn counts_become(ws: &mut WsClient, expected: &[(&str, i64)]) -> Vec<Value> {
    let truth: HashMap<String, i64> = expected
        .iter()
        .map(|(theme, n)| ((*theme).to_owned(), *n))
        .collect();
    let mut seen = Vec::new();
    let counts_of = |frame: &Value| -> HashMap<String, i64> {
        frame["counts"]
            .as_object()
            .map(|c| {
                c.iter()
                    .map(|(t, n)| (t.clone(), n.as_i64().expect("count")))
                    .collect()
            })
            .unwrap_or_default()
    };
    if counts_of(&ws.snapshot) == truth {
        return seen;
    }
    loop {
        let frame = ws.recv().await;
        seen.push(frame.clone());
        if frame["type"] == "presence.counts" && counts_of(&frame) == truth {
            return seen;
        }
    }
}

/// A user with every capability and these themes.
async fn follower(app: &TestApp, nickname: &str, themes: &[&str]) -> TestUser {
    app.user_with(nickname, themes, &["video", "audio", "text"])
        .await
}

#[actix_web::test]
async fn someone_outside_your_themes_is_not_sent_to_you_but_counted() {
    let app = spawn_app().await;
    let ana = follower(&app, "ana", &["Tecnologia"]).await;
    let bia = follower(&app, "bia", &["Jogos"]).await;
    let carla = follower(&app, "carla", &["Tecnologia"]).await;
    let mut a = connect(&app, &ana).await;
    let b = connect(&app, &bia).await;
    let c = connect(&app, &carla).await;
    assert!(!mentions(&b.snapshot, &ana) && !mentions(&c.snapshot, &bia));
    let mut seen = counts_become(&mut a, &[("Tecnologia", 2), ("Jogos", 1)]).await;
    // Carla shares ana's theme: she comes (counted with bia, so pushed with her).
    while !seen.iter().any(|f| mentions(f, &carla)) {
        seen.push(a.recv().await);
    }
    for frame in &seen {
        assert!(!mentions(frame, &bia), "bia reached ana in {frame}");
    }
}

#[actix_web::test]
async fn opening_a_theme_card_sends_its_window_available_first_then_by_name_page_by_page() {
    let app = spawn_app().await;
    let ana = follower(&app, "ana", &["Tecnologia"]).await;
    let mut a = connect(&app, &ana).await;
    let bia = follower(&app, "bia", &["Jogos"]).await;
    let mut b = connect(&app, &bia).await;
    let ack = b
        .request(1, json!({"type": "presence.set", "status": "busy"}))
        .await;
    assert_eq!(ack["type"], "ack");
    let mut others = Vec::new();
    let mut conns = Vec::new();
    for name in ["eva", "carla", "dora"] {
        let user = follower(&app, name, &["Jogos"]).await;
        conns.push(connect(&app, &user).await);
        others.push(user);
    }
    let (eva, carla, dora) = (&others[0], &others[1], &others[2]);
    counts_become(&mut a, &[("Tecnologia", 1), ("Jogos", 4)]).await;

    let first = a
        .request(
            1,
            json!({"type": "presence.subscribe", "theme": "Jogos", "limit": 2}),
        )
        .await;
    assert_eq!(first["type"], "presence.window");
    assert_eq!(first["theme"], "Jogos");
    assert_eq!(first["online"], 4);
    assert_eq!(window_ids(&first), vec![carla.id, dora.id]);
    assert_eq!(first["users"][0]["nickname"], "carla");

    // The next page: a wider window, the busy one last.
    let wider = a
        .request(
            2,
            json!({"type": "presence.subscribe", "theme": "Jogos", "limit": 4}),
        )
        .await;
    assert_eq!(window_ids(&wider), vec![carla.id, dora.id, eva.id, bia.id]);

    // Back to two: a newcomer first by name enters it, and pushes dora out (still online).
    a.request(
        3,
        json!({"type": "presence.subscribe", "theme": "Jogos", "limit": 2}),
    )
    .await;
    let aaron = follower(&app, "aaron", &["Jogos"]).await;
    let _aaron = connect(&app, &aaron).await;
    let mut diff = a.recv_type("presence.batch").await;
    while diff["theme"] != "Jogos" {
        diff = a.recv_type("presence.batch").await;
    }
    let updated: Vec<i64> = diff["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .map(|u| u["user_id"].as_i64().expect("id"))
        .collect();
    assert_eq!(updated, vec![aaron.id]);
    assert_eq!(diff["left"], json!([dora.id]));
}

#[actix_web::test]
async fn unsubscribing_stops_a_themes_updates() {
    let app = spawn_app().await;
    let ana = follower(&app, "ana", &["Tecnologia"]).await;
    let mut a = connect(&app, &ana).await;
    let window = a
        .request(1, json!({"type": "presence.subscribe", "theme": "Jogos"}))
        .await;
    assert_eq!(window["limit"], 50);
    let bia = follower(&app, "bia", &["Jogos"]).await;
    let _b = connect(&app, &bia).await;
    assert_eq!(a.presence_of(bia.id).await["status"], "online");

    let ack = a
        .request(2, json!({"type": "presence.unsubscribe", "theme": "Jogos"}))
        .await;
    assert_eq!(ack["type"], "ack");
    let carla = follower(&app, "carla", &["Jogos"]).await;
    let _c = connect(&app, &carla).await;
    // Dora arrives after carla, in ana's own theme: once ana has her, carla's arrival has
    // been pushed too, and it did not come to ana.
    let dora = follower(&app, "dora", &["Tecnologia"]).await;
    let _d = connect(&app, &dora).await;
    assert_eq!(a.presence_of(dora.id).await["status"], "online");
    for frame in a.drain_backlog() {
        assert!(!mentions(&frame, &carla), "carla reached ana in {frame}");
    }
}

#[actix_web::test]
async fn a_person_you_share_a_room_with_is_followed_though_not_in_your_themes() {
    let app = spawn_app().await;
    let ana = follower(&app, "ana", &["Tecnologia"]).await;
    let bia = follower(&app, "bia", &["Jogos"]).await;
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    for (ws, id) in [(&mut a, 1), (&mut b, 2)] {
        let joined = ws
            .request(id, json!({"type": "room.join", "room": "canal-x"}))
            .await;
        assert_eq!(joined["type"], "room.joined", "{joined}");
    }
    assert_eq!(a.presence_of(bia.id).await["status"], "online");
    let ack = b
        .request(3, json!({"type": "presence.set", "status": "away"}))
        .await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(a.presence_of(bia.id).await["status"], "away");
    b.close().await;
    assert_eq!(a.presence_of(bia.id).await["status"], "offline");
}

#[actix_web::test]
async fn counts_follow_arrivals_and_departures_in_every_theme() {
    let app = spawn_app().await;
    let ana = follower(&app, "ana", &["Tecnologia"]).await;
    let bia = follower(&app, "bia", &["Jogos", "Livros"]).await;
    let carla = follower(&app, "carla", &["Jogos"]).await;
    let mut a = connect(&app, &ana).await;
    let _b = connect(&app, &bia).await;
    let c = connect(&app, &carla).await;
    counts_become(&mut a, &[("Tecnologia", 1), ("Jogos", 2), ("Livros", 1)]).await;
    c.close().await;
    counts_become(&mut a, &[("Tecnologia", 1), ("Jogos", 1), ("Livros", 1)]).await;
}

#[actix_web::test]
async fn a_bad_subscription_gets_a_clear_error_and_the_connection_stays() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let mut a = connect(&app, &ana).await;
    for (id, frame, says) in [
        (
            1,
            json!({"type": "presence.subscribe", "theme": "Jogos", "limit": 0}),
            "'limit' must be 1-200",
        ),
        (
            2,
            json!({"type": "presence.subscribe", "theme": "Jogos", "limit": 201}),
            "'limit' must be 1-200",
        ),
        (
            3,
            json!({"type": "presence.subscribe", "theme": ""}),
            "'theme' must be 1-64 characters",
        ),
        (
            4,
            json!({"type": "presence.unsubscribe"}),
            "invalid 'presence.unsubscribe' frame",
        ),
    ] {
        let reply = a.request(id, frame).await;
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["code"], "bad_request");
        assert!(
            reply["message"].as_str().unwrap_or("").contains(says),
            "{reply}"
        );
    }
    let pong = a.request(5, json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
}
