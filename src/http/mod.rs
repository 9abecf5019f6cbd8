//! The HTTP API: one file per resource, each with a `configure` that mounts its routes.

pub mod admin;
pub mod auth;
pub mod calls;
pub mod client_ip;
pub mod ice;
pub mod openapi;
pub mod ops;
pub mod origin;
pub mod ratelimit;
pub mod rooms;
pub mod state;
pub mod stream;
pub mod themes;
pub mod users;
pub mod ws;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::{error_response, method_not_allowed, ErrorCode};

/// Mounts every API route under the scopes it belongs to.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(ops::configure)
        .configure(ws::configure)
        .service(
            web::scope("/api")
                .configure(auth::configure)
                .configure(users::configure)
                .configure(themes::configure)
                .configure(admin::configure)
                .configure(rooms::configure)
                .configure(calls::configure)
                .configure(stream::configure)
                .configure(ice::configure)
                .configure(openapi::configure)
                .default_service(web::to(not_found)),
        );
}

/// Refuses a `limit` outside 1 to `max` with a 400 that names the range (never clamped: the
/// documented maximum is what the server does).
pub(crate) fn check_limit(limit: Option<i64>, max: i64) -> crate::error::ApiResult<()> {
    match limit {
        Some(limit) if !(1..=max).contains(&limit) => Err(crate::error::ApiError::BadRequest(
            format!("limit must be 1 to {max}, not {limit}"),
        )),
        _ => Ok(()),
    }
}

/// Requests no route took: a method the path is not served with is a 405 listing the ones
/// it is (`Allow`); an unknown path a 404. Both with the JSON error body.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let method = req.method().as_str();
    match openapi::allowed_methods(req.path()) {
        Some(allowed) if !allowed.contains(&method) => {
            method_not_allowed(method, req.path(), &allowed)
        }
        _ => error_response(
            ErrorCode::NotFound,
            format!("no route for {} {}", req.method(), req.path()),
        ),
    }
}
