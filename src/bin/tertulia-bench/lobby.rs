//! `lobby`: users arriving at a steady rate, each watching the lobby.
//!
//! Every client keeps the set of bench users its lobby shows online (from
//! `presence.snapshot`, `presence.update` and `presence.batch`). The figure that matters is
//! how long after the last arrival every client's set is complete — every bench user, all
//! online — and what each client had to receive to get there (frames and bytes).

use std::{sync::Arc, time::Duration};

use tokio::{
    sync::{mpsc, watch},
    time::{sleep_until, Instant},
};

use crate::{
    http::Target,
    report::{Latency, Report},
    scan::{self, Kind},
    server_rss_kib, users, ws, BenchError, BenchResult, Cli, CpuMeter,
};

/// `tertulia-bench lobby`
#[derive(Debug, clap::Args)]
pub struct LobbyArgs {
    /// Users arriving (one connection each).
    #[arg(long, default_value_t = 5_000)]
    pub users: usize,
    /// Arrivals per second.
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Seconds after the last arrival to wait for every lobby to be complete.
    #[arg(long, default_value_t = 30.0)]
    pub timeout_secs: f64,
    /// Seconds to hold every connection open (reading) once the lobbies converged, before
    /// reading the server's memory again: what it keeps per connection after an arrival,
    /// once the frames in flight are written.
    #[arg(long, default_value_t = 5.0)]
    pub hold_secs: f64,
}

/// What the clients tell the coordinator as it happens.
enum Event {
    /// Welcomed at this instant.
    Arrived(Instant),
    /// This client's lobby just became complete (`true`) or stopped being so (`false`).
    Complete(bool),
    /// The connection could not be opened: this user never arrives.
    Failed(String),
    /// The connection closed after arriving: this user leaves the lobby.
    Dropped(String),
}

/// One client's figures at the end.
struct ClientResult {
    complete_at: Option<Instant>,
    /// The connection closed before the end (counted in `dropped`, not as incomplete).
    dropped: bool,
    /// Bench users this client saw online at the end.
    seen: usize,
    frames: u64,
    bytes: u64,
}

/// Which bench users one client sees online: a bit per bench user.
struct OnlineSet {
    bits: Vec<u64>,
    count: usize,
}

impl OnlineSet {
    fn new(users: usize) -> Self {
        OnlineSet {
            bits: vec![0; users.div_ceil(64)],
            count: 0,
        }
    }

    fn set(&mut self, index: usize, online: bool) {
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        let was = self.bits[word] & bit != 0;
        match (was, online) {
            (false, true) => {
                self.bits[word] |= bit;
                self.count += 1;
            }
            (true, false) => {
                self.bits[word] &= !bit;
                self.count -= 1;
            }
            _ => {}
        }
    }
}

/// Bench user id → its bit in an [`OnlineSet`]: a table over the ids' span (the users are
/// rows of one table, so their ids are close), looked up for every entry of every presence
/// frame, millions of times a run.
struct UserIndex {
    first_id: i64,
    /// `bits[id - first_id]`; [`UserIndex::NONE`] for ids that are not bench users.
    bits: Vec<u32>,
}

impl UserIndex {
    const NONE: u32 = u32::MAX;
    /// The widest id span indexed (64 MiB of table).
    const MAX_SPAN: i64 = 1 << 24;

    fn new(ids: impl Iterator<Item = i64> + Clone) -> BenchResult<Self> {
        let first_id = ids.clone().min().unwrap_or(0);
        let span = ids.clone().max().unwrap_or(0) - first_id + 1;
        if span > Self::MAX_SPAN {
            return Err(BenchError::Protocol(format!(
                "bench user ids span {span} (more than {}): use a fresh database",
                Self::MAX_SPAN
            )));
        }
        let mut bits = vec![Self::NONE; span as usize];
        for (bit, id) in ids.enumerate() {
            bits[(id - first_id) as usize] = bit as u32;
        }
        Ok(UserIndex { first_id, bits })
    }

    fn bit(&self, id: i64) -> Option<usize> {
        let slot = usize::try_from(id.checked_sub(self.first_id)?).ok()?;
        match self.bits.get(slot) {
            Some(&bit) if bit != Self::NONE => Some(bit as usize),
            _ => None,
        }
    }
}

/// Runs the workload.
pub async fn run(cli: &Cli, target: &Target, args: &LobbyArgs) -> BenchResult<Report> {
    if args.users == 0 || args.rate <= 0.0 {
        return Err(BenchError::Protocol(
            "--users and --rate must be positive".to_owned(),
        ));
    }
    let users = users::prepare(cli, target, args.users).await?;
    let index = Arc::new(UserIndex::new(users.iter().map(|u| u.id))?);
    let total = users.len();

    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    // How many bench users will not be online (never arrived, or dropped): a lobby is
    // complete when it shows everyone else.
    let (gone_tx, gone_rx) = watch::channel(0usize);
    let rss_before = server_rss_kib(cli.server_pid);
    let start = Instant::now() + Duration::from_millis(50);
    let cpu = CpuMeter::start(cli.server_pid);
    let mut tasks = Vec::with_capacity(total);
    for (i, user) in users.into_iter().enumerate() {
        let at = start + Duration::from_secs_f64(i as f64 / args.rate);
        let (target, index, events, mut stop, mut gone) = (
            target.clone(),
            Arc::clone(&index),
            events_tx.clone(),
            stop.clone(),
            gone_rx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            sleep_until(at).await;
            let mut conn = match ws::connect(&target, &user).await {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = events.send(Event::Failed(e.to_string()));
                    return None;
                }
            };
            let _ = events.send(Event::Arrived(Instant::now()));
            let mut seen = OnlineSet::new(total);
            let mut complete_at = None;
            let mut dropped = false;
            loop {
                let text = tokio::select! {
                    // Once the run is over, no frame changes this client's verdict.
                    biased;
                    _ = stop.changed() => break,
                    text = conn.next_text() => Some(text),
                    // Someone will never be online: complete may now mean one user fewer.
                    _ = gone.changed() => None,
                };
                let gone_changed = text.is_none();
                let scanned = match text {
                    None => Ok(Kind::Other),
                    Some(Ok(Some(text))) => scan::scan(&text, |id, online| {
                        if let Some(bit) = index.bit(id) {
                            seen.set(bit, online);
                        }
                    })
                    .map_err(|e| format!("unreadable presence frame ({e}): {text:.200}")),
                    Some(Ok(None)) => Err("connection closed".to_owned()),
                    Some(Err(e)) => Err(e.to_string()),
                };
                match scanned {
                    // Not presence: the lobby did not change (a `gone` change is checked).
                    Ok(Kind::Other) if !gone_changed => continue,
                    Ok(_) => {}
                    Err(why) => {
                        if complete_at.is_some() {
                            let _ = events.send(Event::Complete(false));
                        }
                        let _ = events.send(Event::Dropped(why));
                        dropped = true;
                        break;
                    }
                }
                let expected = total - *gone.borrow();
                let complete = seen.count == expected;
                if complete != complete_at.is_some() {
                    complete_at = complete.then(Instant::now);
                    let _ = events.send(Event::Complete(complete));
                }
            }
            let result = ClientResult {
                complete_at,
                dropped,
                seen: seen.count,
                frames: conn.frames_in,
                bytes: conn.bytes_in,
            };
            // Closed only once every client has stopped: a departure seen before the stop
            // would make another lobby incomplete after the run had ended.
            Some((result, conn))
        }));
    }
    drop(events_tx);

    let mut arrived = 0usize;
    let mut failed = 0usize;
    let mut dropped = 0usize;
    let mut first_failure = None;
    let mut complete = 0usize;
    let mut last_arrival = start;
    let mut give_up = start
        + Duration::from_secs_f64(total as f64 / args.rate)
        + Duration::from_secs_f64(args.timeout_secs);
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = sleep_until(give_up) => break,
        };
        match event {
            Some(Event::Arrived(at)) => {
                arrived += 1;
                last_arrival = last_arrival.max(at);
                if arrived + failed == total {
                    // Now that everyone is in, the timeout counts from the last arrival.
                    give_up = last_arrival + Duration::from_secs_f64(args.timeout_secs);
                }
            }
            Some(Event::Complete(true)) => complete += 1,
            Some(Event::Complete(false)) => complete -= 1,
            Some(Event::Failed(why)) => {
                failed += 1;
                first_failure.get_or_insert(why);
                let _ = gone_tx.send(failed + dropped);
                if arrived + failed == total {
                    give_up = last_arrival + Duration::from_secs_f64(args.timeout_secs);
                }
            }
            Some(Event::Dropped(why)) => {
                dropped += 1;
                first_failure.get_or_insert(why);
                let _ = gone_tx.send(failed + dropped);
            }
            None => break,
        }
        if arrived + failed == total && complete == arrived - dropped {
            break;
        }
    }
    let cpu = cpu.stop();
    let rss_after = server_rss_kib(cli.server_pid);
    tokio::time::sleep(Duration::from_secs_f64(args.hold_secs)).await;
    let rss_held = server_rss_kib(cli.server_pid);
    let _ = stop_tx.send(true);

    let mut convergence = Vec::with_capacity(total);
    let mut frames = Vec::with_capacity(total);
    let mut bytes = Vec::with_capacity(total);
    let mut incomplete = 0u64;
    // The most users an incomplete lobby lacked (or had too many) at the end.
    let mut missing_max = 0usize;
    let mut conns = Vec::with_capacity(total);
    for task in tasks {
        let Some((result, conn)) = task
            .await
            .map_err(|e| BenchError::Protocol(format!("a client's task failed: {e}")))?
        else {
            continue;
        };
        conns.push(conn);
        match result.complete_at {
            Some(at) if !result.dropped => {
                convergence.push(at.saturating_duration_since(last_arrival))
            }
            Some(_) => {}
            None if result.dropped => {}
            None => {
                incomplete += 1;
                let expected = total - failed - dropped;
                missing_max = missing_max.max(expected.abs_diff(result.seen));
            }
        }
        frames.push(result.frames);
        bytes.push(result.bytes);
    }
    futures_util::future::join_all(conns.into_iter().map(ws::Conn::close)).await;
    let converged_after = convergence.iter().max().copied().unwrap_or_default();
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;

    let mut report = Report::new("lobby");
    report
        .add("users", total)
        .add("arrival_rate_per_sec", args.rate)
        .add("arrived", arrived)
        .add_target("failed", failed, "0")
        .add_target("dropped", dropped, "0")
        .add_target("incomplete_lobbies", incomplete, "0")
        .add("incomplete_lobby_worst_diff", missing_max)
        .add_target(
            "converged_after_last_arrival_s",
            converged_after.as_secs_f64(),
            "<= 1",
        )
        .add("frames_per_client_mean", mean(&frames))
        .add(
            "frames_per_client_max",
            frames.iter().max().copied().unwrap_or(0),
        )
        .add("bytes_per_client_mean", mean(&bytes))
        .add(
            "bytes_per_client_max",
            bytes.iter().max().copied().unwrap_or(0),
        );
    let mut frames32: Vec<u32> = frames
        .iter()
        .map(|&f| u32::try_from(f).unwrap_or(u32::MAX))
        .collect();
    report.add("frames_per_client_p99", Latency::of(&mut frames32).p99);
    if let Some(why) = first_failure {
        report.add("first_failure", why);
    }
    cpu.add_to(&mut report, arrived as u64, "arrival");
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        report
            .add("server_rss_before_kib", before)
            .add("server_rss_after_kib", after);
    }
    if let (Some(before), Some(held)) = (rss_before, rss_held) {
        report.add("server_rss_held_kib", held);
        if arrived > dropped {
            let per_conn = held.saturating_sub(before) as f64 / (arrived - dropped) as f64;
            report.add(
                "server_rss_held_per_conn_kib",
                (per_conn * 1000.0).round() / 1000.0,
            );
        }
    }
    Ok(report)
}
