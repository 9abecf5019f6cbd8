//! `GET /api/calls`: your own call log, with the other party's nickname.

use actix_web::{get, web};
use serde::{Deserialize, Serialize};

use crate::{
    db::{self, models::CallState},
    error::{documented::NotLoggedIn, ApiResult, ErrorBody},
    http::auth::Authenticated,
    http::state::AppState,
};

/// Most entries one answer holds by default.
const DEFAULT_LIMIT: i64 = 100;
/// Most entries one answer may hold.
pub const MAX_LIMIT: i64 = 500;

/// Mounts `/api/calls`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(call_log);
}

/// The other party of a call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CallParty {
    pub id: i64,
    pub nickname: String,
}

/// One entry of the call log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CallEntry {
    pub call_id: String,
    /// `outgoing` (you called) or `incoming`.
    pub direction: &'static str,
    pub with: CallParty,
    pub media: String,
    pub state: Option<CallState>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
}

/// `GET /api/calls` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CallLog {
    pub calls: Vec<CallEntry>,
}

/// `GET /api/calls` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallLogQuery {
    /// 1 to 500, default 100; anything else is a 400.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// Your calls, made or received, newest first.
#[utoipa::path(
    get,
    path = "/api/calls",
    tag = "realtime",
    params(CallLogQuery),
    responses(
        (status = 200, body = CallLog),
        (status = 400, body = ErrorBody, description = "limit out of range"),
        NotLoggedIn,
    )
)]
#[get("/calls")]
pub(crate) async fn call_log(
    state: web::Data<AppState>,
    who: Authenticated,
    query: web::Query<CallLogQuery>,
) -> ApiResult<web::Json<CallLog>> {
    let me = who.user.id;
    super::check_limit(query.limit, MAX_LIMIT)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let rows = db::run(&state.pool, move |conn| {
        Ok(db::calls::log_with_names(conn, me, limit)?)
    })
    .await?;
    let calls = rows
        .into_iter()
        .map(|(call, nickname)| {
            let outgoing = call.caller_id == me;
            CallEntry {
                direction: if outgoing { "outgoing" } else { "incoming" },
                with: CallParty {
                    id: if outgoing {
                        call.callee_id
                    } else {
                        call.caller_id
                    },
                    nickname,
                },
                state: CallState::parse(&call.state),
                call_id: call.call_key,
                media: call.media,
                created_at: call.created_at,
                answered_at: call.answered_at,
                ended_at: call.ended_at,
            }
        })
        .collect();
    Ok(web::Json(CallLog { calls }))
}
