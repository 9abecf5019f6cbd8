//! The call lifecycle over WebSocket: invite, ring, accept/decline/cancel/hangup, ring
//! timeout, refusals, third-person invitations, the call log and missed-call notices.

use serde_json::{json, Value};

use crate::{
    helpers::{spawn_app, spawn_app_with, TestApp, TestUser},
    ws_client::{connect, WsClient},
};

async fn invite(from: &mut WsClient, id: i64, to: &TestUser, media: &str) -> Value {
    from.request(
        id,
        json!({"type": "call.invite", "to": to.id, "media": media}),
    )
    .await
}

async fn ringing_call(a: &mut WsClient, b: &mut WsClient, bia: &TestUser) -> String {
    let ringing = invite(a, 1, bia, "video").await;
    assert_eq!(ringing["type"], "call.ringing", "{ringing}");
    let incoming = b.recv_type("call.incoming").await;
    assert_eq!(incoming["call_id"], ringing["call_id"]);
    ringing["call_id"].as_str().unwrap().to_owned()
}

async fn log_of(app: &TestApp, user: &TestUser) -> Value {
    let res = app.get("/api/calls", Some(&user.token)).await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.body);
    res.body["calls"].clone()
}

#[actix_web::test]
async fn an_accepted_call_reaches_both_sides_and_stops_the_callees_other_devices() {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(&app, &ana).await;
    let mut b1 = connect(&app, &bia).await;
    let mut b2 = connect(&app, &bia).await;
    let ringing = invite(&mut a, 1, &bia, "video").await;
    assert_eq!(ringing["type"], "call.ringing", "{ringing}");
    assert_eq!(ringing["to"]["nickname"], "bia");
    let room = ringing["room"].as_str().unwrap().to_owned();
    assert!(room.starts_with("call:c-"), "{room}");
    let call_id = ringing["call_id"].as_str().unwrap().to_owned();
    for b in [&mut b1, &mut b2] {
        let incoming = b.recv_type("call.incoming").await;
        assert_eq!(incoming["call_id"], call_id.as_str());
        assert_eq!(incoming["from"]["nickname"], "ana");
        assert_eq!(incoming["media"], "video");
        assert_eq!(incoming["room"], room.as_str());
    }
    let accepted = b1
        .request(2, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    assert_eq!(accepted["type"], "call.accepted");
    assert_eq!(accepted["room"], room.as_str());
    assert_eq!(
        a.recv_type("call.accepted").await["call_id"],
        call_id.as_str()
    );
    assert_eq!(
        b2.recv_type("call.answered_elsewhere").await["call_id"],
        call_id.as_str()
    );
    // Both may enter the call room; they are in_call once together.
    a.join(&room).await;
    b1.join(&room).await;
    loop {
        let u = a.presence_of(bia.id).await;
        if u["status"] == "in_call" {
            break;
        }
    }
    // Hanging up ends the call for the other side.
    let ack = a
        .request(3, json!({"type": "call.hangup", "call_id": call_id}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let ended = b1.recv_type("call.ended").await;
    assert_eq!(ended["by"]["nickname"], "ana");
    let log = log_of(&app, &ana).await;
    assert_eq!(log[0]["call_id"], call_id.as_str());
    assert_eq!(log[0]["direction"], "outgoing");
    assert_eq!(log[0]["with"]["nickname"], "bia");
    for _ in 0..100 {
        if log_of(&app, &bia).await[0]["state"] == "ended" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("call log never said ended: {}", log_of(&app, &bia).await);
}

#[actix_web::test]
async fn a_declined_call_tells_the_caller_and_is_logged() {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    let call_id = ringing_call(&mut a, &mut b, &bia).await;
    let ack = b
        .request(2, json!({"type": "call.decline", "call_id": call_id}))
        .await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(
        a.recv_type("call.declined").await["call_id"],
        call_id.as_str()
    );
    // The caller cannot accept, and a declined call cannot be answered again.
    let err = b
        .request(3, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    assert_eq!(err["code"], "not_found");
}

#[actix_web::test]
async fn a_cancelled_call_stops_ringing_at_the_callee() {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    let call_id = ringing_call(&mut a, &mut b, &bia).await;
    let err = b
        .request(2, json!({"type": "call.cancel", "call_id": call_id}))
        .await;
    assert_eq!(err["code"], "forbidden", "only the caller cancels");
    let err = a
        .request(3, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    assert_eq!(err["code"], "forbidden", "only the callee accepts");
    let ack = a
        .request(4, json!({"type": "call.cancel", "call_id": call_id}))
        .await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(
        b.recv_type("call.cancelled").await["call_id"],
        call_id.as_str()
    );
}

#[actix_web::test]
async fn an_unanswered_call_is_missed_on_both_sides_after_the_ring_timeout() {
    let app = spawn_app_with(|s| s.ring_timeout_ms = 300).await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    let call_id = ringing_call(&mut a, &mut b, &bia).await;
    assert_eq!(
        a.recv_type("call.missed").await["call_id"],
        call_id.as_str()
    );
    assert_eq!(
        b.recv_type("call.missed").await["call_id"],
        call_id.as_str()
    );
    // Seen live: no calls.missed notice on the next connect.
    b.close().await;
    let mut b = connect(&app, &bia).await;
    b.expect_no("calls.missed").await;
}

/// Ana calls Bia, whose only device drops while it rings; the ring timeout (300 ms) passes.
/// Gives the app, both users, Ana's connection and the call's id.
async fn missed_while_offline() -> (TestApp, TestUser, TestUser, WsClient, String) {
    let app = spawn_app_with(|s| s.ring_timeout_ms = 300).await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    let call_id = ringing_call(&mut a, &mut b, &bia).await;
    b.vanish();
    assert_eq!(
        a.recv_type("call.missed").await["call_id"],
        call_id.as_str()
    );
    (app, ana, bia, a, call_id)
}

#[actix_web::test]
async fn a_call_missed_while_offline_is_announced_on_the_next_connection_only() {
    let (app, ana, bia, _a, call_id) = missed_while_offline().await;
    // Other users' connections are not told.
    let mut a2 = connect(&app, &ana).await;
    a2.expect_no("calls.missed").await;
    let mut b = connect(&app, &bia).await;
    let missed = b.recv_type("calls.missed").await;
    assert_eq!(missed["calls"][0]["call_id"], call_id.as_str());
    assert_eq!(missed["calls"][0]["from"]["nickname"], "ana");
    let mut b2 = connect(&app, &bia).await;
    b2.expect_no("calls.missed").await;
    b.expect_no("calls.missed").await;
}

#[actix_web::test]
async fn a_call_missed_while_offline_is_announced_once_even_after_a_restart() {
    let (app, _, bia, a, call_id) = missed_while_offline().await;
    a.close().await;
    let app = app.restart().await;
    let mut b = connect(&app, &bia).await;
    let missed = b.recv_type("calls.missed").await;
    assert_eq!(missed["calls"][0]["call_id"], call_id.as_str());
    assert_eq!(missed["calls"][0]["from"]["nickname"], "ana");
    assert_eq!(missed["calls"][0]["media"], "video");
    b.close().await;
    let mut b = connect(&app, &bia).await;
    b.expect_no("calls.missed").await;
}

#[actix_web::test]
async fn every_refusal_has_its_own_error_and_rings_nobody() {
    let app = spawn_app_with(|s| s.login_attempts = 100).await;
    let ana = app.user("ana").await;
    let bia = app.user("bia").await;
    let texto = app.user_with("texto", &["Jogos"], &["text"]).await;
    let offline = app.user("offline").await;
    let banned = app.user("banido").await;
    let admin = app.admin("chefe").await;
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    let mut t = connect(&app, &texto).await;

    let err = invite(&mut a, 1, &ana, "video").await;
    assert_eq!(err["code"], "bad_request", "yourself: {err}");
    let err = invite(&mut a, 2, &offline, "video").await;
    assert_eq!(err["code"], "unavailable", "offline: {err}");
    assert!(err["message"].as_str().unwrap().contains("offline"));
    let err = a
        .request(
            3,
            json!({"type": "call.invite", "to": 999_999, "media": "video"}),
        )
        .await;
    assert_eq!(err["code"], "not_found", "unknown: {err}");
    let res = app
        .post(
            &format!("/api/admin/users/{}/ban", banned.id),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert!(res.status.is_success(), "ban: {}", res.body);
    let err = invite(&mut a, 4, &banned, "video").await;
    assert_eq!(err["code"], "not_found", "banned: {err}");
    let err = invite(&mut a, 5, &texto, "video").await;
    assert_eq!(err["code"], "forbidden", "chat-only: {err}");
    let err = invite(&mut t, 6, &ana, "audio").await;
    assert_eq!(err["code"], "forbidden", "caller lacks it: {err}");
    b.request(7, json!({"type": "presence.set", "status": "busy"}))
        .await;
    let err = invite(&mut a, 8, &bia, "video").await;
    assert_eq!(err["code"], "conflict", "busy: {err}");
    b.request(9, json!({"type": "presence.set", "status": "away"}))
        .await;
    let err = invite(&mut a, 10, &bia, "video").await;
    assert_eq!(err["code"], "conflict", "away: {err}");
    b.expect_no("call.incoming").await;
    t.expect_no("call.incoming").await;
    // Revision 1.3: there are no chat invitations; one writes in the conversation instead.
    let err = invite(&mut a, 11, &texto, "chat").await;
    assert_eq!(err["code"], "bad_request", "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("conversations"),
        "{err}"
    );
    t.expect_no("call.incoming").await;
    // A direct room is for two: nobody is brought into a call in one.
    let lo = ana.id.min(texto.id);
    let hi = ana.id.max(texto.id);
    let err = a
        .request(12, json!({"type": "call.invite", "to": bia.id, "media": "video", "room": format!("dm:{lo}:{hi}")}))
        .await;
    assert_eq!(err["code"], "bad_request", "{err}");
}

#[actix_web::test]
async fn someone_already_in_a_call_cannot_be_called() {
    let app = spawn_app().await;
    let (ana, bia, caio) = (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    );
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    let mut c = connect(&app, &caio).await;
    let call_id = ringing_call(&mut a, &mut b, &bia).await;
    let accepted = b
        .request(2, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    let room = accepted["room"].as_str().unwrap().to_owned();
    a.join(&room).await;
    b.join(&room).await;
    loop {
        if c.presence_of(bia.id).await["status"] == "in_call" {
            break;
        }
    }
    let err = invite(&mut c, 3, &bia, "audio").await;
    assert_eq!(err["code"], "conflict", "{err}");
    assert!(err["message"].as_str().unwrap().contains("in a call"));
}

#[actix_web::test]
async fn a_third_person_can_be_invited_into_a_running_call_up_to_the_cap() {
    let app = spawn_app_with(|s| s.room_member_cap = 3).await;
    let (ana, bia, caio, dora) = (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
        app.user("dora").await,
    );
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    let mut c = connect(&app, &caio).await;
    let mut d = connect(&app, &dora).await;
    let call_id = ringing_call(&mut a, &mut b, &bia).await;
    let accepted = b
        .request(2, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    let room = accepted["room"].as_str().unwrap().to_owned();
    a.join(&room).await;
    b.join(&room).await;
    // dora cannot bring herself into a call she is not in.
    let err = d
        .request(
            3,
            json!({"type": "call.invite", "to": caio.id, "media": "video", "room": room}),
        )
        .await;
    assert_eq!(err["code"], "forbidden", "{err}");
    let ringing = b
        .request(
            4,
            json!({"type": "call.invite", "to": caio.id, "media": "video", "room": room}),
        )
        .await;
    assert_eq!(ringing["type"], "call.ringing", "{ringing}");
    assert_eq!(ringing["room"], room.as_str());
    let incoming = c.recv_type("call.incoming").await;
    assert_eq!(incoming["room"], room.as_str());
    // The cap counts the two in the call and the one ringing.
    let err = a
        .request(
            5,
            json!({"type": "call.invite", "to": dora.id, "media": "video", "room": room}),
        )
        .await;
    assert_eq!(err["code"], "conflict", "{err}");
    let accepted = c
        .request(
            6,
            json!({"type": "call.accept", "call_id": incoming["call_id"]}),
        )
        .await;
    assert_eq!(accepted["room"], room.as_str());
    let joined = c.join(&room).await;
    assert_eq!(joined["peers"].as_array().unwrap().len(), 2);
    // One leaving a three-person call does not end it for the other two.
    a.request(7, json!({"type": "call.hangup", "call_id": call_id}))
        .await;
    b.expect_no("call.ended").await;
}

#[actix_web::test]
async fn a_stranger_cannot_enter_a_call_room() {
    let app = spawn_app().await;
    let (ana, bia, caio) = (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    );
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    let mut c = connect(&app, &caio).await;
    let ringing = invite(&mut a, 1, &bia, "audio").await;
    let room = ringing["room"].as_str().unwrap().to_owned();
    b.recv_type("call.incoming").await;
    let err = c
        .request(2, json!({"type": "room.join", "room": room}))
        .await;
    assert_eq!(err["code"], "forbidden", "{err}");
    let log = log_of(&app, &caio).await;
    assert_eq!(log, json!([]));
}

/// ana and bia connected, ana's video call ringing at bia: answers them and the call id.
async fn ringing_pair(app: &TestApp) -> (TestUser, TestUser, WsClient, WsClient, String) {
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(app, &ana).await;
    let mut b = connect(app, &bia).await;
    let call_id = ringing_call(&mut a, &mut b, &bia).await;
    (ana, bia, a, b, call_id)
}

/// ana and bia in a running video call (both in its room), caio watching the lobby; answers
/// the call id and room.
async fn running_call(
    app: &TestApp,
    ana: &TestUser,
    bia: &TestUser,
) -> (WsClient, WsClient, String, String) {
    let mut a = connect(app, ana).await;
    let mut b = connect(app, bia).await;
    let call_id = ringing_call(&mut a, &mut b, bia).await;
    let accepted = b
        .request(2, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    assert_eq!(accepted["type"], "call.accepted", "{accepted}");
    let room = accepted["room"].as_str().unwrap().to_owned();
    a.recv_type("call.accepted").await;
    a.join(&room).await;
    b.join(&room).await;
    (a, b, call_id, room)
}

/// Polls the call log of `user` until its newest entry has `state`.
async fn wait_for_log_state(app: &TestApp, user: &TestUser, state: &str) -> Value {
    for _ in 0..100 {
        let log = log_of(app, user).await;
        if log[0]["state"] == state {
            return log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("call log never said {state}: {}", log_of(app, user).await);
}

#[actix_web::test]
async fn a_call_survives_a_participant_whose_connection_drops_and_comes_back_within_the_grace() {
    let app = spawn_app_with(|s| s.call_reconnect_grace_ms = 60_000).await;
    let (ana, bia, caio) = (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    );
    let mut c = connect(&app, &caio).await;
    let (a, mut b, call_id, room) = running_call(&app, &ana, &bia).await;
    while c.presence_of(ana.id).await["status"] != "in_call" {}

    // ana's network fails: the server notices (caio sees her offline), bia sees her peer go.
    a.vanish();
    while c.presence_of(ana.id).await["status"] != "offline" {}
    let left = b.recv_type("room.peer_left").await;
    assert_eq!(left["dropped"], true, "{left}");
    // bia is still in a call meanwhile: nobody else can ring her.
    let err = invite(&mut c, 3, &bia, "audio").await;
    assert_eq!(err["code"], "conflict", "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("in a call"),
        "{err}"
    );

    // ana is back: in her call for the lobby at once, and she may enter its room again.
    let mut a = connect(&app, &ana).await;
    assert_eq!(c.presence_of(ana.id).await["status"], "in_call");
    let joined = a.join(&room).await;
    assert_eq!(joined["peers"][0]["user"]["id"], bia.id, "{joined}");
    let peer = b.recv_type("room.peer_joined").await;
    assert_eq!(peer["peer"]["user"]["id"], ana.id, "{peer}");
    assert_eq!(peer["peer"]["peer_id"], a.session_id.as_str());
    // The call never ended for bia.
    b.expect_no("call.ended").await;

    // A later hang-up ends it once, and the log holds that one call.
    let ack = b
        .request(4, json!({"type": "call.hangup", "call_id": call_id}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let ended = a.recv_type("call.ended").await;
    assert_eq!(ended["by"]["id"], bia.id);
    assert_eq!(ended["dropped"], false, "{ended}");
    let log = wait_for_log_state(&app, &ana, "ended").await;
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
    assert_eq!(log[0]["call_id"], call_id.as_str());
}

#[actix_web::test]
async fn a_participant_who_does_not_come_back_within_the_grace_ends_the_call_and_cannot_rejoin() {
    let app = spawn_app_with(|s| s.call_reconnect_grace_ms = 200).await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let (a, mut b, call_id, room) = running_call(&app, &ana, &bia).await;

    a.vanish();
    let ended = b.recv_type("call.ended").await;
    assert_eq!(ended["call_id"], call_id.as_str());
    assert_eq!(ended["by"]["id"], ana.id);
    assert_eq!(ended["dropped"], true, "{ended}");
    wait_for_log_state(&app, &bia, "ended").await;

    // Too late: the call is over, its room is closed to her.
    let mut a = connect(&app, &ana).await;
    let err = a
        .request(5, json!({"type": "room.join", "room": room}))
        .await;
    assert_eq!(err["code"], "forbidden", "{err}");
}

#[actix_web::test]
async fn an_invitation_crossing_the_other_sides_ringing_one_accepts_it() {
    let app = spawn_app().await;
    let (ana, _, mut a, mut b, call_id) = ringing_pair(&app).await;

    // bia calls ana back while ana's call still rings: that is her answer.
    let reply = invite(&mut b, 7, &ana, "video").await;
    assert_eq!(reply["type"], "call.accepted", "{reply}");
    assert_eq!(reply["call_id"], call_id.as_str());
    let accepted = a.recv_type("call.accepted").await;
    assert_eq!(accepted["call_id"], call_id.as_str());
    a.expect_no("call.incoming").await;
    // One call, in the log once, and both may enter its room.
    let room = reply["room"].as_str().unwrap().to_owned();
    a.join(&room).await;
    b.join(&room).await;
    let log = wait_for_log_state(&app, &ana, "accepted").await;
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
}

#[actix_web::test]
async fn invitations_sent_at_the_same_moment_make_one_call() {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    a.send(json!({"type": "call.invite", "id": 1, "to": bia.id, "media": "audio"}))
        .await;
    b.send(json!({"type": "call.invite", "id": 1, "to": ana.id, "media": "audio"}))
        .await;
    let (ra, rb) = (a.recv_reply(1).await, b.recv_reply(1).await);
    // The first invitation rings; the crossing one answers it.
    let (ringing, first, other, answer) = if ra["type"] == "call.ringing" {
        (ra, &mut a, &mut b, rb)
    } else {
        (rb, &mut b, &mut a, ra)
    };
    assert_eq!(ringing["type"], "call.ringing", "{ringing}");
    assert_eq!(answer["type"], "call.accepted", "{answer}");
    assert_eq!(answer["call_id"], ringing["call_id"]);
    assert_eq!(
        first.recv_type("call.accepted").await["call_id"],
        ringing["call_id"]
    );
    other.expect_no("call.ringing").await;
    let log = wait_for_log_state(&app, &ana, "accepted").await;
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
}

#[actix_web::test]
async fn a_crossing_invitation_with_other_media_is_refused_and_the_first_rings_on() {
    let app = spawn_app().await;
    let (ana, _, mut a, mut b, call_id) = ringing_pair(&app).await;
    let err = invite(&mut b, 7, &ana, "audio").await;
    assert_eq!(err["code"], "conflict", "{err}");
    assert!(err["message"].as_str().unwrap().contains("video"), "{err}");
    a.expect_no("call.incoming").await;
    // ana's call is still there to answer.
    let accepted = b
        .request(8, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    assert_eq!(accepted["type"], "call.accepted", "{accepted}");
}

#[actix_web::test]
async fn a_ringing_invitation_rings_again_on_a_connection_opened_while_it_rings() {
    let app = spawn_app().await;
    let (ana, bia, mut a, b, call_id) = ringing_pair(&app).await;
    // bia's connection drops and comes back: she can still answer.
    b.vanish();
    let mut b = connect(&app, &bia).await;
    let incoming = b.recv_type("call.incoming").await;
    assert_eq!(incoming["call_id"], call_id.as_str());
    assert_eq!(incoming["from"]["id"], ana.id);
    let accepted = b
        .request(2, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    assert_eq!(accepted["type"], "call.accepted", "{accepted}");
    assert_eq!(
        a.recv_type("call.accepted").await["call_id"],
        call_id.as_str()
    );
}

#[actix_web::test]
async fn a_callers_ringing_invitation_is_cancelled_when_their_connection_drops() {
    let app = spawn_app().await;
    let (_, bia, a, mut b, call_id) = ringing_pair(&app).await;
    a.vanish();
    assert_eq!(
        b.recv_type("call.cancelled").await["call_id"],
        call_id.as_str()
    );
    wait_for_log_state(&app, &bia, "cancelled").await;
}

#[actix_web::test]
async fn closing_the_connection_on_purpose_leaves_the_call_at_once() {
    let app = spawn_app_with(|s| s.call_reconnect_grace_ms = 60_000).await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let (a, mut b, call_id, _) = running_call(&app, &ana, &bia).await;
    // A close frame (a closed tab says 1001, a logout 1000) is not a network blip.
    a.close_and_wait().await;
    let left = b.recv_type("room.peer_left").await;
    assert_eq!(left["dropped"], false, "{left}");
    let ended = b.recv_type("call.ended").await;
    assert_eq!(ended["call_id"], call_id.as_str());
    assert_eq!(ended["dropped"], false, "{ended}");
}

#[actix_web::test]
async fn reconnecting_without_rejoining_the_call_leaves_it_when_the_grace_ends() {
    let app = spawn_app_with(|s| s.call_reconnect_grace_ms = 2_000).await;
    let (ana, bia, caio) = (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    );
    let mut c = connect(&app, &caio).await;
    let (a, mut b, call_id, _) = running_call(&app, &ana, &bia).await;
    a.vanish();
    while c.presence_of(ana.id).await["status"] != "offline" {}
    // Back online (a reopened page that knows nothing of the call), but not in its room.
    let _a = connect(&app, &ana).await;
    let ended = b.recv_type("call.ended").await;
    assert_eq!(ended["call_id"], call_id.as_str());
    assert_eq!(ended["dropped"], true, "{ended}");
    // Out of the call, she is online again for everyone.
    while c.presence_of(ana.id).await["status"] != "online" {}
}

/// ana and bia in a running video call, caio brought into it by bia and in its room too;
/// answers the three connections, the call id ana and bia know and caio's, and the room.
async fn three_way_call(
    app: &TestApp,
    ana: &TestUser,
    bia: &TestUser,
    caio: &TestUser,
) -> (WsClient, WsClient, WsClient, String, String, String) {
    let mut c = connect(app, caio).await;
    let (mut a, mut b, call_id, room) = running_call(app, ana, bia).await;
    let ringing = b
        .request(
            3,
            json!({"type": "call.invite", "to": caio.id, "media": "video", "room": room}),
        )
        .await;
    assert_eq!(ringing["type"], "call.ringing", "{ringing}");
    let incoming = c.recv_type("call.incoming").await;
    let caio_call = incoming["call_id"].as_str().unwrap().to_owned();
    let accepted = c
        .request(4, json!({"type": "call.accept", "call_id": caio_call}))
        .await;
    assert_eq!(accepted["type"], "call.accepted", "{accepted}");
    b.recv_type("call.accepted").await;
    let joined = c.join(&room).await;
    assert_eq!(joined["peers"].as_array().unwrap().len(), 2, "{joined}");
    a.recv_type("room.peer_joined").await;
    b.recv_type("room.peer_joined").await;
    (a, b, c, call_id, caio_call, room)
}

/// The `call.left` that `who` gets: about `user`, with a call id `who` knows.
async fn call_left(who: &mut WsClient, known: &[&str], user: &TestUser) -> Value {
    let left = who.recv_type("call.left").await;
    assert!(known.contains(&left["call_id"].as_str().unwrap()), "{left}");
    assert_eq!(left["user"]["id"], user.id, "{left}");
    assert_eq!(left["user"]["nickname"], user.nickname.as_str(), "{left}");
    left
}

#[actix_web::test]
async fn the_others_hear_when_a_dropped_participant_does_not_come_back_and_the_call_goes_on() {
    let app = spawn_app_with(|s| s.call_reconnect_grace_ms = 200).await;
    let (ana, bia, caio) = (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    );
    let (mut a, mut b, c, call_id, caio_call, room) = three_way_call(&app, &ana, &bia, &caio).await;

    c.vanish();
    // ana knows the call bia's invitation made; bia knows both invitations.
    let left = call_left(&mut a, &[&call_id], &caio).await;
    assert_eq!(left["dropped"], true, "{left}");
    let left = call_left(&mut b, &[&call_id, &caio_call], &caio).await;
    assert_eq!(left["dropped"], true, "{left}");

    // The call goes on for the two of them.
    a.expect_no("call.ended").await;
    b.expect_no("call.ended").await;
    a.send(json!({"type": "signal", "room": room, "to": b.session_id, "kind": "offer", "data": {"sdp": "after"}}))
        .await;
    assert_eq!(b.recv_type("signal").await["data"]["sdp"], "after");
}

#[actix_web::test]
async fn the_others_hear_when_someone_hangs_up_a_call_of_three() {
    let app = spawn_app().await;
    let (ana, bia, caio) = (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    );
    let (mut a, mut b, mut c, call_id, caio_call, _) =
        three_way_call(&app, &ana, &bia, &caio).await;

    let ack = c
        .request(5, json!({"type": "call.hangup", "call_id": caio_call}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let left = call_left(&mut a, &[&call_id], &caio).await;
    assert_eq!(left["dropped"], false, "{left}");
    let left = call_left(&mut b, &[&call_id, &caio_call], &caio).await;
    assert_eq!(left["dropped"], false, "{left}");
    // The one who hung up is told nothing more; the others are still in the call.
    c.expect_no("call.left").await;
    a.expect_no("call.ended").await;
}
