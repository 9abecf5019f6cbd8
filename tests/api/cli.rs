//! The `tertulia` binary itself: `migrate`, `admin create`, and what `serve` writes to its log.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::{collect_served_output, spawn_app_with, PASSWORD};

/// The binary Cargo built for these tests.
const BIN: &str = env!("CARGO_BIN_EXE_tertulia");

/// How long the server may take to start on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A `Command` for the binary with none of the developer's `TERTULIA_*`/`DATABASE_URL`
/// variables, so only the flags a test gives count.
fn tertulia() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("TERTULIA_") || key == "DATABASE_URL" || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs the binary with `args`, feeding `stdin`, and waits for it.
fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = tertulia()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let written = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    // A command that refuses its arguments exits before reading stdin: the pipe is then
    // closed under us, which is not a failure of the test.
    if let Err(e) = written {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "stdin written: {e}"
        );
    }
    child.wait_with_output().expect("binary finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[actix_web::test]
async fn migrate_then_admin_create_gives_an_admin_who_reaches_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::helpers::test_database_url(&dir);

    let migrated = run(&["migrate", "--database-url", &db], "");
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    assert!(text(&migrated.stdout).contains("up to date"));
    let again = run(&["migrate", "--database-url", &db], "");
    assert!(again.status.success(), "migrating twice is harmless");

    let secret = "a long admin password";
    let created = run(
        &[
            "admin",
            "create",
            "--nickname",
            "root",
            "--database-url",
            &db,
        ],
        &format!("{secret}\n"),
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(text(&created.stdout).contains("created admin root"));
    assert!(!text(&created.stdout).contains(secret) && !text(&created.stderr).contains(secret));

    let app = spawn_app_with(|s| s.database_url = db.clone()).await;
    let login = app.login("root", secret).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.body["user"]["role"], "admin");
    let token = login.body["token"].as_str().unwrap();
    let stats = app.get("/api/admin/stats", Some(token)).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    assert_eq!(stats.body["admins"], 1);
}

#[actix_web::test]
async fn admin_create_promotes_an_existing_account_without_touching_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::helpers::test_database_url(&dir);
    let app = spawn_app_with(|s| s.database_url = db.clone()).await;
    let ana = app.user("ana").await;
    assert_eq!(
        app.get("/api/admin/stats", Some(&ana.token)).await.status,
        StatusCode::FORBIDDEN
    );

    let promoted = run(
        &[
            "admin",
            "create",
            "--nickname",
            "ANA",
            "--database-url",
            &db,
        ],
        "",
    );
    assert!(promoted.status.success(), "{}", text(&promoted.stderr));
    assert!(text(&promoted.stdout).contains("now an admin"));
    assert_eq!(
        app.get("/api/admin/stats", Some(&ana.token)).await.status,
        StatusCode::OK
    );
    assert_eq!(app.login("ana", PASSWORD).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn admin_create_refuses_bad_nicknames_and_weak_passwords_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::helpers::test_database_url(&dir);
    for (nickname, password, needle) in [
        ("x", "a long admin password", "3 to 32"),
        ("root", "short", "at least 8"),
        ("root", "", "at least 8"),
    ] {
        let out = run(
            &[
                "admin",
                "create",
                "--nickname",
                nickname,
                "--database-url",
                &db,
            ],
            &format!("{password}\n"),
        );
        assert!(!out.status.success(), "{nickname}/{password} was accepted");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(needle), "{stderr}");
    }
    let app = spawn_app_with(|s| s.database_url = db.clone()).await;
    assert_eq!(
        app.login("root", "short").await.status,
        StatusCode::UNAUTHORIZED,
        "no account was created"
    );
}

/// A running `tertulia serve` whose stdout and stderr are collected.
struct Served {
    child: std::process::Child,
    output: Arc<Mutex<String>>,
    port: u16,
}

impl Served {
    fn start(db: &str, rust_log: &str) -> Served {
        Served::start_with(db, rust_log, &[])
    }

    /// [`Served::start`] with more flags.
    fn start_with(db: &str, rust_log: &str, extra: &[&str]) -> Served {
        let mut child = tertulia()
            .args(["serve", "--bind", "127.0.0.1:0", "--database-url", db])
            .args(["--web-dir", concat!(env!("CARGO_MANIFEST_DIR"), "/web")])
            .args(["--workers", "1"])
            .args(extra)
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server starts");
        let output = Arc::new(Mutex::new(String::new()));
        let port_rx = collect_served_output(&mut child, &output);
        let port = match port_rx.recv_timeout(START_TIMEOUT) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start: {}", output.lock().unwrap());
            }
        };
        Served {
            child,
            output,
            port,
        }
    }

    /// Stops the server and returns everything it wrote.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader threads finish once the pipes close; give them a moment to drain.
        for _ in 0..50 {
            if Arc::strong_count(&self.output) == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let all = self.output.lock().unwrap().clone();
        all
    }
}

/// A first start on a new database logs no error, with a pool of 32 connections opening at
/// once (on SQLite they used to race to switch the new file to WAL: `ERROR r2d2: database is
/// locked` in about one start in five on a busy machine).
#[test]
fn a_first_start_on_a_new_database_logs_no_error() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::helpers::test_database_url(&dir);
        let log = Served::start_with(&db, "info", &["--db-pool-size", "32"]).stop();
        crate::helpers::drop_test_database(&db);
        assert!(
            !log.contains("ERROR"),
            "a clean start logged an error:\n{log}"
        );
    }
}

#[actix_web::test]
async fn no_password_token_or_cookie_appears_in_the_log_even_at_debug_level() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::helpers::test_database_url(&dir);
    let served = Served::start(&db, "debug");
    let base = format!("http://127.0.0.1:{}", served.port);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();

    let password = "first secret Pa55word";
    let new_password = "second secret Pa55word";
    let wrong_password = "wrong secret Pa55word";
    let reg = client
        .post(format!("{base}/api/register"))
        .send_json(&json!({"nickname": "loggy", "password": password}))
        .await
        .unwrap();
    assert_eq!(reg.status(), StatusCode::CREATED);
    let wrong = client
        .post(format!("{base}/api/login"))
        .send_json(&json!({"nickname": "loggy", "password": wrong_password}))
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let mut login = client
        .post(format!("{base}/api/login"))
        .send_json(&json!({"nickname": "loggy", "password": password}))
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login
        .cookies()
        .unwrap()
        .iter()
        .find(|c| c.name() == "tertulia_session")
        .expect("session cookie")
        .clone()
        .into_owned();
    let body: serde_json::Value = login.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();

    let me = client
        .get(format!("{base}/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let by_cookie = client
        .get(format!("{base}/api/me"))
        .cookie(cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::OK);
    let changed = client
        .patch(format!("{base}/api/me"))
        .bearer_auth(&token)
        .send_json(&json!({"current_password": password, "new_password": new_password}))
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let out = client
        .post(format!("{base}/api/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let stale = client
        .get(format!("{base}/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);

    let log = served.stop();
    assert!(log.contains("logged in"), "the log was captured: {log}");
    assert!(log.contains("DEBUG"), "debug lines were on: {log}");
    for (what, secret) in [
        ("password", password),
        ("new password", new_password),
        ("wrong password", wrong_password),
        ("token", token.as_str()),
        ("cookie value", cookie.value()),
    ] {
        assert!(
            !log.contains(secret),
            "the {what} leaked into the log:\n{log}"
        );
    }
    assert!(
        !log.contains(&tertulia::auth::token_hash(&token)),
        "the token hash leaked"
    );
}
