//! `GET /api/ice-servers`: the STUN/TURN servers browsers should use for WebRTC.
//!
//! With a coturn `static-auth-secret` configured, TURN credentials are minted per request
//! with coturn's shared-secret REST scheme: the username is `<expiry unix secs>:<user id>`
//! and the credential is `base64(HMAC-SHA1(secret, username))`, so they expire on their own.

use actix_web::{get, web, HttpResponse};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;

use crate::{
    error::{documented::NotLoggedIn, ApiError, ApiResult},
    http::auth::Authenticated,
    http::state::AppState,
};

/// Mounts `/api/ice-servers`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(ice_servers);
}

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// `GET /api/ice-servers` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct IceServers {
    pub ice_servers: Vec<IceServer>,
    /// Seconds the TURN credentials stay valid (when there are any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// Why the list is empty, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// coturn's REST credential for `username`.
pub fn turn_credential(secret: &str, username: &str) -> ApiResult<String> {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
        .map_err(|e| ApiError::Internal(format!("bad TURN secret: {e}")))?;
    mac.update(username.as_bytes());
    Ok(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// The STUN/TURN servers for the caller, with time-limited TURN credentials.
#[utoipa::path(
    get,
    path = "/api/ice-servers",
    tag = "realtime",
    responses((status = 200, body = IceServers), NotLoggedIn)
)]
#[get("/ice-servers")]
pub async fn ice_servers(
    state: web::Data<AppState>,
    who: Authenticated,
) -> ApiResult<HttpResponse> {
    let settings = &state.settings;
    let urls: Vec<String> = settings
        .ice_urls
        .iter()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return Ok(HttpResponse::Ok().json(IceServers {
            ice_servers: Vec::new(),
            ttl_secs: None,
            note: Some(
                "no STUN/TURN server is configured (--ice-urls): peers connect with host \
                 candidates, which works on the same network"
                    .to_owned(),
            ),
        }));
    }
    let (turn, stun): (Vec<String>, Vec<String>) = urls
        .into_iter()
        .partition(|u| u.starts_with("turn:") || u.starts_with("turns:"));
    let mut servers = Vec::new();
    if !stun.is_empty() {
        servers.push(IceServer {
            urls: stun,
            username: None,
            credential: None,
        });
    }
    let mut ttl_secs = None;
    if !turn.is_empty() {
        match settings.turn_secret.as_deref().filter(|s| !s.is_empty()) {
            Some(secret) => {
                let expiry =
                    u64::try_from(crate::db::now_ms() / 1000).unwrap_or(0) + settings.turn_ttl_secs;
                let username = format!("{expiry}:{}", who.user.id);
                let credential = turn_credential(secret, &username)?;
                servers.push(IceServer {
                    urls: turn,
                    username: Some(username),
                    credential: Some(credential),
                });
                ttl_secs = Some(settings.turn_ttl_secs);
            }
            // A TURN server without a secret: hand it out as is (it may allow anonymous use).
            None => servers.push(IceServer {
                urls: turn,
                username: None,
                credential: None,
            }),
        }
    }
    Ok(HttpResponse::Ok().json(IceServers {
        ice_servers: servers,
        ttl_secs,
        note: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::turn_credential;

    #[test]
    fn the_turn_credential_is_coturns_hmac_sha1_in_base64() {
        // Computed independently: base64(hmac_sha1(b"s3cret", b"1700000000:7")).
        assert_eq!(
            turn_credential("s3cret", "1700000000:7").unwrap(),
            "S5FYRd8b/uBnAZtdCPz+MSG7UiM="
        );
    }
}
