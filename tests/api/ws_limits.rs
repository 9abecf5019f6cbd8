//! Limits and closing: bad frames, oversize frames, rate limits, slow consumers, revoked
//! sessions and shutdown.

use std::time::Duration;

use serde_json::json;
use tertulia::startup::Application;

use crate::{
    helpers::{spawn_app, spawn_app_with},
    ws_client::{connect, connect_with, ConnectOpts, Transport},
};

#[actix_web::test]
async fn a_malformed_or_unknown_frame_gets_bad_request_and_the_connection_stays() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let mut a = connect(&app, &ana).await;
    a.send_text("{not json").await;
    let err = a.recv_type("error").await;
    assert_eq!(err["code"], "bad_request");
    let err = a.request(1, json!({"type": "no.such.type"})).await;
    assert_eq!(err["code"], "bad_request");
    assert!(err["message"].as_str().unwrap().contains("unknown type"));
    let err = a
        .request(2, json!({"type": "signal", "room": "canal1"}))
        .await;
    assert_eq!(err["code"], "bad_request");
    let pong = a.request(3, json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
}

#[actix_web::test]
async fn a_frame_over_the_size_limit_closes_with_1009_and_ends_the_connection() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let mut a = connect(&app, &ana).await;
    let big = format!(
        "{{\"type\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(65 * 1024)
    );
    a.send_text(&big).await;
    assert_eq!(a.expect_close().await, 1009);
    a.expect_end().await;
}

#[actix_web::test]
async fn a_flood_is_rate_limited_while_another_clients_messages_still_flow() {
    let app = spawn_app_with(|s| {
        s.ws_rate_per_sec = 2;
        s.ws_rate_burst = 10;
    })
    .await;
    let (ana, bia, caio) = (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    );
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    let mut c = connect(&app, &caio).await;
    b.join("canal1").await;
    c.join("canal1").await;
    for _ in 0..15 {
        a.send(json!({"type": "ping"})).await;
    }
    let err = a.recv_type("error").await;
    assert_eq!(err["code"], "rate_limited");
    let ack = b
        .request(1, json!({"type": "chat.send", "room": "canal1", "client_msg_id": "m", "text": "ainda aqui"}))
        .await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(c.recv_type("chat.message").await["text"], "ainda aqui");
}

#[actix_web::test]
async fn sustained_abuse_after_rate_limited_errors_closes_with_1008() {
    let app = spawn_app_with(|s| {
        s.ws_rate_per_sec = 2;
        s.ws_rate_burst = 5;
    })
    .await;
    let ana = app.user("ana").await;
    let mut a = connect(&app, &ana).await;
    for _ in 0..40 {
        a.send(json!({"type": "ping"})).await;
    }
    assert_eq!(a.expect_close().await, 1008);
}

#[actix_web::test]
async fn a_reader_that_stalls_is_closed_with_1013_while_the_others_continue() {
    let app = spawn_app_with(|s| {
        s.ws_outbound_queue = 16;
        s.ws_rate_per_sec = 100_000;
        s.ws_rate_burst = 100_000;
    })
    .await;
    let (ana, bia, caio) = (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    );
    let mut a = connect(&app, &ana).await;
    let mut slow = connect_with(
        &app,
        ConnectOpts {
            token: Some(&bia.token),
            recv_buffer: Some(4096),
            // The TCP window under a WebSocket.
            transport: Some(Transport::WebSocket),
            ..Default::default()
        },
    )
    .await;
    let mut c = connect(&app, &caio).await;
    a.join("sala").await;
    slow.join("sala").await;
    c.join("sala").await;
    let pad = "y".repeat(32 * 1024);
    let slow_id = slow.session_id.clone();
    // The slow client never reads while this goes on; the sender stops once it is gone.
    let mut gone = None;
    for i in 0..2000 {
        a.send(json!({"type": "signal", "room": "sala", "to": slow_id, "kind": "candidate", "data": {"i": i, "pad": pad}}))
            .await;
        if i % 8 == 7 {
            gone = c
                .recv_type_within("room.peer_left", Duration::from_millis(20))
                .await;
            if gone.is_some() {
                break;
            }
        }
    }
    let left = match gone {
        Some(left) => left,
        None => c.recv_type("room.peer_left").await,
    };
    assert_eq!(left["peer_id"], slow_id.as_str());
    // Everyone else is unaffected.
    a.send(json!({"type": "signal", "room": "sala", "to": c.session_id, "kind": "offer", "data": {"ok": true}}))
        .await;
    assert_eq!(c.recv_type("signal").await["data"]["ok"], true);
    // When the slow client finally reads, it finds the 1013 close after what was in flight.
    assert_eq!(slow.expect_close().await, 1013);
}

#[actix_web::test]
async fn logging_out_closes_that_sessions_sockets_with_4001() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let mut a = connect(&app, &ana).await;
    let res = app.post("/api/logout", Some(&ana.token), json!({})).await;
    assert_eq!(res.status.as_u16(), 204, "{}", res.body);
    assert_eq!(a.expect_close().await, 4001);
}

#[actix_web::test]
async fn a_ban_or_a_kick_closes_the_users_sockets_with_4001_and_others_stay() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let bia = app.user("bia").await;
    let admin = app.admin("chefe").await;
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    let res = app
        .post(
            &format!("/api/admin/users/{}/ban", ana.id),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert!(res.status.is_success(), "{}", res.body);
    assert_eq!(a.expect_close().await, 4001);
    let pong = b.request(1, json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    // An admin kick does the same.
    let res = app
        .request(
            "DELETE",
            &format!("/api/admin/users/{}/sessions", bia.id),
            Some(&admin.token),
            None,
        )
        .await;
    assert!(res.status.is_success(), "{}", res.body);
    assert_eq!(b.expect_close().await, 4001);
}

#[actix_web::test]
async fn a_password_change_closes_the_other_sessions_but_not_this_one() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let login = app.login("ana", crate::helpers::PASSWORD).await;
    let other_token = login.body["token"].as_str().unwrap().to_owned();
    let mut this = connect(&app, &ana).await;
    let mut other = connect_with(
        &app,
        ConnectOpts {
            token: Some(&other_token),
            ..Default::default()
        },
    )
    .await;
    let res = app
        .request(
            "PATCH",
            "/api/me",
            Some(&ana.token),
            Some(json!({"current_password": crate::helpers::PASSWORD, "new_password": "another long secret"})),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.body);
    assert_eq!(other.expect_close().await, 4001);
    let pong = this.request(1, json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
}

#[actix_web::test]
async fn shutting_down_closes_every_socket_with_1001() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let bia = app.user("bia").await;
    // A second server on the same database, whose shutdown this test starts.
    let mut settings = app.settings.clone();
    settings.bind = "127.0.0.1:0".parse().unwrap();
    let server = Application::build(settings).await.expect("builds");
    let trigger = server.shutdown_trigger();
    let port = server.port();
    let running = actix_web::rt::spawn(server.run_until_stopped());
    let mut a = connect(&port, &ana).await;
    let mut b = connect(&port, &bia).await;
    a.join("canal1").await;
    b.join("canal1").await;
    trigger.trigger();
    // While it drains (its clients have not answered the close yet), a balancer's health
    // check sees 503 and a new connection is refused, so clients reconnect elsewhere.
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let status = awc::Client::default()
            .get(&readyz)
            .send()
            .await
            .map(|r| r.status());
        if matches!(status, Ok(s) if s.as_u16() == 503) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readyz 503 while draining: {status:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let late = crate::ws_client::try_connect(
        &port,
        crate::ws_client::ConnectOpts {
            token: Some(&ana.token),
            ..Default::default()
        },
    )
    .await;
    assert!(
        matches!(late, Err(503)),
        "a connection while draining is refused"
    );
    assert_eq!(a.expect_close().await, 1001);
    assert_eq!(b.expect_close().await, 1001);
    running.await.expect("joined").expect("clean exit");
}

#[actix_web::test]
async fn a_burst_larger_than_the_queue_reaches_a_client_that_keeps_reading() {
    // 300 frames against a queue of 8: well over the queue, under its hard bound (64 x 8).
    let app = spawn_app_with(|s| {
        s.ws_outbound_queue = 8;
        s.ws_rate_per_sec = 100_000;
        s.ws_rate_burst = 100_000;
    })
    .await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    a.join("sala").await;
    b.join("sala").await;
    for i in 0..300 {
        a.send(json!({"type": "signal", "room": "sala", "to": b.session_id, "kind": "candidate", "data": {"i": i}}))
            .await;
    }
    for i in 0..300 {
        assert_eq!(b.recv_type("signal").await["data"]["i"], i);
    }
}

#[actix_web::test]
async fn a_websocket_protocol_error_closes_with_1002_and_really_ends_the_tcp_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {}\r\n\r\n",
        app.port, ana.token
    );
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection ended during the handshake");
        seen.extend_from_slice(&chunk[..n]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 101"));
    // Clients must mask their frames; an unmasked one is a protocol error.
    tcp.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    let mut rest = Vec::new();
    let read_all = tokio::time::timeout(crate::ws_client::WAIT, tcp.read_to_end(&mut rest)).await;
    assert!(read_all.is_ok(), "the server kept the TCP connection open");
    seen.extend_from_slice(&rest);
    // Somewhere after the welcome frames: a close frame (0x88) carrying 1002.
    let close = seen
        .windows(4)
        .any(|w| w[0] == 0x88 && w[2..4] == 1002u16.to_be_bytes());
    assert!(close, "no 1002 close frame in {seen:?}");
}

/// A burst of clients arriving faster than the server accepts them is queued by the kernel,
/// not dropped: with std's backlog of 128, the 129th connection's SYN was dropped and its
/// client waited a second for the retry (seen as `ListenOverflows` in `nstat` during the
/// `connect` benchmark).
#[test]
fn the_listener_queues_a_burst_of_600_connections_that_nobody_has_accepted_yet() {
    let listener = tertulia::startup::bind_listener("127.0.0.1:0".parse().unwrap()).expect("bind");
    let addr = listener.local_addr().unwrap();
    // Nothing accepts: every connection that completes waits in the accept queue, and one
    // whose SYN is dropped is not retried within the timeout (the kernel's first retry
    // comes after a second).
    let queued: Vec<std::net::TcpStream> = (0..600)
        .map(|i| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(900))
                .unwrap_or_else(|e| panic!("connection {i} was not queued: {e}"))
        })
        .collect();
    assert_eq!(queued.len(), 600);
}
