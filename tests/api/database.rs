//! The database the server opens: what an acknowledgement promises.

use diesel::{
    sql_types::{Integer, Text},
    Connection, QueryableByName, RunQueryDsl,
};
use tertulia::{db::Durability, startup::open_database};

use crate::helpers::{drop_test_database, on_postgres, test_settings};

/// One row of `PRAGMA synchronous`: 1 is NORMAL, 2 is FULL.
#[derive(QueryableByName)]
struct Synchronous {
    #[diesel(sql_type = Integer)]
    synchronous: i32,
}

/// One row of PostgreSQL's `SHOW synchronous_commit`.
#[derive(QueryableByName)]
struct SynchronousCommit {
    #[diesel(sql_type = Text)]
    synchronous_commit: String,
}

/// What each of `n` connections held at once from the server's pool promises: SQLite's
/// `PRAGMA synchronous` (2 is FULL, 1 NORMAL), or on PostgreSQL `synchronous_commit` as the
/// same numbers (on: 2, off: 1).
fn synchronous_of_pool(durability: Option<Durability>, n: usize) -> Vec<i32> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(&dir);
    if let Some(d) = durability {
        settings.sqlite_synchronous = d;
    }
    let pool = open_database(&settings).expect("database opens");
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(pool.get().expect("connection"));
    }
    let levels = held
        .iter_mut()
        .map(|conn| {
            if on_postgres() {
                let level = diesel::sql_query("SHOW synchronous_commit")
                    .get_result::<SynchronousCommit>(&mut **conn)
                    .expect("setting")
                    .synchronous_commit;
                match level.as_str() {
                    "on" => 2,
                    "off" => 1,
                    _ => 0,
                }
            } else {
                diesel::sql_query("PRAGMA synchronous")
                    .get_result::<Synchronous>(&mut **conn)
                    .expect("pragma")
                    .synchronous
            }
        })
        .collect();
    drop(held);
    drop(pool);
    drop_test_database(&settings.database_url);
    levels
}

#[test]
fn by_default_every_connection_fsyncs_each_commit_so_nothing_acknowledged_is_lost() {
    assert_eq!(synchronous_of_pool(None, 3), vec![2, 2, 2]);
}

#[test]
fn sqlite_synchronous_normal_is_applied_to_every_connection_of_the_pool() {
    assert_eq!(
        synchronous_of_pool(Some(Durability::Normal), 3),
        vec![1, 1, 1]
    );
}

/// Several writers insert into one room at once while a reader pages forward from the last
/// `msg_id` it saw (what a client resuming with `since` does): the reader must end with every
/// message. On PostgreSQL ids come from a sequence in the order transactions ask, and without
/// the room's row lock (src/db/messages.rs) a later id could commit first and the reader would
/// step past an earlier one still in flight.
#[test]
fn concurrent_writers_to_one_room_never_commit_a_msg_id_that_a_resuming_reader_skips() {
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };
    use tertulia::db::{self, messages::Cursor, models::NewMessage, models::RoomKind};

    const WRITERS: usize = 4;
    const BATCHES: usize = 60;
    const PER_BATCH: usize = 5;

    let dir = tempfile::tempdir().expect("temp dir");
    let settings = test_settings(&dir);
    let pool = open_database(&settings).expect("database opens");
    let (room, senders) = {
        let mut conn = pool.get().unwrap();
        let room = db::rooms::get_or_create(&mut conn, "canal1", RoomKind::Public, None).unwrap();
        let senders: Vec<i64> = (0..WRITERS)
            .map(|i| {
                let nickname = format!("writer{i}");
                db::users::create(
                    &mut conn,
                    &db::models::NewUser {
                        nickname: &nickname,
                        password_hash: "x",
                        can_video: true,
                        can_audio: true,
                        can_text: true,
                        role: "user",
                        created_at: db::now_ms(),
                    },
                    &[],
                )
                .unwrap()
                .id
            })
            .collect();
        (room, senders)
    };

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (pool, done) = (pool.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut conn = pool.get().unwrap();
            let (mut since, mut seen) = (0_i64, Vec::new());
            loop {
                let finished = done.load(Ordering::SeqCst);
                let (page, _) =
                    db::messages::page(&mut conn, room.id, Cursor::After(since), 200).unwrap();
                if let Some(last) = page.last() {
                    since = last.id;
                }
                seen.extend(page.iter().map(|m| m.id));
                if finished && since == seen.last().copied().unwrap_or(0) {
                    // One last page after every writer is done: nothing more can come.
                    let (rest, _) =
                        db::messages::page(&mut conn, room.id, Cursor::After(since), 200).unwrap();
                    seen.extend(rest.iter().map(|m| m.id));
                    if rest.is_empty() {
                        return seen;
                    }
                    since = rest.last().unwrap().id;
                }
            }
        })
    };
    let writers: Vec<_> = senders
        .iter()
        .map(|&sender| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut conn = pool.get().unwrap();
                for b in 0..BATCHES {
                    let batch: Vec<NewMessage> = (0..PER_BATCH)
                        .map(|k| NewMessage {
                            room_id: room.id,
                            sender_id: sender,
                            client_msg_id: format!("{b}-{k}"),
                            body: "x".to_owned(),
                            created_at: db::now_ms(),
                        })
                        .collect();
                    db::messages::insert_batch(&mut conn, &batch).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.join().unwrap();

    let mut conn = pool.get().unwrap();
    let (all, _) = db::messages::page(&mut conn, room.id, Cursor::After(0), 200).unwrap();
    let total = db::messages::count(&mut conn).unwrap();
    assert_eq!(total as usize, WRITERS * BATCHES * PER_BATCH);
    assert!(!all.is_empty());
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, seen, "the reader saw ids out of order or twice");
    assert_eq!(
        seen.len(),
        WRITERS * BATCHES * PER_BATCH,
        "the resuming reader skipped {} message(s)",
        WRITERS * BATCHES * PER_BATCH - seen.len()
    );
    drop(conn);
    drop(pool);
    drop_test_database(&settings.database_url);
}

/// A database that a newer Tertulia migrated (it records a migration this binary lacks)
/// stops start-up with one line saying so, and is left untouched.
#[test]
fn a_database_migrated_by_a_newer_version_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = test_settings(&dir);
    drop(open_database(&settings).expect("database opens"));
    {
        let pool = tertulia::db::build_pool(&settings.database_url, 1).unwrap();
        diesel::sql_query(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231000000')",
        )
        .execute(&mut *pool.get().unwrap())
        .unwrap();
    }
    let Err(e) = open_database(&settings) else {
        panic!("a database from a newer version opened");
    };
    let message = e.to_string();
    assert!(
        message.contains("newer Tertulia") && message.contains("29991231000000"),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
    drop_test_database(&settings.database_url);
}

/// What start-up says when a PostgreSQL URL leads nowhere: one line naming the problem and
/// what to do, never a panic, and never the password.
#[test]
fn a_bad_postgres_url_stops_start_up_with_one_line_saying_which_problem_and_what_to_do() {
    let mut settings = test_settings(&tempfile::tempdir().unwrap());
    drop_test_database(&settings.database_url);
    // Nothing listens on a port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    settings.database_url = format!("postgres://tertulia:s3cret@127.0.0.1:{port}/tertulia");
    let message = open_database(&settings).expect_err("refused").to_string();
    assert!(
        message.contains("cannot reach the PostgreSQL server"),
        "{message}"
    );
    assert!(message.contains("start it"), "{message}");
    assert!(
        !message.contains("s3cret") && !message.contains('\n'),
        "{message}"
    );

    let Some(server) = crate::helpers::test_pg_server() else {
        return;
    };
    // A database that does not exist, on a server that answers.
    settings.database_url = format!("{server}/tertulia_no_such_database");
    let message = open_database(&settings).expect_err("refused").to_string();
    assert!(
        message.contains("does not exist") && message.contains("createdb"),
        "{message}"
    );
    // A user the server does not know.
    let host = server.rsplit_once('@').map_or(server.as_str(), |(_, h)| h);
    settings.database_url = format!("postgres://no_such_role:pw@{host}/postgres");
    let message = open_database(&settings).expect_err("refused").to_string();
    assert!(message.contains("refused the credentials"), "{message}");
    assert!(!message.contains(":pw@"), "{message}");
}

/// Every row of one table, as text, by id: what `migrate-data` must carry over unchanged.
fn dump(url: &str) -> Vec<String> {
    use tertulia::db::{models::*, schema::*};
    let pool = tertulia::db::build_pool(url, 1).unwrap();
    let conn = &mut *pool.get().unwrap();
    let mut rows = Vec::new();
    let fmt = |rows: &mut Vec<String>, table: &str, v: Vec<String>| {
        rows.extend(v.into_iter().map(|r| format!("{table}: {r}")));
    };
    use diesel::{QueryDsl, SelectableHelper};
    let u: Vec<User> = users::table
        .select(User::as_select())
        .order(users::id)
        .load(conn)
        .unwrap();
    fmt(
        &mut rows,
        "users",
        u.iter().map(|r| format!("{r:?}")).collect(),
    );
    let t: Vec<Theme> = themes::table
        .select(Theme::as_select())
        .order(themes::id)
        .load(conn)
        .unwrap();
    fmt(
        &mut rows,
        "themes",
        t.iter().map(|r| format!("{r:?}")).collect(),
    );
    let d: Vec<(i64, String, String)> = theme_descriptions::table
        .select((
            theme_descriptions::theme_id,
            theme_descriptions::language,
            theme_descriptions::description,
        ))
        .order((theme_descriptions::theme_id, theme_descriptions::language))
        .load(conn)
        .unwrap();
    fmt(
        &mut rows,
        "descriptions",
        d.iter().map(|r| format!("{r:?}")).collect(),
    );
    let f: Vec<(i64, i64)> = user_themes::table
        .select((user_themes::user_id, user_themes::theme_id))
        .order((user_themes::user_id, user_themes::theme_id))
        .load(conn)
        .unwrap();
    fmt(
        &mut rows,
        "follows",
        f.iter().map(|r| format!("{r:?}")).collect(),
    );
    let s: Vec<Session> = sessions::table
        .select(Session::as_select())
        .order(sessions::id)
        .load(conn)
        .unwrap();
    fmt(
        &mut rows,
        "sessions",
        s.iter().map(|r| format!("{r:?}")).collect(),
    );
    let r: Vec<Room> = rooms::table
        .select(Room::as_select())
        .order(rooms::id)
        .load(conn)
        .unwrap();
    fmt(
        &mut rows,
        "rooms",
        r.iter().map(|r| format!("{r:?}")).collect(),
    );
    let m: Vec<(i64, i64, i64, i64)> = room_members::table
        .select((
            room_members::room_id,
            room_members::user_id,
            room_members::joined_at,
            room_members::last_read_msg_id,
        ))
        .order((room_members::room_id, room_members::user_id))
        .load(conn)
        .unwrap();
    fmt(
        &mut rows,
        "members",
        m.iter().map(|r| format!("{r:?}")).collect(),
    );
    let msgs: Vec<Message> = messages::table
        .select(Message::as_select())
        .order(messages::id)
        .load(conn)
        .unwrap();
    fmt(
        &mut rows,
        "messages",
        msgs.iter().map(|r| format!("{r:?}")).collect(),
    );
    let c: Vec<Call> = calls::table
        .select(Call::as_select())
        .order(calls::id)
        .load(conn)
        .unwrap();
    fmt(
        &mut rows,
        "calls",
        c.iter().map(|r| format!("{r:?}")).collect(),
    );
    rows
}

/// `tertulia migrate-data` moves a SQLite community into PostgreSQL: every row of every table
/// equal on both sides (ids, password hashes, timestamps), the counts printed, people able to
/// log in with their old passwords, new rows numbered after the copied ones; and a second run
/// into the now non-empty database is refused with a clear message, changing nothing.
#[actix_web::test]
async fn migrate_data_copies_a_sqlite_community_into_postgres_and_refuses_a_non_empty_target() {
    use crate::helpers::{create_pg_database, spawn_app_with, test_pg_server, PASSWORD};
    use crate::ws_client::connect;
    use serde_json::json;
    let Some(server) = test_pg_server() else {
        eprintln!("note: migrate-data needs PostgreSQL (TERTULIA_TEST_DATABASE=postgres)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("old.db").to_string_lossy().into_owned();
    let app = spawn_app_with(|s| s.database_url = source.clone()).await;
    let admin = app.admin("root").await;
    let ana = app
        .user_with("ana", &["Tecnologia", "Música"], &["text"])
        .await;
    let bia = app.user("bia").await;
    let made = app
        .post(
            "/api/admin/themes",
            Some(&admin.token),
            json!({"name": "Xadrez", "description": "peças"}),
        )
        .await;
    assert_eq!(made.status.as_u16(), 201, "{}", made.body);
    let deleted = app
        .request("DELETE", "/api/admin/themes/2", Some(&admin.token), None)
        .await;
    assert_eq!(deleted.status.as_u16(), 204);
    let mut a = connect(&app, &ana).await;
    a.join("canal1").await;
    for i in 0..30 {
        let ack = a
            .request(
                i,
                json!({"type": "chat.send", "room": "canal1", "client_msg_id": format!("m{i}"), "text": format!("olá {i}")}),
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    a.close().await;
    app.stop().await;
    drop(app);
    {
        // A missed call in the log.
        let pool = tertulia::db::build_pool(&source, 1).unwrap();
        tertulia::db::calls::create(
            &mut pool.get().unwrap(),
            &tertulia::db::models::NewCall {
                call_key: "c-1",
                room_id: None,
                caller_id: ana.id,
                callee_id: bia.id,
                media: "video",
                state: "missed",
                created_at: tertulia::db::now_ms(),
                owner_node: None,
            },
        )
        .unwrap();
    }

    let target = create_pg_database(&server);
    let run = |from: &str, to: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tertulia"))
            .args(["migrate-data", "--from", from, "--to", to])
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = run(&source, &target);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("users 3,")
            && stdout.contains("messages 30,")
            && stdout.contains("calls 1"),
        "{stdout}"
    );
    let before = dump(&source);
    assert_eq!(dump(&target), before, "the two databases differ");

    // Refused the second time, and nothing changed.
    let again = run(&source, &target);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(
        stderr.contains("not empty") && stderr.contains("3 users"),
        "{stderr}"
    );
    assert_eq!(dump(&target), before);

    // The community lives on PostgreSQL now: old passwords work, new rows come after old ones.
    let moved = spawn_app_with(|s| s.database_url = target.clone()).await;
    let login = moved.login("ana", PASSWORD).await;
    assert_eq!(login.status.as_u16(), 200, "{}", login.body);
    let cara = moved.user("cara").await;
    assert!(cara.id > bia.id, "{} after {}", cara.id, bia.id);
    let ana = crate::helpers::TestUser {
        token: login.body["token"].as_str().unwrap().to_owned(),
        ..ana
    };
    let mut a = connect(&moved, &ana).await;
    let joined = a.join("canal1").await;
    let ack = a
        .request(1, json!({"type": "chat.send", "room": "canal1", "client_msg_id": "new", "text": "de volta"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let history = moved
        .get("/api/rooms/canal1/messages?limit=200", Some(&ana.token))
        .await;
    let ids: Vec<i64> = history.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 31, "{joined}");
    assert_eq!(ack["msg_id"].as_i64(), ids.last().copied());
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
}

/// A PostgreSQL cluster of the test's own (initdb in a temporary directory, as the `postgres`
/// user, on a free port), so the test may stop and start it; stopped and removed on drop.
struct OwnCluster {
    dir: String,
    port: u16,
    bin: std::path::PathBuf,
}

impl OwnCluster {
    /// `None` where PostgreSQL's server programs are not installed.
    fn start() -> Option<OwnCluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file())
            .max()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let made = Self::as_postgres("mktemp -d /tmp/tertulia-own-pg.XXXXXX");
        let cluster = OwnCluster {
            dir: made.trim().to_owned(),
            port,
            bin,
        };
        Self::as_postgres(&format!(
            "{}/initdb -D {}/data -U postgres -A trust -E UTF8 >/dev/null",
            cluster.bin.display(),
            cluster.dir
        ));
        cluster.pg_ctl("start");
        Some(cluster)
    }

    fn as_postgres(script: &str) -> String {
        let out = std::process::Command::new("su")
            .args(["postgres", "-s", "/bin/sh", "-c", script])
            .output()
            .expect("su runs");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port, self.dir
        );
        Self::as_postgres(&format!(
            "{}/pg_ctl -D {dir}/data -l {dir}/log -m fast -w -o '{options}' {action} >/dev/null",
            self.bin.display(),
            dir = self.dir
        ));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("su")
            .args([
                "postgres",
                "-s",
                "/bin/sh",
                "-c",
                &format!(
                    "{}/pg_ctl -D {dir}/data -m immediate -w stop >/dev/null 2>&1; rm -rf {dir}",
                    self.bin.display(),
                    dir = self.dir
                ),
            ])
            .status();
    }
}

/// While PostgreSQL is down `/readyz` answers 503 (and the rest of the server keeps
/// answering); when it is back the server recovers by itself, without a restart.
#[actix_web::test]
async fn readyz_is_503_while_postgres_is_down_and_the_server_recovers_when_it_returns() {
    if !on_postgres() {
        eprintln!("note: this test runs with TERTULIA_TEST_DATABASE=postgres");
        return;
    }
    let Some(cluster) = OwnCluster::start() else {
        eprintln!("note: PostgreSQL's server programs are not installed; skipping");
        return;
    };
    let url = cluster.url();
    let app = crate::helpers::spawn_app_with(|s| s.database_url = url.clone()).await;
    assert_eq!(app.get("/readyz", None).await.status.as_u16(), 200);
    let ana = app.user("ana").await;

    cluster.pg_ctl("stop");
    let down = app.get("/readyz", None).await;
    assert_eq!(down.status.as_u16(), 503, "{}", down.body);
    assert_eq!(down.error_code(), "unavailable");
    assert_eq!(app.get("/healthz", None).await.status.as_u16(), 200);

    cluster.pg_ctl("start");
    let mut status = 0;
    for _ in 0..60 {
        status = app.get("/readyz", None).await.status.as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "the server did not recover");
    let me = app.get("/api/me", Some(&ana.token)).await;
    assert_eq!(me.status.as_u16(), 200, "{}", me.body);
}

/// PostgreSQL ends every connection of the server's pool (a restart, an administrator, a
/// proxy's idle timeout): requests go on, at most the first one answered 503 (never 500), as
/// the pool drops the broken connections and opens new ones.
#[actix_web::test]
async fn connections_the_database_ended_are_replaced_and_cost_at_most_one_503() {
    if !on_postgres() {
        eprintln!("note: this test runs with TERTULIA_TEST_DATABASE=postgres");
        return;
    }
    let app = crate::helpers::spawn_app().await;
    let ana = app.user("ana").await;
    // Every connection of the pool used once (the requests overlap).
    let warm =
        futures_util::future::join_all((0..8).map(|_| app.get("/api/me", Some(&ana.token)))).await;
    assert!(warm.iter().all(|r| r.status.as_u16() == 200));

    let db = app
        .settings
        .database_url
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let mut admin = diesel::PgConnection::establish(&app.settings.database_url).expect("connect");
    let ended = diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{db}' AND pid <> pg_backend_pid()"
    ))
    .execute(&mut admin)
    .expect("terminate");
    assert!(ended > 0, "the pool's connections were there to end");

    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(app.get("/api/me", Some(&ana.token)).await.status.as_u16());
    }
    let failed: Vec<u16> = statuses.iter().copied().filter(|&s| s != 200).collect();
    assert!(
        failed.len() <= 1 && failed.iter().all(|&s| s == 503),
        "after the database ended the pool's connections: {statuses:?}"
    );
}
