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
    /// The themes this user follows (`--themes`).
    #[serde(default)]
    pub themes: Vec<String>,
}

/// The themes the users are spread over (`--themes`): the server's, first by name, or
/// `bench-theme-NN` created with `--admin-token` when it has too few.
pub async fn themes(cli: &Cli, target: &Target) -> BenchResult<Vec<String>> {
    if cli.themes == 0 {
        return Ok(Vec::new());
    }
    let (status, body) = target.request("GET", "/api/themes", None, None).await?;
    let list = body
        .as_array()
        .cloned()
        .or_else(|| body["themes"].as_array().cloned());
    let Some(list) = list.filter(|_| status == 200) else {
        return Err(BenchError::Protocol(format!(
            "GET /api/themes: status {status}: {body}"
        )));
    };
    let mut names: Vec<String> = list
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    if names.len() >= cli.themes {
        names.truncate(cli.themes);
        return Ok(names);
    }
    let Some(admin) = cli.admin_token.as_deref() else {
        return Err(BenchError::Protocol(format!(
            "the server has {} themes and --themes asks for {}: pass --admin-token to create bench-theme-NN",
            names.len(),
            cli.themes
        )));
    };
    let wanted: Vec<String> = (0..cli.themes)
        .map(|i| format!("bench-theme-{i:02}"))
        .collect();
    for name in &wanted {
        if names.contains(name) {
            continue;
        }
        let (status, body) = target
            .request(
                "POST",
                "/api/admin/themes",
                Some(admin),
                Some(&json!({"name": name})),
            )
            .await?;
        if status != 201 && status != 409 {
            return Err(BenchError::Protocol(format!(
                "POST /api/admin/themes {name}: status {status}: {body}"
            )));
        }
    }
    Ok(wanted)
}

/// The themes of bench user `index`: 2 or 3 of `themes`, picked by a fixed pseudo-random
/// sequence so that every run (and the lobby's expectations) agree.
pub fn themes_of(index: usize, themes: &[String]) -> Vec<String> {
    if themes.is_empty() {
        return Vec::new();
    }
    let want = (2 + index % 2).min(themes.len());
    let mut x = (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut picked: Vec<usize> = Vec::with_capacity(want);
    while picked.len() < want {
        x ^= x >> 30;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 27;
        x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        let t = (x % themes.len() as u64) as usize;
        if !picked.contains(&t) {
            picked.push(t);
        }
    }
    picked.sort_unstable();
    picked.into_iter().map(|t| themes[t].clone()).collect()
}

/// Returns `count` logged-in users named `<prefix><index>`, creating what is missing.
pub async fn prepare(cli: &Cli, target: &Target, count: usize) -> BenchResult<Vec<BenchUser>> {
    let mut cache = cli.users_file.as_deref().map(load).unwrap_or_default();
    let spread = themes(cli, target).await?;
    let started = std::time::Instant::now();
    let results: Vec<BenchResult<BenchUser>> = stream::iter(0..count)
        .map(|i| {
            let nickname = format!("{}{i:05}", cli.user_prefix);
            let cached = cache.get(&nickname).cloned();
            let themes = themes_of(i, &spread);
            async move { one(target, nickname, themes, cached).await }
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
    themes: Vec<String>,
    cached: Option<BenchUser>,
) -> BenchResult<BenchUser> {
    if let Some(mut user) = cached {
        let (status, me) = target
            .request("GET", "/api/me", Some(&user.token), None)
            .await?;
        if status == 200 && me["nickname"] == user.nickname.as_str() {
            let mut has: Vec<String> =
                serde_json::from_value(me["themes"].clone()).unwrap_or_default();
            has.sort();
            if has != themes {
                let (status, body) = target
                    .request(
                        "PATCH",
                        "/api/me",
                        Some(&user.token),
                        Some(&json!({"themes": themes})),
                    )
                    .await?;
                if status != 200 {
                    return Err(http_error("/api/me", &nickname, status, &body));
                }
            }
            user.themes = themes;
            return Ok(user);
        }
    }
    let (status, body) = target
        .request(
            "POST",
            "/api/register",
            None,
            Some(&json!({"nickname": nickname, "password": PASSWORD, "themes": themes})),
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
        (Some(id), Some(token)) => {
            let mut has: Vec<String> =
                serde_json::from_value(body["user"]["themes"].clone()).unwrap_or_default();
            has.sort();
            if has != themes {
                let (status, body) = target
                    .request(
                        "PATCH",
                        "/api/me",
                        Some(token),
                        Some(&json!({"themes": themes})),
                    )
                    .await?;
                if status != 200 {
                    return Err(http_error("/api/me", &nickname, status, &body));
                }
            }
            Ok(BenchUser {
                id,
                nickname,
                token: token.to_owned(),
                themes,
            })
        }
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
