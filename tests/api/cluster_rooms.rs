//! Rooms across nodes (issue 18): members on several nodes of one Redis and one PostgreSQL
//! database see each other, signal each other in order, and get every acknowledged chat
//! message once, in `msg_id` order, also through a Redis restart.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use serde_json::json;

use crate::{
    cluster::Cluster,
    ws_client::{connect, WsClient},
};

/// How long a test waits for what the cluster should do (a noisy machine).
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// A cluster of `n` nodes whose connections may send fast (and hold many frames for a
/// client that reads only once a storm is over).
pub(crate) async fn fast_cluster(n: usize) -> Option<Cluster> {
    Cluster::start_with(n, |_, s| {
        s.ws_rate_per_sec = 100_000;
        s.ws_rate_burst = 100_000;
        s.ws_outbound_queue = 32_768;
    })
    .await
}

/// Sends `chat.send` with frame id `id` and answers the acknowledged `msg_id`.
async fn say(client: &mut WsClient, id: i64, room: &str, text: &str) -> i64 {
    let ack = client
        .request(
            id,
            json!({"type": "chat.send", "room": room, "client_msg_id": format!("c-{id}"), "text": text}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ack["msg_id"].as_i64().expect("msg_id")
}

/// Reads `chat.message` frames until `client` has `want` of them (other frames are kept
/// aside): answers the `msg_id`s received per room, in the order they came.
async fn collect_chat(client: &mut WsClient, want: usize) -> BTreeMap<String, Vec<i64>> {
    let mut got: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut count = 0;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while count < want {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(frame) = client.recv_type_within("chat.message", left).await else {
            panic!("{count} of {want} chat messages within {PATIENCE:?}: {got:?}");
        };
        let room = frame["room"].as_str().expect("room").to_owned();
        got.entry(room)
            .or_default()
            .push(frame["msg_id"].as_i64().expect("msg_id"));
        count += 1;
    }
    got
}

/// No further `chat.message` arrives for a little while (no duplicate comes late).
async fn no_more_chat(client: &mut WsClient) {
    let late = client
        .recv_type_within("chat.message", Duration::from_millis(1500))
        .await;
    assert!(late.is_none(), "an extra chat message: {late:?}");
}

/// Kills the cluster's Redis and waits until every node has noticed (`/readyz` 503): what
/// is published from then on is lost, not held for a reconnect.
pub(crate) async fn redis_down(cluster: &mut Cluster) {
    cluster.redis.kill();
    for node in &cluster.nodes {
        crate::cluster::within(PATIENCE, "readyz 503 without Redis", async || {
            node.get("/readyz", None).await.status
                == actix_web::http::StatusCode::SERVICE_UNAVAILABLE
        })
        .await;
    }
}

#[actix_web::test]
async fn members_on_two_nodes_see_each_other_signal_in_order_chat_and_leave() {
    let Some(cluster) = fast_cluster(2).await else {
        return;
    };
    let (_, bob, mut a, mut b) = cluster.two_apart("ana", "bob").await;

    let joined = a.join("canal1").await;
    assert_eq!(joined["peers"], json!([]));
    let joined = b.join("canal1").await;
    let peers = joined["peers"].as_array().expect("peers");
    assert_eq!(peers.len(), 1, "ana (node 1) is in bob's peers: {joined}");
    assert_eq!(peers[0]["peer_id"], a.session_id.as_str());
    assert_eq!(peers[0]["user"]["nickname"], "ana");
    assert_eq!(peers[0]["polite"], true);
    let seen = a.recv_type("room.peer_joined").await;
    assert_eq!(seen["peer"]["peer_id"], b.session_id.as_str());
    assert_eq!(seen["peer"]["polite"], false);

    // 200 signals from ana to bob, across nodes: all arrive, in the order sent.
    for n in 0..200 {
        a.send(
            json!({"type": "signal", "room": "canal1", "to": b.session_id,
                      "kind": "candidate", "data": {"n": n}}),
        )
        .await;
    }
    for n in 0..200 {
        let got = b.recv_type("signal").await;
        assert_eq!(got["from"], a.session_id.as_str());
        assert_eq!(got["data"]["n"], n, "signal {n} in order");
    }
    b.send(
        json!({"type": "signal", "room": "canal1", "to": a.session_id,
                  "kind": "answer", "data": {"sdp": "x"}}),
    )
    .await;
    let got = a.recv_type("signal").await;
    assert_eq!(got["from"], b.session_id.as_str());
    assert_eq!(got["kind"], "answer");

    // Typing and chat both ways.
    a.send(json!({"type": "chat.typing", "room": "canal1"}))
        .await;
    assert_eq!(b.recv_type("chat.typing").await["from"]["nickname"], "ana");
    let from_ana = say(&mut a, 1, "canal1", "olá bob").await;
    let got = b.recv_type("chat.message").await;
    assert_eq!(got["msg_id"], from_ana);
    assert_eq!(got["text"], "olá bob");
    assert_eq!(got["from"]["nickname"], "ana");
    let from_bob = say(&mut b, 2, "canal1", "olá ana").await;
    assert!(from_bob > from_ana);
    assert_eq!(a.recv_type("chat.message").await["msg_id"], from_ana);
    let got = a.recv_type("chat.message").await;
    assert_eq!(got["msg_id"], from_bob);
    assert_eq!(got["text"], "olá ana");

    // A retry of the same client_msg_id on the other node is the same message.
    let mut bob_on_1 = connect(cluster.node(0), &bob).await;
    bob_on_1.join("canal1").await;
    let second = bob_on_1.session_id.clone();
    let retried = bob_on_1
        .request(
            2,
            json!({"type": "chat.send", "room": "canal1", "client_msg_id": "c-2", "text": "olá ana"}),
        )
        .await;
    assert_eq!(retried["msg_id"], from_bob, "{retried}");
    bob_on_1.close_and_wait().await;
    for client in [&mut a, &mut b] {
        let left = client.recv_type("room.peer_left").await;
        assert_eq!(left["peer_id"], second.as_str());
    }

    // Bob leaves: ana (node 1) is told.
    let reply = b
        .request(3, json!({"type": "room.leave", "room": "canal1"}))
        .await;
    assert_eq!(reply["type"], "ack", "{reply}");
    let left = a.recv_type("room.peer_left").await;
    assert_eq!(left["peer_id"], b.session_id.as_str());
    assert_eq!(left["dropped"], false);
    a.expect_no("chat.message").await;
}

/// The two rooms of the chat storms.
const ROOMS: [&str; 2] = ["sala-a", "sala-b"];

/// The rooms each member is in (and sends to), by member index.
pub(crate) type Membership = [Vec<String>];

/// Every one of `n` members in both [`ROOMS`].
fn in_both_rooms(n: usize) -> Vec<Vec<String>> {
    vec![ROOMS.map(String::from).to_vec(); n]
}

/// The command-line flags that give a process node the settings of [`fast_cluster`].
pub(crate) const FAST_PROCESS_FLAGS: [&str; 6] = [
    "--ws-rate-per-sec",
    "100000",
    "--ws-rate-burst",
    "100000",
    "--ws-outbound-queue",
    "32768",
];

/// Members on the nodes at `ports`, two per node, in both [`ROOMS`]: see [`members_on`].
async fn two_per_node_in_both_rooms(cluster: &Cluster, ports: &[u16]) -> Vec<WsClient> {
    let homes: Vec<u16> = ports.iter().flat_map(|&p| [p, p]).collect();
    members_on(cluster, &homes, &in_both_rooms(homes.len())).await
}

/// One user per entry of `homes` (the port of the node it connects to), member `u` joined
/// to `rooms[u]`, once every member sees the others of its first room (their joins seen
/// live or read from Redis).
pub(crate) async fn members_on(
    cluster: &Cluster,
    homes: &[u16],
    rooms: &Membership,
) -> Vec<WsClient> {
    let mut clients = Vec::new();
    for (u, port) in homes.iter().enumerate() {
        let user = cluster.node(0).user(&format!("membro{u}")).await;
        let mut c = connect(port, &user).await;
        for room in &rooms[u] {
            c.join(room).await;
        }
        clients.push(c);
    }
    for (u, c) in clients.iter_mut().enumerate() {
        let first = &rooms[u][0];
        let others = rooms.iter().filter(|r| r.contains(first)).count() - 1;
        peers_become(c, first, others).await;
    }
    clients
}

/// Waits until `c` is shown `n` peers in `room`.
pub(crate) async fn peers_become(c: &mut WsClient, room: &str, n: usize) {
    crate::cluster::within(PATIENCE, "every member sees the others", async || {
        let reply = c
            .request(77, json!({"type": "room.join", "room": room}))
            .await;
        reply["peers"].as_array().map_or(0, Vec::len) == n
    })
    .await;
}

/// Two users on each of the cluster's (in-process) nodes, in both [`ROOMS`].
async fn members_everywhere(cluster: &Cluster) -> Vec<WsClient> {
    let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port).collect();
    two_per_node_in_both_rooms(cluster, &ports).await
}

/// What each member sent in a round: its frame ids and their rooms.
pub(crate) type Sent = Vec<Vec<(i64, String)>>;

/// Every client sends `per_room` messages to each of its `rooms` (rooms interleaved), all
/// clients at once, without waiting for acks (frame ids from `round`); answers each
/// client's frame ids and their rooms.
pub(crate) async fn send_round(
    clients: &mut [WsClient],
    rooms: &Membership,
    round: i64,
    per_room: usize,
) -> Sent {
    let sends = clients.iter_mut().enumerate().map(|(u, c)| async move {
        let mut ids = Vec::new();
        let mut next = ((round + 1) * 100 + u as i64) * 100_000;
        for i in 0..per_room {
            for room in &rooms[u] {
                c.send(json!({"type": "chat.send", "id": next, "room": room,
                              "client_msg_id": format!("m-{round}-{u}-{room}-{i}"), "text": format!("{u}:{i}")}))
                    .await;
                ids.push((next, room.clone()));
                next += 1;
            }
        }
        ids
    });
    futures_util::future::join_all(sends).await
}

/// Adds each member's `more` to what it sent before.
pub(crate) fn extend_sent(sent: &mut Sent, more: Sent) {
    for (all, more) in sent.iter_mut().zip(more) {
        all.extend(more);
    }
}

/// What [`everyone_got_everything`] counted.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Messages acknowledged to the members checked.
    pub acked: usize,
    /// Messages the database holds in their rooms.
    pub stored: usize,
    /// `chat.message` frames the members received.
    pub delivered: usize,
    /// When every member had every stored message of its rooms.
    pub all_in: std::time::Instant,
}

/// The `msg_id`s acknowledged, by room.
pub(crate) type Acked = BTreeMap<String, Vec<i64>>;

/// Reads each client's acks for what it `sent` (other frames are kept aside) into `acked`.
pub(crate) async fn collect_acks(clients: &mut [WsClient], sent: Sent, acked: &mut Acked) {
    let acks = clients.iter_mut().zip(sent).map(|(c, sent)| async move {
        let mut acked: Vec<(String, i64)> = Vec::new();
        for (id, room) in sent {
            let ack = c.recv_reply(id).await;
            assert_eq!(ack["type"], "ack", "{ack}");
            acked.push((room, ack["msg_id"].as_i64().expect("msg_id")));
        }
        acked
    });
    for (room, id) in futures_util::future::join_all(acks)
        .await
        .into_iter()
        .flatten()
    {
        acked.entry(room).or_default().push(id);
    }
}

/// Each client's acks for what it `sent`, then [`everyone_got_the_stored`].
pub(crate) async fn everyone_got_everything(
    clients: &mut [WsClient],
    rooms: &Membership,
    sent: Sent,
    all_stored: bool,
) -> Tally {
    let mut acked = Acked::new();
    collect_acks(clients, sent, &mut acked).await;
    everyone_got_the_stored(clients, rooms, acked, all_stored).await
}

/// Each client's `chat.message`s: every member got every stored message of each of its
/// `rooms` once, in increasing `msg_id`, as the database has them, and nothing more; every
/// `acked` message is stored (`all_stored`: and nothing else is, when no sender died with
/// messages in flight).
pub(crate) async fn everyone_got_the_stored(
    clients: &mut [WsClient],
    rooms: &Membership,
    mut acked: Acked,
    all_stored: bool,
) -> Tally {
    let acked_count = acked.values().map(Vec::len).sum();
    let mut stored: HashMap<&str, Vec<i64>> = HashMap::new();
    for (u, member_rooms) in rooms.iter().enumerate() {
        for room in member_rooms {
            if !stored.contains_key(room.as_str()) {
                stored.insert(room, history_ids(&mut clients[u], room).await);
            }
        }
    }
    for (room, ids) in &stored {
        let acked = acked.entry((*room).to_owned()).or_default();
        acked.sort_unstable();
        if all_stored {
            assert_eq!(
                acked, ids,
                "the database holds what was acknowledged in {room}"
            );
        } else {
            assert!(
                acked.iter().all(|id| ids.binary_search(id).is_ok()),
                "every acknowledged message of {room} is stored"
            );
        }
    }
    let chats = clients.iter_mut().enumerate().map(|(u, c)| {
        let want = rooms[u].iter().map(|r| stored[r.as_str()].len()).sum();
        collect_chat(c, want)
    });
    let results = futures_util::future::join_all(chats).await;
    let mut tally = Tally {
        acked: acked_count,
        stored: stored.values().map(Vec::len).sum(),
        delivered: 0,
        all_in: std::time::Instant::now(),
    };
    for (u, got) in results.iter().enumerate() {
        for room in &rooms[u] {
            let ids = got.get(room).map_or(&[][..], Vec::as_slice);
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "member {u} got {room}'s messages in increasing msg_id: {ids:?}"
            );
            assert_eq!(
                ids,
                stored[room.as_str()],
                "member {u} got every stored message of {room} once"
            );
            tally.delivered += ids.len();
        }
    }
    futures_util::future::join_all(clients.iter_mut().map(no_more_chat)).await;
    tally
}

/// Every stored message of `room`, oldest first, page after page.
async fn history_ids(client: &mut WsClient, room: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    loop {
        let after = ids.last().copied().unwrap_or(0);
        let page = client
            .request(
                5,
                json!({"type": "chat.history", "room": room, "after": after, "limit": 200}),
            )
            .await;
        let messages = page["messages"].as_array().expect("messages");
        ids.extend(
            messages
                .iter()
                .map(|m| m["msg_id"].as_i64().expect("msg_id")),
        );
        if messages.is_empty() || page["has_more"] != true {
            return ids;
        }
    }
}

#[actix_web::test]
async fn members_on_three_nodes_get_every_message_of_two_rooms_once_and_in_order() {
    let Some(cluster) = fast_cluster(3).await else {
        return;
    };
    let mut clients = members_everywhere(&cluster).await;
    let rooms = in_both_rooms(clients.len());
    let sent = send_round(&mut clients, &rooms, 0, 25).await;
    everyone_got_everything(&mut clients, &rooms, sent, true).await;
}

#[actix_web::test]
async fn chatting_on_three_nodes_through_a_redis_restart_loses_and_repeats_nothing() {
    let Some(mut cluster) = fast_cluster(3).await else {
        return;
    };
    let mut clients = members_everywhere(&cluster).await;
    // A round in flight when Redis dies, one while it is away, one once it is back.
    let rooms = in_both_rooms(clients.len());
    let mut sent = send_round(&mut clients, &rooms, 0, 15).await;
    redis_down(&mut cluster).await;
    extend_sent(&mut sent, send_round(&mut clients, &rooms, 1, 15).await);
    cluster.redis.restart();
    extend_sent(&mut sent, send_round(&mut clients, &rooms, 2, 15).await);
    everyone_got_everything(&mut clients, &rooms, sent, true).await;
}

#[actix_web::test]
async fn messages_sent_while_redis_is_down_reach_the_other_node_once_and_in_order() {
    let Some(mut cluster) = fast_cluster(2).await else {
        return;
    };
    let (_, _, mut a, mut b) = cluster.two_apart("ana", "bob").await;
    a.join("canal1").await;
    b.join("canal1").await;
    let first = say(&mut a, 1, "canal1", "antes").await;
    assert_eq!(b.recv_type("chat.message").await["msg_id"], first);

    // Redis dies: the messages are still stored and acknowledged on node 1, and the
    // broker cannot carry them to node 2. Nothing else is sent: bob gets them only by the
    // catch-up from the database, Redis or not.
    redis_down(&mut cluster).await;
    let mut during = Vec::new();
    for i in 0..5 {
        during.push(say(&mut a, 10 + i, "canal1", &format!("durante {i}")).await);
    }
    let outage = std::time::Instant::now();
    let mut got = Vec::new();
    while got.len() < during.len() {
        let frame = b
            .recv_type_within("chat.message", PATIENCE)
            .await
            .unwrap_or_else(|| panic!("bob got only {got:?} of {during:?}"));
        got.push(frame["msg_id"].as_i64().expect("msg_id"));
    }
    println!(
        "messages sent while Redis was down reached the other node after {:?}",
        outage.elapsed()
    );
    assert_eq!(got, during, "bob gets every message once, in order");
    let caught_up = crate::cluster::metric(cluster.node(1), "tertulia_chat_caught_up_total")
        .await
        .expect("tertulia_chat_caught_up_total in /metrics");
    assert!(
        caught_up >= 5.0,
        "node 2 read them from the database: {caught_up}"
    );
    cluster.redis.restart();

    // Live again, both ways, and nobody gets anything twice.
    let after = say(&mut b, 20, "canal1", "depois").await;
    assert_eq!(b.recv_type("chat.message").await["msg_id"], after);
    let mut expected = vec![first];
    expected.extend(&during);
    expected.push(after);
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let frame = a
            .recv_type_within("chat.message", PATIENCE)
            .await
            .unwrap_or_else(|| panic!("ana got only {got:?} of {expected:?}"));
        got.push(frame["msg_id"].as_i64().expect("msg_id"));
    }
    assert_eq!(got, expected, "ana gets every message once, in order");
    no_more_chat(&mut a).await;
    no_more_chat(&mut b).await;
}

#[actix_web::test]
async fn the_members_of_a_node_killed_with_sigkill_leave_the_room_as_dropped_everywhere() {
    let Some(cluster) = fast_cluster(2).await else {
        return;
    };
    let third = cluster.spawn_process("node-3");
    let ana = cluster.node(0).user("ana").await;
    let bob = cluster.node(0).user("bob").await;
    let caio = cluster.node(0).user("caio").await;
    let mut a = connect(cluster.node(0), &ana).await;
    let mut b = connect(&third.port, &bob).await;
    a.join("canal1").await;
    let joined = b.join("canal1").await;
    assert_eq!(joined["peers"][0]["peer_id"], a.session_id.as_str());
    let seen = a.recv_type("room.peer_joined").await;
    assert_eq!(seen["peer"]["peer_id"], b.session_id.as_str());
    let bob_peer = b.session_id.clone();

    third.kill();
    let started = std::time::Instant::now();
    let left = a
        .recv_type_within("room.peer_left", PATIENCE)
        .await
        .expect("bob's peer_left after his node died");
    println!(
        "the member of a node killed with SIGKILL left the room for the others after {:?}",
        started.elapsed()
    );
    assert_eq!(left["peer_id"], bob_peer.as_str());
    assert_eq!(left["dropped"], true);
    // Someone entering afterwards, on the other live node, is not shown the dead node's member.
    let mut c = connect(cluster.node(1), &caio).await;
    let joined = c.join("canal1").await;
    let peers: Vec<&str> = joined["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .map(|p| p["peer_id"].as_str().expect("peer_id"))
        .collect();
    assert_eq!(peers, vec![a.session_id.as_str()]);
}

#[actix_web::test]
async fn chatting_on_three_nodes_when_one_is_killed_loses_and_repeats_nothing_for_the_others() {
    let Some(cluster) = fast_cluster(2).await else {
        return;
    };
    let third = cluster.spawn_process_with("node-3", &FAST_PROCESS_FLAGS);
    let ports = [cluster.node(0).port, cluster.node(1).port, third.port];
    let mut clients = two_per_node_in_both_rooms(&cluster, &ports).await;
    let rooms = in_both_rooms(clients.len());
    // A round from everyone, and node 3 dies with its part in flight.
    let sent = send_round(&mut clients, &rooms, 0, 15).await;
    third.kill();
    let dead: Vec<WsClient> = clients.split_off(4);
    let rooms = &rooms[..4];
    let mut sent: Vec<_> = sent.into_iter().take(4).collect();
    extend_sent(&mut sent, send_round(&mut clients, rooms, 1, 15).await);
    // Whatever node 3 stored before it died reaches the others too.
    everyone_got_everything(&mut clients, rooms, sent, false).await;
    for c in &mut clients {
        peers_become(c, ROOMS[0], 3).await;
    }
    drop(dead);
}

#[actix_web::test]
async fn a_room_full_with_members_of_two_nodes_refuses_one_more_on_either() {
    let Some(cluster) = Cluster::start_with(2, |_, s| s.room_member_cap = 2).await else {
        return;
    };
    let users = [
        cluster.node(0).user("ana").await,
        cluster.node(0).user("bob").await,
        cluster.node(0).user("caio").await,
    ];
    let mut a = connect(cluster.node(0), &users[0]).await;
    let mut b = connect(cluster.node(1), &users[1]).await;
    a.join("sala").await;
    b.join("sala").await;
    a.recv_type("room.peer_joined").await;
    for node in 0..2 {
        let mut c = connect(cluster.node(node), &users[2]).await;
        let err = c
            .request(1, json!({"type": "room.join", "room": "sala"}))
            .await;
        assert_eq!(err["code"], "conflict", "node {}: {err}", node + 1);
    }
}

/// What one side of a pair did in [`a_pair_joining_on_two_nodes_at_once_agrees_on_who_offers`].
#[derive(Debug)]
struct Side {
    /// Its role towards the other, as the server told it (`None`: never told).
    polite: Option<bool>,
    /// How it heard of the other: `room.joined`, `room.peer_joined` or `signal`.
    heard_by: &'static str,
    /// The offer/answer exchange completed on its side.
    done: bool,
    /// Anything that went wrong (an error frame, two offers crossing).
    trouble: Option<String>,
}

/// One member joining `room` and then doing what the browser app does: it learns the other
/// member (in `room.joined`, a `room.peer_joined`, or a signal from it, which makes it the
/// polite one), makes the offer if it is the impolite one, answers an offer if polite, and
/// is done once the offer has been answered. Gives up after `PATIENCE`'s fraction.
async fn play_perfect_negotiation(c: &mut WsClient, room: &str) -> Side {
    let joined = c
        .request(901, json!({"type": "room.join", "room": room}))
        .await;
    assert_eq!(joined["type"], "room.joined", "{joined}");
    let first = joined["peers"].as_array().and_then(|p| p.first()).cloned();
    let mut side = Side {
        polite: first.as_ref().and_then(|p| p["polite"].as_bool()),
        heard_by: "room.joined",
        done: false,
        trouble: None,
    };
    let mut other = first.map(|p| p["peer_id"].as_str().unwrap_or("").to_owned());
    let mut offered = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !side.done && side.trouble.is_none() {
        if let (Some(false), Some(to), false) = (side.polite, &other, offered) {
            c.send(
                json!({"type": "signal", "room": room, "to": to, "kind": "offer",
                          "data": {"sdp": "offer"}}),
            )
            .await;
            offered = true;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(frame) = c.recv_within(left).await else {
            side.trouble = Some("stuck: no offer and no answer".into());
            break;
        };
        match frame["type"].as_str() {
            Some("room.peer_joined") if side.polite.is_none() => {
                side.polite = frame["peer"]["polite"].as_bool();
                side.heard_by = "room.peer_joined";
                other = frame["peer"]["peer_id"].as_str().map(str::to_owned);
            }
            Some("signal") if frame["kind"] == "offer" => {
                if side.polite.is_none() {
                    // Someone we have not heard join signals: they were there first.
                    side.polite = Some(true);
                    side.heard_by = "signal";
                    other = frame["from"].as_str().map(str::to_owned);
                }
                if side.polite == Some(false) {
                    side.trouble = Some("an offer came while making ours: both offer".into());
                    break;
                }
                c.send(json!({"type": "signal", "room": room, "to": frame["from"],
                              "kind": "answer", "data": {"sdp": "answer"}}))
                    .await;
                side.done = true;
            }
            Some("signal") if frame["kind"] == "answer" && offered => side.done = true,
            Some("error") => side.trouble = Some(format!("{frame}")),
            _ => {}
        }
    }
    side
}

/// Two members of a call joining at the same moment on two nodes (a call's two people,
/// right after the accept): each node may hear of the other's member only from the room's
/// Redis hash, or from its first signal, and still exactly one of the two makes the offer,
/// and the answer gets back to it.
#[actix_web::test]
async fn a_pair_joining_on_two_nodes_at_once_agrees_on_who_offers() {
    let Some(cluster) = fast_cluster(2).await else {
        return;
    };
    const PAIRS: usize = 12;
    let mut clients = Vec::new();
    for pair in 0..PAIRS {
        let x = cluster.node(0).user(&format!("par{pair}x")).await;
        let y = cluster.node(0).user(&format!("par{pair}y")).await;
        clients.push((
            connect(cluster.node(0), &x).await,
            connect(cluster.node(1), &y).await,
        ));
    }
    let plays = clients
        .iter_mut()
        .enumerate()
        .map(|(pair, (x, y))| async move {
            let room = format!("duo-{pair}");
            let (x, y) = futures_util::future::join(
                play_perfect_negotiation(x, &room),
                play_perfect_negotiation(y, &room),
            )
            .await;
            (pair, x, y)
        });
    let mut failed = Vec::new();
    for (pair, x, y) in futures_util::future::join_all(plays).await {
        let complementary = matches!((x.polite, y.polite), (Some(a), Some(b)) if a != b);
        if !complementary || !x.done || !y.done {
            failed.push(format!("pair {pair}: node 1 {x:?}, node 2 {y:?}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// A member whose join a node never heard (its `Joined` went out before that node
/// subscribed, and its entry in the room's hash was lost) reaches the others all the same
/// with its first signal: the node learns it from the signal, tells its members (the
/// target as the polite one) and routes the answer back.
#[actix_web::test]
async fn a_signal_from_a_member_never_heard_joining_is_answered() {
    let Some(cluster) = fast_cluster(2).await else {
        return;
    };
    let (_, _, mut a, mut b) = cluster.two_apart("ana", "bob").await;
    a.join("duo").await;

    // Ana's entry in the room's hash is lost (her node writes it again only every few
    // seconds), so node 2 starting the room finds nobody there.
    let mut redis = cluster.redis.connection().await;
    let key = format!(
        "{}:room:duo:members",
        cluster.node(0).settings.broker_prefix
    );
    crate::cluster::within(PATIENCE, "ana's entry written", async || {
        let removed: usize = redis::cmd("HDEL")
            .arg(&key)
            .arg(a.session_id.as_str())
            .query_async(&mut redis)
            .await
            .unwrap_or(0);
        removed == 1
    })
    .await;
    let joined = b.join("duo").await;
    assert_eq!(joined["peers"], json!([]), "node 2 has not heard of ana");

    // Node 1 heard bob join: ana makes the offer.
    let seen = a.recv_type("room.peer_joined").await;
    assert_eq!(seen["peer"]["peer_id"], b.session_id.as_str());
    assert_eq!(seen["peer"]["polite"], false);
    a.send(
        json!({"type": "signal", "room": "duo", "to": b.session_id, "kind": "offer",
                  "data": {"sdp": "offer"}}),
    )
    .await;
    // Bob learns of ana first, as the polite one, then gets her offer.
    let heard = loop {
        let frame = b.recv().await;
        if frame["type"] == "room.peer_joined" || frame["type"] == "signal" {
            break frame;
        }
    };
    assert_eq!(heard["type"], "room.peer_joined", "{heard}");
    assert_eq!(heard["peer"]["peer_id"], a.session_id.as_str());
    assert_eq!(heard["peer"]["user"]["nickname"], "ana");
    assert_eq!(heard["peer"]["polite"], true);
    let offer = b.recv_type("signal").await;
    assert_eq!(offer["from"], a.session_id.as_str());
    // Bob's answer goes back to ana.
    b.send(
        json!({"type": "signal", "room": "duo", "to": a.session_id, "kind": "answer",
                  "data": {"sdp": "answer"}}),
    )
    .await;
    let answer = a.recv_type("signal").await;
    assert_eq!(answer["from"], b.session_id.as_str());
    assert_eq!(answer["kind"], "answer");
    b.expect_no("error").await;
}

/// A member joining on another node while the room's only member chats on its own (its
/// node publishes nothing while nobody elsewhere is known): from its join on it gets every
/// message, each once and in order — from its `room.joined` history, live, or what its node
/// reads from the database when it sees a gap.
#[actix_web::test]
async fn a_member_joining_another_node_mid_chat_misses_nothing_from_its_join_on() {
    let Some(cluster) = fast_cluster(2).await else {
        return;
    };
    let (_, _, mut a, mut b) = cluster.two_apart("ana", "bob").await;
    a.join("sala").await;
    const SENT: i64 = 150;
    let chat = async {
        let mut acked = Vec::new();
        for n in 0..SENT {
            acked.push(say(&mut a, 1000 + n, "sala", &format!("m{n}")).await);
        }
        acked
    };
    let join = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.join("sala").await
    };
    let (acked, joined) = futures_util::future::join(chat, join).await;
    let history: Vec<i64> = joined["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["msg_id"].as_i64().expect("msg_id"))
        .collect();
    let last = *acked.last().expect("acked");
    let mut live = Vec::new();
    while live.last() != Some(&last) {
        let Some(m) = b.recv_type_within("chat.message", PATIENCE).await else {
            panic!("bob got {live:?} live, not up to {last}; history {history:?}");
        };
        live.push(m["msg_id"].as_i64().expect("msg_id"));
    }
    assert!(
        live.windows(2).all(|w| w[0] < w[1]),
        "live messages in increasing msg_id, none twice: {live:?}"
    );
    // Every message after what the join's history showed reached bob live.
    let seen_up_to = history.iter().copied().max().unwrap_or(0);
    let expected: Vec<i64> = acked
        .iter()
        .copied()
        .filter(|&id| id > seen_up_to)
        .collect();
    let got: Vec<i64> = live.iter().copied().filter(|&id| id > seen_up_to).collect();
    assert_eq!(got, expected, "history up to {seen_up_to}");
    no_more_chat(&mut b).await;
}
