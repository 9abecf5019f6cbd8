//! What is the HTTP transport's own (`GET /api/stream`, `POST`/`DELETE
//! /api/stream/{stream_id}`): how a post finds its session and who may post, the events' ids.
//! The protocol itself runs over it in every other protocol test with
//! `TERTULIA_TEST_TRANSPORT=http`.

use serde_json::json;

use crate::{
    helpers::spawn_app,
    ws_client::{connect_with, ConnectOpts, Transport},
};

/// Connects over the HTTP transport whatever the run's transport.
fn over_http(token: &str) -> ConnectOpts<'_> {
    ConnectOpts {
        token: Some(token),
        transport: Some(Transport::Http),
        ..ConnectOpts::default()
    }
}

#[actix_web::test]
async fn a_post_finds_its_session_only_with_the_credential_that_opened_the_stream() {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect_with(&app, over_http(&ana.token)).await;
    let path = a.stream_path().expect("an event stream");
    let ping = json!({"type": "ping", "id": 7});
    // Bia, who knows the id, and a request with no credential at all reach nothing.
    let forged = app.post(&path, Some(&bia.token), ping.clone()).await;
    assert_eq!(forged.status.as_u16(), 404, "{}", forged.body);
    assert_eq!(forged.error_code(), "not_found");
    let anonymous = app.post(&path, None, ping.clone()).await;
    assert_eq!(anonymous.status.as_u16(), 401, "{}", anonymous.body);
    a.expect_no("pong").await;
    // Ana's own post is answered on her stream.
    let own = app.post(&path, Some(&ana.token), ping).await;
    assert_eq!(own.status.as_u16(), 204, "{}", own.body);
    assert_eq!(a.recv_reply(7).await["type"], "pong");
    // An unknown stream is a 404 too.
    let unknown = app
        .post(
            "/api/stream/st-nope",
            Some(&ana.token),
            json!({"type": "ping"}),
        )
        .await;
    assert_eq!(unknown.status.as_u16(), 404);
}

#[actix_web::test]
async fn a_batch_of_frames_in_one_post_is_answered_in_order_and_a_bad_one_alone_fails() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let mut a = connect_with(&app, over_http(&ana.token)).await;
    let path = a.stream_path().expect("an event stream");
    let batch = json!([
        {"type": "ping", "id": 1},
        {"type": "no.such.frame", "id": 2},
        {"type": "ping", "id": 3},
    ]);
    let res = app.post(&path, Some(&ana.token), batch).await;
    assert_eq!(res.status.as_u16(), 204, "{}", res.body);
    assert_eq!(a.recv().await["id"], 1);
    let bad = a.recv().await;
    assert_eq!(
        (bad["type"].as_str(), bad["id"].as_i64()),
        (Some("error"), Some(2))
    );
    assert_eq!(bad["code"], "bad_request");
    let third = a.recv().await;
    assert_eq!(
        (third["type"].as_str(), third["id"].as_i64()),
        (Some("pong"), Some(3))
    );
}

#[actix_web::test]
async fn chat_messages_on_the_event_stream_carry_their_msg_id_as_the_event_id() {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect_with(&app, over_http(&ana.token)).await;
    let mut b = connect_with(&app, over_http(&bia.token)).await;
    a.join("sala").await;
    b.join("sala").await;
    let ack = a
        .request(
            5,
            json!({"type": "chat.send", "room": "sala", "client_msg_id": "m1", "text": "olá"}),
        )
        .await;
    let msg_id = ack["msg_id"].as_i64().expect("acked");
    let delivered = b.recv_type("chat.message").await;
    assert_eq!(delivered["msg_id"], msg_id);
    assert_eq!(b.last_event_id(), Some(msg_id.to_string()));
}

#[actix_web::test]
async fn leaving_with_delete_ends_the_stream_with_a_normal_close() {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect_with(&app, over_http(&ana.token)).await;
    let mut b = connect_with(&app, over_http(&bia.token)).await;
    assert_eq!(a.presence_of(bia.id).await["status"], "online");
    let path = b.stream_path().expect("an event stream");
    let res = app.request("DELETE", &path, Some(&bia.token), None).await;
    assert_eq!(res.status.as_u16(), 204, "{}", res.body);
    assert_eq!(b.expect_close().await, 1000);
    b.expect_end().await;
    assert_eq!(a.presence_of(bia.id).await["status"], "offline");
    // The stream is gone: its id finds nothing any more.
    let late = app
        .post(&path, Some(&bia.token), json!({"type": "ping"}))
        .await;
    assert_eq!(late.status.as_u16(), 404);
}

#[actix_web::test]
async fn a_post_from_another_origin_with_the_session_cookie_is_refused() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let a = connect_with(&app, over_http(&ana.token)).await;
    let path = a.stream_path().expect("an event stream");
    let cookie = format!("tertulia_session={}", ana.token);
    let res = app
        .request_with(
            "POST",
            &path,
            &[("Cookie", &cookie), ("Origin", "http://evil.example")],
            Some(json!({"type": "ping"})),
        )
        .await;
    assert_eq!(res.status.as_u16(), 403, "{}", res.body);
}
