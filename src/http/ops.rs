//! Operations endpoints: liveness, readiness and Prometheus metrics.

use actix_web::{get, web, HttpResponse};
use diesel::{connection::SimpleConnection, RunQueryDsl};

use crate::{db, error::ApiResult, startup::AppState};

/// Mounts `/healthz`, `/readyz` and `/metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}

/// Every metric in the Prometheus text format (see [`crate::metrics`]).
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// The process is up and serving.
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// The server can do its work: the database answers a query.
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    db::run(&state.pool, |conn| {
        conn.batch_execute("SELECT 1;")?;
        diesel::sql_query("SELECT 1 FROM users LIMIT 1").execute(conn)?;
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready", "database": "ok"})))
}
