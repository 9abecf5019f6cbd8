//! `/ws` handshake rules, `welcome`, the presence snapshot and presence updates.

use std::{collections::HashMap, time::Duration};

use serde_json::{json, Value};

use crate::{
    helpers::{spawn_app, spawn_app_with, TestApp, TestUser},
    ws_client::{connect, connect_with, connect_ws, try_connect, ConnectOpts, WsClient},
};

/// A client's picture of the lobby, kept the way the browser app keeps it: the snapshot
/// replaces it, then every `presence.update` and `presence.batch` changes it in order.
#[derive(Default)]
struct LobbyView(HashMap<i64, String>);

impl LobbyView {
    /// Applies one frame (frames that are not presence change nothing).
    fn apply(&mut self, frame: &Value) {
        if frame["type"] == "presence.snapshot" {
            self.0.clear();
        }
        let mut set = |entry: &Value, id_key: &str| {
            let id = entry[id_key].as_i64().expect("presence entry id");
            let status = entry["status"].as_str().expect("presence entry status");
            if status == "offline" {
                self.0.remove(&id);
            } else {
                self.0.insert(id, status.to_owned());
            }
        };
        match frame["type"].as_str() {
            Some("presence.snapshot") => {
                for user in frame["users"].as_array().expect("users") {
                    set(user, "id");
                }
            }
            Some("presence.update") => set(frame, "user_id"),
            Some("presence.batch") => {
                for update in frame["updates"].as_array().expect("updates") {
                    set(update, "user_id");
                }
            }
            _ => {}
        }
    }

    /// The status this view shows for `user` (`None`: offline).
    fn status(&self, user: &TestUser) -> Option<&str> {
        self.0.get(&user.id).map(String::as_str)
    }

    /// Reads `ws`'s frames into the view until it shows exactly `expected` (user, status);
    /// a view that never gets there fails the test when `recv` times out.
    async fn settle(&mut self, ws: &mut WsClient, expected: &[(&TestUser, &str)]) {
        let truth: HashMap<i64, String> = expected
            .iter()
            .map(|(user, status)| (user.id, (*status).to_owned()))
            .collect();
        while self.0 != truth {
            let frame = ws.recv().await;
            self.apply(&frame);
        }
    }
}

/// Connects `user`: the connection, its lobby as the snapshot shows it, and the snapshot's
/// user ids in order.
async fn arrive(app: &TestApp, user: &TestUser) -> (WsClient, LobbyView, Vec<i64>) {
    let ws = connect(app, user).await;
    let mut view = LobbyView::default();
    view.apply(&ws.snapshot);
    let ids = ws.snapshot["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["id"].as_i64().expect("id"))
        .collect();
    (ws, view, ids)
}

#[actix_web::test]
async fn a_new_connection_gets_welcome_then_a_snapshot_that_includes_itself() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let mut ws = try_connect(
        &app,
        ConnectOpts {
            token: Some(&ana.token),
            ..Default::default()
        },
    )
    .await
    .expect("upgrade");
    let welcome = ws.recv().await;
    assert_eq!(welcome["type"], "welcome");
    assert!(welcome["session_id"].as_str().unwrap().starts_with("s-"));
    assert_eq!(welcome["user"]["nickname"], "ana");
    assert_eq!(welcome["user"]["themes"], json!(["Tecnologia"]));
    assert_eq!(welcome["limits"]["max_frame_bytes"], 65536);
    assert_eq!(welcome["heartbeat_ms"], 10000);
    let snapshot = ws.recv().await;
    assert_eq!(snapshot["type"], "presence.snapshot");
    let users = snapshot["users"].as_array().unwrap();
    assert!(users
        .iter()
        .any(|u| u["id"] == ana.id && u["status"] == "online"));
}

#[actix_web::test]
async fn without_a_credential_the_upgrade_is_refused_with_401() {
    let app = spawn_app().await;
    let status = try_connect(&app, ConnectOpts::default()).await.err();
    assert_eq!(status, Some(401));
    let status = try_connect(
        &app,
        ConnectOpts {
            token: Some("not-a-token"),
            ..Default::default()
        },
    )
    .await
    .err();
    assert_eq!(status, Some(401));
}

#[actix_web::test]
async fn a_foreign_origin_is_refused_with_403_and_the_own_origin_is_allowed() {
    let app = spawn_app_with(|s| s.allowed_origins = vec!["https://app.example.org".into()]).await;
    let ana = app.user("ana").await;
    let foreign = try_connect(
        &app,
        ConnectOpts {
            token: Some(&ana.token),
            origin: Some("https://evil.example.com"),
            ..Default::default()
        },
    )
    .await
    .err();
    assert_eq!(foreign, Some(403));
    let own = format!("http://127.0.0.1:{}", app.port);
    for origin in [own.as_str(), "https://app.example.org"] {
        connect_with(
            &app,
            ConnectOpts {
                token: Some(&ana.token),
                origin: Some(origin),
                ..Default::default()
            },
        )
        .await;
    }
}

#[actix_web::test]
async fn too_many_connections_for_one_user_get_429() {
    let app = spawn_app_with(|s| s.ws_max_conns_per_user = 2).await;
    let ana = app.user("ana").await;
    let _a = connect(&app, &ana).await;
    let _b = connect(&app, &ana).await;
    let third = try_connect(
        &app,
        ConnectOpts {
            token: Some(&ana.token),
            ..Default::default()
        },
    )
    .await
    .err();
    assert_eq!(third, Some(429));
}

#[actix_web::test]
async fn the_connection_cap_holds_for_upgrades_at_the_same_instant_and_a_closed_one_frees_its_place(
) {
    let app = spawn_app_with(|s| s.ws_max_conns_per_user = 2).await;
    let ana = app.user("ana").await;
    let opts = || ConnectOpts {
        token: Some(&ana.token),
        ..Default::default()
    };
    let attempts = futures_util::future::join_all((0..8).map(|_| try_connect(&app, opts()))).await;
    let mut open = Vec::new();
    let mut refused = Vec::new();
    for attempt in attempts {
        match attempt {
            Ok(client) => open.push(client),
            Err(status) => refused.push(status),
        }
    }
    assert_eq!(open.len(), 2, "admitted at once: {}", open.len());
    assert_eq!(refused, vec![429; 6]);

    open.pop().expect("two open").close_and_wait().await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match try_connect(&app, opts()).await {
            Ok(_) => break,
            Err(429) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(status) => panic!("a closed connection's place was not freed: {status}"),
        }
    }
}

#[actix_web::test]
async fn others_see_a_user_arrive_change_status_and_leave() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let bia = app.user("bia").await;
    let mut a = connect(&app, &ana).await;
    let b = connect(&app, &bia).await;
    let update = a.presence_of(bia.id).await;
    assert_eq!(update["status"], "online");
    assert_eq!(update["nickname"], "bia");

    let mut b = b;
    let ack = b
        .request(1, json!({"type": "presence.set", "status": "busy"}))
        .await;
    assert_eq!(ack["type"], "ack");
    let update = a.presence_of(bia.id).await;
    assert_eq!(update["status"], "busy");

    b.close().await;
    let update = a.presence_of(bia.id).await;
    assert_eq!(update["status"], "offline");
}

/// A server that pings every 100 ms and drops a client silent for 500 ms.
async fn fast_heartbeat_app() -> TestApp {
    spawn_app_with(|s| {
        s.heartbeat_ms = 100;
        s.client_timeout_ms = 500;
    })
    .await
}

#[actix_web::test]
async fn a_client_that_vanishes_without_a_close_frame_goes_offline() {
    let app = fast_heartbeat_app().await;
    let ana = app.user("ana").await;
    let bia = app.user("bia").await;
    let mut a = connect(&app, &ana).await;
    let b = connect(&app, &bia).await;
    assert_eq!(a.presence_of(bia.id).await["status"], "online");
    b.vanish();
    assert_eq!(a.presence_of(bia.id).await["status"], "offline");
    let me = app.get("/api/me", Some(&bia.token)).await;
    assert!(me.body["last_seen_at"].as_i64().is_some(), "{}", me.body);
}

#[actix_web::test]
async fn a_client_that_only_answers_pings_is_pinged_every_heartbeat_and_stays() {
    let app = fast_heartbeat_app().await;
    let ana = app.user("ana").await;
    let mut a = connect(&app, &ana).await;
    // Four timeouts long, sending nothing but the pongs to the server's pings (about 20
    // of them; fewer on a busy machine, but more than one).
    let pings = a.count_pings(Duration::from_millis(2_000)).await;
    assert!(pings >= 3, "{pings} pings in 2 s at a 100 ms heartbeat");
    let pong = a.request(1, json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
}

#[actix_web::test]
async fn a_client_that_stops_answering_is_closed_as_timed_out() {
    let app = fast_heartbeat_app().await;
    let ana = app.user("ana").await;
    let bia = app.user("bia").await;
    let mut a = connect(&app, &ana).await;
    // Pings and pongs are WebSocket's (an event stream's heartbeat is heard when its
    // connection takes it).
    let mut b = connect_ws(&app, &bia).await;
    assert_eq!(a.presence_of(bia.id).await["status"], "online");
    // Bia's client reads nothing from here on (so it answers no ping), but stays connected:
    // after the timeout and at most a heartbeat (and a presence tick) she is offline.
    assert_eq!(a.presence_of(bia.id).await["status"], "offline");
    assert_eq!(b.expect_close().await, 1000);
    // Ana, who answered every ping meanwhile, is still here.
    let pong = a.request(1, json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
}

#[actix_web::test]
async fn a_profile_change_is_pushed_as_a_presence_update() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let mut a = connect(&app, &ana).await;
    let _ = a.presence_of(ana.id).await;
    let res = app
        .request(
            "PATCH",
            "/api/me",
            Some(&ana.token),
            Some(json!({"themes": ["Jogos"]})),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.body);
    let update = a.presence_of(ana.id).await;
    assert_eq!(update["themes"], json!(["Jogos"]));
}

#[actix_web::test]
async fn a_thousand_arrivals_reach_a_watcher_in_few_batched_frames() {
    // Many changes in one tick are one presence.batch, not one frame each.
    let app = spawn_app_with(|s| s.presence_tick_ms = 300).await;
    let ana = app.user("ana").await;
    let bia = app.user("bia").await;
    let carla = app.user("carla").await;
    let mut a = connect(&app, &ana).await;
    let _ = a.presence_of(ana.id).await;
    let _b = connect(&app, &bia).await;
    let _c = connect(&app, &carla).await;
    let batch = a.recv_type("presence.batch").await;
    let ids: Vec<i64> = batch["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![bia.id, carla.id]);
}

#[actix_web::test]
async fn users_arriving_in_one_tick_each_get_everyone_before_them_and_themselves() {
    // A long tick: the arrivals share one tick's snapshot, so each must be added to it.
    let app = spawn_app_with(|s| s.presence_tick_ms = 1_000).await;
    let ana = app.user("ana").await;
    let bia = app.user("bia").await;
    let carla = app.user("carla").await;
    let (mut a, mut a_view, a_ids) = arrive(&app, &ana).await;
    let (mut b, mut b_view, b_ids) = arrive(&app, &bia).await;
    let (mut c, mut c_view, c_ids) = arrive(&app, &carla).await;
    assert_eq!(a_ids, vec![ana.id]);
    assert_eq!(b_ids, vec![ana.id, bia.id]);
    assert_eq!(c_ids, vec![ana.id, bia.id, carla.id]);
    let everyone = [(&ana, "online"), (&bia, "online"), (&carla, "online")];
    a_view.settle(&mut a, &everyone).await;
    b_view.settle(&mut b, &everyone).await;
    c_view.settle(&mut c, &everyone).await;
}

#[actix_web::test]
async fn arrivals_into_a_lobby_of_more_than_a_fragment_each_get_everyone_before_them_and_themselves(
) {
    // 40 users with every theme: past ~36 of them the snapshot is longer than one 7 KiB
    // fragment, and the server sends the tick's shared snapshot and each arrival's own
    // additions as pieces of one fragmented message. In one long tick, each arrival must
    // still list everyone before it and itself, whole, and then settle with the others.
    let app = spawn_app_with(|s| {
        s.presence_tick_ms = 2_000;
        // 40 logins from one address.
        s.login_attempts = 100;
    })
    .await;
    let themes = [
        "Tecnologia",
        "Jogos",
        "Futebol",
        "Basquete",
        "Música",
        "Cinema e Séries",
        "Livros",
        "Idiomas",
    ];
    let caps = ["video", "audio", "text"];
    let mut users = Vec::new();
    for i in 0..40 {
        users.push(
            app.user_with(&format!("pessoa-{i:02}"), &themes, &caps)
                .await,
        );
    }
    let mut arrived = Vec::new();
    let mut snapshot_bytes = 0;
    for user in &users {
        let (ws, view, ids) = arrive(&app, user).await;
        snapshot_bytes = ws.snapshot.to_string().len();
        let before: Vec<i64> = users[..=arrived.len()].iter().map(|u| u.id).collect();
        assert_eq!(ids, before, "{}'s snapshot", user.nickname);
        arrived.push((ws, view));
    }
    assert!(
        snapshot_bytes > 7 * 1024,
        "the last snapshot is {snapshot_bytes} bytes"
    );
    let everyone: Vec<(&TestUser, &str)> = users.iter().map(|u| (u, "online")).collect();
    let (first, last) = (&mut arrived[0], users.len() - 1);
    first.1.settle(&mut first.0, &everyone).await;
    let (ws, view) = &mut arrived[last];
    view.settle(ws, &everyone).await;
}

#[actix_web::test]
async fn a_change_pushed_after_a_snapshot_was_shared_is_in_the_next_arrivals_snapshot() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let bia = app.user("bia").await;
    let carla = app.user("carla").await;
    let (mut a, mut a_view, _) = arrive(&app, &ana).await;
    let (_b, _, _) = arrive(&app, &bia).await;
    let ack = a
        .request(1, json!({"type": "presence.set", "status": "busy"}))
        .await;
    assert_eq!(ack["type"], "ack");
    // Once ana sees her own change it has been pushed: a later arrival gets it only from
    // its snapshot.
    a_view
        .settle(&mut a, &[(&ana, "busy"), (&bia, "online")])
        .await;
    let (_c, c_view, _) = arrive(&app, &carla).await;
    assert_eq!(c_view.status(&ana), Some("busy"));
    assert_eq!(c_view.status(&bia), Some("online"));
    assert_eq!(c_view.status(&carla), Some("online"));
}

#[actix_web::test]
async fn changes_in_the_tick_of_a_shared_snapshot_reach_everyone_who_holds_it() {
    // A long tick: the arrivals, the change and the departure all fall in one tick, after
    // the snapshot they share was made.
    let app = spawn_app_with(|s| s.presence_tick_ms = 1_000).await;
    let ana = app.user("ana").await;
    let bia = app.user("bia").await;
    let carla = app.user("carla").await;
    let dora = app.user("dora").await;
    let (mut a, _, _) = arrive(&app, &ana).await;
    let (d, _, _) = arrive(&app, &dora).await;
    let (mut b, mut b_view, _) = arrive(&app, &bia).await;
    let ack = a
        .request(1, json!({"type": "presence.set", "status": "away"}))
        .await;
    assert_eq!(ack["type"], "ack");
    d.close().await;
    let (mut c, mut c_view, _) = arrive(&app, &carla).await;
    let truth = [(&ana, "away"), (&bia, "online"), (&carla, "online")];
    b_view.settle(&mut b, &truth).await;
    c_view.settle(&mut c, &truth).await;
}
