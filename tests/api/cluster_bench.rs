//! The load generator driving several nodes at once (issue 18): clients spread over every
//! `--url`, the ends of each pair and the members of each room on different nodes, and the
//! report's per-node figures. Brief runs on two in-process nodes; speed is never asserted.
//!
//! Whether messages and signals cross nodes is the broker's business, tested with the rooms
//! and presence; here a cross-node run must end within its deadlines and report what it
//! saw (loss included) as figures, while a same-node run on a cluster loses nothing.

use std::time::Duration;

use serde_json::Value;

use crate::{
    bench_smoke::{assert_every_signal_came_back, bench_at},
    cluster::{within, Cluster},
    helpers::TestApp,
};

/// Two nodes whose limits let one client drive them hard (as `bench_smoke`'s server).
async fn bench_cluster() -> Option<Cluster> {
    Cluster::start_with(2, |_, s| {
        s.login_attempts = 100_000;
        s.ws_rate_per_sec = 1_000_000;
        s.ws_rate_burst = 1_000_000;
    })
    .await
}

/// `--url` naming every node of `cluster`.
fn urls(cluster: &Cluster) -> String {
    cluster
        .nodes
        .iter()
        .map(|n| n.address.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The node's own count of open WebSocket connections (`/metrics`).
async fn ws_connections(node: &TestApp) -> f64 {
    let Ok(mut reply) = awc::Client::default()
        .get(format!("{}/metrics", node.address))
        .send()
        .await
    else {
        return -1.0;
    };
    let text = reply.body().await.unwrap_or_default();
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix("tertulia_ws_connections "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1.0)
}

/// Runs the bench in the background and returns its JSON line once it is done.
fn bench_in_background(
    urls: String,
    args: Vec<&'static str>,
) -> actix_web::rt::task::JoinHandle<Value> {
    actix_web::rt::spawn(async move { bench_at(&urls, &args).await })
}

#[actix_web::test]
async fn cluster_bench_connect_spreads_connections_over_every_node() {
    let Some(cluster) = bench_cluster().await else {
        return;
    };
    let run = bench_in_background(
        urls(&cluster),
        vec![
            "connect",
            "--conns",
            "6",
            "--conns-per-user",
            "2",
            "--hold-secs",
            "8",
        ],
    );
    // Seen by the nodes themselves while the bench holds its connections.
    within(
        Duration::from_secs(60),
        "three connections held on each node",
        async || {
            ws_connections(cluster.node(0)).await == 3.0
                && ws_connections(cluster.node(1)).await == 3.0
        },
    )
    .await;
    let r = run.await.expect("the bench's task");
    assert_eq!(r["nodes"], 2, "{r}");
    assert_eq!(r["connected"], 6, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["connected_by_node"], serde_json::json!([3, 3]), "{r}");
}

#[actix_web::test]
async fn cluster_bench_relay_and_chat_on_one_node_of_a_cluster_lose_nothing() {
    let Some(cluster) = bench_cluster().await else {
        return;
    };
    let urls = urls(&cluster);
    let r = bench_at(
        &urls,
        &[
            "relay",
            "--pairs",
            "2",
            "--duration",
            "1",
            "--rooms",
            "public",
            "--same-node",
        ],
    )
    .await;
    assert_eq!(r["nodes"], 2, "{r}");
    assert_eq!(r["placement"], "same-node", "{r}");
    assert_eq!(r["pairs_failed"], 0, "{r}");
    assert_every_signal_came_back(&r);

    let r = bench_at(
        &urls,
        &[
            "chat",
            "--rooms",
            "2",
            "--members",
            "2",
            "--duration",
            "1",
            "--same-node",
        ],
    )
    .await;
    assert_eq!(r["placement"], "same-node", "{r}");
    assert!(r["messages_acked"].as_u64().unwrap() > 0, "{r}");
    for key in [
        "unacked",
        "errors",
        "deliveries_lost",
        "deliveries_duplicated",
        "deliveries_out_of_order",
    ] {
        assert_eq!(r[key], 0, "{key}: {r}");
    }
}

#[actix_web::test]
async fn cluster_bench_across_nodes_ends_in_time_and_reports_what_crossed() {
    let Some(cluster) = bench_cluster().await else {
        return;
    };
    let urls = urls(&cluster);
    let r = bench_at(
        &urls,
        &[
            "relay",
            "--pairs",
            "2",
            "--duration",
            "1",
            "--rooms",
            "public",
            "--drain-secs",
            "2",
        ],
    )
    .await;
    assert_eq!(r["placement"], "cross-node", "{r}");
    assert_eq!(r["pairs_failed"], 0, "{r}");
    assert!(r["signals_sent"].as_u64().unwrap() > 0, "{r}");
    for key in ["lost", "duplicated", "reordered", "errors"] {
        assert!(r[key].is_u64(), "{key}: {r}");
    }
    println!(
        "relay across two nodes: {} sent, {} relayed, {} lost",
        r["signals_sent"], r["signals_relayed"], r["lost"]
    );

    let r = bench_at(
        &urls,
        &[
            "chat",
            "--rooms",
            "2",
            "--members",
            "2",
            "--duration",
            "1",
            "--drain-secs",
            "2",
        ],
    )
    .await;
    assert_eq!(r["placement"], "cross-node", "{r}");
    assert!(r["messages_acked"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["unexpected_acks"], 0, "{r}");
    assert!(r["deliveries_lost"].is_u64(), "{r}");
    println!(
        "chat across two nodes: {} acked, {} delivered, {} lost",
        r["messages_acked"], r["deliveries"], r["deliveries_lost"]
    );

    let r = bench_at(
        &urls,
        &[
            "lobby",
            "--users",
            "8",
            "--rate",
            "50",
            "--themes",
            "2",
            "--timeout-secs",
            "5",
            "--hold-secs",
            "0",
        ],
    )
    .await;
    assert_eq!(r["arrived"], 8, "{r}");
    let incomplete = r["incomplete_lobbies_by_node"]
        .as_array()
        .expect("incomplete lobbies per node");
    assert_eq!(incomplete.len(), 2, "{r}");
    let by_node = r["converged_after_last_arrival_s_by_node"]
        .as_array()
        .expect("convergence per node");
    assert_eq!(by_node.len(), 2, "{r}");
    for (converged, incomplete) in by_node.iter().zip(incomplete) {
        // A node's convergence is a time exactly when none of its lobbies stayed wrong.
        assert_eq!(converged.is_f64(), incomplete == 0, "{r}");
    }
    println!(
        "lobby of 8 over two nodes: converged after {} s per node, incomplete {}",
        r["converged_after_last_arrival_s_by_node"], r["incomplete_lobbies_by_node"]
    );
}

#[actix_web::test]
async fn cluster_bench_lobby_clients_of_a_killed_node_come_back_on_another() {
    let Some(cluster) = bench_cluster().await else {
        return;
    };
    let doomed = cluster.spawn_process("node-3");
    let urls = format!("{},{}", cluster.node(0).address, doomed.address);
    let kill = format!("kill -KILL {}", doomed.pid());
    let r = bench_at(
        &urls,
        &[
            "lobby",
            "--users",
            "8",
            "--rate",
            "50",
            "--themes",
            "2",
            "--timeout-secs",
            "3",
            "--hold-secs",
            "0",
            "--restart-cmd",
            &kill,
            "--storm-timeout-secs",
            "60",
        ],
    )
    .await;
    // The four clients of the killed node, and only they, reconnected (to the other node).
    assert_eq!(r["arrived"], 8, "{r}");
    assert_eq!(r["dropped"], 0, "{r}");
    assert_eq!(r["storm_reconnected"], 4, "{r}");
    assert!(r["storm_all_back_s"].is_f64(), "{r}");
    assert!(r["storm_every_lobby_right_s"].is_f64(), "{r}");
    println!(
        "a node killed under a lobby of 8: its clients back on the other after {} s, every lobby right after {} s",
        r["storm_all_back_s"], r["storm_every_lobby_right_s"]
    );
}
