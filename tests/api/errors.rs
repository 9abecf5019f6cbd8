//! Every failure is a JSON error with the right status; nothing panics on bad input.

use actix_web::http::StatusCode;

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
