//! `GET /api/rooms/{room}/messages`: a page of a room's chat history, with the same access
//! rule as joining the room over WebSocket.

use actix_web::{get, web};
use serde::{Deserialize, Serialize};

use crate::{
    db::{self, messages::Cursor},
    error::{documented::NotLoggedIn, ApiError, ApiResult, ErrorBody},
    http::auth::Authenticated,
    http::state::AppState,
    realtime::{
        history::history_page,
        protocol::{ChatView, RoomName, UserId},
    },
};

/// Mounts `/api/rooms/{room}/messages`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(messages);
}

/// `GET /api/rooms/{room}/messages` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// Only messages with a smaller `msg_id` (older): the page just before it. Not with
    /// `after`.
    pub before: Option<i64>,
    /// Only messages with a larger `msg_id` (newer): the page just after it, to catch up on
    /// what was missed. Not with `before`.
    pub after: Option<i64>,
    /// 1 to 200, default 50; anything else is a 400.
    #[param(minimum = 1, maximum = 200)]
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
/// call room or a group conversation for its members. `before` pages back from the latest; `after` pages forward
/// from a `msg_id` (what a client missed); both at once are refused (400).
#[utoipa::path(
    get,
    path = "/api/rooms/{room}/messages",
    tag = "realtime",
    params(
        ("room" = String, Path, max_length = 64,
            pattern = r"^(?:[A-Za-z0-9._-]+|dm:(?:0|-?[1-9][0-9]*):(?:0|-?[1-9][0-9]*)|call:[A-Za-z0-9._-]+|group:[A-Za-z0-9._-]+)$",
            description = "room name: canal1, dm:3:7 (the smaller id first), call:c-…, group:g-… (a group conversation, protocol 1.3)"),
        HistoryQuery
    ),
    responses(
        (status = 200, body = HistoryPage, description = "a page, oldest first"),
        (status = 400, body = ErrorBody, description = "a bad room name, limit out of range, or both `before` and `after`"),
        NotLoggedIn,
        (status = 403, body = ErrorBody, description = "a direct, call or group room you are not in"),
        (status = 404, body = ErrorBody, description = "a direct room with a user who does not exist"),
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
    super::check_limit(limit, db::messages::MAX_PAGE)?;
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
