//! The HTTP transport (`docs/protocol.md`, "The HTTP transport"), for networks where a
//! WebSocket upgrade does not get through: `GET /api/stream` opens the same session as
//! `GET /ws` (same origin rule, credential and per-user cap) and answers with its frames as
//! Server-Sent Events; `POST /api/stream/{stream_id}` carries the client's frames (one, or a
//! JSON array of them), `DELETE /api/stream/{stream_id}` is the client leaving on purpose.
//! The realtime side is [`crate::realtime::stream`].

use std::{sync::Arc, time::Duration};

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use bytestring::ByteString;
use serde_json::value::RawValue;
use tokio_util::sync::PollSender;

use crate::{
    auth,
    error::ApiError,
    http::state::AppState,
    http::{
        auth::{no_credential, request_token},
        client_ip,
        origin::origin_allowed,
        ws::{self, authenticate_upgrade},
    },
    realtime::{
        broker::{Kind, NodeId},
        frames::InboundFrames,
        outbox::Wire,
        session::{Connecting, SessionActor},
        stream::{PostError, StreamPost},
    },
};

/// Largest body of one POST: a batch of frames (each still within `--ws-max-frame-bytes`).
const MAX_POST_BYTES: usize = 1024 * 1024;

/// Mounts the stream's routes (inside `/api`).
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/stream", web::get().to(open_stream)).service(
        web::resource("/stream/{stream_id}")
            .app_data(web::PayloadConfig::new(MAX_POST_BYTES))
            .route(web::post().to(post_frames))
            .route(web::delete().to(leave)),
    );
}

/// `GET /api/stream`: checks origin, credential and connection count as `GET /ws` does, then
/// starts the session and streams its frames.
async fn open_stream(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let settings = &state.settings;
    if let Err(origin) = origin_allowed(&req, settings) {
        return Err(ApiError::Forbidden(format!(
            "origin '{origin}' may not open an event stream here"
        )));
    }
    let token = request_token(&req);
    let credential = token.as_deref().map(auth::token_digest);
    let (who, themes) = authenticate_upgrade(&state, token).await?;
    let credential = credential.ok_or_else(no_credential)?;
    let rt = &state.realtime;
    let user_id = who.user.id;
    let Some(slot) = ws::admit(&state, user_id) else {
        return Ok(ws::too_many_connections(&state));
    };
    let opened = rt.streams.open(credential);
    let who = Connecting {
        user: who.user,
        auth_session_id: who.session_id,
        themes,
    };
    SessionActor::spawn(
        Arc::clone(rt),
        who,
        Wire::Events(PollSender::new(opened.outbound)),
        InboundFrames::posted(opened.inbound, settings),
        slot,
    );
    if log::log_enabled!(log::Level::Info) {
        let peer = client_ip::client_ip_string(&req, &settings.trusted_proxies);
        log::info!("{peer} \"GET /api/stream\" 200: event stream of user {user_id}");
    }
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Proxies that buffer responses (nginx) pass this one on as it comes.
        .insert_header(("X-Accel-Buffering", "no"))
        .body(opened.body))
}

/// The credential's digest, which must be the one that opened the stream.
fn credential(req: &HttpRequest) -> Result<auth::TokenDigest, ApiError> {
    request_token(req)
        .map(|token| auth::token_digest(&token))
        .ok_or_else(no_credential)
}

/// The answer when the stream is not there (ended, never opened, or opened by another
/// credential: they are not told apart).
fn no_stream() -> ApiError {
    ApiError::NotFound("no open event stream with that id for this session; open one".into())
}

/// The frames of a POST body: the items of a JSON array, or else the whole body as one frame
/// (which the session parses as it would a WebSocket text frame, with the same errors).
fn frames_of(body: &[u8]) -> Result<Vec<ByteString>, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("frames are JSON text (UTF-8)".to_owned()))?;
    if text.trim_start().starts_with('[') {
        if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) {
            return Ok(items
                .into_iter()
                .map(|item| ByteString::from(item.get()))
                .collect());
        }
    }
    Ok(vec![ByteString::from(text)])
}

/// `POST /api/stream/{stream_id}`: the client's frames, handed to its session in order; the
/// replies come on the stream. 204 once the session has them queued.
async fn post_frames(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let credential = credential(&req)?;
    let frames = frames_of(&body)?;
    if let Some(node) = state.realtime.streams.elsewhere(&path) {
        let post = StreamPost {
            stream: path.into_inner(),
            credential: auth::digest_hex(&credential),
            frames: frames.into_iter().map(|f| f.to_string()).collect(),
            close: false,
        };
        return relay(&state, &node, &post).await;
    }
    state
        .realtime
        .streams
        .post(&path, &credential, frames.into_iter().map(Message::Text))
        .await
        .map_err(|PostError::NoStream| no_stream())?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /api/stream/{stream_id}`: the client leaves on purpose (as a WebSocket close
/// frame with 1000: its calls end at once); the stream ends with a `close` event.
async fn leave(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let credential = credential(&req)?;
    if let Some(node) = state.realtime.streams.elsewhere(&path) {
        let post = StreamPost {
            stream: path.into_inner(),
            credential: auth::digest_hex(&credential),
            frames: Vec::new(),
            close: true,
        };
        return relay(&state, &node, &post).await;
    }
    let close = Message::Close(Some(CloseReason {
        code: CloseCode::Normal,
        description: None,
    }));
    state
        .realtime
        .streams
        .post(&path, &credential, [close])
        .await
        .map_err(|PostError::NoStream| no_stream())?;
    Ok(HttpResponse::NoContent().finish())
}

/// How long a POST for a stream on another node waits for that node's answer.
const RELAY_WAIT: Duration = Duration::from_secs(5);

/// Hands a POST for a stream that `node` holds to that node (several nodes behind a
/// balancer), and answers as that node did: 204 once the frames are queued there, 404 when
/// the stream is not open there, 503 when the node does not answer (gone: the stream too).
async fn relay(
    state: &AppState,
    node: &NodeId,
    post: &StreamPost,
) -> Result<HttpResponse, ApiError> {
    let broker = state.realtime.broker.as_ref().ok_or_else(no_stream)?;
    let answer = broker.request(node, Kind::Stream, post, RELAY_WAIT).await;
    match answer.map(|a| serde_json::from_str::<bool>(a.get())) {
        Some(Ok(true)) => Ok(HttpResponse::NoContent().finish()),
        Some(_) => Err(no_stream()),
        None => Err(ApiError::Unavailable(format!(
            "node '{node}', which holds this event stream, does not answer; open a new stream"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_body_is_a_batch_when_it_is_a_json_array_and_one_frame_otherwise() {
        let batch = frames_of(br#" [{"type":"ping","id":1}, {"type":"ping"}]"#).unwrap();
        assert_eq!(batch, [r#"{"type":"ping","id":1}"#, r#"{"type":"ping"}"#]);
        assert_eq!(frames_of(b"not json").unwrap(), ["not json"]);
        assert_eq!(frames_of(b"[oops").unwrap(), ["[oops"]);
        assert!(frames_of(b"\xff").is_err());
    }
}
