//! `relay`: pairs of peers bounce ICE-candidate-like `signal`s through the server.
//!
//! In each pair the initiator A sends `signal`s to B, each carrying a sequence number in its
//! `data`; B sends every one straight back. Closed loop (the default) keeps `--window`
//! signals in flight per pair and measures the most the server relays; open loop (`--rate`)
//! sends at a fixed pace and times each round trip from the moment the signal was written; a
//! stalled server cannot slow the pace, and how late each send was against its schedule
//! (`send_lag`) is reported so a generator that fell behind is seen. Both ends check the
//! sequence numbers: lost, duplicated and reordered signals are counted, never hidden.
//!
//! With several nodes (`--url` repeated) A and B of each pair are on different nodes, so
//! every signal crosses the broker twice per round trip; `--same-node` keeps both ends of a
//! pair on one node for the reference figures.

use std::{
    collections::{HashSet, VecDeque},
    time::Duration,
};

use futures_util::future::{join_all, try_join_all};
use serde_json::json;
use tokio::{
    sync::oneshot,
    time::{sleep_until, Instant},
};

use crate::{
    http::{Nodes, Target},
    report::{micros, per_sec, Latency, Report},
    run_tag, users,
    ws::{self, Conn, Frame},
    BenchError, BenchResult, Cli, CpuMeter,
};

/// `tertulia-bench relay`
#[derive(Debug, clap::Args)]
pub struct RelayArgs {
    /// Pairs of peers, each pair in its own room.
    #[arg(long, default_value_t = 50)]
    pub pairs: usize,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Open loop: signals per second sent by the initiators, all pairs together (each is
    /// relayed twice: there and back). Without it: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Closed loop: signals in flight per pair.
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Size of each signal's `data`, in bytes.
    #[arg(long, default_value_t = 500)]
    pub payload_bytes: usize,
    /// Rooms the pairs meet in: call rooms reached by `call.invite` / `call.accept`, or
    /// public channels.
    #[arg(long, value_enum, default_value_t = RoomKind::Call)]
    pub rooms: RoomKind,
    /// Seconds to wait for signals still in flight once sending stops.
    #[arg(long, default_value_t = 5.0)]
    pub drain_secs: f64,
    /// The generator never sleeps: it polls its sockets and the clock in a loop (its core
    /// stays busy). Its own wake-up from idle (tens of µs on a VM, twice per round trip)
    /// then stays out of the measured round trips, and open-loop sends leave at their
    /// scheduled microsecond instead of on the timer's millisecond grid.
    #[arg(long)]
    pub busy_poll: bool,
    /// Relay through a bare relay (`tertulia-bench bare-server` at `--url`) instead of a
    /// Tertulia server: no users, no login, no rooms; the same frames and checks. Gives the
    /// machine's ceiling to read Tertulia's figures against.
    #[arg(long)]
    pub bare: bool,
    /// With several `--url`s: both ends of each pair on one node (the pairs still spread
    /// over the nodes), so no signal crosses the broker: the same-node reference beside the
    /// default, where the two ends of every pair are on different nodes.
    #[arg(long)]
    pub same_node: bool,
}

/// Where a pair meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoomKind {
    /// A call room (`call:<id>`), as a real video call.
    Call,
    /// A public channel named after the run.
    Public,
}

/// Runs the workload.
pub async fn run(cli: &Cli, nodes: &Nodes, args: &RelayArgs) -> BenchResult<Report> {
    if args.pairs == 0 || args.window == 0 || args.duration <= 0.0 {
        return Err(BenchError::Protocol(
            "--pairs, --window and --duration must be positive".to_owned(),
        ));
    }
    let tag = run_tag();
    // With several nodes a pair that cannot be set up (a call that does not ring across
    // nodes, say) is a figure of the report, not the end of the run.
    let mut setup_failed = 0usize;
    let mut first_setup_error = None;
    let pairs = if args.bare {
        try_join_all((0..args.pairs).map(|i| bare_pair(nodes.of(i), &tag, i))).await?
    } else {
        let users = users::prepare(cli, nodes.first(), args.pairs * 2).await?;
        let setups = users.chunks(2).enumerate().map(|(i, two)| {
            // Clients 2i and 2i+1: on neighbouring nodes, or both on pair i's node.
            let (a, b) = if args.same_node {
                (nodes.of(i), nodes.of(i))
            } else {
                (nodes.of(2 * i), nodes.of(2 * i + 1))
            };
            setup_pair((a, b), (&two[0], &two[1]), args.rooms, &tag, i)
        });
        if nodes.several() {
            let mut pairs = Vec::with_capacity(args.pairs);
            for setup in join_all(setups).await {
                match setup {
                    Ok(pair) => pairs.push(pair),
                    Err(e) => {
                        setup_failed += 1;
                        first_setup_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            pairs
        } else {
            try_join_all(setups).await?
        }
    };

    let duration = Duration::from_secs_f64(args.duration);
    let drain = Duration::from_secs_f64(args.drain_secs);
    let start = Instant::now() + Duration::from_millis(50);
    let deadline = start + duration;
    let cpu = CpuMeter::start(&cli.server_pid);
    let spinner = args
        .busy_poll
        .then(|| tokio::spawn(spin_until(deadline + drain)));
    let mut tasks = Vec::with_capacity(pairs.len());
    for (i, pair) in pairs.into_iter().enumerate() {
        let plan = match args.rate {
            Some(rate) => {
                let period = Duration::from_secs_f64(args.pairs as f64 / rate);
                Plan::Open {
                    first: start + period.mul_f64(i as f64 / args.pairs as f64),
                    period,
                }
            }
            None => Plan::Closed {
                window: args.window,
            },
        };
        let (a_frame, b_frame) = templates(&pair, args.payload_bytes);
        let (stop_tx, stop_rx) = oneshot::channel();
        let b = tokio::spawn(echoer(pair.b, b_frame, deadline, stop_rx));
        let a = tokio::spawn(initiator(
            pair.a,
            a_frame,
            plan,
            Schedule {
                start,
                deadline,
                give_up: deadline + drain,
                busy_poll: args.busy_poll,
            },
            stop_tx,
        ));
        tasks.push((a, b));
    }

    let mut total = Totals::default();
    for (a, b) in tasks {
        let a = a.await.map_err(join_error)??;
        let b = b.await.map_err(join_error)??;
        total.add(&a, &b);
    }
    let cpu = cpu.stop();
    if let Some(spinner) = spinner {
        spinner.abort();
    }

    let mut report = Report::new("relay");
    report
        .add(
            "mode",
            if args.rate.is_some() {
                "open"
            } else {
                "closed"
            },
        )
        .add(
            "rooms",
            if args.bare {
                "bare relay".to_owned()
            } else {
                format!("{:?}", args.rooms).to_lowercase()
            },
        )
        .add("pairs", args.pairs)
        .add("duration_s", args.duration)
        .add("payload_bytes", args.payload_bytes)
        .add("busy_poll", args.busy_poll);
    if nodes.several() && !args.bare {
        report
            .add("placement", Nodes::placement(args.same_node))
            .add_target("pairs_failed", setup_failed, "0");
        if let Some(first) = &first_setup_error {
            report.add("first_setup_error", first.as_str());
        }
    }
    match args.rate {
        Some(rate) => report.add("rate_per_sec", rate),
        None => report.add("window", args.window),
    };
    report
        .add("signals_sent", total.sent)
        .add("signals_relayed", total.received)
        .add_target(
            "relayed_per_sec",
            per_sec(total.received_in_window, duration),
            ">= 100000 closed loop, 50 pairs",
        )
        .add_target("lost", total.lost, "0")
        .add_target("duplicated", total.duplicated, "0")
        .add_target("reordered", total.reordered, "0")
        .add("errors", total.errors);
    if let Some(first) = &total.first_error {
        report.add("first_error", first.as_str());
    }
    cpu.add_to(&mut report, total.received, "signal");
    report.add_latency(
        "rtt",
        &mut total.rtt,
        ["<= 0.3 (open loop)", "<= 2 (open loop)", "-"],
    );
    if args.rate.is_some() {
        let lag = Latency::of(&mut total.send_lag);
        report
            .add("send_lag_p99_ms", f64::from(lag.p99) / 1000.0)
            .add("send_lag_max_ms", f64::from(lag.max) / 1000.0);
    }
    Ok(report)
}

fn join_error(e: tokio::task::JoinError) -> BenchError {
    BenchError::Protocol(format!("a pair's task failed: {e}"))
}

/// Two welcomed connections in one room.
struct Pair {
    a: Conn,
    b: Conn,
    room: String,
}

/// Connects A and B (each to its node) and brings them into one room.
async fn setup_pair(
    (node_a, node_b): (&Target, &Target),
    (user_a, user_b): (&users::BenchUser, &users::BenchUser),
    kind: RoomKind,
    tag: &str,
    index: usize,
) -> BenchResult<Pair> {
    let mut a = ws::connect(node_a, user_a).await?;
    let mut b = ws::connect(node_b, user_b).await?;
    let room = match kind {
        RoomKind::Public => format!("bench-{tag}-p{index}"),
        RoomKind::Call => {
            // With several nodes, B's node tells A's that B is online on its next presence
            // tick: until then A's node answers `unavailable` (B is not in A's lobby yet,
            // where a person would find them). Invite again until it rings.
            let give_up = std::time::Instant::now() + ws::SETUP_TIMEOUT;
            let mut id = 100;
            let ringing = loop {
                a.send(
                    json!({"type": "call.invite", "id": id, "to": b.user_id, "media": "video"})
                        .to_string(),
                )
                .await?;
                match a
                    .expect(|f| f.kind == "call.ringing" && f.id == Some(id))
                    .await
                {
                    Err(BenchError::Protocol(e))
                        if e.starts_with("error unavailable")
                            && std::time::Instant::now() < give_up =>
                    {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        id += 1;
                    }
                    other => break other?,
                }
            };
            let call_id = ringing
                .call_id
                .ok_or_else(|| BenchError::Protocol("call.ringing without call_id".to_owned()))?;
            b.expect(|f| f.kind == "call.incoming" && f.call_id.as_ref() == Some(&call_id))
                .await?;
            b.send(json!({"type": "call.accept", "id": 2, "call_id": call_id}).to_string())
                .await?;
            let accepted = b.expect(|f| f.kind == "call.accepted").await?;
            a.expect(|f| f.kind == "call.accepted").await?;
            accepted
                .room
                .ok_or_else(|| BenchError::Protocol("call.accepted without room".to_owned()))?
        }
    };
    a.join(&room, 3).await?;
    b.join(&room, 4).await?;
    // A signals B once A's node has told A that B joined (as a browser does): with several
    // nodes, B's join reaches A's node over the broker after B's `room.joined`.
    a.expect(|f| f.kind == "room.peer_joined" && f.room.as_deref() == Some(room.as_str()))
        .await?;
    Ok(Pair { a, b, room })
}

/// The two ends of pair `index` on a bare relay (`--bare`).
async fn bare_pair(target: &Target, tag: &str, index: usize) -> BenchResult<Pair> {
    let path = |end: &str| format!("/bench-{tag}-p{index}/{end}");
    let a = ws::connect_bare(target, &path("a"), "a").await?;
    let b = ws::connect_bare(target, &path("b"), "b").await?;
    Ok(Pair {
        a,
        b,
        room: format!("bench-{tag}-p{index}"),
    })
}

/// A signal frame cut around its sequence number: `head + seq + TAIL`.
#[derive(Clone)]
struct Template {
    head: String,
}

/// What follows the sequence number in every signal frame.
const TAIL: &str = "}}";

impl Template {
    fn frame(&self, seq: u64) -> String {
        let mut frame = String::with_capacity(self.head.len() + 24);
        frame.push_str(&self.head);
        frame.push_str(&seq.to_string());
        frame.push_str(TAIL);
        frame
    }
}

/// The A→B and B→A frames: an ICE candidate padded so that `data` is about `payload` bytes.
fn templates(pair: &Pair, payload: usize) -> (Template, Template) {
    const CANDIDATE: &str = "candidate:842163049 1 udp 1677729535 192.0.2.10 54400 typ srflx \
                             raddr 10.0.0.5 rport 54400 generation 0 ufrag x9Qe network-id 1";
    let bare = format!(
        r#"{{"candidate":"{CANDIDATE}","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"x9Qe","seq":0000000}}"#
    );
    let pad = " network-cost 10".repeat(payload.saturating_sub(bare.len()) / 16 + 1);
    let pad = &pad[..payload.saturating_sub(bare.len()).min(pad.len())];
    let head = |to: &str| Template {
        head: format!(
            r#"{{"type":"signal","room":"{}","to":"{to}","kind":"candidate","data":{{"candidate":"{CANDIDATE}{pad}","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"x9Qe","seq":"#,
            pair.room
        ),
    };
    (head(&pair.b.session_id), head(&pair.a.session_id))
}

/// How the initiator paces its signals.
enum Plan {
    /// Keep `window` signals in flight.
    Closed { window: usize },
    /// Signal `n` is due at `first + n * period`.
    Open { first: Instant, period: Duration },
}

/// Sequence numbers as one end received them.
#[derive(Default)]
struct SeqCheck {
    /// The lowest sequence number not seen in order yet.
    next: u64,
    /// Numbers skipped over: lost unless they arrive late (then: reordered).
    missing: HashSet<u64>,
    unique: u64,
    duplicated: u64,
    reordered: u64,
}

impl SeqCheck {
    /// Records `seq`; returns whether it is new.
    fn see(&mut self, seq: u64) -> bool {
        if seq == self.next {
            self.next += 1;
        } else if seq > self.next {
            self.missing.extend(self.next..seq);
            self.next = seq + 1;
        } else if self.missing.remove(&seq) {
            self.reordered += 1;
        } else {
            self.duplicated += 1;
            return false;
        }
        self.unique += 1;
        true
    }
}

/// One end's figures.
#[derive(Default)]
struct Side {
    sent: u64,
    check: SeqCheck,
    /// Signals received before the sending deadline (for the rate).
    received_in_window: u64,
    errors: u64,
    first_error: Option<String>,
    /// Round trips, microseconds (initiator only).
    rtt: Vec<u32>,
    /// Open loop: how late each send was against its schedule, microseconds.
    send_lag: Vec<u32>,
}

impl Side {
    /// Handles a frame that is not a bench signal: errors are counted, the rest ignored.
    fn other(&mut self, frame: &Frame) {
        if frame.kind == "error" {
            self.errors += 1;
            self.first_error.get_or_insert_with(|| frame.describe());
        }
    }

    /// The sequence number of a bench signal frame.
    fn seq_of(frame: &Frame) -> Option<u64> {
        (frame.kind == "signal")
            .then(|| frame.data.as_ref().map(|d| d.seq))
            .flatten()
    }
}

/// When an initiator starts, stops sending and gives up waiting, and how it waits.
struct Schedule {
    start: Instant,
    deadline: Instant,
    give_up: Instant,
    busy_poll: bool,
}

/// `--busy-poll`: keeps the runtime polling (each yield makes the current-thread runtime
/// poll its sockets without blocking) until `until`.
async fn spin_until(until: Instant) {
    while Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

/// Waits until `due`: on the timer, or with `busy_poll` by looking at the clock each time
/// the runtime comes round.
async fn wait_until(due: Instant, busy_poll: bool) {
    if busy_poll {
        spin_until(due).await;
    } else {
        sleep_until(due).await;
    }
}

/// The initiator: sends, checks the echoes, times the round trips.
async fn initiator(
    mut conn: Conn,
    template: Template,
    plan: Plan,
    schedule: Schedule,
    done: oneshot::Sender<()>,
) -> BenchResult<Side> {
    let Schedule {
        start,
        deadline,
        give_up,
        busy_poll,
    } = schedule;
    let mut side = Side::default();
    // Send time of each signal in flight, by seq.
    let mut in_flight: VecDeque<(u64, Instant)> = VecDeque::new();
    wait_until(start, busy_poll).await;
    let open = match plan {
        Plan::Open { first, period } => Some((first, period)),
        Plan::Closed { window } => {
            for _ in 0..window {
                conn.feed(template.frame(side.sent)).await?;
                in_flight.push_back((side.sent, Instant::now()));
                side.sent += 1;
            }
            conn.flush().await?;
            None
        }
    };

    loop {
        let sending = Instant::now() < deadline;
        if !sending && in_flight.is_empty() {
            break;
        }
        // Open loop: when the next signal is due (a late one is sent at once).
        let due = open.map(|(first, period)| first + period.mul_f64(side.sent as f64));
        let frame = tokio::select! {
            frame = conn.next_frame() => match frame? {
                Some(frame) => frame,
                None => break,
            },
            _ = async {
                match due {
                    Some(due) => wait_until(due, busy_poll).await,
                    None => std::future::pending::<()>().await,
                }
            }, if sending => {
                if let Some(due) = due {
                    let seq = side.sent;
                    // Timed from the real send; how late that was against the schedule
                    // (timer granularity, a busy generator) is reported on its own.
                    let now = Instant::now();
                    side.send_lag.push(micros(now.saturating_duration_since(due)));
                    in_flight.push_back((seq, now));
                    conn.send(template.frame(seq)).await?;
                    side.sent += 1;
                }
                continue;
            }
            _ = sleep_until(deadline), if sending => continue,
            _ = sleep_until(give_up) => break,
        };
        let mut next = Some(frame);
        let mut replies = 0;
        while let Some(frame) = next {
            match Side::seq_of(&frame) {
                Some(seq) => {
                    let now = Instant::now();
                    if side.check.see(seq) {
                        if now < deadline {
                            side.received_in_window += 1;
                        }
                        if let Some(pos) = in_flight.iter().position(|(s, _)| *s == seq) {
                            if let Some((_, at)) = in_flight.remove(pos) {
                                side.rtt.push(micros(now.saturating_duration_since(at)));
                            }
                        }
                    }
                    if open.is_none() && now < deadline {
                        conn.feed(template.frame(side.sent)).await?;
                        in_flight.push_back((side.sent, Instant::now()));
                        side.sent += 1;
                        replies += 1;
                    }
                }
                None => side.other(&frame),
            }
            next = conn.ready_frame()?;
        }
        if replies > 0 {
            conn.flush().await?;
        }
    }
    let _ = done.send(());
    conn.close().await;
    Ok(side)
}

/// The responder: checks what arrives and sends each signal straight back.
async fn echoer(
    mut conn: Conn,
    template: Template,
    deadline: Instant,
    mut stop: oneshot::Receiver<()>,
) -> BenchResult<Side> {
    let mut side = Side::default();
    loop {
        let frame = tokio::select! {
            frame = conn.next_frame() => match frame? {
                Some(frame) => frame,
                None => break,
            },
            _ = &mut stop => break,
        };
        let mut next = Some(frame);
        let mut replies = 0;
        while let Some(frame) = next {
            match Side::seq_of(&frame) {
                // Duplicates are counted, not echoed: the initiator's loss count stays exact.
                Some(seq) if side.check.see(seq) => {
                    if Instant::now() < deadline {
                        side.received_in_window += 1;
                    }
                    conn.feed(template.frame(seq)).await?;
                    side.sent += 1;
                    replies += 1;
                }
                Some(_) => {}
                None => side.other(&frame),
            }
            next = conn.ready_frame()?;
        }
        if replies > 0 {
            conn.flush().await?;
        }
    }
    conn.close().await;
    Ok(side)
}

/// Both directions of every pair, added up.
#[derive(Default)]
struct Totals {
    sent: u64,
    received: u64,
    received_in_window: u64,
    lost: u64,
    duplicated: u64,
    reordered: u64,
    errors: u64,
    first_error: Option<String>,
    rtt: Vec<u32>,
    send_lag: Vec<u32>,
}

impl Totals {
    fn add(&mut self, a: &Side, b: &Side) {
        self.sent += a.sent + b.sent;
        self.received += a.check.unique + b.check.unique;
        self.received_in_window += a.received_in_window + b.received_in_window;
        // A→B: what A sent and B never saw; B→A: what B echoed and A never saw.
        self.lost += a.sent.saturating_sub(b.check.unique) + b.sent.saturating_sub(a.check.unique);
        self.duplicated += a.check.duplicated + b.check.duplicated;
        self.reordered += a.check.reordered + b.check.reordered;
        self.errors += a.errors + b.errors;
        if self.first_error.is_none() {
            self.first_error = a.first_error.clone().or_else(|| b.first_error.clone());
        }
        self.rtt.extend_from_slice(&a.rtt);
        self.send_lag.extend_from_slice(&a.send_lag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_checks_tell_loss_duplication_and_reordering_apart() {
        let mut check = SeqCheck::default();
        for seq in [0, 1, 3, 2, 2, 5] {
            check.see(seq);
        }
        assert_eq!(check.unique, 5);
        assert_eq!(check.reordered, 1, "2 came after 3");
        assert_eq!(check.duplicated, 1, "2 came twice");
        assert_eq!(check.missing.len(), 1, "4 never came");
    }
}
