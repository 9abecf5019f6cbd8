//! `GET /ws`: the WebSocket handshake, an HTTP concern. Before the upgrade it checks the
//! browser's origin, resolves the credential to a live session (cached for a burst of
//! reconnections) and admits the connection under the per-user cap; then it hands the socket
//! to a new [`SessionActor`], which speaks the protocol from there on. `GET /ws-echo` is the
//! test-only echo that shares the same frame handling ([`crate::realtime::echo`]).

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::{
    auth, db,
    error::{error_response, ApiError, ErrorCode},
    http::state::AppState,
    http::{
        auth::{live_session, no_credential, request_token, Authenticated},
        client_ip,
        origin::origin_allowed,
    },
    realtime::{
        echo, frames,
        protocol::UserId,
        session::{Connecting, SessionActor},
        ConnectionSlot,
    },
};

/// Mounts `GET /ws`, and `GET /ws-echo` when `--ws-echo-for-tests` is on (otherwise the
/// route never matches: the path is as unknown as any other).
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws", web::get().to(ws_route)).route(
        "/ws-echo",
        web::get()
            .guard(actix_web::guard::fn_guard(|ctx| {
                ctx.app_data::<web::Data<AppState>>()
                    .is_some_and(|state| state.settings.ws_echo_for_tests)
            }))
            .to(ws_echo_route),
    );
}

/// `GET /ws-echo` (test-only, see [`echo`]): no credential, no origin check, no per-user
/// cap; every message comes back as it came.
async fn ws_echo_route(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|e| ApiError::BadRequest(format!("not a WebSocket handshake: {e}")))?;
    let (response, stream) = frames::upgrade(response, stream, &state.settings);
    echo::EchoActor::spawn(
        &state.settings,
        Arc::clone(&state.realtime.metrics),
        session,
        stream,
    );
    Ok(response)
}

/// A place under the per-user connection cap (`--ws-max-conns-per-user`) for a new connection
/// of `user_id`, over either transport; `None` when the user has them all open (answer with
/// [`too_many_connections`]).
pub(crate) fn admit(state: &AppState, user_id: i64) -> Option<ConnectionSlot> {
    if state.realtime.is_draining() {
        return None;
    }
    state
        .realtime
        .connections
        .admit(UserId(user_id), state.settings.ws_max_conns_per_user)
}

/// The 429 answer to a connection over the per-user cap (503 while the server shuts down:
/// the client reconnects elsewhere).
pub(crate) fn too_many_connections(state: &AppState) -> HttpResponse {
    if state.realtime.is_draining() {
        return error_response(
            ErrorCode::Unavailable,
            "this server is shutting down; connect again".to_owned(),
        );
    }
    error_response(
        ErrorCode::RateLimited,
        format!(
            "too many open connections (at most {} per user)",
            state.settings.ws_max_conns_per_user
        ),
    )
}

/// Resolves an upgrade's credential to its live session, user and themes, from
/// [`AppState::ws_tokens`] when it was checked recently, else with one database round trip
/// (the rule is `http::auth::live_session`'s, as for every other request).
pub(crate) async fn authenticate_upgrade(
    state: &AppState,
    token: Option<String>,
) -> Result<(Authenticated, Vec<String>), ApiError> {
    let token = token.ok_or_else(no_credential)?;
    let digest = auth::token_digest(&token);
    if let Some(known) = state.ws_tokens.get(&digest, db::now_ms()) {
        return Ok(known);
    }
    // Read before the database: a revocation meanwhile keeps this answer out of the cache.
    let generation = state.ws_tokens.generation();
    let hash = auth::digest_hex(&digest);
    let (found, themes) = db::run(&state.pool, move |conn| {
        let found = db::sessions::find_live(conn, &hash)?;
        let themes = match &found {
            Some((_, user)) => db::users::themes_of(conn, &[user.id])?
                .remove(&user.id)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        Ok((found, themes))
    })
    .await?;
    let expires_at = found.as_ref().map(|(session, _)| session.expires_at);
    let who = live_session(state, found)?;
    if let Some(expires_at) = expires_at {
        let known = (who.clone(), themes.clone());
        state
            .ws_tokens
            .insert(digest, who.user.id, expires_at, known, generation);
    }
    Ok((who, themes))
}

/// `GET /ws`: checks origin, credential and connection count before the upgrade, then hands
/// the connection to a new [`SessionActor`].
pub(crate) async fn ws_route(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let settings = &state.settings;
    if let Err(origin) = origin_allowed(&req, settings) {
        return Err(ApiError::Forbidden(format!(
            "origin '{origin}' may not open a WebSocket here"
        )));
    }
    let (who, themes) = authenticate_upgrade(&state, request_token(&req)).await?;
    let rt = &state.realtime;
    let user_id = who.user.id;
    let Some(slot) = admit(&state, user_id) else {
        return Ok(too_many_connections(&state));
    };
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|e| ApiError::BadRequest(format!("not a WebSocket handshake: {e}")))?;
    // Frame size, fragments and rate are enforced by `frames::InboundFrames`.
    let (response, stream) = frames::upgrade(response, stream, settings);
    let who = Connecting {
        user: who.user,
        auth_session_id: who.session_id,
        themes,
    };
    SessionActor::spawn(Arc::clone(rt), who, session, stream, slot);
    // The access log's line for this request (the logger middleware skips /ws).
    if log::log_enabled!(log::Level::Info) {
        let peer = client_ip::client_ip_string(&req, &settings.trusted_proxies);
        log::info!("{peer} \"GET /ws\" 101: WebSocket of user {user_id}");
    }
    Ok(response)
}
