//! `chat`: members of many rooms send messages in a closed loop; every ack and every
//! delivery is checked.
//!
//! Each member keeps `--window` `chat.send`s waiting for their `ack`. An ack must answer a
//! message that is waiting (else: unexpected), and each sender's `msg_id`s must grow. Every
//! acknowledged message must then reach every member of its room as `chat.message`
//! (the sender included): deliveries that never come are counted as lost.
//!
//! With several nodes (`--url` repeated) neighbouring members of each room are on different
//! nodes, so messages cross the broker; `--same-node` keeps each room on one node for the
//! reference figures, and deliveries out of `msg_id` order are counted too.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use futures_util::future::try_join_all;
use serde_json::json;
use tokio::{
    sync::watch,
    time::{sleep, sleep_until, Instant},
};

use crate::{
    http::Nodes,
    report::{micros, per_sec, Report},
    run_tag, users,
    ws::{self, Conn, Frame},
    BenchError, BenchResult, Cli, CpuMeter,
};

/// `tertulia-bench chat`
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// Rooms (public channels named after the run).
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// Members per room, each a user of its own, each sending (the server caps a room at
    /// `--room-member-cap`, 6 by default).
    #[arg(long, default_value_t = 2)]
    pub members: usize,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Messages waiting for their ack per member.
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Length of each message's text.
    #[arg(long, default_value_t = 100)]
    pub text_bytes: usize,
    /// Seconds to wait, once sending stops, for the last acks and deliveries.
    #[arg(long, default_value_t = 5.0)]
    pub drain_secs: f64,
    /// With several `--url`s: every member of a room on one node (the rooms still spread
    /// over the nodes), so no message crosses the broker: the same-node reference beside the
    /// default, where neighbouring members of each room are on different nodes.
    #[arg(long)]
    pub same_node: bool,
}

/// Counters the members share with the coordinator, so it knows when nothing is in flight.
#[derive(Default)]
struct Shared {
    /// Messages acknowledged, per room.
    acked: Vec<AtomicU64>,
    /// Deliveries received, all members together.
    delivered: AtomicU64,
    /// Members that stopped sending and have no ack outstanding.
    settled: AtomicU64,
}

/// One member's figures.
#[derive(Default)]
struct Member {
    sent: u64,
    acked: u64,
    acked_in_window: u64,
    unexpected_acks: u64,
    acks_out_of_order: u64,
    errors: u64,
    first_error: Option<String>,
    delivered: u64,
    duplicate_deliveries: u64,
    /// Deliveries whose `msg_id` is not above the last one this member was delivered in its
    /// room (a room's messages must reach every member in increasing `msg_id`, from any node).
    deliveries_out_of_order: u64,
    ack_latency: Vec<u32>,
}

/// Runs the workload.
pub async fn run(cli: &Cli, nodes: &Nodes, args: &ChatArgs) -> BenchResult<Report> {
    if args.rooms == 0 || args.members == 0 || args.window == 0 || args.duration <= 0.0 {
        return Err(BenchError::Protocol(
            "--rooms, --members, --window and --duration must be positive".to_owned(),
        ));
    }
    let users = users::prepare(cli, nodes.first(), args.rooms * args.members).await?;
    let tag = run_tag();
    let conns = try_join_all(users.iter().enumerate().map(|(i, user)| {
        let room = format!("bench-{tag}-c{}", i / args.members);
        // Member i on node i mod n, so neighbouring members of a room are on different
        // nodes; or with --same-node every member on the room's node.
        let target = if args.same_node {
            nodes.of(i / args.members)
        } else {
            nodes.of(i)
        };
        async move {
            let mut conn = ws::connect(target, user).await?;
            conn.join(&room, 1).await?;
            BenchResult::Ok((i / args.members, room, conn))
        }
    }))
    .await?;

    let shared = Arc::new(Shared {
        acked: (0..args.rooms).map(|_| AtomicU64::new(0)).collect(),
        ..Shared::default()
    });
    let (stop_tx, stop) = watch::channel(false);
    let text: String = "olá tertulia "
        .chars()
        .cycle()
        .take(args.text_bytes.max(1))
        .collect();
    let start = Instant::now() + Duration::from_millis(50);
    let cpu = CpuMeter::start(&cli.server_pid);
    let duration = Duration::from_secs_f64(args.duration);
    let deadline = start + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, (room_index, room, conn))| {
            let plan = Plan {
                room_index,
                room,
                prefix: format!("{tag}-{i}"),
                text: text.clone(),
                window: args.window,
                start,
                deadline,
            };
            tokio::spawn(member(conn, plan, Arc::clone(&shared), stop.clone()))
        })
        .collect();

    // Wait until every member settled and every acked message reached every member.
    let give_up = deadline + Duration::from_secs_f64(args.drain_secs);
    sleep_until(deadline).await;
    let members = (args.rooms * args.members) as u64;
    while Instant::now() < give_up {
        let expected: u64 = shared
            .acked
            .iter()
            .map(|a| a.load(Ordering::Relaxed) * args.members as u64)
            .sum();
        if shared.settled.load(Ordering::Relaxed) == members
            && shared.delivered.load(Ordering::Relaxed) >= expected
        {
            break;
        }
        sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);

    let mut total = Member::default();
    for task in tasks {
        let m = task
            .await
            .map_err(|e| BenchError::Protocol(format!("a member's task failed: {e}")))??;
        total.sent += m.sent;
        total.acked += m.acked;
        total.acked_in_window += m.acked_in_window;
        total.unexpected_acks += m.unexpected_acks;
        total.acks_out_of_order += m.acks_out_of_order;
        total.errors += m.errors;
        total.delivered += m.delivered;
        total.duplicate_deliveries += m.duplicate_deliveries;
        total.deliveries_out_of_order += m.deliveries_out_of_order;
        if total.first_error.is_none() {
            total.first_error = m.first_error;
        }
        total.ack_latency.extend_from_slice(&m.ack_latency);
    }
    let cpu = cpu.stop();
    let expected_deliveries: u64 = shared
        .acked
        .iter()
        .map(|a| a.load(Ordering::Relaxed) * args.members as u64)
        .sum();

    let mut report = Report::new("chat");
    report
        .add("rooms", args.rooms)
        .add("members_per_room", args.members)
        .add("window", args.window)
        .add("duration_s", args.duration)
        .add("messages_sent", total.sent)
        .add("messages_acked", total.acked)
        .add_target(
            "acked_per_sec",
            per_sec(total.acked_in_window, duration),
            ">= 20000 (100 rooms)",
        )
        .add_target("unacked", total.sent - total.acked, "0")
        .add_target("unexpected_acks", total.unexpected_acks, "0")
        .add("acks_out_of_order", total.acks_out_of_order)
        .add_target("errors", total.errors, "0")
        .add("deliveries", total.delivered)
        .add_target(
            "deliveries_lost",
            expected_deliveries.saturating_sub(total.delivered),
            "0",
        )
        .add_target("deliveries_duplicated", total.duplicate_deliveries, "0");
    if nodes.several() {
        report
            .add("placement", Nodes::placement(args.same_node))
            .add_target(
                "deliveries_out_of_order",
                total.deliveries_out_of_order,
                "0",
            );
    }
    if let Some(first) = &total.first_error {
        report.add("first_error", first.as_str());
    }
    cpu.add_to(&mut report, total.acked, "message");
    report.add_latency("ack", &mut total.ack_latency, ["-", "-", "-"]);
    Ok(report)
}

/// What one member does.
struct Plan {
    room_index: usize,
    room: String,
    /// Prefix of this member's `client_msg_id`s (unique per run and member).
    prefix: String,
    text: String,
    window: usize,
    start: Instant,
    deadline: Instant,
}

/// One member: sends while the run lasts, checks acks, counts deliveries until stopped.
async fn member(
    mut conn: Conn,
    plan: Plan,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> BenchResult<Member> {
    let mut me = Member::default();
    // Message id → when it was sent.
    let mut pending: HashMap<u64, Instant> = HashMap::new();
    let mut last_msg_id = 0i64;
    let mut last_delivered = 0i64;
    let mut seen: HashSet<i64> = HashSet::new();
    let mut settled = false;
    sleep_until(plan.start).await;
    for _ in 0..plan.window {
        send(&mut conn, &plan, &mut me, &mut pending).await?;
    }
    loop {
        if !settled && pending.is_empty() && Instant::now() >= plan.deadline {
            settled = true;
            shared.settled.fetch_add(1, Ordering::Relaxed);
        }
        let frame = tokio::select! {
            frame = conn.next_frame() => match frame? {
                Some(frame) => frame,
                None => break,
            },
            _ = sleep_until(plan.deadline), if !settled && pending.is_empty() => continue,
            _ = stop.changed() => break,
        };
        match frame.kind.as_str() {
            "ack" => {
                let now = Instant::now();
                let Some(sent_at) = frame.id.and_then(|id| pending.remove(&id)) else {
                    me.unexpected_acks += 1;
                    continue;
                };
                me.ack_latency
                    .push(micros(now.saturating_duration_since(sent_at)));
                me.acked += 1;
                if now < plan.deadline {
                    me.acked_in_window += 1;
                }
                let msg_id = frame.msg_id.unwrap_or(0);
                if msg_id <= last_msg_id {
                    me.acks_out_of_order += 1;
                }
                last_msg_id = last_msg_id.max(msg_id);
                shared.acked[plan.room_index].fetch_add(1, Ordering::Relaxed);
                if now < plan.deadline {
                    send(&mut conn, &plan, &mut me, &mut pending).await?;
                }
            }
            "chat.message" if frame.room.as_deref() == Some(plan.room.as_str()) => {
                let msg_id = frame.msg_id.unwrap_or(0);
                if seen.insert(msg_id) {
                    if msg_id <= last_delivered {
                        me.deliveries_out_of_order += 1;
                    }
                    last_delivered = last_delivered.max(msg_id);
                    me.delivered += 1;
                    shared.delivered.fetch_add(1, Ordering::Relaxed);
                } else {
                    me.duplicate_deliveries += 1;
                }
            }
            "error" => error(&frame, &mut me, &mut pending),
            _ => {}
        }
    }
    conn.close().await;
    Ok(me)
}

/// Sends the next message.
async fn send(
    conn: &mut Conn,
    plan: &Plan,
    me: &mut Member,
    pending: &mut HashMap<u64, Instant>,
) -> BenchResult<()> {
    let id = me.sent + 1;
    let frame = json!({
        "type": "chat.send",
        "id": id,
        "room": plan.room,
        "client_msg_id": format!("{}-{id}", plan.prefix),
        "text": plan.text,
    });
    pending.insert(id, Instant::now());
    me.sent += 1;
    conn.send(frame.to_string()).await
}

/// An `error` frame: counted; the message it answers is no longer waiting.
fn error(frame: &Frame, me: &mut Member, pending: &mut HashMap<u64, Instant>) {
    me.errors += 1;
    me.first_error.get_or_insert_with(|| frame.describe());
    if let Some(id) = frame.id {
        pending.remove(&id);
    }
}
