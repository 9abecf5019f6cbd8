//! Chat over WebSocket: stored before acknowledged, idempotent retries, history, typing.

use serde_json::json;

use crate::{helpers::spawn_app, ws_client::connect};

#[actix_web::test]
async fn a_message_is_acknowledged_with_its_id_and_delivered_to_the_room() {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    a.join("canal1").await;
    b.join("canal1").await;
    let ack = a
        .request(
            7,
            json!({"type": "chat.send", "room": "canal1", "client_msg_id": "m-1", "text": "olá"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let msg_id = ack["msg_id"].as_i64().unwrap();
    let got = b.recv_type("chat.message").await;
    assert_eq!(got["msg_id"], msg_id);
    assert_eq!(got["text"], "olá");
    assert_eq!(got["from"]["nickname"], "ana");
    assert_eq!(got["client_msg_id"], "m-1");
    // The sender's other tabs see it too: the sender gets it as well.
    assert_eq!(a.recv_type("chat.message").await["msg_id"], msg_id);
    // Stored: visible over HTTP.
    let page = app
        .get("/api/rooms/canal1/messages", Some(&bia.token))
        .await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.body);
    assert_eq!(page.body["messages"][0]["msg_id"], msg_id);
}

#[actix_web::test]
async fn a_retried_message_is_acknowledged_again_but_stored_and_delivered_once() {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    a.join("canal1").await;
    b.join("canal1").await;
    let frame =
        json!({"type": "chat.send", "room": "canal1", "client_msg_id": "m-r", "text": "uma vez"});
    let first = a.request(1, frame.clone()).await;
    let again = a.request(2, frame).await;
    assert_eq!(first["msg_id"], again["msg_id"]);
    assert_eq!(first["created_at"], again["created_at"]);
    b.recv_type("chat.message").await;
    b.expect_no("chat.message").await;
    let page = app
        .get("/api/rooms/canal1/messages", Some(&ana.token))
        .await;
    assert_eq!(page.body["messages"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn chat_needs_a_joined_room_and_valid_text() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let mut a = connect(&app, &ana).await;
    let err = a
        .request(
            1,
            json!({"type": "chat.send", "room": "canal1", "client_msg_id": "m", "text": "x"}),
        )
        .await;
    assert_eq!(err["code"], "forbidden");
    a.join("canal1").await;
    let err = a
        .request(
            2,
            json!({"type": "chat.send", "room": "canal1", "client_msg_id": "m", "text": ""}),
        )
        .await;
    assert_eq!(err["code"], "bad_request");
    let long = "x".repeat(4001);
    let err = a
        .request(
            3,
            json!({"type": "chat.send", "room": "canal1", "client_msg_id": "m", "text": long}),
        )
        .await;
    assert_eq!(err["code"], "bad_request");
}

#[actix_web::test]
async fn typing_reaches_the_others_but_not_the_typist() {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    a.join("canal1").await;
    b.join("canal1").await;
    a.send(json!({"type": "chat.typing", "room": "canal1"}))
        .await;
    let typing = b.recv_type("chat.typing").await;
    assert_eq!(typing["from"]["nickname"], "ana");
    a.expect_no("chat.typing").await;
}

#[actix_web::test]
async fn history_pages_backwards_and_join_since_returns_what_was_missed() {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(&app, &ana).await;
    a.join("canal1").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let ack = a
            .request(i, json!({"type": "chat.send", "room": "canal1", "client_msg_id": format!("m-{i}"), "text": format!("n{i}")}))
            .await;
        ids.push(ack["msg_id"].as_i64().unwrap());
    }
    let page = a
        .request(
            20,
            json!({"type": "chat.history", "room": "canal1", "before": ids[4], "limit": 2}),
        )
        .await;
    assert_eq!(page["type"], "chat.history");
    let got: Vec<i64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg_id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![ids[2], ids[3]]);
    assert_eq!(page["has_more"], true);
    let http = app
        .get(
            &format!("/api/rooms/canal1/messages?before={}&limit=2", ids[2]),
            Some(&bia.token),
        )
        .await;
    assert_eq!(http.body["messages"][0]["msg_id"], ids[0]);
    assert_eq!(http.body["has_more"], false);

    let mut b = connect(&app, &bia).await;
    let joined = b
        .request(
            30,
            json!({"type": "room.join", "room": "canal1", "since": ids[2]}),
        )
        .await;
    let got: Vec<i64> = joined["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg_id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![ids[3], ids[4]]);
}

#[actix_web::test]
async fn a_direct_rooms_history_is_private_over_http_too() {
    let app = spawn_app().await;
    let (ana, bia, caio) = (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    );
    let dm = format!("dm:{}:{}", ana.id.min(bia.id), ana.id.max(bia.id));
    let res = app
        .get(&format!("/api/rooms/{dm}/messages"), Some(&caio.token))
        .await;
    assert_eq!(res.status.as_u16(), 403);
    let res = app
        .get(&format!("/api/rooms/{dm}/messages"), Some(&ana.token))
        .await;
    assert_eq!(res.status.as_u16(), 200);
    let res = app.get("/api/rooms/canal1/messages", None).await;
    assert_eq!(res.status.as_u16(), 401);
}

#[actix_web::test]
async fn chat_history_survives_a_restart() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let mut a = connect(&app, &ana).await;
    a.join("canal1").await;
    let ack = a
        .request(1, json!({"type": "chat.send", "room": "canal1", "client_msg_id": "m-keep", "text": "fica"}))
        .await;
    a.close().await;
    let app = app.restart().await;
    let mut a = connect(&app, &ana).await;
    let joined = a.join("canal1").await;
    assert_eq!(joined["messages"][0]["msg_id"], ack["msg_id"]);
    assert_eq!(joined["messages"][0]["text"], "fica");
}
