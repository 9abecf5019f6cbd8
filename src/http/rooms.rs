//! `GET /api/rooms/{room}/messages`: a page of a room's chat history, with the same access
//! rule as joining the room over WebSocket.

use actix_web::{get, web};
use serde::{Deserialize, Serialize};

use crate::{
    db,
    error::{ApiError, ApiResult},
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
pub struct HistoryQuery {
    /// Only messages with a smaller `msg_id` (older).
    pub before: Option<i64>,
    /// 1-200, default 50.
    pub limit: Option<i64>,
}

/// One page of history, oldest first.
#[derive(Debug, Serialize)]
pub struct HistoryPage {
    pub room: RoomName,
    pub messages: Vec<ChatView>,
    /// Older messages remain (ask again with `before` = the first `msg_id`).
    pub has_more: bool,
}

/// A page of a room's messages: public channels for anyone, a direct room for its pair, a
/// call room for its members.
#[utoipa::path(
    get,
    path = "/api/rooms/{room}/messages",
    tag = "realtime",
    params(("room" = String, Path, description = "room name: canal1, dm:3:7, call:c-…"), HistoryQuery),
    responses(
        (status = 200, description = "{room, messages, has_more}"),
        (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody),
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
