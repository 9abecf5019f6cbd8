//! Test harness: a real server on port 0 with its own database, and one helper per endpoint
//! (zero2prod's `spawn_app`).
//!
//! The database is a temporary SQLite file, or with `TERTULIA_TEST_DATABASE=postgres` a
//! PostgreSQL database of its own (created on the server `TERTULIA_TEST_PG_URL` names,
//! default `postgres://postgres@127.0.0.1:5432`, and dropped with the test's [`TestApp`]):
//! `tests/pg.sh` runs the whole suite that way.

use std::time::Duration;

use actix_web::{dev::ServerHandle, http::StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tertulia::{config::Settings, startup::Application};

/// The password every test user gets unless a test says otherwise.
pub const PASSWORD: &str = "correct horse battery";

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub port: u16,
    pub settings: Settings,
    handle: ServerHandle,
    // Keeps the database directory alive as long as the app.
    pub dir: std::sync::Arc<TempDir>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop_test_database(&self.settings.database_url);
    }
}

/// The PostgreSQL server the tests use, when they use one: `TERTULIA_TEST_DATABASE=postgres`.
pub fn test_pg_server() -> Option<String> {
    match std::env::var("TERTULIA_TEST_DATABASE").as_deref() {
        Ok("postgres") => Some(
            std::env::var("TERTULIA_TEST_PG_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
                .trim_end_matches('/')
                .to_owned(),
        ),
        _ => None,
    }
}

/// Whether the tests run on PostgreSQL.
pub fn on_postgres() -> bool {
    test_pg_server().is_some()
}

/// The prefix of every database the tests create (`tests/pg.sh` drops any left over).
const TEST_DB_PREFIX: &str = "tertulia_t_";

/// A fresh, empty PostgreSQL database on the test server; returns its URL.
pub fn create_pg_database(server: &str) -> String {
    use diesel::{Connection, RunQueryDsl};
    let name = format!(
        "{TEST_DB_PREFIX}{}_{:016x}",
        std::process::id(),
        rand::random::<u64>()
    );
    let mut admin = diesel::PgConnection::establish(&format!("{server}/postgres"))
        .expect("the test PostgreSQL server answers (TERTULIA_TEST_PG_URL)");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .expect("test database created");
    format!("{server}/{name}")
}

/// Drops a database [`create_pg_database`] made (closing what is still connected); nothing
/// for a SQLite file, which goes with its directory.
pub fn drop_test_database(url: &str) {
    use diesel::{Connection, RunQueryDsl};
    let Some(server) = test_pg_server() else {
        return;
    };
    let Some(name) = url
        .strip_prefix(&format!("{server}/"))
        .filter(|n| n.starts_with(TEST_DB_PREFIX))
    else {
        return;
    };
    if let Ok(mut admin) = diesel::PgConnection::establish(&format!("{server}/postgres")) {
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin);
    }
}

/// The database URL for a test: `dir/test.db`, or a new PostgreSQL database (see the module
/// documentation).
pub fn test_database_url(dir: &TempDir) -> String {
    match test_pg_server() {
        Some(server) => create_pg_database(&server),
        None => dir.path().join("test.db").to_string_lossy().into_owned(),
    }
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub nickname: String,
    pub token: String,
}

/// A response: status, headers and the JSON body (Null when there is none).
pub struct Reply {
    pub status: StatusCode,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The `error.code` of an error body.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// Starts a server with test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server with test settings, adjusted by `adjust`.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut settings = test_settings(&dir);
    let made = settings.database_url.clone();
    adjust(&mut settings);
    if settings.database_url != made {
        drop_test_database(&made);
    }
    start(settings, dir).await
}

/// Settings for tests: port 0, a fresh database, quiet and quick.
pub fn test_settings(dir: &TempDir) -> Settings {
    Settings {
        bind: "127.0.0.1:0".parse().expect("valid address"),
        database_url: test_database_url(dir),
        web_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/web").into(),
        workers: 2,
        db_pool_size: 4,
        ..Settings::default()
    }
}

/// [`test_settings`] on a SQLite file in `dir` whatever `TERTULIA_TEST_DATABASE` says, for
/// tests of what lives beside that file (the self-signed certificate).
pub fn sqlite_settings(dir: &TempDir) -> Settings {
    let mut settings = test_settings(dir);
    drop_test_database(&settings.database_url);
    settings.database_url = dir.path().join("test.db").to_string_lossy().into_owned();
    settings
}

async fn start(settings: Settings, dir: std::sync::Arc<TempDir>) -> TestApp {
    let app = Application::build(settings.clone())
        .await
        .expect("server builds");
    let port = app.port();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        settings,
        handle,
        dir,
    }
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

async fn reply(
    mut res: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
            + Unpin,
    >,
) -> Reply {
    let bytes = res.body().limit(16 * 1024 * 1024).await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Reply {
        status: res.status(),
        headers: res.headers().clone(),
        body,
    }
}

impl TestApp {
    /// Stops the server and starts a new one on the same database (a restart).
    pub async fn restart(mut self) -> TestApp {
        self.handle.stop(true).await;
        let mut settings = self.settings.clone();
        // The new app owns the database now.
        self.settings.database_url.clear();
        settings.bind = "127.0.0.1:0".parse().expect("valid address");
        start(settings, std::sync::Arc::clone(&self.dir)).await
    }

    /// Stops the server.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("Authorization", b.as_str()))
            .collect();
        self.request_with(method, path, &headers, body).await
    }

    /// Sends a request with the given headers (as a browser or a proxy would set them) and
    /// an optional JSON body.
    pub async fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = client().request(method, format!("{}{}", self.address, path));
        for (name, value) in headers {
            req = req.insert_header((*name, *value));
        }
        let res = match body {
            Some(body) => req.send_json(&body).await,
            None => req.send().await,
        }
        .expect("request sent");
        reply(res).await
    }

    /// Sends raw bytes with a given content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let res = client()
            .post(format!("{}{}", self.address, path))
            .insert_header(("Content-Type", content_type))
            .send_body(body)
            .await
            .expect("request sent");
        reply(res).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request("GET", path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request("POST", path, token, Some(body)).await
    }

    /// `POST /api/register`
    pub async fn register(&self, body: Value) -> Reply {
        self.post("/api/register", None, body).await
    }

    /// `POST /api/login`
    pub async fn login(&self, nickname: &str, password: &str) -> Reply {
        self.post(
            "/api/login",
            None,
            json!({"nickname": nickname, "password": password}),
        )
        .await
    }

    /// Registers `nickname` with all capabilities and `themes`, and logs in.
    pub async fn user_with(&self, nickname: &str, themes: &[&str], caps: &[&str]) -> TestUser {
        let reg = self
            .register(json!({
                "nickname": nickname,
                "password": PASSWORD,
                "themes": themes,
                "capabilities": caps,
            }))
            .await;
        assert_eq!(
            reg.status,
            StatusCode::CREATED,
            "register {nickname}: {}",
            reg.body
        );
        let login = self.login(nickname, PASSWORD).await;
        assert_eq!(
            login.status,
            StatusCode::OK,
            "login {nickname}: {}",
            login.body
        );
        TestUser {
            id: login.body["user"]["id"].as_i64().expect("user id"),
            nickname: nickname.to_owned(),
            token: login.body["token"].as_str().expect("token").to_owned(),
        }
    }

    /// Registers and logs in a user with every capability and the theme Tecnologia.
    pub async fn user(&self, nickname: &str) -> TestUser {
        self.user_with(nickname, &["Tecnologia"], &["video", "audio", "text"])
            .await
    }

    /// Registers and logs in a user who is then made admin directly in the database.
    pub async fn admin(&self, nickname: &str) -> TestUser {
        let user = self.user(nickname).await;
        let pool = tertulia::db::build_pool(&self.settings.database_url, 1).expect("pool");
        let mut conn = pool.get().expect("connection");
        tertulia::db::users::set_role(&mut conn, user.id, tertulia::db::models::Role::Admin)
            .expect("made admin");
        user
    }
}

/// Collects a `tertulia serve` child's stdout and stderr into `log`, line by line, and
/// sends the port of every `serving http://127.0.0.1:PORT` line it prints (one per start).
pub fn collect_served_output(
    child: &mut std::process::Child,
    log: &std::sync::Arc<std::sync::Mutex<String>>,
) -> std::sync::mpsc::Receiver<u16> {
    use std::io::{BufRead, BufReader, Read};
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout piped");
    let stderr = child.stderr.take().expect("stderr piped");
    for stream in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
        let log = std::sync::Arc::clone(log);
        let port_tx = port_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("serving http://127.0.0.1:").nth(1) {
                    if let Ok(port) = rest.trim_end_matches('/').parse::<u16>() {
                        let _ = port_tx.send(port);
                    }
                }
                let mut all = log.lock().unwrap_or_else(|p| p.into_inner());
                all.push_str(&line);
                all.push('\n');
            }
        });
    }
    port_rx
}
