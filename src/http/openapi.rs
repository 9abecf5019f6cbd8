//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations, served at `GET /api/openapi.json`.
//!
//! Every `/api` handler carries `#[utoipa::path(..)]` and is listed in [`ApiDoc`]'s `paths`;
//! the test suite fails if a mounted route is missing here. The document is therefore also
//! the route table: [`allowed_methods`] reads it to answer a method a route does not support
//! with 405 and `Allow`, rather than a 404 that would say the route does not exist.

use std::sync::OnceLock;

use actix_web::{get, web, HttpResponse};
use utoipa::{
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use crate::http::{admin, auth, calls, ice, ops, rooms, themes, users};

/// Mounts `/api/openapi.json`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
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
    // Query parameters refer to `Capability` by name, and parameters (unlike bodies) do not
    // bring their schemas along: it is listed here so every `$ref` resolves.
    components(schemas(
        crate::error::ErrorBody,
        crate::error::ErrorDetail,
        crate::error::ErrorCode,
        crate::db::models::Capability,
    )),
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

/// Routes served outside the document (they are not JSON API), with their methods.
const OTHER_ROUTES: &[(&str, &[&str])] = &[
    ("/ws", &["GET"]),
    // The HTTP transport of the same protocol (`http::stream`).
    ("/api/stream", &["GET"]),
    ("/api/stream/{stream_id}", &["POST", "DELETE"]),
];

/// The methods the web app's static files are served with (every path outside `/api` and
/// the routes above is one of them, or a 404 when the file does not exist).
const STATIC_METHODS: &[&str] = &["GET", "HEAD"];

/// One route: its path template split at `/` (`None` for a `{parameter}` segment, which
/// matches any one segment) and the methods it is served with.
type Route = (Vec<Option<String>>, Vec<&'static str>);

/// Every route of the document and [`OTHER_ROUTES`], built once.
fn route_table() -> &'static [Route] {
    static TABLE: OnceLock<Vec<Route>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let segments = |template: &str| -> Vec<Option<String>> {
            template
                .split('/')
                .map(|seg| (!seg.starts_with('{')).then(|| seg.to_owned()))
                .collect()
        };
        let mut table: Vec<Route> = ApiDoc::openapi()
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let methods = [
                    ("GET", &item.get),
                    ("PUT", &item.put),
                    ("POST", &item.post),
                    ("DELETE", &item.delete),
                    ("OPTIONS", &item.options),
                    ("HEAD", &item.head),
                    ("PATCH", &item.patch),
                    ("TRACE", &item.trace),
                ]
                .into_iter()
                .filter_map(|(name, op)| op.is_some().then_some(name))
                .collect();
                (segments(template), methods)
            })
            .collect();
        table.extend(
            OTHER_ROUTES
                .iter()
                .map(|(path, methods)| (segments(path), methods.to_vec())),
        );
        table
    })
}

/// The methods `path` is served with, or `None` when no route has that path (a 404).
///
/// Only called for requests no route took, i.e. whose method (or path) is not served.
pub fn allowed_methods(path: &str) -> Option<Vec<&'static str>> {
    let wanted: Vec<&str> = path.split('/').collect();
    let mut allowed: Vec<&'static str> = Vec::new();
    for (template, methods) in route_table() {
        let fits = template.len() == wanted.len()
            && template
                .iter()
                .zip(&wanted)
                .all(|(t, w)| t.as_deref().map_or(!w.is_empty(), |t| t == *w));
        if fits {
            for method in methods {
                if !allowed.contains(method) {
                    allowed.push(method);
                }
            }
        }
    }
    if !allowed.is_empty() {
        return Some(allowed);
    }
    // Outside the API, every path belongs to the static file tree.
    let api = path == "/api" || path.starts_with("/api/");
    (!api).then(|| STATIC_METHODS.to_vec())
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
pub(crate) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
