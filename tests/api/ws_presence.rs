//! `/ws` handshake rules, `welcome`, the presence snapshot and presence updates.

use serde_json::json;

use crate::{
    helpers::{spawn_app, spawn_app_with},
    ws_client::{connect, connect_with, try_connect, ConnectOpts},
};

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

#[actix_web::test]
async fn a_client_that_vanishes_without_a_close_frame_goes_offline() {
    let app = spawn_app_with(|s| {
        s.heartbeat_ms = 100;
        s.client_timeout_ms = 500;
    })
    .await;
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
