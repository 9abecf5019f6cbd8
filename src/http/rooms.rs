//! `GET /api/rooms/{room}/messages`: a page of a room's chat history, with the same access
//! rule as joining the room over WebSocket.

use actix_web::{get, web};
use serde::{Deserialize, Serialize};

use crate::{
    db,
    error::{documented::NotLoggedIn, ApiError, ApiResult, ErrorBody},
    http::auth::Authenticated,
    realtime::{
        history_page,
        protocol::{ChatView, RoomName, UserId},
        session::chat_view,
    },
    startup::AppState,
};

/// Mounts `/api/rooms/{room}/messages`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(messages);
}

/// `GET /api/rooms/{room}/messages` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only messages with a smaller `msg_id` (older).
    pub before: Option<i64>,
    /// 1 to 200, default 50; anything else is a 400.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// One page of history, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    #[schema(value_type = String)]
    pub room: RoomName,
    #[schema(value_type = Vec<ChatMessage>)]
    pub messages: Vec<ChatView>,
    /// Older messages remain (ask again with `before` = the first `msg_id`).
    pub has_more: bool,
}

/// A stored chat message as the history shows it: the schema of `ChatView`, which is also
/// the WebSocket's `chat.message` (docs/protocol.md). Only the OpenAPI document uses it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // never built: it describes `ChatView` for the OpenAPI document
pub struct ChatMessage {
    room: String,
    msg_id: i64,
    client_msg_id: String,
    from: ChatSender,
    text: String,
    /// Unix milliseconds.
    created_at: i64,
}

/// Who sent a chat message.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // never built: it describes `UserRef` for the OpenAPI document
pub struct ChatSender {
    id: i64,
    nickname: String,
}

/// A page of a room's messages: public channels for anyone, a direct room for its pair, a
/// call room for its members.
#[utoipa::path(
    get,
    path = "/api/rooms/{room}/messages",
    tag = "realtime",
    params(
        ("room" = String, Path, max_length = 64,
            pattern = r"^(?:[A-Za-z0-9._-]+|dm:(?:0|-?[1-9][0-9]*):(?:0|-?[1-9][0-9]*)|call:[A-Za-z0-9._-]+)$",
            description = "room name: canal1, dm:3:7 (the smaller id first), call:c-…"),
        HistoryQuery
    ),
    responses(
        (status = 200, body = HistoryPage),
        (status = 400, body = ErrorBody, description = "a bad room name, or limit out of range"),
        NotLoggedIn,
        (status = 403, body = ErrorBody, description = "a direct or call room you are not in"),
    )
)]
#[get("/rooms/{room}/messages")]
pub async fn messages(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> ApiResult<web::Json<HistoryPage>> {
    let (room, kind) = RoomName::parse(&path.into_inner()).map_err(ApiError::BadRequest)?;
    let HistoryQuery { before, limit } = query.into_inner();
    if let Some(limit) = limit.filter(|l| !(1..=db::messages::MAX_PAGE).contains(l)) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {}, not {limit}",
            db::messages::MAX_PAGE
        )));
    }
    let uid = UserId(who.user.id);
    let name = room.as_str().to_owned();
    let (rows, names, has_more) = db::run(&state.pool, move |conn| {
        history_page(conn, &name, kind, uid, before, limit)
    })
    .await?;
    let messages = rows
        .into_iter()
        .map(|m| {
            let nick = names.get(&m.sender_id).map_or("", String::as_str);
            chat_view(&room, m, nick)
        })
        .collect();
    Ok(web::Json(HistoryPage {
        room,
        messages,
        has_more,
    }))
}
