//! Chat over WebSocket: stored before acknowledged, idempotent retries, history, typing.

use diesel::connection::SimpleConnection;
use serde_json::json;

use crate::{
    helpers::{spawn_app, spawn_app_with, TestApp, TestUser},
    ws_client::{connect, WsClient},
};

/// Ana and Bia, each connected and in `canal1`.
async fn ana_and_bia_in_canal1() -> (TestApp, [TestUser; 2], WsClient, WsClient) {
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    a.join("canal1").await;
    b.join("canal1").await;
    (app, [ana, bia], a, b)
}

/// Another writer: holds the database's write lock (an open `BEGIN IMMEDIATE`; on PostgreSQL
/// a lock on `messages` that stops every insert) until the test sends `ROLLBACK`.
fn hold_write_lock(app: &TestApp) -> tertulia::db::DbConn {
    let mut conn = tertulia::db::build_pool(&app.settings.database_url, 1)
        .unwrap()
        .get()
        .unwrap();
    if crate::helpers::on_postgres() {
        conn.batch_execute("BEGIN; LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE;")
            .unwrap();
    } else {
        conn.batch_execute("BEGIN IMMEDIATE;").unwrap();
    }
    conn
}

#[actix_web::test]
async fn a_message_is_acknowledged_with_its_id_and_delivered_to_the_room() {
    let (app, [_, bia], mut a, mut b) = ana_and_bia_in_canal1().await;
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
    let (app, [ana, _], mut a, mut b) = ana_and_bia_in_canal1().await;
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
    let (_app, _, mut a, mut b) = ana_and_bia_in_canal1().await;
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
async fn history_pages_longer_than_a_fragment_arrive_whole_and_in_order() {
    // A page of long messages is one frame of ~50 KB: the server sends it as a fragmented
    // message (7 KiB fragments, so that it never grows its write buffer), the client gets
    // it whole. Two-byte characters, so that fragments fall between a character's bytes
    // unless they are cut with care.
    let (_app, _, mut a, mut b) = ana_and_bia_in_canal1().await;
    let texts: Vec<String> = (0..12)
        .map(|i| format!("{i}:{}", "é ação ".repeat(500)))
        .collect();
    for (i, text) in texts.iter().enumerate() {
        let ack = a
            .request(
                i as i64,
                json!({"type": "chat.send", "room": "canal1", "client_msg_id": format!("m-{i}"), "text": text}),
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    let page = b
        .request(
            99,
            json!({"type": "chat.history", "room": "canal1", "limit": 12}),
        )
        .await;
    assert!(page.to_string().len() > 5 * 7 * 1024);
    let got: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(got, texts);
    // Each message also reached Bia live (one frame of ~4 KB each), in order, and the
    // connection goes on after the long frame.
    a.send(
        json!({"type": "chat.send", "room": "canal1", "client_msg_id": "next", "text": "curta"}),
    )
    .await;
    for want in texts.iter().map(String::as_str).chain(["curta"]) {
        assert_eq!(b.recv_type("chat.message").await["text"], want);
    }
}

/// The `msg_id`s of a page's (or a `room.joined`'s) `messages`.
fn msg_ids(page: &serde_json::Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages in {page}"))
        .iter()
        .map(|m| m["msg_id"].as_i64().expect("msg_id"))
        .collect()
}

/// How many messages are sent while a member is away: five times what one page holds.
const MISSED: usize = 1000;

/// Ana sends `MISSED` messages to `canal1` (joined) as fast as the server takes them, a
/// hundred in flight at a time; returns their `msg_id`s in the order sent.
async fn send_many(a: &mut WsClient) -> Vec<i64> {
    let mut ids = Vec::with_capacity(MISSED);
    for batch in 0..MISSED / 100 {
        let range = batch * 100..(batch + 1) * 100;
        for i in range.clone() {
            a.send(json!({"type": "chat.send", "id": i, "room": "canal1",
                          "client_msg_id": format!("gap-{i}"), "text": format!("perdida {i}")}))
                .await;
        }
        for i in range {
            let ack = a.recv_reply(i as i64).await;
            assert_eq!(ack["type"], "ack", "{ack}");
            ids.push(ack["msg_id"].as_i64().expect("msg_id"));
        }
    }
    ids
}

#[actix_web::test]
async fn a_member_away_for_a_thousand_messages_gets_them_all_by_paging_after_its_resume_join() {
    // 1,000 sends from one connection: well above the default frame rate limit.
    let app = spawn_app_with(|s| {
        s.ws_rate_per_sec = 100_000;
        s.ws_rate_burst = 100_000;
        s.ws_outbound_queue = 4096;
    })
    .await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    a.join("canal1").await;
    b.join("canal1").await;
    let seen = a
        .request(1_000_000, json!({"type": "chat.send", "room": "canal1", "client_msg_id": "antes", "text": "antes"}))
        .await["msg_id"]
        .as_i64()
        .unwrap();
    assert_eq!(b.recv_type("chat.message").await["msg_id"], seen);
    // Bia's connection drops; a thousand messages are sent meanwhile.
    b.vanish();
    let sent = send_many(&mut a).await;
    assert!(sent.windows(2).all(|w| w[0] < w[1]), "ids grow");

    // Back, she resumes: the first page of what she missed, and word that more remains.
    let mut b = connect(&app, &bia).await;
    let joined = b
        .request(
            1,
            json!({"type": "room.join", "room": "canal1", "since": seen}),
        )
        .await;
    assert_eq!(joined["type"], "room.joined", "{joined}");
    assert_eq!(msg_ids(&joined), sent[..200]);
    assert_eq!(joined["has_more"], true);

    // She pages forward with `after` until nothing remains: all of it, in order, once.
    let mut got = msg_ids(&joined);
    let mut pages = Vec::new();
    let mut has_more = true;
    while has_more {
        let after = *got.last().expect("a message");
        let page = b
            .request(
                2 + pages.len() as i64,
                json!({"type": "chat.history", "room": "canal1", "after": after, "limit": 200}),
            )
            .await;
        assert_eq!(page["type"], "chat.history", "{page}");
        assert!(pages.len() < 10, "paging does not end");
        has_more = page["has_more"] == true;
        got.extend(msg_ids(&page));
        pages.push(page);
    }
    assert_eq!(
        got, sent,
        "every missed message, in order, no gap, no duplicate"
    );
    assert_eq!(pages.len(), 4);
    assert_eq!(
        pages[3]["messages"][199]["text"],
        format!("perdida {}", MISSED - 1)
    );

    // The same pages over HTTP, message for message.
    for page in &pages {
        let after = page["messages"][0]["msg_id"].as_i64().unwrap() - 1;
        let http = app
            .get(
                &format!("/api/rooms/canal1/messages?after={after}&limit=200"),
                Some(&bia.token),
            )
            .await;
        assert_eq!(http.status.as_u16(), 200, "{}", http.body);
        assert_eq!(http.body["messages"], page["messages"]);
        assert_eq!(http.body["has_more"], page["has_more"]);
    }

    // Nothing missed: an empty page that says so. A first join does not speak of it.
    let last = *sent.last().unwrap();
    let mut b2 = connect(&app, &bia).await;
    let caught_up = b2
        .request(
            1,
            json!({"type": "room.join", "room": "canal1", "since": last}),
        )
        .await;
    assert_eq!(caught_up["messages"], json!([]));
    assert_eq!(caught_up["has_more"], false);
    let first = b2.join("canal1").await;
    assert!(first.get("has_more").is_none(), "{first}");
}

#[actix_web::test]
async fn a_history_page_runs_one_way_so_before_and_after_together_are_refused() {
    let (app, [ana, _], mut a, _b) = ana_and_bia_in_canal1().await;
    let err = a
        .request(
            1,
            json!({"type": "chat.history", "room": "canal1", "before": 10, "after": 1}),
        )
        .await;
    assert_eq!(err["type"], "error", "{err}");
    assert_eq!(err["code"], "bad_request");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("'before' and 'after'"),
        "{err}"
    );
    // The connection goes on.
    a.join("canal1").await;
    let res = app
        .get(
            "/api/rooms/canal1/messages?before=10&after=1",
            Some(&ana.token),
        )
        .await;
    assert_eq!(res.status.as_u16(), 400, "{}", res.body);
    assert_eq!(res.error_code(), "bad_request");
}

#[actix_web::test]
async fn the_history_route_documents_before_after_and_limit_as_optional_query_parameters() {
    let app = spawn_app().await;
    let doc = app.get("/api/openapi.json", None).await.body;
    let op = &doc["paths"]["/api/rooms/{room}/messages"]["get"];
    let params = op["parameters"].as_array().expect("parameters");
    for name in ["before", "after", "limit"] {
        let p = params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no '{name}' in {op}"));
        assert_eq!(p["in"], "query", "{p}");
        assert_ne!(p["required"], true, "{p}");
    }
    assert_eq!(
        op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/HistoryPage"
    );
    let page = &doc["components"]["schemas"]["HistoryPage"]["properties"];
    assert!(page["has_more"].is_object(), "{page}");
    assert!(doc["components"]["schemas"]["ChatView"]["properties"]["msg_id"].is_object());
}

#[actix_web::test]
async fn paging_after_a_msg_id_follows_the_rooms_access_rule() {
    let app = spawn_app().await;
    let (ana, bia, caio) = (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    );
    let dm = format!("dm:{}:{}", ana.id.min(bia.id), ana.id.max(bia.id));
    let mut c = connect(&app, &caio).await;
    let err = c
        .request(1, json!({"type": "chat.history", "room": dm, "after": 0}))
        .await;
    assert_eq!(err["code"], "forbidden", "{err}");
    let res = app
        .get(
            &format!("/api/rooms/{dm}/messages?after=0"),
            Some(&caio.token),
        )
        .await;
    assert_eq!(res.status.as_u16(), 403);
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

#[actix_web::test]
async fn the_same_client_msg_id_sent_again_before_its_ack_is_stored_and_delivered_once() {
    let (app, [ana, bia], mut a, mut b) = ana_and_bia_in_canal1().await;
    let mut a2 = connect(&app, &ana).await;
    a2.join("canal1").await;
    // Three copies in flight at once (a resend and a second tab): they may share one
    // group commit or race one.
    let frame = |id: i64| json!({"type": "chat.send", "id": id, "room": "canal1", "client_msg_id": "m-twice", "text": "só uma"});
    a.send(frame(1)).await;
    a.send(frame(2)).await;
    a2.send(frame(3)).await;
    let replies = [
        a.recv_reply(1).await,
        a.recv_reply(2).await,
        a2.recv_reply(3).await,
    ];
    for reply in &replies {
        assert_eq!(reply["type"], "ack", "{reply}");
        assert_eq!(reply["msg_id"], replies[0]["msg_id"]);
        assert_eq!(reply["created_at"], replies[0]["created_at"]);
    }
    assert_eq!(
        b.recv_type("chat.message").await["msg_id"],
        replies[0]["msg_id"]
    );
    b.expect_no("chat.message").await;
    let page = app
        .get("/api/rooms/canal1/messages", Some(&bia.token))
        .await;
    assert_eq!(page.body["messages"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn a_message_the_database_cannot_take_gets_an_error_not_an_ack_and_its_retry_is_stored_once()
{
    let (app, [ana, _], mut a, mut b) = ana_and_bia_in_canal1().await;
    // Another writer holds the database longer than the server's busy timeout.
    let mut locker = hold_write_lock(&app);
    let frame = json!({"type": "chat.send", "room": "canal1", "client_msg_id": "m-locked", "text": "espera"});
    let err = a.request(1, frame.clone()).await;
    assert_eq!(err["type"], "error", "{err}");
    locker.batch_execute("ROLLBACK;").unwrap();
    b.expect_no("chat.message").await;
    let page = app
        .get("/api/rooms/canal1/messages", Some(&ana.token))
        .await;
    assert_eq!(page.body["messages"], json!([]), "{}", page.body);
    // The client resends the same message: now it is stored, acknowledged and delivered once.
    let ack = a.request(2, frame).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(b.recv_type("chat.message").await["msg_id"], ack["msg_id"]);
    b.expect_no("chat.message").await;
}

#[actix_web::test]
async fn a_message_whose_room_empties_before_it_is_stored_is_still_acknowledged() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let mut a = connect(&app, &ana).await;
    a.join("canal1").await;
    // The commit waits for another writer while the last member leaves: the room has
    // stopped when the message is stored, and the ack must still come.
    let mut locker = hold_write_lock(&app);
    a.send(json!({"type": "chat.send", "id": 1, "room": "canal1", "client_msg_id": "m-last", "text": "tchau"}))
        .await;
    let left = a
        .request(2, json!({"type": "room.leave", "room": "canal1"}))
        .await;
    assert_eq!(left["type"], "ack", "{left}");
    locker.batch_execute("ROLLBACK;").unwrap();
    let ack = a.recv_reply(1).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let page = app
        .get("/api/rooms/canal1/messages", Some(&ana.token))
        .await;
    assert_eq!(page.body["messages"][0]["msg_id"], ack["msg_id"]);
}

/// A room and two users in a fresh database, for the group-commit queries.
async fn chat_db() -> (TestApp, tertulia::db::DbConn, i64, [i64; 2]) {
    use tertulia::db::{self, models::RoomKind};
    let app = spawn_app().await;
    let (ana, bia) = (app.user("ana").await, app.user("bia").await);
    let mut conn = db::build_pool(&app.settings.database_url, 1)
        .unwrap()
        .get()
        .unwrap();
    let room = db::rooms::get_or_create(&mut conn, "canal1", RoomKind::Public, None).unwrap();
    (app, conn, room.id, [ana.id, bia.id])
}

/// A message from `sender` to `room_id`.
fn new_message(room_id: i64, sender: i64, client_msg_id: &str) -> tertulia::db::models::NewMessage {
    tertulia::db::models::NewMessage {
        room_id,
        sender_id: sender,
        client_msg_id: client_msg_id.to_owned(),
        body: format!("corpo de {client_msg_id}"),
        created_at: tertulia::db::now_ms(),
    }
}

#[actix_web::test]
async fn a_group_commit_stores_two_copies_of_a_client_msg_id_once_and_answers_both_with_it() {
    use tertulia::db::messages;
    let (_app, mut conn, room, [ana, bia]) = chat_db().await;
    let mut again = new_message(room, ana, "m-1");
    again.body = "a second copy".into();
    let batch = [
        new_message(room, ana, "m-1"),
        new_message(room, bia, "m-1"),
        again,
    ];
    let rows = messages::insert_batch(&mut conn, &batch).unwrap();
    let flags: Vec<bool> = rows.iter().map(|(_, new)| *new).collect();
    assert_eq!(flags, [true, true, false]);
    assert_ne!(
        rows[0].0.id, rows[1].0.id,
        "another sender's m-1 is another message"
    );
    assert_eq!(rows[2].0.id, rows[0].0.id);
    assert_eq!(
        rows[2].0.body, "corpo de m-1",
        "the first copy is what was stored"
    );
    // A retry in a later commit (one racing the first) gets the same message back.
    let retry = messages::insert_batch(&mut conn, &[new_message(room, ana, "m-1")]).unwrap();
    assert_eq!((retry[0].0.id, retry[0].1), (rows[0].0.id, false));
    assert_eq!(messages::count(&mut conn).unwrap(), 2);
}

#[actix_web::test]
async fn a_failed_group_commit_stores_nothing_and_a_refused_message_fails_alone() {
    use tertulia::db::messages;
    let (_app, mut conn, room, [ana, bia]) = chat_db().await;
    // No such room: the foreign key refuses this row.
    let refused = new_message(room + 1000, bia, "m-x");
    let batch = [
        new_message(room, ana, "m-1"),
        refused,
        new_message(room, bia, "m-2"),
    ];
    assert!(messages::insert_batch(&mut conn, &batch).is_err());
    assert_eq!(
        messages::count(&mut conn).unwrap(),
        0,
        "nothing of a failed transaction is stored"
    );
    let results = messages::store_batch(&mut conn, &batch).unwrap();
    assert!(results[0].as_ref().is_ok_and(|(_, new)| *new));
    assert!(results[1].is_err());
    assert!(results[2].as_ref().is_ok_and(|(_, new)| *new));
    assert_eq!(messages::count(&mut conn).unwrap(), 2);
}

/// The value of one series in the `/metrics` text (0 when absent).
async fn metric(app: &TestApp, series: &str) -> u64 {
    let res = app.get("/metrics", None).await;
    res.body
        .as_str()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[actix_web::test]
async fn messages_sent_together_share_commits_and_metrics_count_both() {
    let (app, _, mut a, mut b) = ana_and_bia_in_canal1().await;
    // One at a time: each is written at once, in a transaction of its own.
    for i in 0..3 {
        let ack = a
            .request(
                i,
                json!({"type": "chat.send", "room": "canal1", "client_msg_id": format!("one-{i}"), "text": "x"}),
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    assert_eq!(metric(&app, "tertulia_chat_commits_total").await, 3);
    assert_eq!(
        metric(&app, "tertulia_chat_committed_messages_total").await,
        3
    );
    // A burst from two members without waiting: group commit.
    for i in 0..50 {
        for (c, who) in [(&mut a, "a"), (&mut b, "b")] {
            c.send(json!({"type": "chat.send", "id": 100 + i, "room": "canal1",
                          "client_msg_id": format!("{who}-{i}"), "text": "x"}))
                .await;
        }
    }
    for c in [&mut a, &mut b] {
        for i in 0..50 {
            assert_eq!(c.recv_reply(100 + i).await["type"], "ack");
        }
    }
    assert_eq!(
        metric(&app, "tertulia_chat_committed_messages_total").await,
        103
    );
    let commits = metric(&app, "tertulia_chat_commits_total").await - 3;
    assert!(
        (1..50).contains(&commits),
        "100 messages sent at once took {commits} transactions"
    );
}
