//! Conversations (protocol revision 1.3): writing to someone reaches them at once, without
//! an invitation; a list of one's direct and group conversations with unread counts; read
//! positions stored and synced across one's sessions; chat never changes presence.

use serde_json::{json, Value};

use crate::{
    helpers::{spawn_app, spawn_app_with, TestApp, TestUser},
    ws_client::{connect, WsClient},
};

fn dm(a: &TestUser, b: &TestUser) -> String {
    format!("dm:{}:{}", a.id.min(b.id), a.id.max(b.id))
}

/// Sends `text` into `room` (joined) and returns its `msg_id`.
async fn say(client: &mut WsClient, id: i64, room: &str, text: &str) -> i64 {
    let ack = client
        .request(
            id,
            json!({"type": "chat.send", "room": room, "client_msg_id": format!("m-{id}"), "text": text}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ack["msg_id"].as_i64().unwrap()
}

/// The user's conversations, as `conversations.list` answers.
async fn list(client: &mut WsClient, id: i64) -> Vec<Value> {
    let reply = client
        .request(id, json!({"type": "conversations.list"}))
        .await;
    assert_eq!(reply["type"], "conversations.list", "{reply}");
    reply["conversations"].as_array().unwrap().clone()
}

async fn three(app: &TestApp) -> (TestUser, TestUser, TestUser) {
    (
        app.user("ana").await,
        app.user("bia").await,
        app.user("caio").await,
    )
}

#[actix_web::test]
async fn a_direct_message_reaches_every_session_of_the_other_person_without_an_invitation() {
    let app = spawn_app().await;
    let (ana, bia, _) = three(&app).await;
    let mut a = connect(&app, &ana).await;
    let mut b1 = connect(&app, &bia).await;
    let mut b2 = connect(&app, &bia).await;
    let room = dm(&ana, &bia);
    a.join(&room).await;
    let msg_id = say(&mut a, 1, &room, "oi, bia").await;
    // Neither of Bia's tabs joined the room, nor accepted anything: both get the message.
    for b in [&mut b1, &mut b2] {
        let got = b.recv_type("chat.message").await;
        assert_eq!(got["room"], room);
        assert_eq!(got["msg_id"], msg_id);
        assert_eq!(got["text"], "oi, bia");
        assert_eq!(got["from"]["nickname"], "ana");
        b.expect_no("call.incoming").await;
    }
    // The sender gets it once, as in any room.
    assert_eq!(a.recv_type("chat.message").await["msg_id"], msg_id);
    a.expect_no("chat.message").await;
    // Bia answers in the same conversation after joining it.
    b1.join(&room).await;
    let reply = say(&mut b1, 2, &room, "oi!").await;
    assert_eq!(a.recv_type("chat.message").await["msg_id"], reply);
}

#[actix_web::test]
async fn the_conversation_list_has_the_last_message_and_unread_counts_newest_first() {
    let app = spawn_app().await;
    let (ana, bia, caio) = three(&app).await;
    let mut a = connect(&app, &ana).await;
    let mut c = connect(&app, &caio).await;
    let with_ana = dm(&ana, &bia);
    let with_caio = dm(&caio, &bia);
    a.join(&with_ana).await;
    say(&mut a, 1, &with_ana, "um").await;
    say(&mut a, 2, &with_ana, "dois").await;
    c.join(&with_caio).await;
    say(&mut c, 3, &with_caio, "olá").await;
    // Bia was offline: her list on connecting holds both, the newest first.
    let mut b = connect(&app, &bia).await;
    let convs = list(&mut b, 4).await;
    assert_eq!(convs.len(), 2, "{convs:?}");
    assert_eq!(convs[0]["room"], with_caio);
    assert_eq!(convs[0]["kind"], "direct");
    assert_eq!(convs[0]["unread"], 1);
    assert_eq!(convs[0]["last_message"]["text"], "olá");
    assert_eq!(convs[1]["room"], with_ana);
    assert_eq!(convs[1]["unread"], 2);
    assert_eq!(convs[1]["last_message"]["text"], "dois");
    assert_eq!(convs[1]["last_message"]["from"]["nickname"], "ana");
    let names: Vec<&str> = convs[1]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["nickname"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"ana") && names.contains(&"bia"),
        "{names:?}"
    );
    // One's own messages are never unread.
    let mine = list(&mut a, 5).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["unread"], 0);
    // Someone without conversations has an empty list.
    let app_user = app.user("dora").await;
    let mut d = connect(&app, &app_user).await;
    assert!(list(&mut d, 6).await.is_empty());
}

#[actix_web::test]
async fn reading_a_conversation_is_stored_and_synced_to_the_readers_other_sessions() {
    let app = spawn_app().await;
    let (ana, bia, _) = three(&app).await;
    let mut a = connect(&app, &ana).await;
    let mut b1 = connect(&app, &bia).await;
    let mut b2 = connect(&app, &bia).await;
    let room = dm(&ana, &bia);
    a.join(&room).await;
    let first = say(&mut a, 1, &room, "um").await;
    let last = say(&mut a, 2, &room, "dois").await;
    b2.recv_type("chat.message").await;
    b2.recv_type("chat.message").await;
    // Bia reads the first message on one tab: the other tab is told, with what is left.
    let read = b1
        .request(
            3,
            json!({"type": "conversation.read", "room": room, "msg_id": first}),
        )
        .await;
    assert_eq!(read["type"], "conversation.read", "{read}");
    assert_eq!(read["msg_id"], first);
    assert_eq!(read["unread"], 1);
    let synced = b2.recv_type("conversation.read").await;
    assert_eq!(synced["room"], room);
    assert_eq!(synced["msg_id"], first);
    assert_eq!(synced["unread"], 1);
    // A position never moves back, nor past the newest message.
    let back = b1
        .request(
            4,
            json!({"type": "conversation.read", "room": room, "msg_id": 0}),
        )
        .await;
    assert_eq!(back["msg_id"], first);
    let ahead = b1
        .request(
            5,
            json!({"type": "conversation.read", "room": room, "msg_id": last + 1000}),
        )
        .await;
    assert_eq!(ahead["msg_id"], last);
    assert_eq!(ahead["unread"], 0);
    // Stored: a new device (or a reload) sees it read.
    b1.close_and_wait().await;
    b2.close_and_wait().await;
    let mut b3 = connect(&app, &bia).await;
    let convs = list(&mut b3, 6).await;
    assert_eq!(convs[0]["last_read"], last);
    assert_eq!(convs[0]["unread"], 0);
}

#[actix_web::test]
async fn writing_to_someone_never_changes_anyones_presence_and_a_call_can_follow() {
    let app = spawn_app().await;
    let (ana, bia, caio) = three(&app).await;
    // Caio watches the lobby: he sees Ana and Bia arrive, and then nothing more.
    let mut c = connect(&app, &caio).await;
    let mut a = connect(&app, &ana).await;
    while c.presence_of(ana.id).await["status"] != "online" {}
    let mut b = connect(&app, &bia).await;
    while c.presence_of(bia.id).await["status"] != "online" {}
    let room = dm(&ana, &bia);
    a.join(&room).await;
    b.join(&room).await;
    say(&mut a, 1, &room, "vamos conversar").await;
    say(&mut b, 2, &room, "claro").await;
    c.expect_no_presence_of(ana.id).await;
    c.expect_no_presence_of(bia.id).await;
    // From the conversation to a video call: Bia is not "in a call", she rings.
    let ringing = a
        .request(
            3,
            json!({"type": "call.invite", "to": bia.id, "media": "video"}),
        )
        .await;
    assert_eq!(ringing["type"], "call.ringing", "{ringing}");
    assert!(ringing["room"].as_str().unwrap().starts_with("call:"));
    b.recv_type("call.incoming").await;
}

#[actix_web::test]
async fn no_one_reads_or_joins_a_conversation_that_is_not_theirs() {
    let app = spawn_app().await;
    let (ana, bia, caio) = three(&app).await;
    let mut a = connect(&app, &ana).await;
    let mut c = connect(&app, &caio).await;
    let room = dm(&ana, &bia);
    a.join(&room).await;
    let msg_id = say(&mut a, 1, &room, "só para a bia").await;
    c.expect_no("chat.message").await;
    for (id, frame) in [
        (2, json!({"type": "room.join", "room": room})),
        (3, json!({"type": "chat.history", "room": room})),
        (
            4,
            json!({"type": "conversation.read", "room": room, "msg_id": msg_id}),
        ),
        (
            5,
            json!({"type": "conversation.invite", "room": room, "user": caio.id}),
        ),
    ] {
        let err = c.request(id, frame).await;
        assert_eq!(err["type"], "error", "{err}");
        assert_eq!(err["code"], "forbidden", "{err}");
    }
    let page = app
        .get(&format!("/api/rooms/{room}/messages"), Some(&caio.token))
        .await;
    assert_eq!(page.status.as_u16(), 403, "{}", page.body);
    // A group Caio is not in is as closed, and a public channel is no conversation.
    let group = a
        .request(
            6,
            json!({"type": "conversation.invite", "room": room, "user": app.user("dora").await.id}),
        )
        .await;
    let group = group["room"].as_str().unwrap().to_owned();
    for (id, frame) in [
        (7, json!({"type": "room.join", "room": group})),
        (
            8,
            json!({"type": "conversation.read", "room": group, "msg_id": 1}),
        ),
    ] {
        assert_eq!(c.request(id, frame).await["code"], "forbidden");
    }
    let err = c
        .request(
            9,
            json!({"type": "conversation.read", "room": "canal1", "msg_id": 1}),
        )
        .await;
    assert_eq!(err["code"], "bad_request", "{err}");
    assert!(list(&mut c, 10).await.is_empty());
}

#[actix_web::test]
async fn a_third_person_invited_into_a_conversation_makes_a_group_up_to_the_room_cap() {
    let app = spawn_app_with(|s| s.room_member_cap = 3).await;
    let (ana, bia, caio) = three(&app).await;
    let dora = app.user("dora").await;
    let mut a = connect(&app, &ana).await;
    let mut b = connect(&app, &bia).await;
    let mut c = connect(&app, &caio).await;
    let direct = dm(&ana, &bia);
    a.join(&direct).await;
    say(&mut a, 1, &direct, "chamo o caio?").await;
    let made = a
        .request(
            2,
            json!({"type": "conversation.invite", "room": direct, "user": caio.id}),
        )
        .await;
    assert_eq!(made["type"], "conversation.updated", "{made}");
    assert_eq!(made["kind"], "group");
    assert_eq!(made["by"]["nickname"], "ana");
    let group = made["room"].as_str().unwrap().to_owned();
    assert!(group.starts_with("group:"), "{group}");
    assert_eq!(made["members"].as_array().unwrap().len(), 3);
    // Bia and Caio are told, and the group is in their lists.
    for client in [&mut b, &mut c] {
        assert_eq!(
            client.recv_type("conversation.updated").await["room"],
            group
        );
    }
    assert_eq!(list(&mut c, 3).await[0]["room"], group);
    // Caio writes in it; both others get it without joining.
    c.join(&group).await;
    let msg_id = say(&mut c, 4, &group, "cheguei").await;
    for client in [&mut a, &mut b] {
        loop {
            let m = client.recv_type("chat.message").await;
            if m["room"] == group {
                assert_eq!(m["msg_id"], msg_id);
                break;
            }
        }
    }
    // Its history over HTTP: for its members only.
    let page = app
        .get(&format!("/api/rooms/{group}/messages"), Some(&bia.token))
        .await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.body);
    assert_eq!(page.body["messages"][0]["text"], "cheguei");
    let page = app
        .get(&format!("/api/rooms/{group}/messages"), Some(&dora.token))
        .await;
    assert_eq!(page.status.as_u16(), 403, "{}", page.body);
    // The direct conversation goes on as it was, for its two people.
    assert_eq!(list(&mut a, 5).await.len(), 2);
    // Full at the room cap; someone already in it is no news.
    let full = a
        .request(
            6,
            json!({"type": "conversation.invite", "room": group, "user": dora.id}),
        )
        .await;
    assert_eq!(full["code"], "conflict", "{full}");
    let again = b
        .request(
            7,
            json!({"type": "conversation.invite", "room": group, "user": ana.id}),
        )
        .await;
    assert_eq!(again["code"], "conflict", "{again}");
    let unknown = b
        .request(
            8,
            json!({"type": "conversation.invite", "room": group, "user": 999_999}),
        )
        .await;
    assert_eq!(unknown["code"], "not_found", "{unknown}");
}

#[actix_web::test]
async fn a_direct_chat_from_before_conversations_is_in_both_lists_after_the_upgrade() {
    use diesel::{connection::SimpleConnection, Connection, SqliteConnection};
    use diesel_migrations::{FileBasedMigrations, MigrationHarness};

    let app = spawn_app().await;
    let (ana, bia, _) = three(&app).await;
    let mut a = connect(&app, &ana).await;
    let room = dm(&ana, &bia);
    a.join(&room).await;
    say(&mut a, 1, &room, "de antes").await;
    a.close_and_wait().await;
    app.stop().await;
    // Back to the schema of the release before revision 1.3 (its migration and every later one
    // reverted: direct
    // rooms without members, no read positions); the restart applies it again.
    {
        let url = &app.settings.database_url;
        let (dir, mut pg, mut sqlite) = if crate::helpers::on_postgres() {
            let pg = diesel::PgConnection::establish(url).unwrap();
            ("/migrations/postgres", Some(pg), None)
        } else {
            let mut conn = SqliteConnection::establish(url).unwrap();
            conn.batch_execute("PRAGMA busy_timeout = 10000;").unwrap();
            ("/migrations/sqlite", None, Some(conn))
        };
        let migrations =
            FileBasedMigrations::from_path(format!("{}{dir}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        // Reverted newest first, down to and including the conversations migration.
        loop {
            let reverted = match (&mut pg, &mut sqlite) {
                (Some(c), _) => c
                    .revert_last_migration(migrations.clone())
                    .unwrap()
                    .to_string(),
                (_, Some(c)) => c
                    .revert_last_migration(migrations.clone())
                    .unwrap()
                    .to_string(),
                _ => unreachable!(),
            };
            if reverted.contains("000005") {
                break;
            }
        }
    }
    let app = app.restart().await;
    // Both people have the conversation, its history read (they saw it in the old chat).
    for (user, id) in [(&bia, 2), (&ana, 3)] {
        let mut client = connect(&app, user).await;
        let convs = list(&mut client, id).await;
        assert_eq!(convs.len(), 1, "{convs:?}");
        assert_eq!(convs[0]["room"], room);
        assert_eq!(convs[0]["unread"], 0);
        assert_eq!(convs[0]["last_message"]["text"], "de antes");
    }
}

#[actix_web::test]
async fn a_conversation_opens_on_every_device_of_its_people_beyond_the_session_cap() {
    let app = spawn_app_with(|s| s.room_member_cap = 2).await;
    let (ana, bia, _) = three(&app).await;
    let room = dm(&ana, &bia);
    let mut devices = Vec::new();
    for user in [&ana, &ana, &bia, &bia] {
        let mut client = connect(&app, user).await;
        client.join(&room).await;
        devices.push(client);
    }
    let msg_id = say(&mut devices[0], 1, &room, "em todo lugar").await;
    for device in &mut devices[1..] {
        assert_eq!(device.recv_type("chat.message").await["msg_id"], msg_id);
    }
    // A public channel still holds `--room-member-cap` sessions.
    devices[0].join("canal1").await;
    devices[1].join("canal1").await;
    let full = devices[2]
        .request(2, json!({"type": "room.join", "room": "canal1"}))
        .await;
    assert_eq!(full["code"], "conflict", "{full}");
}
