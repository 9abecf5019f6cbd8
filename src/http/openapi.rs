//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations, served at `GET /api/openapi.json`.
//!
//! Every `/api` handler carries `#[utoipa::path(..)]` and is listed in [`ApiDoc`]'s `paths`;
//! the test suite fails if a mounted route is missing here.

use std::sync::OnceLock;

use actix_web::{get, web, HttpResponse};
use utoipa::{
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use crate::http::{admin, auth, calls, ice, ops, rooms, themes, users};

/// Mounts `/api/openapi.json`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(openapi_json);
}

/// The API description; `paths` must list every handler.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tertulia",
        description = "Accounts, the lobby directory, themes and the admin API. Errors are \
                       always `{\"error\": {\"code\", \"message\"}}`. The WebSocket protocol \
                       at `/ws` is described in docs/protocol.md."
    ),
    paths(
        auth::register,
        auth::login,
        auth::logout,
        auth::me,
        auth::update_me,
        users::list_users,
        themes::list_themes,
        rooms::messages,
        calls::call_log,
        ice::ice_servers,
        admin::list_users,
        admin::user_detail,
        admin::ban_user,
        admin::unban_user,
        admin::delete_user,
        admin::set_role,
        admin::kick_user,
        admin::create_theme,
        admin::update_theme,
        admin::delete_theme,
        admin::stats,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        openapi_json,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail, crate::error::ErrorCode)),
    modifiers(&SecuritySchemes),
    security(("session_cookie" = []), ("bearer" = [])),
    tags(
        (name = "accounts", description = "Register, log in and out, your own profile"),
        (name = "directory", description = "Who is here and what they talk about"),
        (name = "realtime", description = "Chat history, the call log and ICE servers; the live part is /ws"),
        (name = "admin", description = "Role admin only: 401 without a credential, 403 otherwise"),
        (name = "ops", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Declares the two ways to authenticate: the session cookie and a bearer token.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::http::auth::SESSION_COOKIE,
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            // Serialising a document built from static annotations cannot fail; if it ever
            // did, an empty object is still valid JSON.
            .unwrap_or_else(|_| "{}".to_owned())
    })
}

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "ops",
    security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json"))
)]
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
