//! `tertulia-bench`: Tertulia's own load generator (issue 6).
//!
//! It registers and logs in its own users over HTTP, then drives the real WebSocket protocol
//! (docs/protocol.md) against a running server, one workload per run:
//!
//! - `relay`: pairs in call rooms bounce ~500-byte ICE-candidate-like `signal`s; closed loop
//!   (max signals/s) or open loop at a fixed rate (round-trip percentiles). Every payload
//!   carries a sequence number, so loss, duplication and reordering are counted.
//! - `connect`: authenticated lobby connections as fast as possible; connections/s and the
//!   server's RSS per connection (from `/proc/<pid>/status` with `--server-pid`).
//! - `lobby`: users arriving at a rate; time until every lobby's online list is complete and
//!   correct; frames and bytes each client received.
//! - `chat`: acknowledged messages/s across rooms; every ack and every delivery checked.
//! - `bare-server`: not a workload but the reference for `relay`: a WebSocket relay with no
//!   logic, which `relay --bare` drives, so that a machine's ceiling is measured beside
//!   Tertulia's figures.
//!
//! Each run prints a human table, then one JSON line (the last line of standard output).
//! See docs/benchmarks.md for the exact commands and the server flags a run needs.
//!
//! ## Layout
//!
//! - `http`: where the server is (or the nodes, with several `--url`s, and which client
//!   talks to which), and the few JSON calls (register, login, me) over h2c.
//! - `users`: creating, logging in and caching the bench users.
//! - `ws`: opening an authenticated connection and reading the protocol's frames.
//! - `events`: the HTTP transport's connection (`--transport http`: h2c, the `h2` crate).
//! - `report`: percentiles, the human table and the JSON line.
//! - `scan`: reading presence frames' ids and statuses without building the frames.
//! - `relay`, `connect`, `lobby`, `chat`: one workload each; `bare`: the bare relay.
//!
//! The generator runs on one thread (a current-thread tokio runtime): it is meant to be pinned
//! to one core (`taskset -c 0`) beside a server pinned to the other, and one thread avoids
//! cross-thread wake-ups on that core.

mod bare;
mod chat;
mod connect;
mod events;
mod http;
mod lobby;
mod relay;
mod report;
mod users;
mod ws;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// Tertulia's load generator: drives a running server over its real HTTP and WebSocket API.
#[derive(Debug, Parser)]
#[command(name = "tertulia-bench", version, about)]
pub struct Cli {
    /// Base URL of the server (plain HTTP; the WebSocket is `<url>/ws`). Several (the option
    /// repeated, or comma separated): the nodes of one cluster (`tertulia serve --broker`).
    /// Clients are then spread over them round robin by client index, so the two ends of
    /// each `relay` pair and the members of each `chat` room are on different nodes (unless
    /// `--same-node`), `connect` and `lobby` spread their users, and `lobby` reports
    /// convergence as seen by the clients of each node. Registration, login and admin calls
    /// go to the first.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080",
        value_delimiter = ',',
        global = true
    )]
    pub url: Vec<String>,

    /// PID of the server process, to read its memory (VmRSS) and CPU time from /proc. With
    /// several nodes, one per node (repeated or comma separated): figures are summed over
    /// them, and CPU is also given per node.
    #[arg(long, value_delimiter = ',', global = true)]
    pub server_pid: Vec<u32>,

    /// File that keeps the bench users' tokens between runs, so later runs skip the
    /// argon2-expensive registration and login.
    #[arg(long, global = true)]
    pub users_file: Option<PathBuf>,

    /// Nicknames of bench users start with this.
    #[arg(long, default_value = "bench", global = true)]
    pub user_prefix: String,

    /// Registrations and logins in flight at once while preparing users.
    #[arg(long, default_value_t = 16, global = true)]
    pub setup_concurrency: usize,

    /// What the protocol runs over: a WebSocket (`/ws`), or the HTTP transport (Server-Sent
    /// Events + POST on `/api/stream`) over HTTP/2 with prior knowledge (h2c).
    #[arg(long, value_enum, default_value_t = Transport::WebSocket, global = true)]
    pub transport: Transport,

    /// Print only the JSON line, not the table.
    #[arg(long, global = true)]
    pub json_only: bool,

    /// Spread the bench users over this many themes, each user in 2 or 3 of them, as a real
    /// community (0: users follow no theme). The server's themes are used, first by name,
    /// if it has that many; otherwise `bench-theme-NN` are created with `--admin-token`.
    #[arg(long, default_value_t = 0, global = true)]
    pub themes: usize,

    /// An admin's bearer token, to create the themes `--themes` asks for.
    #[arg(long, global = true)]
    pub admin_token: Option<String>,

    #[command(subcommand)]
    pub workload: Workload,
}

/// The transports of protocol v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// `GET /ws`
    #[value(name = "ws")]
    WebSocket,
    /// `GET /api/stream` + `POST /api/stream/{id}` over h2c
    Http,
}

/// The workloads of issue 6.
#[derive(Debug, Subcommand)]
pub enum Workload {
    /// Signals bounced between the two peers of each pair.
    Relay(relay::RelayArgs),
    /// Authenticated lobby connections as fast as possible, then held idle.
    Connect(connect::ConnectArgs),
    /// Users arriving at a rate; time until every lobby has the full online list.
    Lobby(lobby::LobbyArgs),
    /// Chat messages sent and acknowledged across rooms.
    Chat(chat::ChatArgs),
    /// Not a workload: serves a bare WebSocket relay with no logic (the reference that
    /// `relay --bare` measures), until stopped.
    BareServer(bare::BareServerArgs),
}

/// What can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bad --url '{0}': expected http://host:port")]
    Url(String),
    #[error("HTTP {method} {path}: {problem}")]
    Http {
        method: &'static str,
        path: String,
        problem: String,
    },
    // Boxed: tungstenite's error is large and every result here carries the enum.
    #[error("WebSocket: {0}")]
    WebSocket(Box<tokio_tungstenite::tungstenite::Error>),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<tokio_tungstenite::tungstenite::Error> for BenchError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        BenchError::WebSocket(Box::new(e))
    }
}

/// Result alias for the generator.
pub type BenchResult<T> = Result<T, BenchError>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tertulia-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Workload::BareServer(args) = &cli.workload {
        return match runtime.block_on(bare::serve(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tertulia-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(run(&cli)) {
        Ok(mut report) => {
            report.add(
                "transport",
                match cli.transport {
                    Transport::WebSocket => "ws",
                    Transport::Http => "http",
                },
            );
            if !cli.json_only {
                print!("{}", report.table());
            }
            println!("{}", report.json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tertulia-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> BenchResult<report::Report> {
    let nodes = http::Nodes::parse(&cli.url, cli.transport)?;
    let mut report = match &cli.workload {
        Workload::Relay(args) => relay::run(cli, &nodes, args).await,
        Workload::Connect(args) => connect::run(cli, &nodes, args).await,
        Workload::Lobby(args) => lobby::run(cli, &nodes, args).await,
        Workload::Chat(args) => chat::run(cli, &nodes, args).await,
        Workload::BareServer(_) => Err(BenchError::Protocol(
            "bare-server is a server, not a workload".to_owned(),
        )),
    }?;
    if nodes.several() {
        report.add_first("nodes", nodes.len());
    }
    Ok(report)
}

/// Raises this process's soft open-file limit to its hard limit: every connection is a file
/// descriptor, and the usual soft limit (1,024) is far below the workloads' sizes.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            eprintln!("tertulia-bench: cannot raise the open-file limit: {e}");
        }
    }
}

/// The server's resident memory in KiB (`VmRSS` of `/proc/<pid>/status`), if readable; with
/// several nodes' PIDs, their sum (if every one is readable).
pub fn server_rss_kib(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| rss_kib(pid)).sum()
}

/// One process's resident memory in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// CPU time (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_time(pid: &str) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) close with ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_sec = rustix::param::clock_ticks_per_second().max(1);
    Some(std::time::Duration::from_micros(
        ticks * 1_000_000 / per_sec,
    ))
}

/// CPU used by the server (every node's process, with several) and by the generator over a
/// measured interval. The CPU cost per operation does not depend on what else the machine
/// runs, unlike operations per second.
pub struct CpuMeter {
    /// The servers' PIDs and their CPU time at the start.
    servers: Vec<(u32, Option<std::time::Duration>)>,
    own_start: Option<std::time::Duration>,
    wall_start: std::time::Instant,
}

impl CpuMeter {
    /// Starts measuring now.
    pub fn start(server_pids: &[u32]) -> Self {
        CpuMeter {
            servers: server_pids
                .iter()
                .map(|&pid| (pid, cpu_time(&pid.to_string())))
                .collect(),
            own_start: cpu_time("self"),
            wall_start: std::time::Instant::now(),
        }
    }

    /// Ends the interval.
    pub fn stop(&self) -> CpuUse {
        let used = |start: Option<std::time::Duration>, pid: &str| {
            Some(cpu_time(pid)?.saturating_sub(start?).as_secs_f64())
        };
        let by_server: Vec<Option<f64>> = self
            .servers
            .iter()
            .map(|&(pid, start)| used(start, &pid.to_string()))
            .collect();
        CpuUse {
            server_s: if by_server.is_empty() {
                None
            } else {
                by_server.iter().copied().sum()
            },
            by_server,
            own_s: used(self.own_start, "self"),
            wall_s: self.wall_start.elapsed().as_secs_f64().max(1e-9),
        }
    }
}

/// CPU used over one interval.
pub struct CpuUse {
    /// Every server process together (`None` if one could not be read).
    server_s: Option<f64>,
    /// Each server process, in the order of `--server-pid`.
    by_server: Vec<Option<f64>>,
    own_s: Option<f64>,
    wall_s: f64,
}

impl CpuUse {
    /// Adds the CPU figures: seconds used, share of one core, and the server's microseconds
    /// per `op` (`ops` of them done); with several server processes, also each one's seconds
    /// (`server_cpu_s_by_node`, `null` where unreadable).
    pub fn add_to(&self, report: &mut report::Report, ops: u64, op: &str) {
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        if let Some(used) = self.server_s {
            report
                .add("server_cpu_s", round(used))
                .add("server_cpu_share", round(used / self.wall_s));
            if ops > 0 {
                report.add(
                    format!("server_cpu_us_per_{op}"),
                    round(used * 1e6 / ops as f64),
                );
            }
        }
        if self.by_server.len() > 1 {
            let each: Vec<Option<f64>> = self.by_server.iter().map(|s| s.map(round)).collect();
            report.add("server_cpu_s_by_node", each);
        }
        if let Some(used) = self.own_s {
            report.add("bench_cpu_share", round(used / self.wall_s));
        }
    }
}

/// A short random tag that keeps one run's rooms and message ids apart from another's.
pub fn run_tag() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..6)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}
