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
pub mod themes;
pub mod users;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::{error_response, ErrorCode};

/// Mounts every API route under the scopes it belongs to.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(ops::configure)
        .configure(crate::realtime::configure)
        .service(
            web::scope("/api")
                .configure(auth::configure)
                .configure(users::configure)
                .configure(themes::configure)
                .configure(admin::configure)
                .configure(rooms::configure)
                .configure(calls::configure)
                .configure(ice::configure)
                .configure(openapi::configure)
                .default_service(web::to(not_found)),
        );
}

/// Unknown routes: a JSON 404, like every other error.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    error_response(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.path()),
    )
}
