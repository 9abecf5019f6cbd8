//! Presence across nodes (issue 18): every lobby shows the users of every node, with the
//! same snapshot, windows, counts and update frames as one node; a user on two nodes is one
//! online user; a killed node's users go offline everywhere; a Redis restart heals.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::{
    cluster::{within, Cluster},
    helpers::{TestApp, TestUser},
    ws_client::{connect, try_connect, ConnectOpts, WsClient, WAIT},
};

const ALL: &[&str] = &["video", "audio", "text"];

/// A client's lobby, kept as the browser app keeps it: the snapshot, then every update.
#[derive(Default, Debug)]
struct Lobby {
    statuses: HashMap<i64, String>,
    counts: HashMap<String, i64>,
    /// Users this client was ever told were offline.
    went_offline: HashSet<i64>,
}

impl Lobby {
    /// The lobby as `ws`'s snapshot shows it.
    fn of(ws: &WsClient) -> Lobby {
        let mut lobby = Lobby::default();
        lobby.apply(&ws.snapshot);
        lobby
    }

    fn apply(&mut self, frame: &Value) {
        if let Some(counts) = frame["counts"].as_object() {
            self.counts = counts
                .iter()
                .map(|(theme, n)| (theme.clone(), n.as_i64().expect("count")))
                .collect();
        }
        let mut set = |entry: &Value, key: &str| {
            let id = entry[key].as_i64().expect("user id");
            let status = entry["status"].as_str().expect("status");
            if status == "offline" {
                self.statuses.remove(&id);
                self.went_offline.insert(id);
            } else {
                self.statuses.insert(id, status.to_owned());
            }
        };
        match frame["type"].as_str() {
            Some("presence.snapshot") => {
                for user in frame["users"].as_array().expect("users") {
                    set(user, "id");
                }
            }
            Some("presence.window") => {
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

    /// Reads `ws` until this lobby shows exactly `users` (and, if given, `counts`), within
    /// `limit`; answers how long that took.
    async fn settle(
        &mut self,
        ws: &mut WsClient,
        users: &[(&TestUser, &str)],
        counts: Option<&[(&str, i64)]>,
        limit: Duration,
    ) -> Duration {
        let start = Instant::now();
        let users: HashMap<i64, String> =
            users.iter().map(|(u, s)| (u.id, (*s).to_owned())).collect();
        let counts: Option<HashMap<String, i64>> =
            counts.map(|c| c.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect());
        loop {
            if self.statuses == users && counts.as_ref().is_none_or(|c| *c == self.counts) {
                return start.elapsed();
            }
            let left = limit.saturating_sub(start.elapsed());
            match ws.recv_within(left).await {
                Some(frame) => self.apply(&frame),
                None => panic!(
                    "the lobby shows {users:?} and counts {counts:?} within {limit:?}; it shows {self:?}"
                ),
            }
        }
    }
}

async fn set_status(ws: &mut WsClient, id: i64, status: &str) {
    let reply = ws
        .request(id, json!({"type": "presence.set", "status": status}))
        .await;
    assert_ne!(reply["type"], "error", "{reply}");
}

async fn online_users(node: &TestApp, admin: &TestUser) -> i64 {
    let stats = node.get("/api/admin/stats", Some(&admin.token)).await;
    stats.body["online_users"].as_i64().expect("online_users")
}

#[actix_web::test]
async fn users_on_different_nodes_share_one_lobby_with_windows_counts_statuses_and_departures() {
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    let (n1, n2, n3) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let ana = n1.user_with("ana", &["Jogos"], ALL).await;
    let bob = n1.user_with("bob", &["Jogos", "Livros"], ALL).await;
    let carla = n1.user_with("carla", &["Livros"], ALL).await;
    let admin = n1.admin("dora").await;

    let mut a = connect(n1, &ana).await;
    let mut ana_sees = Lobby::of(&a);
    let mut b2 = connect(n2, &bob).await;
    let mut bob_sees = Lobby::of(&b2);
    // Ana (node 1) and Bob (node 2) see each other, and the counts of every theme.
    ana_sees
        .settle(
            &mut a,
            &[(&ana, "online"), (&bob, "online")],
            Some(&[("Jogos", 2), ("Livros", 1)]),
            WAIT,
        )
        .await;
    bob_sees
        .settle(
            &mut b2,
            &[(&ana, "online"), (&bob, "online")],
            Some(&[("Jogos", 2), ("Livros", 1)]),
            WAIT,
        )
        .await;

    // A status chosen on node 2 is shown on node 1.
    set_status(&mut b2, 1, "busy").await;
    ana_sees
        .settle(&mut a, &[(&ana, "online"), (&bob, "busy")], None, WAIT)
        .await;

    // Carla on node 3 watches Livros only: her snapshot (once the others' records reached
    // node 3) has Bob, busy, but not Ana, who is in no window of hers.
    let mut c = connect(n3, &carla).await;
    let mut carla_sees = Lobby::of(&c);
    carla_sees
        .settle(
            &mut c,
            &[(&bob, "busy"), (&carla, "online")],
            Some(&[("Jogos", 2), ("Livros", 2)]),
            WAIT,
        )
        .await;
    // Ana's window of Jogos does not show Carla; the counts do.
    ana_sees
        .settle(
            &mut a,
            &[(&ana, "online"), (&bob, "busy")],
            Some(&[("Jogos", 2), ("Livros", 2)]),
            WAIT,
        )
        .await;
    // The admin's count of people online is over every node.
    within(WAIT, "three people online on node 1's stats", async || {
        online_users(n1, &admin).await == 3
    })
    .await;

    // Bob is on nodes 2 and 3, and leaves node 2: still online, one person (the counts do
    // not move); his next status, chosen on node 3, is seen on node 1.
    let mut b3 = connect(n3, &bob).await;
    b2.close_and_wait().await;
    set_status(&mut b3, 2, "away").await;
    ana_sees
        .settle(
            &mut a,
            &[(&ana, "online"), (&bob, "away")],
            Some(&[("Jogos", 2), ("Livros", 2)]),
            WAIT,
        )
        .await;
    assert!(
        !ana_sees.went_offline.contains(&bob.id),
        "Bob, still on node 3, was never shown offline"
    );

    // Bob leaves node 3 too: offline on every node.
    b3.close_and_wait().await;
    ana_sees
        .settle(
            &mut a,
            &[(&ana, "online")],
            Some(&[("Jogos", 1), ("Livros", 1)]),
            WAIT,
        )
        .await;
    carla_sees
        .settle(&mut c, &[(&carla, "online")], None, WAIT)
        .await;
    assert_eq!(online_users(n2, &admin).await, 2);
}

#[actix_web::test]
async fn a_frame_for_a_user_reaches_their_sessions_on_other_nodes() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let (n1, n2) = (cluster.node(0), cluster.node(1));
    let ana = n1.user("ana").await;
    let bia = n1.user("bia").await;
    let mut a = connect(n1, &ana).await;
    let mut b2 = connect(n2, &bia).await;
    // Node 1 knows of Bia's session on node 2 once Ana sees her (she is nowhere else yet).
    let mut ana_sees = Lobby::of(&a);
    ana_sees
        .settle(&mut a, &[(&ana, "online"), (&bia, "online")], None, WAIT)
        .await;
    let mut b1 = connect(n1, &bia).await;
    let room = format!("dm:{}:{}", ana.id.min(bia.id), ana.id.max(bia.id));
    a.join(&room).await;
    let ack = a
        .request(
            1,
            json!({"type": "chat.send", "room": room, "client_msg_id": "m-1", "text": "oi"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let msg_id = ack["msg_id"].as_i64().expect("msg_id");
    // Bia reads it on node 1: her session on node 2 is told (a frame for every session of
    // a user but one, from node 1's presence).
    let read = b1
        .request(
            2,
            json!({"type": "conversation.read", "room": room, "msg_id": msg_id}),
        )
        .await;
    assert_eq!(read["type"], "conversation.read", "{read}");
    let synced = b2.recv_type("conversation.read").await;
    assert_eq!(synced["room"], room);
    assert_eq!(synced["msg_id"], msg_id);
}

#[actix_web::test]
async fn the_users_of_a_node_killed_with_sigkill_are_shown_offline_everywhere_within_10_s() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let (n1, n2) = (cluster.node(0), cluster.node(1));
    let ana = n1.user_with("ana", &["Jogos"], ALL).await;
    let bob = n1.user_with("bob", &["Jogos"], ALL).await;
    let dave = n1.user_with("dave", &["Jogos"], ALL).await;
    let third = cluster.spawn_process("node-3");
    let mut a = connect(n1, &ana).await;
    let mut ana_sees = Lobby::of(&a);
    // Bob is on node 2 and node 3; Dave only on node 3.
    let _b2 = connect(n2, &bob).await;
    let _b3 = connect(&third.port, &bob).await;
    let d3 = connect(&third.port, &dave).await;
    ana_sees
        .settle(
            &mut a,
            &[(&ana, "online"), (&bob, "online"), (&dave, "online")],
            Some(&[("Jogos", 3)]),
            WAIT,
        )
        .await;

    third.kill();
    let took = ana_sees
        .settle(
            &mut a,
            &[(&ana, "online"), (&bob, "online")],
            Some(&[("Jogos", 2)]),
            Duration::from_secs(10),
        )
        .await;
    println!("the users of a node killed with SIGKILL were offline on node 1 after {took:?}");
    assert!(
        !ana_sees.went_offline.contains(&bob.id),
        "Bob, still on node 2, was never shown offline"
    );
    d3.vanish();
}

#[actix_web::test]
async fn after_a_redis_restart_every_lobby_is_right_again_within_5_s() {
    let Some(mut cluster) = Cluster::start(2).await else {
        return;
    };
    let ana = cluster.node(0).user_with("ana", &["Jogos"], ALL).await;
    let bob = cluster.node(0).user_with("bob", &["Jogos"], ALL).await;
    let carla = cluster.node(0).user_with("carla", &["Jogos"], ALL).await;
    let erin = cluster.node(0).user_with("erin", &["Jogos"], ALL).await;
    let mut a = connect(cluster.node(0), &ana).await;
    let mut ana_sees = Lobby::of(&a);
    let mut b = connect(cluster.node(1), &bob).await;
    let mut bob_sees = Lobby::of(&b);
    let _c = connect(cluster.node(1), &carla).await;
    let before = [(&ana, "online"), (&bob, "online"), (&carla, "online")];
    ana_sees.settle(&mut a, &before, None, WAIT).await;
    bob_sees.settle(&mut b, &before, None, WAIT).await;

    // Redis restarts empty; meanwhile Bob chooses a status and Erin arrives, both on
    // node 2 (Carla, on node 2 too, and Ana, on node 1, change nothing).
    cluster.redis.restart();
    let restarted = Instant::now();
    set_status(&mut b, 1, "away").await;
    let _e = connect(cluster.node(1), &erin).await;
    let after = [
        (&ana, "online"),
        (&bob, "away"),
        (&carla, "online"),
        (&erin, "online"),
    ];
    let five = || Duration::from_secs(5).saturating_sub(restarted.elapsed());
    ana_sees
        .settle(&mut a, &after, Some(&[("Jogos", 4)]), five())
        .await;
    bob_sees
        .settle(&mut b, &after, Some(&[("Jogos", 4)]), five())
        .await;
    // What Redis holds is whole again too (a node reading it now would see every user).
    let mut redis = cluster.redis.connection().await;
    let prefix = cluster.node(0).settings.broker_prefix.clone();
    within(five(), "node 2's records stored again", async || {
        let stored: usize = redis::cmd("HLEN")
            .arg(format!("{prefix}:presence:node-2"))
            .query_async(&mut redis)
            .await
            .unwrap_or(0);
        stored == 3
    })
    .await;
    println!(
        "after a Redis restart, every lobby was right again after {:?}",
        restarted.elapsed()
    );

    // A change after that crosses as before, and a new connection's snapshot is whole.
    set_status(&mut b, 2, "busy").await;
    let later = [
        (&ana, "online"),
        (&bob, "busy"),
        (&carla, "online"),
        (&erin, "online"),
    ];
    ana_sees.settle(&mut a, &later, None, WAIT).await;
    // Past both nodes' next heartbeats (which find Redis emptied).
    tokio::time::sleep(Duration::from_secs(5)).await;
    while let Some(frame) = a.recv_within(Duration::from_millis(100)).await {
        ana_sees.apply(&frame);
    }
    println!(
        "someone of node 2 was shown offline on node 1 meanwhile: {}",
        ana_sees.went_offline.contains(&bob.id) || ana_sees.went_offline.contains(&carla.id)
    );
    let again = connect(cluster.node(0), &ana).await;
    let mut fresh = Lobby::of(&again);
    fresh.went_offline.clear();
    assert_eq!(fresh.statuses.len(), 4, "{fresh:?}");
    assert_eq!(
        fresh.statuses.get(&bob.id).map(String::as_str),
        Some("busy")
    );
}

#[actix_web::test]
async fn a_profile_changed_through_one_node_is_shown_by_every_node() {
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    let (n1, n2, n3) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let ana = n1.user_with("ana", &["Jogos"], ALL).await;
    let bob = n1.user_with("bob", &["Jogos"], ALL).await;
    let mut a = connect(n1, &ana).await;
    let mut ana_sees = Lobby::of(&a);
    // Bob's only session is on node 2; his profile changes through node 3, which holds no
    // session of his.
    let _b = connect(n2, &bob).await;
    ana_sees
        .settle(&mut a, &[(&ana, "online"), (&bob, "online")], None, WAIT)
        .await;
    let patch = n3
        .request(
            "PATCH",
            "/api/me",
            Some(&bob.token),
            Some(json!({"capabilities": ["text"]})),
        )
        .await;
    assert!(patch.status.is_success(), "{}", patch.body);
    let deadline = Instant::now() + WAIT;
    loop {
        let update = a.presence_of(bob.id).await;
        if update["capabilities"] == json!(["text"]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 shows Bob's new capabilities"
        );
    }
    // A later connection on node 1 sees it in its snapshot too.
    let again = connect(n1, &ana).await;
    let bob_entry = again.snapshot["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["id"] == bob.id)
        .cloned()
        .expect("Bob in the snapshot");
    assert_eq!(bob_entry["capabilities"], json!(["text"]));
}

#[actix_web::test]
async fn the_per_user_connection_cap_and_the_admin_counts_are_over_every_node_from_the_records() {
    let Some(cluster) = Cluster::start_with(2, |_, s| s.ws_max_conns_per_user = 2).await else {
        return;
    };
    let (n1, n2) = (cluster.node(0), cluster.node(1));
    let bob = n1.user("bob").await;
    let admin = n1.admin("dora").await;
    let _b1 = connect(n2, &bob).await;
    let b2 = connect(n2, &bob).await;
    // Node 1 holds no connection of Bob's: once node 2's record crossed, it refuses a third.
    let opts = || ConnectOpts {
        token: Some(&bob.token),
        ..ConnectOpts::default()
    };
    within(
        WAIT,
        "node 1 refuses Bob's third connection",
        async || match try_connect(n1, opts()).await {
            Err(status) => {
                assert_eq!(status, 429);
                true
            }
            Ok(extra) => {
                extra.close_and_wait().await;
                false
            }
        },
    )
    .await;
    within(
        WAIT,
        "node 1's stats count Bob's connections on node 2",
        async || {
            let stats = n1.get("/api/admin/stats", Some(&admin.token)).await;
            stats.body["ws_connections"] == 2 && stats.body["online_users"] == 1
        },
    )
    .await;
    // One closes on node 2: node 1 admits one again.
    b2.close_and_wait().await;
    let mut admitted = None;
    within(
        WAIT,
        "node 1 admits Bob again",
        async || match try_connect(n1, opts()).await {
            Ok(ws) => {
                admitted = Some(ws);
                true
            }
            Err(_) => false,
        },
    )
    .await;
    assert!(admitted.is_some());
}

#[actix_web::test]
async fn presence_news_that_pub_sub_dropped_is_repaired_from_the_stored_records() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let (n1, n2) = (cluster.node(0), cluster.node(1));
    let ana = n1.user_with("ana", &["Jogos"], ALL).await;
    let bob = n1.user_with("bob", &["Jogos"], ALL).await;
    let zed = n1.user_with("zed", &["Jogos"], ALL).await;
    let mut a = connect(n1, &ana).await;
    let mut ana_sees = Lobby::of(&a);
    let _b = connect(n2, &bob).await;
    ana_sees
        .settle(&mut a, &[(&ana, "online"), (&bob, "online")], None, WAIT)
        .await;

    // Behind the nodes' backs, node 2's stored records lose Bob and gain Zed, and its
    // version moves on: as if node 2 had published both changes and nobody heard them.
    let mut redis = cluster.redis.connection().await;
    let prefix = &n1.settings.broker_prefix;
    let hash = format!("{prefix}:presence:node-2");
    let stored: String = redis::cmd("HGET")
        .arg(&hash)
        .arg(bob.id)
        .query_async(&mut redis)
        .await
        .expect("Bob's record on node 2");
    let mut record: Value = serde_json::from_str(&stored).expect("a JSON record");
    record["nickname"] = json!("zed");
    let () = redis::pipe()
        .atomic()
        .hset(&hash, zed.id, record.to_string())
        .ignore()
        .hdel(&hash, bob.id)
        .ignore()
        .incr(format!("{prefix}:pver:node-2"), 1000)
        .ignore()
        .query_async(&mut redis)
        .await
        .expect("records rewritten");
    let took = ana_sees
        .settle(
            &mut a,
            &[(&ana, "online"), (&zed, "online")],
            Some(&[("Jogos", 2)]),
            Duration::from_secs(10),
        )
        .await;
    println!("node 1 repaired what pub/sub dropped after {took:?}");
}
