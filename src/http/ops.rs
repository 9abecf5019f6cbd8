//! Operations endpoints: liveness, readiness and Prometheus metrics.

use actix_web::{get, web, HttpResponse};

use serde::Serialize;

use crate::{
    db,
    error::{ApiError, ApiResult, ErrorBody},
    http::state::AppState,
};

/// Mounts `/healthz`, `/readyz` and `/metrics`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}

/// Every metric in the Prometheus text format (see [`crate::metrics`]).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    security(()),
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain"))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// `GET /healthz` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// `GET /readyz` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Readiness {
    /// Always `ready` (otherwise the answer is a 503 error).
    pub status: &'static str,
    /// Always `ok`: the database answered a query.
    pub database: &'static str,
    /// With several nodes (`--broker`): `ok`, Redis answered this node's last heartbeat;
    /// absent when this process serves alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<&'static str>,
}

/// The process is up and serving.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    security(()),
    responses((status = 200, body = Health))
)]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// The server can do its work: the database answers a query, and with several nodes, the
/// broker (Redis) answers too.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    security(()),
    responses(
        (status = 200, body = Readiness),
        (status = 503, body = ErrorBody, description = "the database or the broker does not answer, or the server is shutting down"),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    if state.realtime.is_draining() {
        return Err(ApiError::Unavailable(
            "this server is shutting down".to_owned(),
        ));
    }
    db::ping(&state.pool).await?;
    let broker = match &state.realtime.broker {
        Some(broker) if !broker.is_up() => {
            return Err(ApiError::Unavailable(
                "the broker (Redis) does not answer".to_owned(),
            ))
        }
        Some(_) => Some("ok"),
        None => None,
    };
    Ok(HttpResponse::Ok().json(Readiness {
        status: "ready",
        database: "ok",
        broker,
    }))
}
