//! `GET /metrics`: Prometheus text format.

use actix_web::http::StatusCode;

use crate::helpers::{spawn_app, TestApp};

async fn scrape(app: &TestApp) -> String {
    let res = app.get("/metrics", None).await;
    assert_eq!(res.status, StatusCode::OK);
    let content_type = res.headers.get("content-type").unwrap().to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    res.body.as_str().expect("text body").to_owned()
}

/// The value of the sample line that starts with `series` (name and labels), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("numeric sample"))
}

#[actix_web::test]
async fn requests_are_counted_by_route_pattern_and_status_not_by_raw_path() {
    let app = spawn_app().await;
    let user = app.user("ana").await;
    app.get("/api/users?theme=Jogos", Some(&user.token)).await;
    app.get("/api/users?page=2", Some(&user.token)).await;
    app.get("/api/users", None).await;
    app.get("/api/no-such-route-4f3a9c", None).await;
    app.get("/no/such/file-77d1e2.png", None).await;
    app.get("/api/admin/users/123456", Some(&user.token)).await;

    let text = scrape(&app).await;
    let users = "tertulia_http_requests_total{method=\"GET\",route=\"/api/users\"";
    assert_eq!(
        sample(&text, &format!("{users},status=\"200\"}}")),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("{users},status=\"401\"}}")),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "tertulia_http_requests_total{method=\"POST\",route=\"/api/login\",status=\"200\"}"
        ),
        Some(1.0)
    );
    assert!(
        !text.contains("4f3a9c") && !text.contains("77d1e2"),
        "raw paths leaked: {text}"
    );
}

#[actix_web::test]
async fn metrics_include_a_latency_histogram_and_the_database_pool() {
    let app = spawn_app().await;
    app.get("/api/themes", None).await;
    app.get("/api/themes", None).await;

    let text = scrape(&app).await;
    assert!(text.contains("# TYPE tertulia_http_request_duration_seconds histogram"));
    let labels = "method=\"GET\",route=\"/api/themes\"";
    let count = sample(
        &text,
        &format!("tertulia_http_request_duration_seconds_count{{{labels}}}"),
    );
    assert_eq!(count, Some(2.0), "{text}");
    let inf = sample(
        &text,
        &format!("tertulia_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}}"),
    );
    assert_eq!(inf, Some(2.0));
    assert!(
        sample(
            &text,
            &format!("tertulia_http_request_duration_seconds_sum{{{labels}}}")
        )
        .unwrap()
            > 0.0
    );

    assert!(text.contains("# TYPE tertulia_db_pool_connections gauge"));
    let idle = sample(&text, "tertulia_db_pool_connections{state=\"idle\"}").unwrap();
    let in_use = sample(&text, "tertulia_db_pool_connections{state=\"in_use\"}").unwrap();
    let max = sample(&text, "tertulia_db_pool_max_connections").unwrap();
    assert_eq!(max, f64::from(app.settings.db_pool_size));
    assert!(idle + in_use >= 1.0 && idle + in_use <= max, "{text}");
}
