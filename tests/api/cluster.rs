//! Several nodes over Redis (issue 18): a Redis of the test's own and several servers sharing
//! one PostgreSQL database, each server with its own actors, so every path between them goes
//! through Redis. The harness ([`Cluster`], [`RedisServer`]) is shared by the cluster tests.
//!
//! They need PostgreSQL: they run in the PostgreSQL pass (`tests/pg.sh`,
//! `TERTULIA_TEST_DATABASE=postgres`) and say so on a visible line in the SQLite pass.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use actix_web::http::StatusCode;
use serde_json::json;

use crate::{
    helpers::{on_postgres, spawn_app_with, TestApp, TestUser},
    ws_client::{connect, connect_with, ConnectOpts, Transport, WsClient},
};

/// A `redis-server` of the test's own, on a free port, keeping nothing on disk; killed when
/// dropped.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one and waits until it answers.
    pub fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = RedisServer {
            port,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        redis.run();
        redis
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let child = Command::new(redis_server())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (Debian package redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server answers within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Kills it (SIGKILL): everything it held is lost, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A connection of the test's own, to look at (or change) what the nodes keep there.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `redis-server` binary (`TERTULIA_REDIS_SERVER`, else on the PATH or in /usr/bin).
fn redis_server() -> PathBuf {
    std::env::var_os("TERTULIA_REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

/// Several nodes on one Redis and one PostgreSQL database.
pub struct Cluster {
    pub redis: RedisServer,
    /// The nodes, `node-1` first; the first owns (and drops) the database.
    pub nodes: Vec<TestApp>,
}

impl Cluster {
    /// `n` nodes, or `None` (with a visible line) when the tests do not run on PostgreSQL.
    pub async fn start(n: usize) -> Option<Cluster> {
        Cluster::start_with(n, |_, _| {}).await
    }

    /// [`Cluster::start`] with each node's settings adjusted by `adjust(index, settings)`.
    pub async fn start_with(
        n: usize,
        adjust: impl Fn(usize, &mut tertulia::config::Settings),
    ) -> Option<Cluster> {
        if !on_postgres() {
            println!(
                "SKIP: the several-node tests need PostgreSQL; they run in the PostgreSQL pass \
                 (tests/pg.sh cluster)"
            );
            return None;
        }
        let redis = RedisServer::start();
        let mut nodes: Vec<TestApp> = Vec::with_capacity(n);
        for i in 0..n {
            let shared = nodes
                .first()
                .map(|first| first.settings.database_url.clone());
            let url = redis.url();
            let mut node = spawn_app_with(|s| {
                if let Some(db) = shared.clone() {
                    s.database_url = db;
                }
                s.broker = Some(url);
                s.node_id = Some(format!("node-{}", i + 1));
                adjust(i, s);
            })
            .await;
            if i > 0 {
                // The first node drops the shared database; this one must not.
                node.settings.database_url.clear();
            }
            nodes.push(node);
        }
        Some(Cluster { redis, nodes })
    }

    /// Users `first`, connected to node 1, and `second`, connected to node 2.
    pub async fn two_apart(
        &self,
        first: &str,
        second: &str,
    ) -> (TestUser, TestUser, WsClient, WsClient) {
        let (n1, n2) = (self.node(0), self.node(1));
        let (one, two) = (n1.user(first).await, n1.user(second).await);
        let (c1, c2) = (connect(n1, &one).await, connect(n2, &two).await);
        (one, two, c1, c2)
    }

    /// Node `i` (0-based).
    pub fn node(&self, i: usize) -> &TestApp {
        &self.nodes[i]
    }
}

/// A node as a real `tertulia serve` process on the cluster's Redis and database (so a test
/// can kill it with SIGKILL); killed when dropped.
pub struct ProcessNode {
    child: Child,
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub address: String,
    /// Its output so far (printed when a test fails).
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ProcessNode {
    /// Its process id (for a command that kills it from outside the test, e.g. the bench's
    /// `--restart-cmd`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM: the node shuts down as a drained one does (1001 to its clients, then it
    /// leaves the cluster).
    pub fn terminate(&self) {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .expect("SIGTERM sent");
    }

    /// SIGKILL: the node ends at once, as in a crash, without leaving the cluster.
    pub fn kill(mut self) {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::KILL,
        )
        .expect("SIGKILL sent");
        let _ = self.child.wait();
    }
}

impl Drop for ProcessNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
            eprintln!("---- node on port {} ----\n{log}---- end ----", self.port);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Cluster {
    /// Starts one more node, `node_id`, as a process of its own; returns once it serves.
    pub fn spawn_process(&self, node_id: &str) -> ProcessNode {
        self.spawn_process_with(node_id, &[])
    }

    /// [`Cluster::spawn_process`] with more command-line `flags` for `tertulia serve`.
    pub fn spawn_process_with(&self, node_id: &str, flags: &[&str]) -> ProcessNode {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tertulia"));
        for (key, _) in std::env::vars() {
            if key.starts_with("TERTULIA_") || key == "DATABASE_URL" || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .args(["serve", "--bind", "127.0.0.1:0", "--workers", "2"])
            .args(["--database-url", &self.node(0).settings.database_url])
            .args(["--broker", &self.redis.url(), "--node-id", node_id])
            .args(["--web-dir", concat!(env!("CARGO_MANIFEST_DIR"), "/web")])
            .args(flags)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tertulia starts");
        let log = std::sync::Arc::default();
        let ports = crate::helpers::collect_served_output(&mut child, &log);
        let port = ports
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                panic!(
                    "node {node_id} did not start:\n{}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                )
            });
        ProcessNode {
            child,
            port,
            address: format!("http://127.0.0.1:{port}"),
            log,
        }
    }
}

/// Waits until `check` holds, up to `limit`; answers how long that took.
pub async fn within(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn readyz(app: &TestApp) -> (StatusCode, serde_json::Value) {
    let reply = app.get("/readyz", None).await;
    (reply.status, reply.body)
}

/// The value of the `/metrics` series `name` on `app`.
pub async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let text = awc::Client::default()
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .ok()?
        .body()
        .await
        .ok()?;
    String::from_utf8_lossy(&text)
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[actix_web::test]
async fn a_broker_with_a_sqlite_database_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = crate::helpers::sqlite_settings(&dir);
    settings.broker = Some("redis://127.0.0.1:1".to_owned());
    let err = tertulia::startup::Application::build(settings)
        .await
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(message.contains("PostgreSQL"), "{message}");
    assert!(message.contains("--broker"), "{message}");
}

#[actix_web::test]
async fn an_unreachable_broker_stops_the_start_with_a_clear_message() {
    if !on_postgres() {
        println!("SKIP: needs PostgreSQL (tests/pg.sh cluster)");
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = crate::helpers::test_settings(&dir);
    let db = settings.database_url.clone();
    settings.broker = Some(format!("redis://:sekrit@127.0.0.1:{port}"));
    let err = tertulia::startup::Application::build(settings)
        .await
        .err()
        .expect("refused");
    crate::helpers::drop_test_database(&db);
    let message = err.to_string();
    assert!(message.contains("does not answer"), "{message}");
    assert!(
        !message.contains("sekrit"),
        "the password is not shown: {message}"
    );
}

#[actix_web::test]
async fn nodes_see_each_other_and_readyz_follows_the_broker() {
    let Some(mut cluster) = Cluster::start(2).await else {
        return;
    };
    for node in &cluster.nodes {
        let (status, body) = readyz(node).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["broker"], "ok");
    }
    within(
        Duration::from_secs(10),
        "each node sees two nodes",
        async || {
            metric(cluster.node(0), "tertulia_cluster_nodes").await == Some(2.0)
                && metric(cluster.node(1), "tertulia_cluster_nodes").await == Some(2.0)
        },
    )
    .await;

    // Redis dies: readyz says so within a heartbeat or two, and recovers once it is back.
    cluster.redis.kill();
    within(
        Duration::from_secs(10),
        "readyz 503 without Redis",
        async || readyz(cluster.node(0)).await.0 == StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(
        metric(cluster.node(0), "tertulia_broker_up").await,
        Some(0.0)
    );
    cluster.redis.restart();
    within(
        Duration::from_secs(15),
        "readyz 200 with Redis back",
        async || {
            readyz(cluster.node(0)).await.0 == StatusCode::OK
                && readyz(cluster.node(1)).await.0 == StatusCode::OK
        },
    )
    .await;
    within(
        Duration::from_secs(10),
        "both nodes listed again",
        async || metric(cluster.node(0), "tertulia_cluster_nodes").await == Some(2.0),
    )
    .await;

    // A node killed with SIGKILL is gone for the others once its liveness key expires.
    let third = cluster.spawn_process("node-3");
    within(
        Duration::from_secs(10),
        "the third node is seen",
        async || metric(cluster.node(0), "tertulia_cluster_nodes").await == Some(3.0),
    )
    .await;
    third.kill();
    let took = within(
        Duration::from_secs(10),
        "the killed node is gone",
        async || metric(cluster.node(0), "tertulia_cluster_nodes").await == Some(2.0),
    )
    .await;
    println!("a node killed with SIGKILL was gone for the others after {took:?}");
}

#[actix_web::test]
async fn a_logout_on_one_node_closes_the_sessions_connections_on_every_node() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let ana = cluster.node(0).user("ana").await;
    let mut on_1 = connect(cluster.node(0), &ana).await;
    let mut on_2 = connect(cluster.node(1), &ana).await;
    let reply = cluster
        .node(0)
        .post("/api/logout", Some(&ana.token), json!({}))
        .await;
    assert!(reply.status.is_success(), "{}", reply.body);
    assert_eq!(on_1.expect_close().await, 4001);
    assert_eq!(on_2.expect_close().await, 4001);
}

#[actix_web::test]
async fn posts_for_an_event_stream_reach_it_through_any_node_in_order() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let ana = cluster.node(0).user("ana").await;
    let mut client = connect_with(
        cluster.node(0),
        ConnectOpts {
            token: Some(&ana.token),
            transport: Some(Transport::Http),
            ..ConnectOpts::default()
        },
    )
    .await;
    let path = client.stream_path().expect("an event stream");
    assert!(
        path.ends_with(".node-1"),
        "the stream id names its node: {path}"
    );
    // A balancer sends the posts to node 2: they reach the session on node 1, in order.
    client.post_via(cluster.node(1).port);
    for id in 1..=30 {
        client.send(json!({"type": "ping", "id": id})).await;
    }
    for id in 1..=30 {
        let reply = client.recv_type("pong").await;
        assert_eq!(reply["id"], id, "{reply}");
    }
    // Someone else's credential is refused there as on node 1.
    let bob = cluster.node(1).user("bob").await;
    let reply = cluster
        .node(1)
        .request(
            "POST",
            &path,
            Some(&bob.token),
            Some(json!({"type": "ping", "id": 99})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
}

#[actix_web::test]
async fn admin_stats_count_the_connections_and_rooms_of_every_node() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let admin = cluster.node(0).admin("root").await;
    let ana = cluster.node(0).user("ana").await;
    let bob = cluster.node(1).user("bob").await;
    let mut ana_1 = connect(cluster.node(0), &ana).await;
    let mut bob_1 = connect(cluster.node(1), &bob).await;
    let mut bob_2 = connect(cluster.node(1), &bob).await;
    // One room with members on both nodes, one on node 2 alone: two live rooms.
    ana_1.join("sala").await;
    bob_1.join("sala").await;
    bob_2.join("outra").await;
    ana_1.recv_type("room.peer_joined").await;
    for node in 0..2 {
        within(
            Duration::from_secs(10),
            "three connections and two rooms over two nodes",
            async || {
                let stats = cluster
                    .node(node)
                    .get("/api/admin/stats", Some(&admin.token))
                    .await;
                stats.body["ws_connections"] == 3 && stats.body["live_rooms"] == 2
            },
        )
        .await;
    }
}

#[actix_web::test]
async fn the_per_user_connection_cap_counts_connections_on_every_node() {
    let Some(cluster) = Cluster::start_with(2, |_, s| s.ws_max_conns_per_user = 2).await else {
        return;
    };
    let ana = cluster.node(0).user("ana").await;
    let first = connect(cluster.node(0), &ana).await;
    let _second = connect(cluster.node(0), &ana).await;
    // The third, on the other node, is over the cap (once node 1's count is in Redis).
    within(
        Duration::from_secs(10),
        "a third connection refused on node 2",
        async || {
            let third = crate::ws_client::try_connect(
                cluster.node(1),
                ConnectOpts {
                    token: Some(&ana.token),
                    ..ConnectOpts::default()
                },
            )
            .await;
            matches!(third, Err(429))
        },
    )
    .await;
    // One closes on node 1: node 2 takes one.
    first.close_and_wait().await;
    within(
        Duration::from_secs(10),
        "a connection admitted on node 2",
        async || {
            crate::ws_client::try_connect(
                cluster.node(1),
                ConnectOpts {
                    token: Some(&ana.token),
                    ..ConnectOpts::default()
                },
            )
            .await
            .is_ok()
        },
    )
    .await;
}

#[actix_web::test]
async fn a_node_id_another_live_node_uses_is_refused() {
    let Some(cluster) = Cluster::start(1).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = crate::helpers::sqlite_settings(&dir);
    settings.database_url = cluster.node(0).settings.database_url.clone();
    settings.broker = Some(cluster.redis.url());
    settings.node_id = Some("node-1".to_owned());
    let err = tertulia::startup::Application::build(settings)
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("another node is running as 'node-1'"),
        "{err}"
    );
}
