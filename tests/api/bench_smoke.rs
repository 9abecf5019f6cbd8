//! The load generator, run tiny against a test server: each workload completes and its
//! correctness counts are clean. Speed is never asserted here (shared, noisy machine).

use serde_json::Value;

use crate::helpers::{spawn_app_with, TestApp};

/// A server whose limits let one client drive it hard: many logins from one IP, no frame
/// rate limit to speak of.
async fn bench_server() -> TestApp {
    bench_server_with(|_| {}).await
}

/// [`bench_server`] with more settings.
async fn bench_server_with(more: impl FnOnce(&mut tertulia::config::Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.login_attempts = 100_000;
        s.ws_rate_per_sec = 1_000_000;
        s.ws_rate_burst = 1_000_000;
        more(s);
    })
    .await
}

/// Runs `tertulia-bench <args>` against `app` and returns its JSON line.
async fn bench(app: &TestApp, args: &[&str]) -> Value {
    bench_at(&app.address, args).await
}

/// Runs `tertulia-bench <args>` against the server at `url` (several nodes: their URLs comma
/// separated) and returns its JSON line.
pub(crate) async fn bench_at(url: &str, args: &[&str]) -> Value {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tertulia-bench"));
    command
        .arg("--url")
        .arg(url)
        .arg("--user-prefix")
        .arg("smoke")
        .args(args);
    // Off the test's thread: the server's actors run on it and must keep serving meanwhile.
    let output = actix_web::rt::task::spawn_blocking(move || command.output())
        .await
        .expect("joined")
        .expect("tertulia-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "tertulia-bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().expect("a JSON line");
    let json: Value = serde_json::from_str(last).expect("the last line is JSON");
    assert!(stdout.contains(&format!(
        "tertulia-bench {}",
        json["workload"].as_str().unwrap()
    )));
    json
}

#[actix_web::test]
async fn relay_in_closed_loop_bounces_every_signal_back_in_order() {
    let app = bench_server().await;
    let r = bench(
        &app,
        &["relay", "--pairs", "2", "--duration", "1", "--window", "4"],
    )
    .await;
    assert_eq!(r["mode"], "closed");
    assert_every_signal_came_back(&r);
    assert!(r.get("nodes").is_none(), "one server, no node figures: {r}");
}

#[actix_web::test]
async fn relay_in_open_loop_times_every_round_trip_and_loses_nothing() {
    let app = bench_server().await;
    for busy_poll in [false, true] {
        let mut args = vec![
            "relay",
            "--pairs",
            "2",
            "--duration",
            "1",
            "--rate",
            "100",
            "--rooms",
            "public",
        ];
        if busy_poll {
            args.push("--busy-poll");
        }
        let r = bench(&app, &args).await;
        assert_eq!(r["mode"], "open");
        assert_eq!(r["busy_poll"], busy_poll, "{r}");
        let samples = r["rtt_samples"].as_u64().unwrap();
        assert!(samples > 0, "{r}");
        assert_eq!(samples * 2, r["signals_relayed"].as_u64().unwrap(), "{r}");
        assert_every_signal_came_back(&r);
    }
}

/// The relay's checks, shared by the tests below and the several-node ones.
pub(crate) fn assert_every_signal_came_back(r: &Value) {
    assert!(r["signals_relayed"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["signals_relayed"], r["signals_sent"], "{r}");
    for key in ["lost", "duplicated", "reordered", "errors"] {
        assert_eq!(r[key], 0, "{key}: {r}");
    }
}

#[actix_web::test]
async fn a_server_that_busy_polls_relays_every_signal() {
    let app = bench_server_with(|s| s.busy_poll_us = 500).await;
    // Public rooms: the same users, just out of their call rooms, would still be in a call.
    for rate in [None, Some("200")] {
        let mut args = vec![
            "relay",
            "--pairs",
            "2",
            "--duration",
            "1",
            "--rooms",
            "public",
        ];
        if let Some(rate) = rate {
            args.extend(["--rate", rate]);
        }
        let r = bench(&app, &args).await;
        assert_every_signal_came_back(&r);
    }
}

/// `tertulia-bench bare-server` on a free port; killed when dropped.
struct BareRelay {
    child: std::process::Child,
    url: String,
}

impl BareRelay {
    fn start() -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tertulia-bench"))
            .args(["bare-server", "--bind", "127.0.0.1:0"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("bare-server starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stderr.take().expect("piped"))
            .read_line(&mut line)
            .expect("bare-server says where it listens");
        let address = line
            .trim()
            .rsplit(' ')
            .next()
            .expect("an address")
            .to_owned();
        BareRelay {
            child,
            url: format!("http://{address}"),
        }
    }
}

impl Drop for BareRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[actix_web::test]
async fn the_bare_relay_bounces_every_signal_back_in_order_and_holds_idle_connections() {
    let bare = BareRelay::start();
    for args in [
        &["relay", "--bare", "--pairs", "3", "--duration", "1"][..],
        &[
            "relay",
            "--bare",
            "--pairs",
            "2",
            "--duration",
            "1",
            "--rate",
            "200",
        ][..],
    ] {
        let r = bench_at(&bare.url, args).await;
        assert_eq!(r["rooms"], "bare relay", "{r}");
        assert_every_signal_came_back(&r);
    }
    let r = bench_at(
        &bare.url,
        &["connect", "--bare", "--conns", "20", "--hold-secs", "0.2"],
    )
    .await;
    assert_eq!(r["server"], "bare relay", "{r}");
    assert_eq!(r["connected"], 20, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["dropped_while_idle"], 0, "{r}");
}

#[actix_web::test]
async fn connect_opens_every_connection_and_reads_the_server_memory() {
    let app = bench_server().await;
    let pid = std::process::id().to_string();
    let r = bench(
        &app,
        &[
            "connect",
            "--conns",
            "6",
            "--conns-per-user",
            "2",
            "--hold-secs",
            "0.2",
            "--server-pid",
            &pid,
        ],
    )
    .await;
    assert_eq!(r["connected"], 6, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["dropped_while_idle"], 0, "{r}");
    assert!(r["server_rss_after_kib"].as_u64().unwrap() > 0, "{r}");
}

#[actix_web::test]
async fn lobby_gets_every_window_and_count_right_in_every_lobby() {
    let app = bench_server().await;
    let r = bench(
        &app,
        &["lobby", "--users", "12", "--rate", "50", "--themes", "3"],
    )
    .await;
    assert_eq!(r["arrived"], 12, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["dropped"], 0, "{r}");
    assert_eq!(r["incomplete_lobbies"], 0, "{r}");
    assert!(r["frames_per_client_mean"].as_f64().unwrap() >= 2.0, "{r}");
}

#[actix_web::test]
async fn chat_gets_every_message_acked_and_delivered_to_every_member() {
    let app = bench_server().await;
    let r = bench(
        &app,
        &[
            "chat",
            "--rooms",
            "2",
            "--members",
            "2",
            "--duration",
            "1",
            "--window",
            "2",
        ],
    )
    .await;
    assert!(r["messages_acked"].as_u64().unwrap() > 0, "{r}");
    for key in [
        "unacked",
        "unexpected_acks",
        "errors",
        "deliveries_lost",
        "deliveries_duplicated",
    ] {
        assert_eq!(r[key], 0, "{key}: {r}");
    }
    assert_eq!(
        r["deliveries"].as_u64().unwrap(),
        r["messages_acked"].as_u64().unwrap() * 2,
        "{r}"
    );
}

#[actix_web::test]
async fn over_the_http_transport_relay_and_chat_lose_nothing() {
    let app = bench_server().await;
    let http = ["--transport", "http"];
    let closed = bench(
        &app,
        &[
            &http[..],
            &["relay", "--pairs", "2", "--duration", "1", "--window", "4"],
        ]
        .concat(),
    )
    .await;
    assert_eq!(closed["transport"], "http", "{closed}");
    assert_every_signal_came_back(&closed);
    let open = bench(
        &app,
        &[
            &http[..],
            &["relay", "--pairs", "2", "--duration", "1", "--rate", "100"],
        ]
        .concat(),
    )
    .await;
    assert!(open["rtt_samples"].as_u64().unwrap() > 0, "{open}");
    assert_every_signal_came_back(&open);
    let chat = bench(
        &app,
        &[
            &http[..],
            &[
                "chat",
                "--rooms",
                "2",
                "--members",
                "2",
                "--duration",
                "1",
                "--window",
                "2",
            ],
        ]
        .concat(),
    )
    .await;
    assert!(chat["messages_acked"].as_u64().unwrap() > 0, "{chat}");
    for key in [
        "unacked",
        "errors",
        "deliveries_lost",
        "deliveries_duplicated",
    ] {
        assert_eq!(chat[key], 0, "{key}: {chat}");
    }
}
