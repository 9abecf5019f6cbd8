//! The chat fault test of issue 18: about 10,000 messages in 50 rooms across 3 nodes, one
//! node killed with SIGKILL and Redis restarted while they flow; the members of the
//! surviving nodes lose and repeat nothing that was acknowledged, each getting every stored
//! message of its rooms once, in increasing `msg_id`, as the database lists them.

use std::time::Instant;

use crate::cluster_rooms::{
    collect_acks, everyone_got_the_stored, extend_sent, fast_cluster, members_on, redis_down,
    send_round, Acked, Sent, FAST_PROCESS_FLAGS,
};

/// The rooms of the storm.
const ROOMS: usize = 50;
/// Users connected to each node; user `k` of a node is in rooms `k * 25 .. k * 25 + 25`,
/// so every room has exactly one member on each node (a connection may be in 32 rooms).
const USERS_PER_NODE: usize = 2;
/// Messages each member sends to each of its rooms in a whole round (half in a half round).
const PER_ROOM: usize = 22;

/// The rooms of member `u` (the `k`-th user of its node).
fn rooms_of(u: usize) -> Vec<String> {
    let per_user = ROOMS / USERS_PER_NODE;
    let k = u % USERS_PER_NODE;
    (k * per_user..(k + 1) * per_user)
        .map(|r| format!("sala-{r:02}"))
        .collect()
}

/// How many messages `sent` holds.
fn count(sent: &Sent) -> usize {
    sent.iter().map(Vec::len).sum()
}

/// The sum of `tertulia_chat_caught_up_total` over `nodes`.
async fn caught_up(nodes: &[crate::helpers::TestApp]) -> f64 {
    let mut sum = 0.0;
    for node in nodes {
        sum += crate::cluster::metric(node, "tertulia_chat_caught_up_total")
            .await
            .expect("tertulia_chat_caught_up_total in /metrics");
    }
    sum
}

#[actix_web::test]
async fn ten_thousand_messages_in_fifty_rooms_on_three_nodes_survive_a_node_kill_and_a_redis_restart(
) {
    let Some(mut cluster) = fast_cluster(2).await else {
        return;
    };
    let started = Instant::now();
    let third = cluster.spawn_process_with("node-3", &FAST_PROCESS_FLAGS);
    let ports = [cluster.node(0).port, cluster.node(1).port, third.port];
    let homes: Vec<u16> = ports.iter().flat_map(|&p| [p; USERS_PER_NODE]).collect();
    let rooms: Vec<Vec<String>> = (0..homes.len()).map(rooms_of).collect();
    let mut clients = members_on(&cluster, &homes, &rooms).await;
    let survivors = 2 * USERS_PER_NODE;
    let mut total_sent = 0;

    // A round from everyone before the faults, all of it acknowledged.
    let mut acked = Acked::new();
    let sent = send_round(&mut clients, &rooms, 0, PER_ROOM).await;
    total_sent += count(&sent);
    collect_acks(&mut clients, sent, &mut acked).await;
    // Half a round from everyone in two parts: node 3 acknowledges its members' first
    // message of the first part (so part of it is stored), and is killed with SIGKILL as
    // soon as the second part is sent (so part of it is in flight). The others finish the
    // round.
    let mut sent = send_round(&mut clients, &rooms, 1, PER_ROOM / 4).await;
    let first: Sent = sent[survivors..].iter().map(|s| s[..1].to_vec()).collect();
    collect_acks(&mut clients[survivors..], first, &mut acked).await;
    extend_sent(
        &mut sent,
        send_round(&mut clients, &rooms, 6, PER_ROOM / 4).await,
    );
    third.kill();
    total_sent += count(&sent);
    println!("node 3 killed with SIGKILL");
    let dead = clients.split_off(survivors);
    let mut sent: Sent = sent.into_iter().take(survivors).collect();
    let rooms = &rooms[..survivors];
    let more = send_round(&mut clients, rooms, 2, PER_ROOM / 2).await;
    total_sent += count(&more);
    extend_sent(&mut sent, more);
    // Half a round, Redis dies (every node sees it gone), the other half, Redis is back.
    let more = send_round(&mut clients, rooms, 3, PER_ROOM / 2).await;
    total_sent += count(&more);
    extend_sent(&mut sent, more);
    redis_down(&mut cluster).await;
    let more = send_round(&mut clients, rooms, 4, PER_ROOM / 2).await;
    total_sent += count(&more);
    extend_sent(&mut sent, more);
    cluster.redis.restart();
    let restarted = Instant::now();
    println!("Redis restarted");
    // A round after the faults.
    let more = send_round(&mut clients, rooms, 5, PER_ROOM).await;
    total_sent += count(&more);
    extend_sent(&mut sent, more);
    let last_sent = Instant::now();

    collect_acks(&mut clients, sent, &mut acked).await;
    // Node 3's members' acks before it died count: what they were told is stored must
    // reach the others too.
    let tally = everyone_got_the_stored(&mut clients, rooms, acked, false).await;
    println!(
        "{total_sent} messages sent in {ROOMS} rooms by {} members on 3 nodes; {} acknowledged \
         (node 3's before it died included); {} stored; {} delivered to them, \
         each once and in msg_id order ({} caught up from the database); every member had all \
         {:?} after Redis came back ({:?} after the last message was sent); {:?} in all",
        survivors + dead.len(),
        tally.acked,
        tally.stored,
        tally.delivered,
        caught_up(&cluster.nodes).await,
        tally.all_in - restarted,
        tally.all_in - last_sent,
        started.elapsed(),
    );
    assert!(tally.stored >= tally.acked);
    drop(dead);
}
