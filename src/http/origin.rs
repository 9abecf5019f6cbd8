//! Which browser pages may act on this server with its users' cookies.
//!
//! The session cookie is `SameSite=Strict`, which keeps it off requests started by other
//! *sites*, but not by other *origins of the same site*: another port of this host, or a
//! sibling subdomain (`chat.uni.example` and `blog.uni.example`). A page there could make a
//! logged-in admin's browser submit a form that bans someone. So every request that may
//! change something and does not carry a bearer token must show it comes from the app's own
//! origin (or one listed in `--allowed-origins`), as the browser reports it in
//! `Sec-Fetch-Site` or, for browsers that do not send that, `Origin`
//! ([`refuse_cross_origin_writes`]). `GET /ws` applies the same origin rule before its
//! upgrade ([`origin_allowed`]).
//!
//! A request with neither header is not from a browser page (browsers send `Origin` with
//! every cross-origin request that is not a GET or HEAD) and is let through: command-line
//! clients and the tests need no ceremony. A bearer token cannot be attached by another
//! origin's page without a CORS preflight, which this server never grants.

use actix_web::{
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{header, Method},
    middleware::Next,
    web, HttpRequest,
};

use crate::{
    config::Settings,
    error::{error_response, ErrorCode},
    http::state::AppState,
    http::{auth, client_ip},
};

/// `Sec-Fetch-Site`: the browser's own word on who started the request.
const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// Whether a browser `Origin` may act here: the server's own origin (the scheme the client
/// used, behind trusted proxies too, and the host it asked for) or one listed in
/// `--allowed-origins`. No `Origin` (not a browser): allowed. `Err` carries the refused
/// origin (shortened) for the error message.
pub fn origin_allowed(req: &HttpRequest, settings: &Settings) -> Result<(), String> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| "(not text)".to_owned())?;
    let scheme = if client_ip::client(req, &settings.trusted_proxies).https {
        "https"
    } else {
        "http"
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let own = format!("{scheme}://{host}");
    if origin.eq_ignore_ascii_case(&own) || listed(origin, settings) {
        Ok(())
    } else {
        Err(origin.chars().take(200).collect())
    }
}

/// Whether `origin` is one of `--allowed-origins`.
fn listed(origin: &str, settings: &Settings) -> bool {
    settings
        .allowed_origins
        .iter()
        .any(|o| o.trim().trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// Whether `req` may change something here (see the module doc); `Err` says why not.
fn write_allowed(req: &HttpRequest, settings: &Settings) -> Result<(), String> {
    if matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return Ok(());
    }
    // Authenticated by the bearer token then, not the cookie (`request_token`).
    if auth::bearer_token(req).is_some() {
        return Ok(());
    }
    let site = req
        .headers()
        .get(SEC_FETCH_SITE)
        .and_then(|v| v.to_str().ok());
    match site {
        // The app's own page, or the person typing or bookmarking the address.
        Some(s) if s.eq_ignore_ascii_case("same-origin") || s.eq_ignore_ascii_case("none") => {
            Ok(())
        }
        // `same-site` or `cross-site`: only an origin the operator listed.
        Some(s) => {
            let origin = req
                .headers()
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !origin.is_empty() && listed(origin, settings) {
                Ok(())
            } else {
                Err(format!(
                    "refused: a page of another origin ({}) may not change anything here",
                    s.chars().take(20).collect::<String>()
                ))
            }
        }
        None => origin_allowed(req, settings).map_err(|origin| {
            format!("refused: a page of origin '{origin}' may not change anything here")
        }),
    }
}

/// Middleware: refuses (403 `forbidden`) a request that may change something when a browser
/// says another origin's page sent it (see the module doc). Bearer requests, reads and
/// requests from outside any browser page pass untouched.
pub async fn refuse_cross_origin_writes(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let refusal = match req.app_data::<web::Data<AppState>>() {
        Some(state) => write_allowed(req.request(), &state.settings).err(),
        None => None,
    };
    if let Some(why) = refusal {
        log::info!(
            "refused {} {}: {why}",
            req.method(),
            req.path().chars().take(200).collect::<String>()
        );
        return Ok(req.into_response(error_response(ErrorCode::Forbidden, why)));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn settings(allowed: &[&str]) -> Settings {
        Settings {
            allowed_origins: allowed.iter().map(|s| (*s).to_owned()).collect(),
            ..Settings::default()
        }
    }

    fn post(headers: &[(&str, &str)]) -> HttpRequest {
        let mut req = TestRequest::post()
            .uri("/api/admin/users/2/ban")
            .insert_header((header::HOST, "chat.uni.example:8080"));
        for h in headers {
            req = req.insert_header(*h);
        }
        req.to_http_request()
    }

    #[test]
    fn the_apps_own_page_may_write() {
        let s = settings(&[]);
        assert!(write_allowed(&post(&[("Sec-Fetch-Site", "same-origin")]), &s).is_ok());
        assert!(write_allowed(&post(&[("Origin", "http://chat.uni.example:8080")]), &s).is_ok());
    }

    #[test]
    fn a_page_of_another_port_or_subdomain_may_not_write() {
        let s = settings(&[]);
        let sibling = post(&[
            ("Sec-Fetch-Site", "same-site"),
            ("Origin", "http://blog.uni.example"),
        ]);
        assert!(write_allowed(&sibling, &s).is_err());
        let other_port = post(&[("Origin", "http://chat.uni.example:9999")]);
        let why = write_allowed(&other_port, &s).unwrap_err();
        assert!(why.contains("chat.uni.example:9999"), "{why}");
        assert!(write_allowed(&post(&[("Origin", "null")]), &s).is_err());
    }

    #[test]
    fn a_listed_origin_may_write_from_another_site() {
        let s = settings(&["https://app.uni.example/"]);
        let req = post(&[
            ("Sec-Fetch-Site", "cross-site"),
            ("Origin", "https://app.uni.example"),
        ]);
        assert!(write_allowed(&req, &s).is_ok());
    }

    #[test]
    fn bearer_requests_reads_and_clients_without_a_page_pass() {
        let s = settings(&[]);
        let bearer = post(&[
            ("Authorization", "Bearer abc"),
            ("Origin", "http://evil.example"),
        ]);
        assert!(write_allowed(&bearer, &s).is_ok());
        let read = TestRequest::get()
            .insert_header(("Sec-Fetch-Site", "cross-site"))
            .to_http_request();
        assert!(write_allowed(&read, &s).is_ok());
        assert!(write_allowed(&post(&[]), &s).is_ok());
    }
}
