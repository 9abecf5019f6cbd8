//! `connect`: authenticated lobby connections as fast as possible, then held idle.
//!
//! A connection counts once the server's `welcome` arrived (authentication and the upgrade
//! done, the session registered). Connections/s runs from the first attempt to the last
//! welcome. With `--server-pid` the server's resident memory is read before and after (once
//! the connections have been idle for `--hold-secs`), giving its memory per connection.

use std::{sync::Arc, time::Duration};

use tokio::{
    sync::{mpsc, watch, Semaphore},
    time::Instant,
};

use crate::{
    http::Nodes,
    report::{per_sec, Report},
    run_tag, server_rss_kib, users, ws, BenchError, BenchResult, Cli, CpuMeter,
};

/// `tertulia-bench connect`
#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// Connections to open (stay below the open-file limits of both processes).
    #[arg(long, default_value_t = 15_000)]
    pub conns: usize,
    /// Connections per user (the server allows `--ws-max-conns-per-user`, 8 by default).
    #[arg(long, default_value_t = 8)]
    pub conns_per_user: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Seconds to hold the connections idle before reading the server's memory.
    #[arg(long, default_value_t = 3.0)]
    pub hold_secs: f64,
    /// Connect to a bare relay (`tertulia-bench bare-server` at `--url`) instead of a
    /// Tertulia server: plain WebSocket handshakes, no login, no session, no `welcome`.
    /// The machine's reference for the handshake rate and an idle connection's memory.
    #[arg(long)]
    pub bare: bool,
}

/// What one connection's task reports.
enum Event {
    /// Welcomed by this node (its index in `--url`).
    Connected(usize),
    Failed(String),
}

/// Runs the workload.
pub async fn run(cli: &Cli, nodes: &Nodes, args: &ConnectArgs) -> BenchResult<Report> {
    if args.conns == 0 || args.conns_per_user == 0 {
        return Err(BenchError::Protocol(
            "--conns and --conns-per-user must be positive".to_owned(),
        ));
    }
    let user_count = args.conns.div_ceil(args.conns_per_user);
    let users = if args.bare {
        Vec::new()
    } else {
        users::prepare(cli, nodes.first(), user_count).await?
    };
    let tag = run_tag();
    // Let the server settle after the logins before the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server_rss_kib(&cli.server_pid);

    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let started = Instant::now();
    let cpu = CpuMeter::start(&cli.server_pid);
    let mut tasks = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let user = users.get(i % user_count).cloned();
        // On a bare relay each connection is the first end of a pair of its own (an empty
        // string, which allocates nothing, otherwise).
        let bare_path = if args.bare {
            format!("/conn-{tag}-{i}/a")
        } else {
            String::new()
        };
        // Connection i on node i mod n (round robin, as every workload).
        let (node, target) = (nodes.index_of(i), nodes.of(i).clone());
        let permits = Arc::clone(&permits);
        let events = events_tx.clone();
        let mut stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let permit = permits.acquire_owned().await;
            let conn = match &user {
                Some(user) => ws::connect(&target, user).await,
                None => ws::connect_bare(&target, &bare_path, "a").await,
            };
            let mut conn = match conn {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = events.send(Event::Failed(e.to_string()));
                    return (0, 0, false);
                }
            };
            drop(permit);
            let _ = events.send(Event::Connected(node));
            // Hold: keep reading (presence updates) so the server never sees a slow reader.
            let dropped = loop {
                tokio::select! {
                    frame = conn.next_frame() => match frame {
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break true,
                    },
                    _ = stop.changed() => break false,
                }
            };
            let (frames, bytes) = (conn.frames_in, conn.bytes_in);
            if !dropped {
                conn.close().await;
            }
            (frames, bytes, dropped)
        }));
    }
    drop(events_tx);

    let mut connected = 0u64;
    let mut connected_by_node = vec![0u64; nodes.len()];
    let mut failed = 0u64;
    let mut first_failure = None;
    let mut last = started;
    while let Some(event) = events.recv().await {
        match event {
            Event::Connected(node) => {
                connected += 1;
                connected_by_node[node] += 1;
                last = Instant::now();
            }
            Event::Failed(why) => {
                failed += 1;
                first_failure.get_or_insert(why);
            }
        }
        if connected + failed == args.conns as u64 {
            break;
        }
    }
    let connect_time = last.duration_since(started);
    let cpu = cpu.stop();
    tokio::time::sleep(Duration::from_secs_f64(args.hold_secs)).await;
    let rss_after = server_rss_kib(&cli.server_pid);
    let _ = stop_tx.send(true);

    let mut frames = 0u64;
    let mut bytes = 0u64;
    let mut dropped = 0u64;
    for task in tasks {
        let (f, b, d) = task
            .await
            .map_err(|e| BenchError::Protocol(format!("a connection's task failed: {e}")))?;
        frames += f;
        bytes += b;
        dropped += u64::from(d);
    }

    let mut report = Report::new("connect");
    report
        .add("conns", args.conns)
        .add("server", if args.bare { "bare relay" } else { "tertulia" })
        .add("users", if args.bare { 0 } else { user_count })
        .add("concurrency", args.concurrency)
        .add("connected", connected)
        .add_target("failed", failed, "0")
        .add_target("dropped_while_idle", dropped, "0")
        .add("connect_s", connect_time.as_secs_f64())
        .add_target(
            "conns_per_sec",
            per_sec(connected, connect_time),
            ">= 10000",
        )
        .add("frames_per_conn", frames as f64 / args.conns as f64)
        .add("bytes_per_conn", bytes as f64 / args.conns as f64);
    if nodes.several() {
        report.add("connected_by_node", connected_by_node);
    }
    if let Some(why) = first_failure {
        report.add("first_failure", why);
    }
    cpu.add_to(&mut report, connected, "conn");
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        report
            .add("server_rss_before_kib", before)
            .add_target("server_rss_after_kib", after, "<= 307200 for 15,000")
            .add_target(
                "server_rss_per_conn_kib",
                (after.saturating_sub(before)) as f64 / connected.max(1) as f64,
                "<= 16",
            );
    }
    Ok(report)
}
