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
//!
//! Each run prints a human table, then one JSON line (the last line of standard output).
//! See docs/benchmarks.md for the exact commands and the server flags a run needs.
//!
//! ## Layout
//!
//! - `http`: a minimal HTTP/1.1 client for the few JSON calls (register, login, me).
//! - `users`: creating, logging in and caching the bench users.
//! - `ws`: opening an authenticated WebSocket and reading the protocol's frames.
//! - `report`: percentiles, the human table and the JSON line.
//! - `relay`, `connect`, `lobby`, `chat`: one workload each.
//!
//! The generator runs on one thread (a current-thread tokio runtime): it is meant to be pinned
//! to one core (`taskset -c 0`) beside a server pinned to the other, and one thread avoids
//! cross-thread wake-ups on that core.

mod chat;
mod connect;
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
    /// Base URL of the server (plain HTTP; the WebSocket is `<url>/ws`).
    #[arg(long, default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,

    /// PID of the server process, to read its memory (VmRSS) from /proc.
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,

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

    /// Print only the JSON line, not the table.
    #[arg(long, global = true)]
    pub json_only: bool,

    #[command(subcommand)]
    pub workload: Workload,
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
    match runtime.block_on(run(&cli)) {
        Ok(report) => {
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
    let target = http::Target::parse(&cli.url)?;
    match &cli.workload {
        Workload::Relay(args) => relay::run(cli, &target, args).await,
        Workload::Connect(args) => connect::run(cli, &target, args).await,
        Workload::Lobby(args) => lobby::run(cli, &target, args).await,
        Workload::Chat(args) => chat::run(cli, &target, args).await,
    }
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

/// The server's resident memory in KiB (`VmRSS` of `/proc/<pid>/status`), if readable.
pub fn server_rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
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
