//! Crash consistency: clients chat at load in 20 rooms while the real `tertulia` binary is
//! killed with SIGKILL at a random moment and restarted on the same database, several times.
//! Every acknowledged message survives each crash with its `msg_id`; every message left
//! unacknowledged is resent with its `client_msg_id` and acknowledged, with its original
//! `msg_id` when it had been stored; at the end each room's history holds every message exactly
//! once, each sender's messages in the order sent.
//!
//! The seed of the random choices (when each kill comes, which acknowledged messages are resent
//! as well) is printed; `TERTULIA_CRASH_SEED=<seed>` replays the kill delays (what is in flight
//! at that moment depends on the machine). The server's log is printed only when the test
//! fails.

use std::{
    cell::{Cell, RefCell},
    collections::{HashMap, HashSet},
    os::unix::process::ExitStatusExt,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use diesel::prelude::*;
use futures_util::{future::join_all, SinkExt, StreamExt};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use serde_json::{json, Value};
use tertulia::db::{
    models::Message as StoredMessage,
    schema::{messages, rooms},
};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    client_async,
    tungstenite::{client::IntoClientRequest, http::HeaderValue, Message},
    WebSocketStream,
};

use crate::helpers::{collect_served_output, PASSWORD};

/// The binary Cargo built for these tests: the real server, killed for real.
const BIN: &str = env!("CARGO_BIN_EXE_tertulia");
/// Public channels the clients chat in.
const ROOMS: usize = 20;
/// Users, one connection each; user `i` is in rooms `i`, `i + 1` and `i + 2` (mod [`ROOMS`]),
/// so every room has three members (the default room cap is six).
const USERS: usize = 20;
/// Rooms each user chats in.
const ROOMS_PER_USER: usize = 3;
/// `chat.send`s a client keeps in flight: enough to keep the group commit busy, few enough that
/// no member's outbound queue (256 frames) fills while it reads.
const WINDOW: usize = 6;
/// Every this many messages, a client sends a second copy right after the first (the same
/// `client_msg_id`, before any ack: the two usually share a group commit).
const SECOND_COPY_EVERY: usize = 17;
/// How many times the server is killed under load.
const KILLS: usize = 4;
/// When each kill comes after the load starts, in milliseconds (drawn from the seeded RNG).
const KILL_AFTER_MS: std::ops::RangeInclusive<u64> = 300..=2_000;
/// Acknowledged messages each client resends after a restart as well (they must keep their
/// `msg_id` and not be stored or delivered again).
const RESEND_ACKED: usize = 2;
/// How long the server may take to start on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a client waits for a frame it needs before the test fails (generous: the machine
/// is shared; the load never pauses for this long).
const WAIT: Duration = Duration::from_secs(60);

/// One client's WebSocket connection.
type Ws = WebSocketStream<TcpStream>;

/// The name of room `i`.
fn room_name(i: usize) -> String {
    format!("crash-{i:02}")
}

/// Prints the server's log when the test fails (declared before the server, so it runs after
/// the server was killed and its log is complete).
struct LogOnPanic(Arc<Mutex<String>>);

impl Drop for LogOnPanic {
    /// Prints the log if the test is failing.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.0.lock().map(|l| l.clone()).unwrap_or_default();
            eprintln!("---- the server's log ----\n{log}---- end of the server's log ----");
        }
    }
}

/// One run of `tertulia serve`; killed when dropped, so a failing test leaves no process.
struct Server {
    child: Child,
    /// The port it serves on (the same one after every restart).
    port: u16,
}

impl Server {
    /// Starts the server on `port` (0: a free one) with the database `db`; its output goes to
    /// `log`. Returns once it serves.
    fn start(db: &str, port: u16, log: &Arc<Mutex<String>>) -> Server {
        log.lock()
            .unwrap()
            .push_str(&format!("---- starting on port {port} ----\n"));
        let mut cmd = Command::new(BIN);
        // Only the flags below count, not the developer's environment.
        for (key, _) in std::env::vars() {
            if key.starts_with("TERTULIA_") || key == "DATABASE_URL" || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        let bind = format!("127.0.0.1:{port}");
        let mut child = cmd
            .args(["serve", "--bind", &bind, "--database-url", db])
            .args(["--web-dir", concat!(env!("CARGO_MANIFEST_DIR"), "/web")])
            // The default durability (`full`), as users run it; a process crash loses nothing
            // acknowledged under `normal` either, so both pass this test.
            .args(["--workers", "2"])
            // Every user logs in from 127.0.0.1, and the clients send as fast as acks come.
            .args(["--login-attempts", "1000"])
            .args(["--ws-rate-per-sec", "1000000", "--ws-rate-burst", "1000000"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server starts");
        let port_rx = collect_served_output(&mut child, log);
        let mut server = Server { child, port };
        match port_rx.recv_timeout(START_TIMEOUT) {
            Ok(served) => server.port = served,
            Err(_) => panic!("the server did not start on port {port} (its log follows)"),
        }
        server
    }

    /// SIGKILL: the process ends at once, mid-commit or mid-write, as in a crash.
    fn kill(mut self) {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::KILL,
        )
        .expect("SIGKILL sent");
        let status = self.child.wait().expect("server reaped");
        assert_eq!(
            status.signal(),
            Some(rustix::process::Signal::KILL.as_raw()),
            "the server was killed, not ended by itself: {status}"
        );
    }
}

impl Drop for Server {
    /// Kills the server if it still runs (a panicking test leaves no process behind).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port below the kernel's ephemeral range, or 0 (any) if that range starts too low.
///
/// The server comes back on the same port after each kill; a port the kernel could hand to
/// another test's outgoing connection or `bind(0)` meanwhile would make the restart fail now
/// and then. Below `ip_local_port_range` only an explicit bind takes a port.
fn port_outside_ephemeral_range() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if low <= 2_048 {
        return 0;
    }
    let mut rng = rand::thread_rng();
    for _ in 0..200 {
        let port = rng.gen_range(low.saturating_sub(12_000).max(1_024)..low);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    0
}

/// Registers `nickname` and logs in: its user id and bearer token.
async fn register(port: u16, nickname: String) -> (i64, String) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    let base = format!("http://127.0.0.1:{port}");
    let credentials = json!({"nickname": nickname, "password": PASSWORD});
    let reg = client
        .post(format!("{base}/api/register"))
        .send_json(&credentials)
        .await
        .expect("register sent");
    assert_eq!(reg.status(), 201, "register {nickname}");
    let mut login = client
        .post(format!("{base}/api/login"))
        .send_json(&credentials)
        .await
        .expect("login sent");
    assert_eq!(login.status(), 200, "login {nickname}");
    let body: Value = login.json().await.expect("login body");
    (
        body["user"]["id"].as_i64().expect("user id"),
        body["token"].as_str().expect("token").to_owned(),
    )
}

/// Opens `/ws` with a bearer token (retrying briefly: the listener may still be settling).
async fn connect(port: u16, token: &str) -> Ws {
    let mut last = String::new();
    for _ in 0..50 {
        let mut req = format!("ws://127.0.0.1:{port}/ws")
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(stream) => match client_async(req, stream).await {
                Ok((ws, _)) => return ws,
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not open /ws on port {port}: {last}");
}

/// What a client read: a JSON frame, or the end of the connection (and why).
enum Incoming {
    /// A text frame, parsed.
    Frame(Value),
    /// The connection ended: a close frame, an error or the end of the stream.
    Ended(String),
}

/// The next JSON frame; fails the test if none comes within [`WAIT`].
async fn read(ws: &mut Ws, who: &str) -> Incoming {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Err(_) => panic!("{who}: no frame from the server within {WAIT:?}"),
            Ok(Some(Ok(Message::Text(text)))) => {
                return Incoming::Frame(serde_json::from_str(&text).expect("the server sends JSON"))
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Incoming::Ended(format!("close frame {frame:?}"))
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Incoming::Ended(e.to_string()),
            Ok(None) => return Incoming::Ended("end of stream".to_owned()),
        }
    }
}

/// Every `msg_id` the test has learnt, by (sender, `client_msg_id`), from acks, live
/// `chat.message`s, `room.joined` catch-ups and the database: one message never has two.
#[derive(Default)]
struct Ledger {
    ids: HashMap<(i64, String), (usize, i64)>,
}

impl Ledger {
    /// Records that the message `key` in `room` has `msg_id`; fails if it was known otherwise.
    fn observe(&mut self, key: (i64, String), room: usize, msg_id: i64, how: &str) {
        if let Some(&(known_room, known_id)) = self.ids.get(&key) {
            assert_eq!(
                (known_room, known_id),
                (room, msg_id),
                "message {key:?}: {how} says room {} msg_id {msg_id}, but it was {} msg_id \
                 {known_id} before",
                room_name(room),
                room_name(known_room)
            );
        } else {
            self.ids.insert(key, (room, msg_id));
        }
    }

    /// The `msg_id` already known for `key`.
    fn get(&self, key: &(i64, String)) -> Option<i64> {
        self.ids.get(key).map(|&(_, id)| id)
    }
}

/// One message a client sent, in the order sent.
struct Sent {
    /// The room's index (see [`room_name`]).
    room: usize,
    /// `"<nickname>-<n>"`: unique per sender, the same on every resend.
    client_msg_id: String,
    /// Unique over the whole test, so a copy stored under another key would show.
    text: String,
    /// From its ack, once one came.
    msg_id: Option<i64>,
}

/// One user with one connection, and everything it sent and saw.
struct Chatter {
    /// The user's id (`from.id` on its messages).
    id: i64,
    nickname: String,
    /// Bearer token: the login session outlives every restart (it is in the database).
    token: String,
    /// The indices of the rooms it chats in.
    rooms: Vec<usize>,
    /// Every message it sent, in the order first sent.
    sent: Vec<Sent>,
    /// `chat.send` frame id → index in `sent`, until its ack.
    in_flight: HashMap<i64, usize>,
    /// The last frame `id` used.
    next_frame: i64,
    /// Per room, the highest `msg_id` seen in a `chat.message` (the next join's `since`).
    seen_up_to: HashMap<usize, i64>,
    /// Per room, the last `msg_id` delivered live on this connection.
    live_last: HashMap<usize, i64>,
    /// Every message delivered live to this user, ever: a message is delivered once.
    delivered: HashSet<(i64, String)>,
    /// The connection between [`Chatter::recover`] and [`Chatter::chat_until_killed`].
    ws: Option<Ws>,
    /// Resends (after restarts) answered with a `msg_id` stored before the crash.
    resent_kept_id: usize,
}

impl Chatter {
    /// A frame `id` not used before by this client.
    fn frame_id(&mut self) -> i64 {
        self.next_frame += 1;
        self.next_frame
    }

    /// The `chat.send` frame of `sent[idx]` with a fresh frame id, now in flight.
    fn send_frame(&mut self, idx: usize) -> String {
        let id = self.frame_id();
        self.in_flight.insert(id, idx);
        let sent = &self.sent[idx];
        json!({
            "type": "chat.send",
            "id": id,
            "room": room_name(sent.room),
            "client_msg_id": sent.client_msg_id,
            "text": sent.text,
        })
        .to_string()
    }

    /// Handles an ack, a live `chat.message` or an error; other frames (presence, peers) are
    /// not this test's business.
    fn take(&mut self, frame: &Value, ledger: &RefCell<Ledger>) {
        match frame["type"].as_str() {
            Some("ack") => {
                let Some(idx) = frame["id"]
                    .as_i64()
                    .and_then(|id| self.in_flight.remove(&id))
                else {
                    panic!(
                        "{}: an ack for no chat.send in flight: {frame}",
                        self.nickname
                    );
                };
                let msg_id = frame["msg_id"].as_i64().expect("ack has msg_id");
                let sent = &mut self.sent[idx];
                if let Some(first) = sent.msg_id {
                    assert_eq!(
                        first, msg_id,
                        "{}: resending acknowledged {} gave another msg_id",
                        self.nickname, sent.client_msg_id
                    );
                }
                sent.msg_id = Some(msg_id);
                ledger.borrow_mut().observe(
                    (self.id, sent.client_msg_id.clone()),
                    sent.room,
                    msg_id,
                    "an ack",
                );
            }
            Some("chat.message") => {
                let room = self.room_of(frame);
                let msg_id = frame["msg_id"].as_i64().expect("msg_id");
                let key = message_key(frame);
                ledger
                    .borrow_mut()
                    .observe(key.clone(), room, msg_id, "chat.message");
                assert!(
                    self.delivered.insert(key.clone()),
                    "{}: message {key:?} delivered a second time: {frame}",
                    self.nickname
                );
                let last = self.live_last.insert(room, msg_id).unwrap_or(0);
                assert!(
                    msg_id > last,
                    "{}: in {} msg_id {msg_id} came after {last}",
                    self.nickname,
                    room_name(room)
                );
                let seen = self.seen_up_to.entry(room).or_insert(0);
                *seen = (*seen).max(msg_id);
            }
            Some("error") => panic!("{}: the server answered an error: {frame}", self.nickname),
            _ => {}
        }
    }

    /// The index of the room a frame names.
    fn room_of(&self, frame: &Value) -> usize {
        let name = frame["room"].as_str().expect("room");
        self.rooms
            .iter()
            .copied()
            .find(|&r| room_name(r) == name)
            .unwrap_or_else(|| panic!("{}: a frame from a room not joined: {frame}", self.nickname))
    }

    /// Reads until the reply to frame `id`, handling what comes before it.
    async fn reply_to(&mut self, ws: &mut Ws, id: i64, ledger: &RefCell<Ledger>) -> Value {
        loop {
            match read(ws, &self.nickname).await {
                Incoming::Frame(frame) if frame["id"] == id && frame["type"] != "ack" => {
                    return frame
                }
                Incoming::Frame(frame) => self.take(&frame, ledger),
                Incoming::Ended(why) => panic!("{}: connection ended: {why}", self.nickname),
            }
        }
    }

    /// After a (re)start: connects, rejoins its rooms with `since` (learning the `msg_id`s of
    /// what it missed), resends every unacknowledged message in the order first sent and the
    /// acknowledged ones at `acked_again`, and waits for every ack.
    async fn recover(&mut self, port: u16, acked_again: &[usize], ledger: &RefCell<Ledger>) {
        let mut ws = connect(port, &self.token).await;
        self.live_last.clear();
        for room in self.rooms.clone() {
            let id = self.frame_id();
            let mut join = json!({"type": "room.join", "id": id, "room": room_name(room)});
            let since = self.seen_up_to.get(&room).copied();
            if let Some(since) = since {
                join["since"] = json!(since);
            }
            send(&mut ws, join.to_string(), &self.nickname).await;
            let joined = self.reply_to(&mut ws, id, ledger).await;
            assert_eq!(joined["type"], "room.joined", "{}: {joined}", self.nickname);
            let mut last = since.unwrap_or(0);
            for message in joined["messages"].as_array().expect("messages") {
                let msg_id = message["msg_id"].as_i64().expect("msg_id");
                if since.is_some() {
                    assert!(
                        msg_id > last,
                        "{}: rejoining {} since {since:?} gave msg_id {msg_id} after {last}",
                        self.nickname,
                        room_name(room)
                    );
                }
                last = msg_id;
                ledger
                    .borrow_mut()
                    .observe(message_key(message), room, msg_id, "room.joined");
                let seen = self.seen_up_to.entry(room).or_insert(0);
                *seen = (*seen).max(msg_id);
            }
        }
        let unacked: Vec<usize> = (0..self.sent.len())
            .filter(|&i| self.sent[i].msg_id.is_none())
            .collect();
        let stored_before: HashSet<usize> = unacked
            .iter()
            .copied()
            .filter(|&i| {
                ledger
                    .borrow()
                    .get(&(self.id, self.sent[i].client_msg_id.clone()))
                    .is_some()
            })
            .collect();
        for &idx in unacked.iter().chain(acked_again) {
            let frame = self.send_frame(idx);
            send(&mut ws, frame, &self.nickname).await;
        }
        while !self.in_flight.is_empty() {
            match read(&mut ws, &self.nickname).await {
                Incoming::Frame(frame) => self.take(&frame, ledger),
                Incoming::Ended(why) => {
                    panic!("{}: connection ended while resending: {why}", self.nickname)
                }
            }
        }
        // `take` checked each resend's ack against the ledger: those stored before the crash
        // kept their msg_id.
        self.resent_kept_id += stored_before.len();
        self.ws = Some(ws);
    }

    /// Sends new messages round the rooms, about [`WINDOW`] in flight, until the server is
    /// killed.
    async fn chat_until_killed(&mut self, killed: &Cell<bool>, ledger: &RefCell<Ledger>) {
        let mut ws = self.ws.take().expect("connected");
        let ended = 'load: loop {
            while self.in_flight.len() < WINDOW {
                let n = self.sent.len();
                let room = self.rooms[n % self.rooms.len()];
                self.sent.push(Sent {
                    room,
                    client_msg_id: format!("{}-{n}", self.nickname),
                    text: format!("{} says #{n} in {}", self.nickname, room_name(room)),
                    msg_id: None,
                });
                // Now and then a second copy at once, as a client's retry timer may send one
                // before the first ack: both copies are acknowledged with one msg_id.
                let copies = if n.is_multiple_of(SECOND_COPY_EVERY) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let frame = self.send_frame(n);
                    if let Err(e) = ws.send(Message::Text(frame)).await {
                        break 'load e.to_string();
                    }
                }
            }
            match read(&mut ws, &self.nickname).await {
                Incoming::Frame(frame) => self.take(&frame, ledger),
                Incoming::Ended(why) => break why,
            }
        };
        assert!(
            killed.get(),
            "{}: the connection ended before the server was killed: {ended}",
            self.nickname
        );
        // Whatever was in flight is unacknowledged: resent after the restart.
        self.in_flight.clear();
    }
}

/// Sends one text frame on a connection that must be open.
async fn send(ws: &mut Ws, frame: String, who: &str) {
    ws.send(Message::Text(frame))
        .await
        .unwrap_or_else(|e| panic!("{who}: send failed: {e}"));
}

/// (sender id, `client_msg_id`) of a `chat.message` body.
fn message_key(message: &Value) -> (i64, String) {
    (
        message["from"]["id"].as_i64().expect("from.id"),
        message["client_msg_id"]
            .as_str()
            .expect("client_msg_id")
            .to_owned(),
    )
}

/// Every stored message, read from the SQLite file itself, and the room index of each room id.
fn stored_messages(db: &str) -> (Vec<StoredMessage>, HashMap<i64, usize>) {
    let pool = tertulia::db::build_pool(db, 1).expect("the database opens");
    let mut conn = pool.get().expect("a connection");
    let rows = messages::table
        .select(StoredMessage::as_select())
        .order(messages::id.asc())
        .load(&mut conn)
        .expect("messages read");
    let room_ids: Vec<(i64, String)> = rooms::table
        .select((rooms::id, rooms::name))
        .load(&mut conn)
        .expect("rooms read");
    let rooms = room_ids
        .into_iter()
        .filter_map(|(id, name)| (0..ROOMS).find(|&r| room_name(r) == name).map(|r| (id, r)))
        .collect();
    (rows, rooms)
}

/// Checks the database right after a crash (before any client is back): every acknowledged
/// message is there with its `msg_id`, nothing is there twice or unsent, and the unacknowledged
/// ones that were stored are put in the ledger (their resends must get these `msg_id`s).
/// Returns how many unacknowledged messages had been stored.
fn check_after_crash(db: &str, chatters: &[Chatter], ledger: &RefCell<Ledger>) -> usize {
    let (rows, rooms) = stored_messages(db);
    let by_key = rows_by_key(&rows);
    let mut stored_unacked = 0;
    for c in chatters {
        for sent in &c.sent {
            let row = by_key.get(&(c.id, sent.client_msg_id.as_str()));
            match (sent.msg_id, row) {
                (Some(msg_id), Some(row)) => {
                    assert_eq!(row.id, msg_id, "{} kept its msg_id", sent.client_msg_id);
                    assert_eq!(rooms[&row.room_id], sent.room);
                    assert_eq!(row.body, sent.text);
                }
                (Some(msg_id), None) => panic!(
                    "acknowledged message {} (msg_id {msg_id}) was lost in the crash",
                    sent.client_msg_id
                ),
                (None, Some(row)) => {
                    stored_unacked += 1;
                    ledger.borrow_mut().observe(
                        (c.id, sent.client_msg_id.clone()),
                        rooms[&row.room_id],
                        row.id,
                        "the database after the crash",
                    );
                }
                (None, None) => {}
            }
        }
    }
    let sent: usize = chatters.iter().map(|c| c.sent.len()).sum();
    assert!(
        rows.len() <= sent,
        "{} rows stored for {sent} messages sent",
        rows.len()
    );
    stored_unacked
}

/// Rows by (sender, `client_msg_id`), failing on any message stored twice (same key or same
/// text: each message's text is unique).
fn rows_by_key(rows: &[StoredMessage]) -> HashMap<(i64, &str), &StoredMessage> {
    let mut by_key = HashMap::new();
    let mut texts = HashSet::new();
    for row in rows {
        assert!(
            by_key
                .insert((row.sender_id, row.client_msg_id.as_str()), row)
                .is_none(),
            "{} stored twice",
            row.client_msg_id
        );
        assert!(
            texts.insert(row.body.as_str()),
            "{:?} stored twice",
            row.body
        );
    }
    by_key
}

/// Every page of `room`'s history over HTTP, oldest first.
async fn http_history(port: u16, token: &str, room: usize) -> Vec<Value> {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    let mut all: Vec<Value> = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut url = format!(
            "http://127.0.0.1:{port}/api/rooms/{}/messages?limit=200",
            room_name(room)
        );
        if let Some(before) = before {
            url.push_str(&format!("&before={before}"));
        }
        let mut res = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("history request");
        assert_eq!(res.status(), 200, "history of {}", room_name(room));
        let page: Value = res.json().limit(16 << 20).await.expect("history page");
        let mut messages = page["messages"].as_array().expect("messages").clone();
        before = messages
            .first()
            .map(|m| m["msg_id"].as_i64().expect("msg_id"));
        messages.append(&mut all);
        all = messages;
        if page["has_more"] != true {
            return all;
        }
    }
}

/// Every message sent, by (sender, `client_msg_id`): its room, `msg_id` and text.
type Expected = HashMap<(i64, String), (usize, i64, String)>;

/// What the server must hold once every message is acknowledged; checks on the way that each
/// sender's messages in each room got growing `msg_id`s in the order sent.
fn expected_messages(chatters: &[Chatter]) -> Expected {
    let mut expected = Expected::new();
    for c in chatters {
        let mut last: HashMap<usize, i64> = HashMap::new();
        for sent in &c.sent {
            let msg_id = sent.msg_id.expect("acknowledged");
            let before = last.insert(sent.room, msg_id).unwrap_or(0);
            assert!(
                msg_id > before,
                "{}: {} got msg_id {msg_id}, after its previous message in {} got {before}",
                c.nickname,
                sent.client_msg_id,
                room_name(sent.room)
            );
            expected.insert(
                (c.id, sent.client_msg_id.clone()),
                (sent.room, msg_id, sent.text.clone()),
            );
        }
    }
    expected
}

/// What the server serves: each room's history over HTTP holds every message of the room
/// once, with its acknowledged `msg_id`, in `msg_id` order, and nothing else.
async fn check_histories(port: u16, token: &str, expected: &Expected) {
    let histories = join_all((0..ROOMS).map(|room| http_history(port, token, room))).await;
    let mut served = HashSet::new();
    for (room, history) in histories.iter().enumerate() {
        let mut last = 0;
        for message in history {
            let msg_id = message["msg_id"].as_i64().expect("msg_id");
            assert!(msg_id > last, "{}: history out of order", room_name(room));
            last = msg_id;
            let key = message_key(message);
            let Some((want_room, want_id, text)) = expected.get(&key) else {
                panic!("{}: a message nobody sent: {message}", room_name(room));
            };
            assert_eq!(
                (*want_room, *want_id),
                (room, msg_id),
                "{key:?} served in {} with msg_id {msg_id}",
                room_name(room)
            );
            assert_eq!(message["text"], text.as_str());
            assert!(served.insert(key), "{message} served twice");
        }
    }
    assert_eq!(
        served.len(),
        expected.len(),
        "the histories hold every message"
    );
}

/// The SQLite file itself: one row per message sent, each with its acknowledged `msg_id`.
fn check_database(db: &str, expected: &Expected) {
    let (rows, rooms) = stored_messages(db);
    let by_key = rows_by_key(&rows);
    assert_eq!(rows.len(), expected.len(), "one row per message sent");
    for ((sender, client_msg_id), (room, msg_id, text)) in expected {
        let row = by_key
            .get(&(*sender, client_msg_id.as_str()))
            .unwrap_or_else(|| panic!("{client_msg_id} is not in the database"));
        assert_eq!(
            (rooms[&row.room_id], row.id, row.body.as_str()),
            (*room, *msg_id, text.as_str())
        );
    }
}

/// For each client, up to [`RESEND_ACKED`] of its acknowledged messages, drawn from `rng`.
fn acked_samples(chatters: &[Chatter], rng: &mut StdRng) -> Vec<Vec<usize>> {
    chatters
        .iter()
        .map(|c| {
            let acked: Vec<usize> = (0..c.sent.len())
                .filter(|&i| c.sent[i].msg_id.is_some())
                .collect();
            acked.choose_multiple(rng, RESEND_ACKED).copied().collect()
        })
        .collect()
}

#[actix_web::test]
async fn every_acknowledged_message_survives_sigkill_exactly_once_and_resends_keep_their_msg_id() {
    let seed = std::env::var("TERTULIA_CRASH_SEED")
        .ok()
        .map(|s| s.parse::<u64>().expect("TERTULIA_CRASH_SEED is a number"))
        .unwrap_or_else(rand::random);
    println!("crash test seed {seed} (replay: TERTULIA_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    // Drawn first, so the seed replays them whatever else varies between runs.
    let kill_delays: Vec<Duration> = (0..KILLS)
        .map(|_| Duration::from_millis(rng.gen_range(KILL_AFTER_MS)))
        .collect();

    let dir = tempfile::tempdir().expect("temp dir");
    // A SQLite file in `dir`, or a PostgreSQL database (TERTULIA_TEST_DATABASE=postgres).
    let db = crate::helpers::test_database_url(&dir);
    let log = Arc::new(Mutex::new(String::new()));
    let _log_on_panic = LogOnPanic(Arc::clone(&log));
    let mut server = Server::start(&db, port_outside_ephemeral_range(), &log);
    let port = server.port;

    let accounts = join_all((0..USERS).map(|i| register(port, format!("crash{i:02}")))).await;
    let mut chatters: Vec<Chatter> = accounts
        .into_iter()
        .enumerate()
        .map(|(i, (id, token))| Chatter {
            id,
            nickname: format!("crash{i:02}"),
            token,
            rooms: (0..ROOMS_PER_USER).map(|k| (i + k) % ROOMS).collect(),
            sent: Vec::new(),
            in_flight: HashMap::new(),
            next_frame: 0,
            seen_up_to: HashMap::new(),
            live_last: HashMap::new(),
            delivered: HashSet::new(),
            ws: None,
            resent_kept_id: 0,
        })
        .collect();
    let ledger = RefCell::new(Ledger::default());
    // Messages acknowledged under load before a kill, over all rounds.
    let mut acked_under_load = 0;

    for round in 0..=KILLS {
        // Everyone (re)connects, catches up and resends; nothing is killed meanwhile.
        let samples = acked_samples(&chatters, &mut rng);
        join_all(
            chatters
                .iter_mut()
                .zip(&samples)
                .map(|(c, sample)| c.recover(port, sample, &ledger)),
        )
        .await;
        for c in &chatters {
            assert!(
                c.sent.iter().all(|s| s.msg_id.is_some()),
                "{}: a resend went unacknowledged",
                c.nickname
            );
        }
        // After the last kill only the recovery above remains.
        let Some(&delay) = kill_delays.get(round) else {
            break;
        };

        // Load, and a SIGKILL at a random moment of it.
        let sent_before: usize = chatters.iter().map(|c| c.sent.len()).sum();
        let killed = Cell::new(false);
        let killer = async {
            tokio::time::sleep(delay).await;
            killed.set(true);
            server.kill();
        };
        // `server` moves into the killer; a new one takes its place below.
        let (_, ()) = tokio::join!(
            join_all(
                chatters
                    .iter_mut()
                    .map(|c| c.chat_until_killed(&killed, &ledger))
            ),
            killer
        );
        server = Server::start(&db, port, &log);
        assert_eq!(server.port, port, "restarted on the same port");
        let stored_unacked = check_after_crash(&db, &chatters, &ledger);
        let sent: usize = chatters.iter().map(|c| c.sent.len()).sum();
        let unacked: usize = chatters
            .iter()
            .map(|c| c.sent.iter().filter(|s| s.msg_id.is_none()).count())
            .sum();
        println!(
            "kill {}: after {delay:?}, {} messages sent, {unacked} of them unacknowledged \
             ({stored_unacked} of those stored before the kill)",
            round + 1,
            sent - sent_before
        );
        acked_under_load += sent - sent_before - unacked;
    }
    assert!(
        acked_under_load > 0,
        "no message was acknowledged before any kill: the test exercised nothing"
    );

    let expected = expected_messages(&chatters);
    let resent_kept_id: usize = chatters.iter().map(|c| c.resent_kept_id).sum();
    println!(
        "{} messages in all; {resent_kept_id} resends were answered with the msg_id stored \
         before a kill",
        expected.len()
    );
    check_histories(port, &chatters[0].token, &expected).await;
    check_database(&db, &expected);
    server.kill();
}
