//! Calls across nodes (issue 18): the node where an invitation is made runs the call; an
//! answer, cancel or hang-up sent to another node reaches it over Redis, races have one
//! winner in the call log, and the calls of a node killed with SIGKILL end once: ringing ones
//! missed, running ones kept for their people to come back to on a live node.
//!
//! Tests marked "needs presence across nodes" invite a user whose only connections are on
//! other nodes: their invitation rings there only once presence finds users on every node.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    cluster::{within, Cluster},
    helpers::{TestApp, TestUser},
    ws_client::{connect, WsClient},
};

/// Generous: a node's death is seen after its liveness key expires (5 s), then confirmed.
const DEATH: Duration = Duration::from_secs(40);

async fn invite(from: &mut WsClient, id: i64, to: &TestUser) -> Value {
    from.request(
        id,
        json!({"type": "call.invite", "to": to.id, "media": "video"}),
    )
    .await
}

/// `user`'s call log as node `app` reads it from the shared database.
async fn log_of(app: &TestApp, user: &TestUser) -> Vec<Value> {
    let res = app.get("/api/calls", Some(&user.token)).await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.body);
    res.body["calls"].as_array().cloned().unwrap_or_default()
}

/// The state of `call_id` in `user`'s call log.
async fn state_of(app: &TestApp, user: &TestUser, call_id: &str) -> Option<String> {
    log_of(app, user)
        .await
        .into_iter()
        .find(|c| c["call_id"] == call_id)
        .and_then(|c| c["state"].as_str().map(str::to_owned))
}

/// A calls Bia, and `b1`, one of her connections, rings (the call runs on A's node);
/// answers the call id.
async fn ringing_on_node_1(a: &mut WsClient, b1: &mut WsClient, bia: &TestUser) -> String {
    let ringing = invite(a, 1, bia).await;
    assert_eq!(ringing["type"], "call.ringing", "{ringing}");
    let call_id = ringing["call_id"].as_str().expect("call id").to_owned();
    assert_eq!(
        b1.recv_type("call.incoming").await["call_id"],
        call_id.as_str()
    );
    call_id
}

/// A call ringing on a node that runs as a process of its own (so a test can kill or drain
/// it), beside one node in the test process that survives it (and takes the call over).
struct CallOnProcess {
    cluster: Cluster,
    node: crate::cluster::ProcessNode,
    ana: TestUser,
    bia: TestUser,
    /// Ana's and Bia's connections to the process node.
    a: WsClient,
    b: WsClient,
    call_id: String,
}

impl CallOnProcess {
    /// Ana calls Bia, both on the process node `name` (the call's node); a reconnect grace
    /// of `grace_ms`.
    async fn ringing(name: &str, grace_ms: u64) -> Option<CallOnProcess> {
        let cluster = Cluster::start_with(1, |_, s| s.call_reconnect_grace_ms = grace_ms).await?;
        let n1 = cluster.node(0);
        let (ana, bia) = (n1.user("ana").await, n1.user("bia").await);
        let node = cluster.spawn_process(name);
        let mut a = connect(&node.port, &ana).await;
        let mut b = connect(&node.port, &bia).await;
        let call_id = ringing_on_node_1(&mut a, &mut b, &bia).await;
        Some(CallOnProcess {
            cluster,
            node,
            ana,
            bia,
            a,
            b,
            call_id,
        })
    }

    /// Bia answers on node 1 (the process node runs the call) and enters the call room
    /// there: her connection to node 1 and the room.
    async fn answered_on_node_1(&self) -> (WsClient, String) {
        let mut b = connect(self.cluster.node(0), &self.bia).await;
        b.recv_type("call.incoming").await;
        let accepted = b
            .request(2, json!({"type": "call.accept", "call_id": self.call_id}))
            .await;
        assert_eq!(accepted["type"], "call.accepted", "{accepted}");
        let room = accepted["room"].as_str().expect("room").to_owned();
        assert_eq!(b.join(&room).await["type"], "room.joined");
        (b, room)
    }

    /// A running call whose node is killed under it: Ana calls Bia on the process node, Bia
    /// answers on node 1, the process node dies, Ana's client comes back on node 1 into the
    /// call room. A reconnect grace of `grace_ms`.
    async fn orphaned(grace_ms: u64) -> Option<Orphaned> {
        let process = CallOnProcess::ringing("node-doomed", grace_ms).await?;
        // Bia answers on node 1: the doomed node runs the call.
        let (b2, room) = process.answered_on_node_1().await;
        let CallOnProcess {
            cluster,
            node,
            ana,
            bia,
            a,
            b,
            call_id,
        } = process;
        node.kill();
        // Held until the node died under them.
        drop((a, b));
        let mut a1 = connect(cluster.node(0), &ana).await;
        assert_eq!(a1.join(&room).await["type"], "room.joined");
        Some(Orphaned {
            cluster,
            ana,
            bia,
            a1,
            b2,
            call_id,
        })
    }
}

/// See [`CallOnProcess::orphaned`]: Ana's and Bia's connections to node 1, both in the room
/// of the call whose node died.
struct Orphaned {
    cluster: Cluster,
    ana: TestUser,
    bia: TestUser,
    a1: WsClient,
    b2: WsClient,
    call_id: String,
}

#[actix_web::test]
async fn an_accept_sent_to_another_node_reaches_the_node_that_runs_the_call() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let (n1, n2) = (cluster.node(0), cluster.node(1));
    let (ana, bia) = (n1.user("ana").await, n1.user("bia").await);
    let mut a = connect(n1, &ana).await;
    let mut b1 = connect(n1, &bia).await;
    let mut b2 = connect(n2, &bia).await;
    let call_id = ringing_on_node_1(&mut a, &mut b1, &bia).await;

    let accepted = b2
        .request(7, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    assert_eq!(accepted["type"], "call.accepted", "{accepted}");
    let room = accepted["room"].as_str().expect("room").to_owned();
    assert_eq!(
        a.recv_type("call.accepted").await["call_id"],
        call_id.as_str()
    );
    assert_eq!(
        b1.recv_type("call.answered_elsewhere").await["call_id"],
        call_id.as_str()
    );
    // A second answer, from either node, is too late.
    for b in [&mut b1, &mut b2] {
        let late = b
            .request(8, json!({"type": "call.accept", "call_id": call_id}))
            .await;
        assert_eq!(late["code"], "conflict", "{late}");
    }
    // The callee may enter the call's room on node 2, which does not run the call; a
    // stranger may not.
    let joined = b2.join(&room).await;
    assert_eq!(joined["type"], "room.joined", "{joined}");
    let cid = n1.user("cid").await;
    let mut c = connect(n2, &cid).await;
    let refused = c
        .request(9, json!({"type": "room.join", "room": room}))
        .await;
    assert_eq!(refused["code"], "forbidden", "{refused}");

    // The caller hangs up on node 1: the callee on node 2 hears it through the broker.
    let ack = b2
        .request(10, json!({"type": "call.hangup", "call_id": call_id}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(a.recv_type("call.ended").await["call_id"], call_id.as_str());
    within(Duration::from_secs(10), "the log says ended", async || {
        state_of(n2, &ana, &call_id).await.as_deref() == Some("ended")
    })
    .await;
    assert_eq!(log_of(n1, &bia).await.len(), 1, "one call-log row");
}

#[actix_web::test]
async fn decline_and_cancel_sent_to_another_node_end_the_call_once() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let (n1, n2) = (cluster.node(0), cluster.node(1));
    let (ana, bia) = (n1.user("ana").await, n1.user("bia").await);
    let mut a = connect(n1, &ana).await;
    let mut a2 = connect(n2, &ana).await;
    let mut b1 = connect(n1, &bia).await;
    let mut b2 = connect(n2, &bia).await;

    let declined_id = ringing_on_node_1(&mut a, &mut b1, &bia).await;
    let ack = b2
        .request(2, json!({"type": "call.decline", "call_id": declined_id}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(
        a.recv_type("call.declined").await["call_id"],
        declined_id.as_str()
    );
    assert_eq!(
        b1.recv_type("call.answered_elsewhere").await["call_id"],
        declined_id.as_str()
    );

    // The caller cancels from their other device, on node 2.
    let cancelled_id = ringing_on_node_1(&mut a, &mut b1, &bia).await;
    let ack = a2
        .request(3, json!({"type": "call.cancel", "call_id": cancelled_id}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(
        b1.recv_type("call.cancelled").await["call_id"],
        cancelled_id.as_str()
    );
    let too_late = b2
        .request(4, json!({"type": "call.accept", "call_id": cancelled_id}))
        .await;
    assert_eq!(too_late["type"], "error", "{too_late}");

    within(
        Duration::from_secs(10),
        "both outcomes logged",
        async || {
            state_of(n1, &bia, &declined_id).await.as_deref() == Some("declined")
                && state_of(n1, &bia, &cancelled_id).await.as_deref() == Some("cancelled")
        },
    )
    .await;
    assert_eq!(log_of(n2, &ana).await.len(), 2, "one row per call");
}

#[actix_web::test]
async fn accepts_on_two_devices_on_two_nodes_have_one_winner() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let (n1, n2) = (cluster.node(0), cluster.node(1));
    let (ana, bia) = (n1.user("ana").await, n1.user("bia").await);
    let mut a = connect(n1, &ana).await;
    let mut b1 = connect(n1, &bia).await;
    let mut b2 = connect(n2, &bia).await;
    for round in 0..5 {
        let call_id = ringing_on_node_1(&mut a, &mut b1, &bia).await;
        let accept = json!({"type": "call.accept", "call_id": call_id});
        let (r1, r2) = tokio::join!(
            b1.request(100 + round, accept.clone()),
            b2.request(200 + round, accept.clone())
        );
        let wins = [&r1, &r2]
            .iter()
            .filter(|r| r["type"] == "call.accepted")
            .count();
        assert_eq!(wins, 1, "one accept wins: {r1} / {r2}");
        let loser = if r1["type"] == "call.accepted" {
            &r2
        } else {
            &r1
        };
        assert_eq!(loser["code"], "conflict", "{loser}");
        assert_eq!(
            a.recv_type("call.accepted").await["call_id"],
            call_id.as_str()
        );
        let ack = a
            .request(
                300 + round,
                json!({"type": "call.hangup", "call_id": call_id}),
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        within(Duration::from_secs(10), "the call ended", async || {
            state_of(n2, &bia, &call_id).await.as_deref() == Some("ended")
        })
        .await;
        for b in [&mut b1, &mut b2] {
            b.drain_backlog();
        }
    }
    let log = log_of(n1, &ana).await;
    assert_eq!(log.len(), 5, "one row per call: {log:?}");
    assert!(log.iter().all(|c| !c["answered_at"].is_null()), "{log:?}");
}

#[actix_web::test]
async fn an_accept_from_another_node_racing_the_ring_timeout_has_one_outcome() {
    let Some(cluster) = Cluster::start_with(2, |_, s| s.ring_timeout_ms = 600).await else {
        return;
    };
    let (n1, n2) = (cluster.node(0), cluster.node(1));
    let (ana, bia) = (n1.user("ana").await, n1.user("bia").await);
    let mut a = connect(n1, &ana).await;
    let mut b1 = connect(n1, &bia).await;
    let mut b2 = connect(n2, &bia).await;
    let (mut accepted, mut missed) = (0, 0);
    for (round, wait_ms) in [450u64, 550, 600, 650, 700].into_iter().enumerate() {
        let call_id = ringing_on_node_1(&mut a, &mut b1, &bia).await;
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        let id = 10 + i64::try_from(round).unwrap();
        let reply = b2
            .request(id, json!({"type": "call.accept", "call_id": call_id}))
            .await;
        // The caller hears exactly one of the two outcomes.
        let outcome = loop {
            let f = a.recv().await;
            if f["call_id"] == call_id.as_str()
                && (f["type"] == "call.accepted" || f["type"] == "call.missed")
            {
                break f["type"].as_str().unwrap().to_owned();
            }
        };
        if outcome == "call.accepted" {
            accepted += 1;
            assert_eq!(reply["type"], "call.accepted", "{reply}");
            a.expect_no("call.missed").await;
            a.request(50 + id, json!({"type": "call.hangup", "call_id": call_id}))
                .await;
        } else {
            missed += 1;
            assert_eq!(reply["type"], "error", "{reply}");
        }
        let want = if outcome == "call.accepted" {
            "ended"
        } else {
            "missed"
        };
        within(Duration::from_secs(10), "the log agrees", async || {
            state_of(n2, &bia, &call_id).await.as_deref() == Some(want)
        })
        .await;
        a.drain_backlog();
        b1.drain_backlog();
        b2.drain_backlog();
    }
    println!("accept racing the ring timeout: {accepted} accepted, {missed} missed");
    assert_eq!(log_of(n1, &ana).await.len(), 5);
}

#[actix_web::test]
async fn a_ringing_call_whose_node_is_killed_ends_missed_once() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let (n1, n2) = (cluster.node(0), cluster.node(1));
    let (ana, bia) = (n1.user("ana").await, n1.user("bia").await);
    let doomed = cluster.spawn_process("node-doomed");
    let mut a = connect(&doomed.port, &ana).await;
    let mut b = connect(&doomed.port, &bia).await;
    let call_id = ringing_on_node_1(&mut a, &mut b, &bia).await;
    assert_eq!(
        state_of(n1, &bia, &call_id).await.as_deref(),
        Some("ringing")
    );

    doomed.kill();
    let took = within(DEATH, "the call is missed", async || {
        state_of(n1, &bia, &call_id).await.as_deref() == Some("missed")
    })
    .await;
    println!("a ringing call of a node killed with SIGKILL was missed after {took:?}");

    // Bia comes back on node 2 and is told once, whichever node swept the call.
    let mut back = connect(n2, &bia).await;
    let told = back.recv_type("calls.missed").await;
    let calls = told["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 1, "{told}");
    assert_eq!(calls[0]["call_id"], call_id.as_str());
    let mut again = connect(n1, &bia).await;
    again.expect_no("calls.missed").await;
    let log = log_of(n2, &bia).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["state"], "missed");
}

#[actix_web::test]
async fn a_running_call_outlives_the_node_that_ran_it_until_its_people_are_gone() {
    let Some(Orphaned {
        cluster,
        ana,
        bia,
        a1,
        b2,
        call_id,
    }) = CallOnProcess::orphaned(3_000).await
    else {
        return;
    };
    let n1 = cluster.node(0);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        state_of(n1, &ana, &call_id).await.as_deref(),
        Some("accepted"),
        "the call runs on while both are there"
    );
    // Both leave: the node that took the call over ends it in the log.
    a1.close_and_wait().await;
    b2.close_and_wait().await;
    let took = within(DEATH, "the call ended", async || {
        state_of(n1, &ana, &call_id).await.as_deref() == Some("ended")
    })
    .await;
    println!("a call of a dead node ended {took:?} after its people left");
    assert_eq!(log_of(n1, &bia).await.len(), 1);
}

/// Needs presence across nodes: B's only connections are on nodes 2 and 3.
#[actix_web::test]
async fn an_invitation_rings_every_device_of_the_callee_on_other_nodes() {
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    let (n1, n2, n3) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let (ana, bia) = (n1.user("ana").await, n1.user("bia").await);
    let mut a = connect(n1, &ana).await;
    let mut b2 = connect(n2, &bia).await;
    let mut b3 = connect(n3, &bia).await;
    within(
        Duration::from_secs(10),
        "node 1 sees bia online",
        async || a.presence_of(bia.id).await["status"] == "online",
    )
    .await;
    let ringing = invite(&mut a, 1, &bia).await;
    assert_eq!(ringing["type"], "call.ringing", "{ringing}");
    let call_id = ringing["call_id"].as_str().unwrap().to_owned();
    for b in [&mut b2, &mut b3] {
        assert_eq!(
            b.recv_type("call.incoming").await["call_id"],
            call_id.as_str()
        );
    }
    let accepted = b3
        .request(2, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    assert_eq!(accepted["type"], "call.accepted", "{accepted}");
    assert_eq!(
        a.recv_type("call.accepted").await["call_id"],
        call_id.as_str()
    );
    assert_eq!(
        b2.recv_type("call.answered_elsewhere").await["call_id"],
        call_id.as_str()
    );
    let room = accepted["room"].as_str().unwrap().to_owned();
    // Cid watches from node 3 while the two enter the call room on nodes 1 and 3.
    let cid = n1.user("cid").await;
    let mut c = connect(n3, &cid).await;
    a.join(&room).await;
    b3.join(&room).await;
    // Every presence frame Cid gets, applied in order: both end up in_call.
    let mut status: std::collections::HashMap<i64, String> = std::collections::HashMap::new();
    for u in c.snapshot["users"].as_array().into_iter().flatten() {
        status.insert(
            u["id"].as_i64().unwrap(),
            u["status"].as_str().unwrap().to_owned(),
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status.get(&ana.id).map(String::as_str) != Some("in_call")
        || status.get(&bia.id).map(String::as_str) != Some("in_call")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "a lobby on node 3 shows both in_call within 10 s: {status:?}"
        );
        let Some(frame) = c.recv_within(Duration::from_millis(200)).await else {
            continue;
        };
        let updates = match frame["type"].as_str() {
            Some("presence.update") => vec![frame.clone()],
            Some("presence.batch") => frame["updates"].as_array().cloned().unwrap_or_default(),
            _ => Vec::new(),
        };
        for u in updates {
            if let (Some(id), Some(s)) = (u["user_id"].as_i64(), u["status"].as_str()) {
                status.insert(id, s.to_owned());
            }
        }
    }
}

#[actix_web::test]
async fn a_connection_opened_on_another_node_while_a_call_rings_is_told_of_it() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let (n1, n2) = (cluster.node(0), cluster.node(1));
    let (ana, bia) = (n1.user("ana").await, n1.user("bia").await);
    let mut a = connect(n1, &ana).await;
    let mut b1 = connect(n1, &bia).await;
    let call_id = ringing_on_node_1(&mut a, &mut b1, &bia).await;
    // Bia opens the app on another device, served by node 2: it rings there too.
    let mut b2 = connect(n2, &bia).await;
    let incoming = b2.recv_type("call.incoming").await;
    assert_eq!(incoming["call_id"], call_id.as_str(), "{incoming}");
    assert_eq!(incoming["from"]["nickname"], "ana");
    assert_eq!(incoming["media"], "video");
    let accepted = b2
        .request(2, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    assert_eq!(accepted["type"], "call.accepted", "{accepted}");
    assert_eq!(incoming["room"], accepted["room"]);
    // Once answered (in the log), a new connection is not rung.
    within(
        Duration::from_secs(10),
        "the log says accepted",
        async || state_of(n1, &bia, &call_id).await.as_deref() == Some("accepted"),
    )
    .await;
    let mut b3 = connect(n2, &bia).await;
    b3.expect_no("call.incoming").await;
}

#[actix_web::test]
async fn a_participant_back_on_another_node_within_the_grace_stays_in_the_call() {
    let Some(cluster) = Cluster::start_with(2, |_, s| s.call_reconnect_grace_ms = 2_000).await
    else {
        return;
    };
    let (n1, n2) = (cluster.node(0), cluster.node(1));
    let (ana, bia) = (n1.user("ana").await, n1.user("bia").await);
    let mut a = connect(n1, &ana).await;
    let mut b = connect(n1, &bia).await;
    let call_id = ringing_on_node_1(&mut a, &mut b, &bia).await;
    let accepted = b
        .request(2, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    let room = accepted["room"].as_str().expect("room").to_owned();
    a.join(&room).await;
    b.join(&room).await;

    // Ana's network fails; node 1 holds her in the call for the grace. She comes back on
    // node 2 and enters the call's room there.
    a.vanish();
    let left = b.recv_type("room.peer_left").await;
    assert_eq!(left["dropped"], true, "{left}");
    let mut a2 = connect(n2, &ana).await;
    a2.join(&room).await;

    // Well past the grace the call still runs: node 1 knows she is back.
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    b.expect_no("call.ended").await;
    assert_eq!(
        state_of(n1, &bia, &call_id).await.as_deref(),
        Some("accepted")
    );
    let ack = a2
        .request(3, json!({"type": "call.hangup", "call_id": call_id}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(b.recv_type("call.ended").await["call_id"], call_id.as_str());
}

#[actix_web::test]
async fn calls_ring_and_run_on_through_a_redis_restart() {
    let Some(mut cluster) = Cluster::start(2).await else {
        return;
    };
    let (ana, bia, cid, dani) = (
        cluster.node(0).user("ana").await,
        cluster.node(0).user("bia").await,
        cluster.node(0).user("cid").await,
        cluster.node(0).user("dani").await,
    );
    let (mut a, mut b1, mut b2) = (
        connect(cluster.node(0), &ana).await,
        connect(cluster.node(0), &bia).await,
        connect(cluster.node(1), &bia).await,
    );
    let (mut c, mut d) = (
        connect(cluster.node(0), &cid).await,
        connect(cluster.node(0), &dani).await,
    );
    let ringing_id = ringing_on_node_1(&mut a, &mut b1, &bia).await;
    let running = invite(&mut c, 1, &dani).await;
    let running_id = running["call_id"].as_str().expect("call id").to_owned();
    d.recv_type("call.incoming").await;
    let accepted = d
        .request(2, json!({"type": "call.accept", "call_id": running_id}))
        .await;
    assert_eq!(accepted["type"], "call.accepted", "{accepted}");

    // Redis loses everything (every node's liveness key too): no node is taken for dead.
    cluster.redis.restart();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (n1, n2) = (cluster.node(0), cluster.node(1));
    assert_eq!(
        state_of(n1, &bia, &ringing_id).await.as_deref(),
        Some("ringing")
    );
    assert_eq!(
        state_of(n1, &cid, &running_id).await.as_deref(),
        Some("accepted")
    );
    // And the ringing call can still be answered from node 2.
    let accepted = b2
        .request(3, json!({"type": "call.accept", "call_id": ringing_id}))
        .await;
    assert_eq!(accepted["type"], "call.accepted", "{accepted}");
    assert_eq!(
        a.recv_type("call.accepted").await["call_id"],
        ringing_id.as_str()
    );
    within(
        Duration::from_secs(10),
        "the log says accepted",
        async || state_of(n2, &ana, &ringing_id).await.as_deref() == Some("accepted"),
    )
    .await;
}

#[actix_web::test]
async fn a_participant_on_another_node_brings_a_third_person_into_the_call() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let (n1, n2) = (cluster.node(0), cluster.node(1));
    let (ana, bia, cid) = (
        n1.user("ana").await,
        n1.user("bia").await,
        n1.user("cid").await,
    );
    let mut a = connect(n1, &ana).await;
    let mut b1 = connect(n1, &bia).await;
    let mut b2 = connect(n2, &bia).await;
    let mut c = connect(n1, &cid).await;
    let call_id = ringing_on_node_1(&mut a, &mut b1, &bia).await;
    let accepted = b2
        .request(2, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    let room = accepted["room"].as_str().expect("room").to_owned();
    b2.join(&room).await;

    // Bia, on node 2, invites Cid into the call that node 1 runs.
    let ringing = b2
        .request(
            3,
            json!({"type": "call.invite", "to": cid.id, "media": "video", "room": room}),
        )
        .await;
    assert_eq!(ringing["type"], "call.ringing", "{ringing}");
    assert_eq!(ringing["room"], room.as_str());
    let second = ringing["call_id"].as_str().expect("call id").to_owned();
    let incoming = c.recv_type("call.incoming").await;
    assert_eq!(incoming["call_id"], second.as_str());
    assert_eq!(incoming["room"], room.as_str());
    let joined = c
        .request(4, json!({"type": "call.accept", "call_id": second}))
        .await;
    assert_eq!(joined["type"], "call.accepted", "{joined}");
    // The inviter on node 2 hears the answer.
    assert_eq!(
        b2.recv_type("call.accepted").await["call_id"],
        second.as_str()
    );
    c.join(&room).await;
    within(Duration::from_secs(10), "both calls logged", async || {
        state_of(n2, &cid, &second).await.as_deref() == Some("accepted")
            && state_of(n2, &ana, &call_id).await.as_deref() == Some("accepted")
    })
    .await;
}

#[actix_web::test]
async fn an_answer_the_log_already_decided_otherwise_is_refused_on_the_node_that_runs_the_call() {
    use diesel::{Connection, RunQueryDsl};
    let Some(cluster) = Cluster::start_with(2, |_, s| s.ring_timeout_ms = 3_000).await else {
        return;
    };
    let n1 = cluster.node(0);
    let (ana, bia) = (n1.user("ana").await, n1.user("bia").await);
    let mut a = connect(n1, &ana).await;
    let mut b = connect(n1, &bia).await;
    let call_id = ringing_on_node_1(&mut a, &mut b, &bia).await;
    // Another node took node 1 for dead (cut off from Redis, say) and missed its call.
    let mut pg = diesel::PgConnection::establish(&n1.settings.database_url).expect("database");
    let moved = diesel::sql_query(
        "UPDATE calls SET state = 'missed', ended_at = 1 WHERE call_key = $1 AND state = 'ringing'",
    )
    .bind::<diesel::sql_types::Text, _>(&call_id)
    .execute(&mut pg)
    .expect("update");
    assert_eq!(moved, 1);

    // Node 1 still rings it, but an answer there now loses to the log ...
    let late = b
        .request(2, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    assert_eq!(late["code"], "conflict", "{late}");
    // ... and the ring deadline ends it as the log says, once.
    assert_eq!(
        a.recv_type("call.missed").await["call_id"],
        call_id.as_str()
    );
    a.expect_no("call.accepted").await;
    let log = log_of(n1, &ana).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["state"], "missed");
}

#[actix_web::test]
async fn a_call_of_a_drained_node_goes_on_elsewhere_and_ends_with_a_hang_up() {
    let Some(CallOnProcess {
        cluster,
        node: drained,
        ana,
        bia,
        mut a,
        mut b,
        call_id,
    }) = CallOnProcess::ringing("node-drained", 2_000).await
    else {
        return;
    };
    let n1 = cluster.node(0);
    let accepted = b
        .request(2, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    let room = accepted["room"].as_str().expect("room").to_owned();
    within(
        Duration::from_secs(10),
        "the log says accepted",
        async || state_of(n1, &bia, &call_id).await.as_deref() == Some("accepted"),
    )
    .await;

    within(
        Duration::from_secs(10),
        "node 1 sees the other node",
        async || crate::cluster::metric(n1, "tertulia_cluster_nodes").await == Some(2.0),
    )
    .await;

    // The node is drained (SIGTERM): its clients are sent away with 1001 ...
    drained.terminate();
    assert_eq!(a.expect_close().await, 1001);
    assert_eq!(b.expect_close().await, 1001);
    // ... and come back on node 1, into the same call.
    let mut a1 = connect(n1, &ana).await;
    let mut b1 = connect(n1, &bia).await;
    a1.join(&room).await;
    b1.join(&room).await;
    // Node 1 takes the call over (the drained node left the cluster: seen at its next
    // heartbeat, confirmed 5 s later), and keeps it while both are there, past the grace.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        state_of(n1, &ana, &call_id).await.as_deref(),
        Some("accepted")
    );
    let ack = a1
        .request(3, json!({"type": "call.hangup", "call_id": call_id}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let ended = b1.recv_type("call.ended").await;
    assert_eq!(ended["call_id"], call_id.as_str());
    assert_eq!(ended["by"]["id"], ana.id);
    within(Duration::from_secs(10), "the log says ended", async || {
        state_of(n1, &bia, &call_id).await.as_deref() == Some("ended")
    })
    .await;
    assert_eq!(log_of(n1, &ana).await.len(), 1);
}

/// Ana on node 1 and Bia on node 2, each seeing the other online (presence across nodes).
async fn apart(cluster: &Cluster) -> (TestUser, TestUser, WsClient, WsClient) {
    let (ana, bia, mut a, mut b) = cluster.two_apart("ana", "bia").await;
    within(
        Duration::from_secs(10),
        "each sees the other online",
        async || {
            a.presence_of(bia.id).await["status"] == "online"
                && b.presence_of(ana.id).await["status"] == "online"
        },
    )
    .await;
    (ana, bia, a, b)
}

/// Glare across nodes: Bia (node 2) calls Ana back while Ana's call (run by node 1) rings:
/// that is her answer, as on one node — one call, accepted, in the log once.
#[actix_web::test]
async fn an_invitation_crossing_a_ringing_one_of_another_node_accepts_it() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let (ana, bia, mut a, mut b) = apart(&cluster).await;
    let call_id = ringing_on_node_1(&mut a, &mut b, &bia).await;

    let reply = invite(&mut b, 7, &ana).await;
    assert_eq!(reply["type"], "call.accepted", "{reply}");
    assert_eq!(reply["call_id"], call_id.as_str());
    assert_eq!(
        a.recv_type("call.accepted").await["call_id"],
        call_id.as_str()
    );
    a.expect_no("call.incoming").await;
    let room = reply["room"].as_str().unwrap().to_owned();
    a.join(&room).await;
    b.join(&room).await;
    let log = log_of(cluster.node(1), &bia).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["state"], "accepted");
}

/// Glare across nodes with other media: refused, naming the ringing call's media, which
/// rings on for Bia to answer.
#[actix_web::test]
async fn a_crossing_invitation_of_another_node_with_other_media_is_refused() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let (ana, bia, mut a, mut b) = apart(&cluster).await;
    let call_id = ringing_on_node_1(&mut a, &mut b, &bia).await;
    let err = b
        .request(
            7,
            json!({"type": "call.invite", "to": ana.id, "media": "audio"}),
        )
        .await;
    assert_eq!(err["code"], "conflict", "{err}");
    assert!(err["message"].as_str().unwrap().contains("video"), "{err}");
    a.expect_no("call.incoming").await;
    let accepted = b
        .request(8, json!({"type": "call.accept", "call_id": call_id}))
        .await;
    assert_eq!(accepted["type"], "call.accepted", "{accepted}");
    assert_eq!(log_of(cluster.node(0), &ana).await.len(), 1);
}

/// Two people on two nodes calling each other at the same moment get one call: one
/// invitation rings, the other answers it, whichever node stored its call first.
#[actix_web::test]
async fn invitations_sent_at_the_same_moment_on_two_nodes_make_one_call() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let (ana, bia, mut a, mut b) = apart(&cluster).await;
    a.send(json!({"type": "call.invite", "id": 1, "to": bia.id, "media": "audio"}))
        .await;
    b.send(json!({"type": "call.invite", "id": 1, "to": ana.id, "media": "audio"}))
        .await;
    let (ra, rb) = futures_util::future::join(a.recv_reply(1), b.recv_reply(1)).await;
    let (ringing, first, answer) = if ra["type"] == "call.ringing" {
        (ra, &mut a, rb)
    } else {
        (rb, &mut b, ra)
    };
    assert_eq!(ringing["type"], "call.ringing", "{ringing}");
    assert_eq!(answer["type"], "call.accepted", "{answer}");
    assert_eq!(answer["call_id"], ringing["call_id"]);
    assert_eq!(
        first.recv_type("call.accepted").await["call_id"],
        ringing["call_id"]
    );
    within(
        Duration::from_secs(10),
        "one call in the log, accepted",
        async || {
            let log = log_of(cluster.node(0), &ana).await;
            log.len() == 1 && log[0]["state"] == "accepted"
        },
    )
    .await;
}

/// A hang-up of a running call whose node has just died — seen gone, not yet taken over by
/// another node — ends it at once: acknowledged, the other person hears `call.ended`, the
/// log says ended.
#[actix_web::test]
async fn a_hang_up_right_after_the_calls_node_died_ends_it_for_both() {
    hang_up_after_the_calls_node_died(true).await;
}

/// The same in the first seconds after the death, before the node's liveness key expires:
/// the hang-up goes to the dead node, which does not take it, and is answered all the same.
#[actix_web::test]
async fn a_hang_up_sent_to_a_node_that_just_died_is_answered_and_ends_the_call() {
    hang_up_after_the_calls_node_died(false).await;
}

/// Ana calls Bia on a process node, Bia answers on node 1 and both are in the call room
/// there when the process node is killed; Bia hangs up, once the dead node is seen gone
/// (`seen_gone`) or at once.
async fn hang_up_after_the_calls_node_died(seen_gone: bool) {
    let Some(Orphaned {
        cluster,
        ana,
        bia,
        mut a1,
        mut b2,
        call_id,
    }) = CallOnProcess::orphaned(60_000).await
    else {
        return;
    };
    let n1 = cluster.node(0);
    if seen_gone {
        // Once the dead node's liveness key is gone (and before a node takes its calls over).
        let mut redis = cluster.redis.connection().await;
        let key = format!("{}:alive:node-doomed", n1.settings.broker_prefix);
        within(DEATH, "the dead node's liveness key expired", async || {
            let n: i64 = redis::cmd("EXISTS")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .unwrap_or(1);
            n == 0
        })
        .await;
    }
    let hung_up = b2
        .request(3, json!({"type": "call.hangup", "call_id": call_id}))
        .await;
    assert_eq!(hung_up["type"], "ack", "{hung_up}");
    let ended = a1.recv_type("call.ended").await;
    assert_eq!(ended["call_id"], call_id.as_str());
    assert_eq!(ended["by"]["id"], bia.id);
    assert_eq!(state_of(n1, &ana, &call_id).await.as_deref(), Some("ended"));
}
