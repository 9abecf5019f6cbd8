//! The HTTP side of the realtime core: presence in the directory, live counts in admin stats
//! and `/metrics`, and the ICE servers for WebRTC.

use serde_json::json;

use crate::{
    helpers::{spawn_app, spawn_app_with, TestApp},
    ws_client::connect,
};

#[actix_web::test]
async fn the_directory_shows_live_status_and_filters_by_online() {
    let app = spawn_app().await;
    let (ana, bia, _caio) = (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    );
    let mut b = connect(&app, &bia).await;
    b.request(1, json!({"type": "presence.set", "status": "away"}))
        .await;
    let all = app.get("/api/users", Some(&ana.token)).await;
    assert_eq!(all.status.as_u16(), 200, "{}", all.body);
    let status_of = |name: &str| {
        all.body["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["nickname"] == name)
            .map(|u| u["status"].clone())
            .unwrap()
    };
    assert_eq!(status_of("bia"), "away");
    assert_eq!(status_of("caio"), "offline");
    let online = app.get("/api/users?online=true", Some(&ana.token)).await;
    let names: Vec<&str> = online.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["nickname"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["bia"]);
    let offline = app.get("/api/users?online=false", Some(&ana.token)).await;
    assert_eq!(offline.body["total"], 2);
}

#[actix_web::test]
async fn admin_stats_and_metrics_count_live_connections_rooms_and_frames() {
    let app = spawn_app().await;
    let admin = app.admin("chefe").await;
    let ana = app.user("ana").await;
    let mut a = connect(&app, &ana).await;
    a.join("canal1").await;
    a.request(1, json!({"type": "ping"})).await;
    let stats = app.get("/api/admin/stats", Some(&admin.token)).await;
    assert_eq!(stats.status.as_u16(), 200, "{}", stats.body);
    assert_eq!(stats.body["online_users"], 1);
    assert_eq!(stats.body["ws_connections"], 1);
    assert_eq!(stats.body["live_rooms"], 1);
    assert_eq!(stats.body["live_calls"], 0);
    let text = metrics_text(&app).await;
    for line in [
        "tertulia_ws_connections 1",
        "tertulia_rooms_live 1",
        "tertulia_ws_frames_in_total{type=\"ping\"} 1",
        "tertulia_ws_frames_in_total{type=\"room.join\"} 1",
        "tertulia_ws_frames_out_total{type=\"welcome\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    a.send_text(&format!(
        "{{\"type\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(70_000)
    ))
    .await;
    assert_eq!(a.expect_close().await, 1009);
    let text = metrics_text(&app).await;
    assert!(
        text.contains("tertulia_ws_closes_total{code=\"1009\"} 1"),
        "{text}"
    );
}

/// The server's `/metrics` text.
async fn metrics_text(app: &TestApp) -> String {
    let res = app.get("/metrics", None).await;
    res.body.as_str().unwrap_or_default().to_owned()
}

/// The value of one series in the `/metrics` text (0 when absent).
fn series(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[actix_web::test]
async fn a_connection_lost_without_a_close_frame_is_counted_as_1006_not_as_a_protocol_error() {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    // One goes with everything read (the stream ends), the other right after asking for a
    // reply it never reads (its unread data makes the kernel reset the connection).
    connect(&app, &ana).await.vanish();
    let mut b = connect(&app, &bia).await;
    b.send(json!({"type": "ping"})).await;
    b.vanish();
    let lost = "tertulia_ws_closes_total{code=\"1006\"}";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let text = metrics_text(&app).await;
        if series(&text, lost) >= 2 || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(series(&text, lost), 2, "{text}");
    for code in ["1000", "1002"] {
        let name = format!("tertulia_ws_closes_total{{code=\"{code}\"}}");
        assert_eq!(series(&text, &name), 0, "{name} in\n{text}");
    }
}

#[actix_web::test]
async fn without_stun_or_turn_the_ice_servers_are_empty_with_a_note() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let res = app.get("/api/ice-servers", Some(&ana.token)).await;
    assert_eq!(res.status.as_u16(), 200);
    assert_eq!(res.body["ice_servers"], json!([]));
    assert!(res.body["note"]
        .as_str()
        .unwrap()
        .contains("host candidates"));
    assert_eq!(app.get("/api/ice-servers", None).await.status.as_u16(), 401);
}

#[actix_web::test]
async fn turn_credentials_follow_coturns_rest_scheme_and_expire() {
    let app = spawn_app_with(|s| {
        s.ice_urls = vec![
            "stun:stun.example.org:3478".into(),
            "turn:turn.example.org:3478?transport=udp".into(),
        ];
        s.turn_secret = Some("s3cret".into());
        s.turn_ttl_secs = 600;
    })
    .await;
    let ana = app.user("ana").await;
    let res = app.get("/api/ice-servers", Some(&ana.token)).await;
    let servers = res.body["ice_servers"].as_array().unwrap();
    assert_eq!(servers[0]["urls"], json!(["stun:stun.example.org:3478"]));
    assert!(servers[0].get("credential").is_none());
    let username = servers[1]["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, ana.id.to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(expiry > now && expiry <= now + 601, "{expiry} vs {now}");
    assert_eq!(
        servers[1]["credential"].as_str().unwrap(),
        tertulia::http::ice::turn_credential("s3cret", username).unwrap()
    );
    assert_eq!(res.body["ttl_secs"], 600);
}
