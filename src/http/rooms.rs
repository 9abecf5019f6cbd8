//! `GET /api/rooms/{room}/messages`: a page of a room's chat history, with the same access
//! rule as joining the room over WebSocket.

use actix_web::{get, web};
use serde::{Deserialize, Serialize};

use crate::{
    db::{self, messages::Cursor},
    error::{ApiError, ApiResult},
    http::auth::Authenticated,
    realtime::{
        history_page,
        protocol::{ChatView, RoomName, UserId},
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
    /// Only messages with a smaller `msg_id` (older): the page just before it. Not with
    /// `after`.
    pub before: Option<i64>,
    /// Only messages with a larger `msg_id` (newer): the page just after it, to catch up on
    /// what was missed. Not with `before`.
    pub after: Option<i64>,
    /// 1-200, default 50.
    pub limit: Option<i64>,
}

/// One page of history, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    #[schema(value_type = String)]
    pub room: RoomName,
    pub messages: Vec<ChatView>,
    /// More messages remain the way the page runs: older ones (ask again with `before` = the
    /// first `msg_id`), or with `after`, newer ones (ask again with `after` = the last).
    pub has_more: bool,
}

/// A page of a room's messages: public channels for anyone, a direct room for its pair, a
/// call room for its members. `before` pages back from the latest; `after` pages forward
/// from a `msg_id` (what a client missed); both at once are refused (400).
#[utoipa::path(
    get,
    path = "/api/rooms/{room}/messages",
    tag = "realtime",
    params(("room" = String, Path, description = "room name: canal1, dm:3:7, call:c-…"), HistoryQuery),
    responses(
        (status = 200, body = HistoryPage, description = "a page, oldest first"),
        (status = 400, body = crate::error::ErrorBody, description = "a bad room name, or both `before` and `after`"),
        (status = 401, body = crate::error::ErrorBody, description = "no credential, or one revoked or expired"),
        (status = 403, body = crate::error::ErrorBody, description = "a direct or call room that is not yours"),
        (status = 404, body = crate::error::ErrorBody, description = "a direct room with a user who does not exist"),
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
    let HistoryQuery {
        before,
        after,
        limit,
    } = query.into_inner();
    let cursor = Cursor::from_request(before, after).map_err(ApiError::BadRequest)?;
    let uid = UserId(who.user.id);
    let name = room.clone();
    let (messages, has_more) = db::run(&state.pool, move |conn| {
        history_page(conn, &name, kind, uid, cursor, limit)
    })
    .await?;
    Ok(web::Json(HistoryPage {
        room,
        messages,
        has_more,
    }))
}
