//! Rooms and WebRTC signaling: join, peers, leave, signals that reach only their addressee.

use serde_json::json;

use crate::{helpers::spawn_app, helpers::spawn_app_with, ws_client::connect};

#[actix_web::test]
async fn two_peers_exchange_offer_and_answer_with_server_set_from() {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    let joined = a.join("canal1").await;
    assert_eq!(joined["peers"], json!([]));
    assert_eq!(joined["kind"], "public");
    let joined = b.join("canal1").await;
    assert_eq!(joined["peers"][0]["peer_id"], a.session_id.as_str());
    assert_eq!(joined["peers"][0]["user"]["nickname"], "ana");
    assert_eq!(joined["peers"][0]["polite"], true);
    let peer = a.recv_type("room.peer_joined").await;
    assert_eq!(peer["peer"]["peer_id"], b.session_id.as_str());
    assert_eq!(peer["peer"]["polite"], false);

    let sdp = json!({"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"});
    a.send(json!({"type": "signal", "room": "canal1", "to": b.session_id, "kind": "offer", "data": sdp, "from": "s-forged"}))
        .await;
    let got = b.recv_type("signal").await;
    assert_eq!(
        got["from"],
        a.session_id.as_str(),
        "a forged from is ignored"
    );
    assert_eq!(got["kind"], "offer");
    assert_eq!(got["data"], sdp);
    b.send(json!({"type": "signal", "room": "canal1", "to": a.session_id, "kind": "answer", "data": {"sdp": "x"}}))
        .await;
    let got = a.recv_type("signal").await;
    assert_eq!(got["from"], b.session_id.as_str());
    assert_eq!(got["kind"], "answer");
}

#[actix_web::test]
async fn in_a_three_party_room_each_signal_reaches_only_its_addressee() {
    let app = spawn_app().await;
    let (ana, bia, caio) = (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    );
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    let mut c = connect(&app, &caio).await;
    a.join("sala").await;
    b.join("sala").await;
    let joined = c.join("sala").await;
    assert_eq!(joined["peers"].as_array().unwrap().len(), 2);
    for (i, to) in [b.session_id.clone(), c.session_id.clone()]
        .iter()
        .enumerate()
    {
        a.send(json!({"type": "signal", "room": "sala", "to": to, "kind": "candidate", "data": {"n": i}}))
            .await;
    }
    assert_eq!(b.recv_type("signal").await["data"]["n"], 0);
    assert_eq!(c.recv_type("signal").await["data"]["n"], 1);
    b.expect_no("signal").await;
    c.expect_no("signal").await;
    a.expect_no("signal").await;
}

#[actix_web::test]
async fn a_signal_outside_the_senders_rooms_is_refused_and_forwarded_to_no_one() {
    let app = spawn_app().await;
    let (ana, bia, caio) = (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    );
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    let mut c = connect(&app, &caio).await;
    a.join("sala").await;
    b.join("sala").await;
    c.join("outra").await;
    // A peer that is in another room.
    let err = a
        .request(5, json!({"type": "signal", "room": "sala", "to": c.session_id, "kind": "offer", "data": {}}))
        .await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["code"], "not_found");
    // A room the sender has not joined.
    let err = a
        .request(6, json!({"type": "signal", "room": "outra", "to": c.session_id, "kind": "offer", "data": {}}))
        .await;
    assert_eq!(err["code"], "forbidden");
    c.expect_no("signal").await;
    b.expect_no("signal").await;
}

#[actix_web::test]
async fn leaving_tells_the_others_and_the_last_one_out_stops_the_room() {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    a.join("canal1").await;
    b.join("canal1").await;
    let ack = b
        .request(3, json!({"type": "room.leave", "room": "canal1"}))
        .await;
    assert_eq!(ack["type"], "ack");
    let left = a.recv_type("room.peer_left").await;
    assert_eq!(left["peer_id"], b.session_id.as_str());
    assert_eq!(left["dropped"], false, "{left}");
    let err = b
        .request(4, json!({"type": "room.leave", "room": "canal1"}))
        .await;
    assert_eq!(err["code"], "forbidden");
    // A lost connection (no close frame) is a leave too, marked dropped.
    b.join("canal1").await;
    b.vanish();
    let left = a.recv_type("room.peer_left").await;
    assert_eq!(left["room"], "canal1");
    assert_eq!(left["dropped"], true, "{left}");
}

#[actix_web::test]
async fn a_full_room_refuses_one_more_member() {
    let app = spawn_app_with(|s| s.room_member_cap = 2).await;
    let users = [
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    ];
    let mut a = connect(&app, &users[0]).await;
    let mut b = connect(&app, &users[1]).await;
    let mut c = connect(&app, &users[2]).await;
    a.join("sala").await;
    b.join("sala").await;
    let err = c
        .request(1, json!({"type": "room.join", "room": "sala"}))
        .await;
    assert_eq!(err["code"], "conflict", "{err}");
}

#[actix_web::test]
async fn private_rooms_admit_only_their_members() {
    let app = spawn_app().await;
    let (ana, bia, caio) = (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    );
    let mut c = connect(&app, &caio).await;
    let dm = format!("dm:{}:{}", ana.id.min(bia.id), ana.id.max(bia.id));
    let err = c.request(1, json!({"type": "room.join", "room": dm})).await;
    assert_eq!(err["code"], "forbidden", "{err}");
    let err = c
        .request(2, json!({"type": "room.join", "room": "call:c-0000"}))
        .await;
    assert_eq!(err["code"], "forbidden", "{err}");
    let err = c
        .request(3, json!({"type": "room.join", "room": "no spaces"}))
        .await;
    assert_eq!(err["code"], "bad_request", "{err}");
    let mut a = connect(&app, &ana).await;
    let joined = a.join(&dm).await;
    assert_eq!(joined["kind"], "direct");
}

#[actix_web::test]
async fn one_connection_may_be_in_at_most_32_rooms() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let mut a = connect(&app, &ana).await;
    for i in 0..32 {
        a.join(&format!("sala-{i}")).await;
    }
    let err = a
        .request(1, json!({"type": "room.join", "room": "sala-32"}))
        .await;
    assert_eq!(err["code"], "conflict", "{err}");
    // Rejoining one it is already in is still fine.
    a.join("sala-0").await;
}
