//! The bench users: registered and logged in over HTTP, many at once, and remembered.
//!
//! Registration and login each cost the server one argon2 run, and login is rate-limited per
//! client IP (run the server with a large `--login-attempts`). With `--users-file` the tokens
//! are kept between runs and checked with one cheap `GET /api/me` each, so only the first
//! run of a given size pays for argon2.

use std::{collections::HashMap, path::Path};

use futures_util::{stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{http::Target, BenchError, BenchResult, Cli};

/// The password of every bench user.
const PASSWORD: &str = "tertulia-bench-password";

/// A logged-in bench user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchUser {
    pub id: i64,
    pub nickname: String,
    pub token: String,
}

/// Returns `count` logged-in users named `<prefix><index>`, creating what is missing.
pub async fn prepare(cli: &Cli, target: &Target, count: usize) -> BenchResult<Vec<BenchUser>> {
    let mut cache = cli.users_file.as_deref().map(load).unwrap_or_default();
    let started = std::time::Instant::now();
    let results: Vec<BenchResult<BenchUser>> = stream::iter(0..count)
        .map(|i| {
            let nickname = format!("{}{i:05}", cli.user_prefix);
            let cached = cache.get(&nickname).cloned();
            async move { one(target, nickname, cached).await }
        })
        .buffered(cli.setup_concurrency.max(1))
        .collect()
        .await;
    let users = results.into_iter().collect::<BenchResult<Vec<_>>>()?;
    if let Some(path) = &cli.users_file {
        for user in &users {
            cache.insert(user.nickname.clone(), user.clone());
        }
        save(path, &cache)?;
    }
    if !cli.json_only {
        eprintln!(
            "prepared {count} users in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(users)
}

/// One user: the cached token if the server still takes it, else register (if needed) and
/// log in.
async fn one(
    target: &Target,
    nickname: String,
    cached: Option<BenchUser>,
) -> BenchResult<BenchUser> {
    if let Some(user) = cached {
        let (status, me) = target
            .request("GET", "/api/me", Some(&user.token), None)
            .await?;
        if status == 200 && me["nickname"] == user.nickname.as_str() {
            return Ok(user);
        }
    }
    let (status, body) = target
        .request(
            "POST",
            "/api/register",
            None,
            Some(&json!({"nickname": nickname, "password": PASSWORD})),
        )
        .await?;
    if status != 201 && status != 409 {
        return Err(http_error("/api/register", &nickname, status, &body));
    }
    let (status, body) = target
        .request(
            "POST",
            "/api/login",
            None,
            Some(&json!({"nickname": nickname, "password": PASSWORD})),
        )
        .await?;
    if status != 200 {
        return Err(http_error("/api/login", &nickname, status, &body));
    }
    let id = body["user"]["id"].as_i64();
    let token = body["token"].as_str();
    match (id, token) {
        (Some(id), Some(token)) => Ok(BenchUser {
            id,
            nickname,
            token: token.to_owned(),
        }),
        _ => Err(BenchError::Protocol(format!(
            "login answer has no user id or token: {body}"
        ))),
    }
}

fn http_error(path: &str, nickname: &str, status: u16, body: &serde_json::Value) -> BenchError {
    let hint = if status == 429 {
        " (start the bench server with a large --login-attempts)"
    } else {
        ""
    };
    BenchError::Http {
        method: "POST",
        path: path.to_owned(),
        problem: format!("{nickname}: status {status}: {body}{hint}"),
    }
}

/// Reads the users file; a missing or unreadable file is an empty cache.
fn load(path: &Path) -> HashMap<String, BenchUser> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Vec<BenchUser>>(&bytes).ok())
        .map(|users| users.into_iter().map(|u| (u.nickname.clone(), u)).collect())
        .unwrap_or_default()
}

fn save(path: &Path, cache: &HashMap<String, BenchUser>) -> BenchResult<()> {
    let mut users: Vec<&BenchUser> = cache.values().collect();
    users.sort_by(|a, b| a.nickname.cmp(&b.nickname));
    let bytes = serde_json::to_vec(&users)
        .map_err(|e| BenchError::Protocol(format!("cannot encode the users file: {e}")))?;
    std::fs::write(path, bytes)?;
    Ok(())
}
