//! `lobby`: users arriving at a steady rate, each watching the lobby.
//!
//! The users follow 2 or 3 of `--themes` themes each. Since protocol revision 1.2 a
//! connection is sent a window of each of its themes (the first 50 people online, available
//! first, then by name) and every theme's count, not everyone: every client keeps its
//! windows and counts (from `presence.snapshot`, `presence.batch` with a `theme` and
//! `presence.counts`). The figure that matters is how long after the last arrival every
//! client's lobby is right — each of its windows holds exactly the theme's first 50 bench
//! users, and every count is the theme's number of users — and what each client had to
//! receive to get there (frames and bytes). With a very high `--rate` it is a connection
//! storm: `arrivals_per_sec` is then the rate the server took them at.
//!
//! With several nodes (`--url` repeated) the users are spread over them (round robin) and
//! convergence is also given as seen by the clients of each node: how long until a lobby on
//! one node shows the users who arrived on the others.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use tokio::{
    sync::{mpsc, watch},
    time::{sleep_until, Instant},
};

use crate::{
    http::Nodes,
    report::{Latency, Report},
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
    /// A reconnect storm: once every lobby is right, run this shell command (it should
    /// restart the server on the same address), then time how long until every client has
    /// reconnected (each after a random wait of up to a second, as the browser app does) and
    /// every lobby is right again. With several `--url`s the command may stop one node (a
    /// drain or a kill): a client that lost its node tries the next one in the list at each
    /// attempt (as a balancer would send it elsewhere), and the storm is over once every
    /// client that lost its connection is back and every lobby is right.
    #[arg(long)]
    pub restart_cmd: Option<String>,
    /// `--restart-cmd` stops only some of the nodes behind one `--url` (a balancer in front
    /// of a cluster): the storm is over once every client that lost its connection is back
    /// and every lobby is right (as with several `--url`s), not once every client is back.
    #[arg(long)]
    pub partial_storm: bool,
    /// Handshakes in flight at once (arrivals and reconnections): beyond the server's accept
    /// backlog (1,024) a burst's SYNs are dropped and retried seconds later.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Seconds the storm may take before the run gives up on it.
    #[arg(long, default_value_t = 60.0)]
    pub storm_timeout_secs: f64,
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
    /// The connection closed and the client is reconnecting (`--restart-cmd`).
    Lost,
    /// The client is welcomed again after losing its connection.
    Back,
}

/// One client's figures at the end.
struct ClientResult {
    /// The node it arrived on (its index in `--url`; a reconnection may have moved it).
    node: usize,
    /// When its lobby last became right before the storm (`--restart-cmd`), or before the
    /// end: what `converged_after_last_arrival_s` reports (the storm has its own figures).
    complete_at: Option<Instant>,
    /// The connection closed before the end (counted in `dropped`, not as incomplete).
    dropped: bool,
    /// Entries of its windows and counts this client had wrong at the end.
    wrong: usize,
    frames: u64,
    bytes: u64,
}

/// A fixed 64-bit mix (splitmix64's finalizer): a shuffle that every run repeats.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// People a theme's window shows (the server's `presence.snapshot` windows, revision 1.2).
const WINDOW: usize = 50;

/// What every lobby must show at the end: each theme's first [`WINDOW`] users by nickname
/// (all online, so all available) and each theme's count.
struct Truth {
    windows: HashMap<String, HashSet<i64>>,
    counts: HashMap<String, i64>,
}

impl Truth {
    fn of(users: &[users::BenchUser]) -> Self {
        let mut members: HashMap<String, Vec<(&str, i64)>> = HashMap::new();
        for user in users {
            for theme in &user.themes {
                members
                    .entry(theme.clone())
                    .or_default()
                    .push((&user.nickname, user.id));
            }
        }
        let mut windows = HashMap::new();
        let mut counts = HashMap::new();
        for (theme, mut people) in members {
            people.sort();
            counts.insert(theme.clone(), people.len() as i64);
            windows.insert(
                theme,
                people.iter().take(WINDOW).map(|(_, id)| *id).collect(),
            );
        }
        Truth { windows, counts }
    }
}

/// A presence frame, as far as the lobby's check reads it.
#[derive(serde::Deserialize)]
struct PresenceFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    theme: Option<String>,
    #[serde(default)]
    updates: Vec<Update<'a>>,
    #[serde(default)]
    left: Vec<i64>,
    #[serde(default)]
    counts: Option<HashMap<String, i64>>,
    #[serde(default)]
    windows: Option<HashMap<String, Vec<i64>>>,
}

/// One entry of `updates`: who and their status.
#[derive(serde::Deserialize)]
struct Update<'a> {
    user_id: i64,
    #[serde(borrow)]
    status: std::borrow::Cow<'a, str>,
}

/// One client's lobby: the windows of its themes and every count.
struct LobbyView {
    windows: HashMap<String, HashSet<i64>>,
    counts: HashMap<String, i64>,
}

impl LobbyView {
    fn new(themes: &[String]) -> Self {
        LobbyView {
            windows: themes.iter().map(|t| (t.clone(), HashSet::new())).collect(),
            counts: HashMap::new(),
        }
    }

    /// Applies one frame; answers whether it was presence. Read into a typed frame that
    /// skips what the check does not need (entries' nicknames, capabilities, themes): the
    /// generator reads every frame of every client.
    fn apply(&mut self, text: &str) -> Result<bool, String> {
        if !text.starts_with(r#"{"type":"presence."#) {
            return Ok(false);
        }
        let frame: PresenceFrame<'_> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        match &*frame.kind {
            "presence.snapshot" => {
                self.counts = frame.counts.unwrap_or_default();
                let windows = frame.windows.unwrap_or_default();
                for (theme, window) in &mut self.windows {
                    window.clear();
                    window.extend(windows.get(theme.as_str()).into_iter().flatten());
                }
            }
            "presence.counts" => self.counts = frame.counts.unwrap_or_default(),
            "presence.batch" => {
                let Some(window) = frame.theme.as_deref().and_then(|t| self.windows.get_mut(t))
                else {
                    return Ok(true);
                };
                for update in &frame.updates {
                    if update.status == "offline" {
                        window.remove(&update.user_id);
                    } else {
                        window.insert(update.user_id);
                    }
                }
                for id in &frame.left {
                    window.remove(id);
                }
            }
            _ => {}
        }
        Ok(true)
    }

    /// Whether this lobby shows the truth.
    fn is_right(&self, truth: &Truth) -> bool {
        self.counts == truth.counts
            && self
                .windows
                .iter()
                .all(|(theme, window)| truth.windows.get(theme) == Some(window))
    }

    /// How many entries this lobby has wrong (windows and counts).
    fn wrong(&self, truth: &Truth) -> usize {
        let windows: usize = self
            .windows
            .iter()
            .map(|(theme, window)| match truth.windows.get(theme) {
                Some(right) => window.symmetric_difference(right).count(),
                None => window.len(),
            })
            .sum();
        let counts = truth
            .counts
            .iter()
            .filter(|(theme, n)| self.counts.get(*theme) != Some(n))
            .count();
        windows + counts
    }
}

/// Runs the workload.
pub async fn run(cli: &Cli, nodes: &Nodes, args: &LobbyArgs) -> BenchResult<Report> {
    if args.users == 0 || args.rate <= 0.0 {
        return Err(BenchError::Protocol(
            "--users and --rate must be positive".to_owned(),
        ));
    }
    if cli.themes == 0 {
        return Err(BenchError::Protocol(
            "lobby needs --themes (since protocol 1.2 a lobby is its themes' windows)".to_owned(),
        ));
    }
    let users = users::prepare(cli, nodes.first(), args.users).await?;
    let truth = Arc::new(Truth::of(&users));
    let total = users.len();

    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    // Set just before `--restart-cmd` runs: from then on a client's lobby changing is the
    // storm's, not the arrivals' convergence.
    let storm_started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rss_before = server_rss_kib(&cli.server_pid);
    let start = Instant::now() + Duration::from_millis(50);
    let cpu = CpuMeter::start(&cli.server_pid);
    let mut tasks = Vec::with_capacity(total);
    let rand_seed = mix(std::process::id().into());
    let permits = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    // People do not arrive in the order of their names: a fixed shuffle, so that arrivals
    // land anywhere in their themes' lists (the windows are each theme's first names).
    let mut order: Vec<usize> = (0..total).collect();
    order.sort_by_key(|&i| mix(i as u64));
    let mut slot = vec![0usize; total];
    for (pos, &i) in order.iter().enumerate() {
        slot[i] = pos;
    }
    let shared_nodes = Arc::new(nodes.clone());
    let several = nodes.several();
    for (i, user) in users.into_iter().enumerate() {
        let at = start + Duration::from_secs_f64(slot[i] as f64 / args.rate);
        // User i on node i mod n; each reconnection attempt (`--restart-cmd`) on the next.
        let mut node = nodes.index_of(i);
        let arrival_node = node;
        let (nodes, truth, events, mut stop) = (
            Arc::clone(&shared_nodes),
            Arc::clone(&truth),
            events_tx.clone(),
            stop.clone(),
        );
        let reconnect = args.restart_cmd.is_some();
        let storm_started = Arc::clone(&storm_started);
        let permits = Arc::clone(&permits);
        tasks.push(tokio::spawn(async move {
            sleep_until(at).await;
            let permit = permits.acquire().await;
            let connected = ws::connect(nodes.of(node), &user).await;
            drop(permit);
            let mut conn = match connected {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = events.send(Event::Failed(e.to_string()));
                    return None;
                }
            };
            let _ = events.send(Event::Arrived(Instant::now()));
            let mut view = LobbyView::new(&user.themes);
            let mut complete_at = None;
            // `complete_at` as it stood when the storm started.
            let mut converged_at = None;
            let mut dropped = false;
            loop {
                let text = tokio::select! {
                    // Once the run is over, no frame changes this client's verdict.
                    biased;
                    _ = stop.changed() => break,
                    text = conn.next_text() => text,
                };
                if reconnect && !matches!(text, Ok(Some(_))) {
                    if complete_at.take().is_some() {
                        let _ = events.send(Event::Complete(false));
                    }
                    let _ = events.send(Event::Lost);
                    let (frames, bytes) = (conn.frames_in, conn.bytes_in);
                    // Answer the close and let the old socket go first, as a browser does,
                    // not after reconnecting: the server waits for both.
                    conn.finish_close().await;
                    let mut wait = Duration::from_millis(mix(rand_seed ^ i as u64) % 1000);
                    conn = loop {
                        tokio::select! {
                            biased;
                            _ = stop.changed() => return None,
                            _ = tokio::time::sleep(wait) => {}
                        }
                        node = (node + 1) % nodes.len();
                        let permit = permits.acquire().await;
                        let connected = ws::connect(nodes.of(node), &user).await;
                        drop(permit);
                        match connected {
                            Ok(conn) => break conn,
                            Err(_) => {
                                wait =
                                    Duration::from_millis(250 + mix(wait.as_nanos() as u64) % 500)
                            }
                        }
                    };
                    conn.frames_in += frames;
                    conn.bytes_in += bytes;
                    let _ = events.send(Event::Back);
                    continue;
                }
                let applied = match text {
                    Ok(Some(text)) => view
                        .apply(&text)
                        .map_err(|e| format!("unreadable presence frame ({e}): {text:.200}")),
                    Ok(None) => Err("connection closed".to_owned()),
                    Err(e) => Err(e.to_string()),
                };
                match applied {
                    // Not presence: the lobby did not change.
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(why) => {
                        if complete_at.is_some() {
                            let _ = events.send(Event::Complete(false));
                        }
                        let _ = events.send(Event::Dropped(why));
                        dropped = true;
                        break;
                    }
                }
                let complete = view.is_right(&truth);
                if complete != complete_at.is_some() {
                    complete_at = complete.then(Instant::now);
                    let _ = events.send(Event::Complete(complete));
                }
                if !storm_started.load(std::sync::atomic::Ordering::Relaxed) {
                    converged_at = complete_at;
                }
            }
            if !reconnect {
                converged_at = complete_at;
            }
            let result = ClientResult {
                node: arrival_node,
                complete_at: converged_at,
                dropped,
                wrong: view.wrong(&truth),
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
    // Connections lost (and reopened) before the storm: a slow generator or server.
    let mut reconnects = 0usize;
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
                if arrived + failed == total {
                    give_up = last_arrival + Duration::from_secs_f64(args.timeout_secs);
                }
            }
            Some(Event::Dropped(why)) => {
                dropped += 1;
                first_failure.get_or_insert(why);
            }
            Some(Event::Lost) => reconnects += 1,
            Some(Event::Back) => {}
            None => break,
        }
        if arrived + failed == total && complete == arrived - dropped {
            break;
        }
    }
    let cpu = cpu.stop();
    // The storm: the server restarts under everyone; how long until all are back and right.
    let mut storm: Option<(f64, f64, usize, usize)> = None;
    if let Some(cmd) = &args.restart_cmd {
        storm_started.store(true, std::sync::atomic::Ordering::Relaxed);
        let t0 = Instant::now();
        // Off the runtime: the clients keep reading (and answer the server's close) meanwhile.
        let cmd = cmd.clone();
        let status = tokio::task::spawn_blocking(move || {
            std::process::Command::new("sh").arg("-c").arg(cmd).status()
        })
        .await
        .map_err(|e| BenchError::Protocol(format!("--restart-cmd: {e}")))??;
        if !status.success() {
            return Err(BenchError::Protocol(format!(
                "--restart-cmd failed: {status}"
            )));
        }
        let (mut lost, mut back, mut all_back, mut right) = (0usize, 0usize, None, None);
        // Who must come back: everyone (one server restarted), or with several nodes (or
        // --partial-storm) the clients that lost theirs.
        let storm_size = |lost: usize, dropped: usize| {
            if several || args.partial_storm {
                lost
            } else {
                arrived - dropped
            }
        };
        let give_up = t0 + Duration::from_secs_f64(args.storm_timeout_secs);
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = sleep_until(give_up) => break,
            };
            match event {
                Some(Event::Lost) => lost += 1,
                Some(Event::Back) => {
                    back += 1;
                    if back == storm_size(lost, dropped) && all_back.is_none() {
                        all_back = Some(t0.elapsed().as_secs_f64());
                    }
                }
                Some(Event::Complete(true)) => complete += 1,
                Some(Event::Complete(false)) => complete -= 1,
                Some(Event::Dropped(why)) => {
                    dropped += 1;
                    first_failure.get_or_insert(why);
                }
                Some(_) => {}
                None => break,
            }
            if lost == back
                && back > 0
                && back >= storm_size(lost, dropped)
                && complete == arrived - dropped
            {
                right = Some(t0.elapsed().as_secs_f64());
                break;
            }
        }
        storm = Some((
            all_back.unwrap_or(f64::NAN),
            right.unwrap_or(f64::NAN),
            back,
            complete,
        ));
    }
    let rss_after = server_rss_kib(&cli.server_pid);
    tokio::time::sleep(Duration::from_secs_f64(args.hold_secs)).await;
    let rss_held = server_rss_kib(&cli.server_pid);
    let _ = stop_tx.send(true);

    let mut convergence = Vec::with_capacity(total);
    let mut frames = Vec::with_capacity(total);
    let mut bytes = Vec::with_capacity(total);
    let mut incomplete = 0u64;
    // The most users an incomplete lobby lacked (or had too many) at the end.
    let mut missing_max = 0usize;
    let mut conns = Vec::with_capacity(total);
    // Per arrival node: the slowest of its clients' convergence, how many converged, and its
    // incomplete lobbies.
    let mut slowest_by_node = vec![Duration::ZERO; nodes.len()];
    let mut converged_by_node = vec![0usize; nodes.len()];
    let mut incomplete_by_node = vec![0u64; nodes.len()];
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
                let after = at.saturating_duration_since(last_arrival);
                convergence.push(after);
                let slowest = &mut slowest_by_node[result.node];
                *slowest = (*slowest).max(after);
                converged_by_node[result.node] += 1;
            }
            Some(_) => {}
            None if result.dropped => {}
            None => {
                incomplete += 1;
                incomplete_by_node[result.node] += 1;
                missing_max = missing_max.max(result.wrong);
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
        .add(
            "arrivals_per_sec",
            arrived as f64 / last_arrival.duration_since(start).as_secs_f64().max(1e-9),
        )
        .add_target("failed", failed, "0")
        .add_target("dropped", dropped, "0")
        .add_target("incomplete_lobbies", incomplete, "0")
        .add("incomplete_lobby_worst_diff", missing_max)
        .add_target(
            "converged_after_last_arrival_s",
            converged_after.as_secs_f64(),
            "<= 1",
        );
    if nodes.several() {
        // As seen by the clients that arrived on each node; `null` for a node where some
        // lobby never got right (or none did).
        let by_node: Vec<Option<f64>> = (0..nodes.len())
            .map(|n| {
                (incomplete_by_node[n] == 0 && converged_by_node[n] > 0)
                    .then_some(slowest_by_node[n].as_secs_f64())
            })
            .collect();
        report
            .add("converged_after_last_arrival_s_by_node", by_node)
            .add("incomplete_lobbies_by_node", incomplete_by_node);
    }
    report
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
    if let Some((all_back, right, back, complete)) = storm {
        report
            .add_target("reconnects_before_the_storm", reconnects, "0")
            .add("storm_reconnected", back)
            .add("storm_all_back_s", all_back)
            .add("storm_lobbies_right", complete)
            .add_target("storm_every_lobby_right_s", right, "<= 10");
    }
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
