//! Every failure is a JSON error with the right status; nothing panics on bad input.

use actix_web::http::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn malformed_json_is_a_400_json_error() {
    let app = spawn_app().await;
    let res = app
        .post_raw(
            "/api/register",
            "application/json",
            b"{\"nickname\": ".to_vec(),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.error_code(), "bad_request");
    assert!(res.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("invalid JSON"));
}

#[actix_web::test]
async fn the_wrong_content_type_is_a_415_json_error() {
    let app = spawn_app().await;
    let res = app
        .post_raw("/api/login", "text/plain", b"nickname=a".to_vec())
        .await;
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(res.error_code(), "bad_request");
}

#[actix_web::test]
async fn an_oversized_body_is_a_413_json_error() {
    let app = spawn_app().await;
    let big = format!("{{\"nickname\": \"{}\"}}", "x".repeat(200 * 1024));
    let res = app
        .post_raw("/api/register", "application/json", big.into_bytes())
        .await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.error_code(), "too_large");
}

#[actix_web::test]
async fn unknown_routes_are_404_json_errors() {
    let app = spawn_app().await;
    for path in ["/api/nothing-here", "/no/such/page.html"] {
        let res = app.get(path, None).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(res.error_code(), "not_found", "{path}");
    }
}

#[actix_web::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["database"], "ok");
}

#[actix_web::test]
async fn a_method_a_route_does_not_serve_is_a_405_that_lists_the_ones_it_does() {
    let app = spawn_app().await;
    let admin = app.admin("ana").await;
    for (method, path, token, allow) in [
        ("TRACE", "/api/me", None, "GET, PATCH"),
        ("PUT", "/api/themes", None, "GET"),
        ("DELETE", "/api/login", None, "POST"),
        ("OPTIONS", "/api/rooms/canal1/messages", None, "GET"),
        ("POST", "/healthz", None, "GET"),
        ("PATCH", "/ws", None, "GET"),
        // The admin scope's guard runs first: an admin reaches the 405.
        (
            "TRACE",
            "/api/admin/users/1",
            Some(admin.token.as_str()),
            "GET, DELETE",
        ),
        // The web app's files are served with GET and HEAD only.
        ("DELETE", "/index.html", None, "GET, HEAD"),
    ] {
        let res = app.request(method, path, token, None).await;
        assert_eq!(
            res.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            res.body
        );
        let got = res
            .headers
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mut got: Vec<&str> = got.split(", ").collect();
        let mut want: Vec<&str> = allow.split(", ").collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{method} {path}: Allow");
        assert_eq!(res.error_code(), "bad_request", "{method} {path}");
        assert!(
            res.body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(method),
            "{method} {path}: {}",
            res.body
        );
    }
}

#[actix_web::test]
async fn the_web_app_is_still_served_with_get_and_head() {
    let app = spawn_app().await;
    for method in ["GET", "HEAD"] {
        for path in ["/", "/index.html"] {
            let res = app.request(method, path, None, None).await;
            assert_eq!(res.status, StatusCode::OK, "{method} {path}");
            let content_type = res
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(content_type.starts_with("text/html"), "{method} {path}");
        }
    }
}

#[actix_web::test]
async fn an_unknown_path_stays_a_404_whatever_the_method() {
    let app = spawn_app().await;
    for method in ["TRACE", "PUT", "GET"] {
        for path in ["/api/nothing-here", "/api/me/more", "/api"] {
            let res = app.request(method, path, None, None).await;
            assert_eq!(res.status, StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(res.error_code(), "not_found", "{method} {path}");
            assert!(res.headers.get("allow").is_none(), "{method} {path}");
        }
    }
}

#[actix_web::test]
async fn a_limit_out_of_range_is_refused_rather_than_clamped() {
    let app = spawn_app().await;
    let ana = app.user("ana").await;
    let token = Some(ana.token.as_str());
    for query in ["limit=201", "limit=0", "limit=-1", "limit=100000"] {
        let res = app
            .get(&format!("/api/rooms/canal1/messages?{query}"), token)
            .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{query}: {}", res.body);
        assert!(
            res.body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("limit must be 1 to 200"),
            "{query}: {}",
            res.body
        );
    }
    let most = app.get("/api/rooms/canal1/messages?limit=200", token).await;
    assert_eq!(most.status, StatusCode::OK, "{}", most.body);
    for query in ["limit=501", "limit=0"] {
        let res = app.get(&format!("/api/calls?{query}"), token).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{query}: {}", res.body);
        assert!(
            res.body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("limit must be 1 to 500"),
            "{query}: {}",
            res.body
        );
    }
    assert_eq!(
        app.get("/api/calls?limit=500", token).await.status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn a_name_over_its_maximum_as_sent_is_refused_even_if_trimming_would_fit() {
    let app = spawn_app().await;
    let admin = app.admin("ana").await;
    let token = Some(admin.token.as_str());
    // 49 characters as sent, one once trimmed: the documented maxLength is 48.
    let padded = format!(" 0{}", " ".repeat(47));
    let res = app
        .post("/api/admin/themes", token, json!({"name": padded}))
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    assert!(res.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("1 to 48 characters"));
    let res = app
        .register(
            json!({"nickname": format!(" bia{}", " ".repeat(29)), "password": "long enough pass"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    // Within the maximum, surrounding spaces are still trimmed.
    let res = app
        .post("/api/admin/themes", token, json!({"name": "  Xadrez  "}))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.body["name"], "Xadrez");
    let res = app
        .register(json!({"nickname": " bia ", "password": "long enough pass"}))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.body["nickname"], "bia");
}
