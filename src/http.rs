//! The daemon's HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (the process
//! answers), `/readyz` (ledger open, every source watched, every sink reachable; 503 with the
//! reasons otherwise), `/v1/status` (JSON, see [`crate::status::Snapshot`]) and, for the sources
//! with a `push` section, `PUT /v1/sources/{source}/files/{name}` (see [`crate::push`]).

use crate::metrics::METRICS;
use crate::push::PushState;
use crate::status::STATUS;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use std::net::SocketAddr;
use tokio::sync::watch;
use tracing::{error, info};

/// Serves until `stop` turns true. A port that cannot be bound is logged and counted; ingestion
/// goes on without the endpoint. `push` serves the push endpoint (its targets can be replaced
/// while serving, see [`PushState::set_targets`]); `None` leaves it out.
pub async fn serve(listen: SocketAddr, mut stop: watch::Receiver<bool>, push: Option<PushState>) {
    let push_sources = push.as_ref().map(PushState::sources).unwrap_or_default();
    let mut app = Router::new()
        .route("/metrics", get(|| async { ([("content-type", "text/plain; version=0.0.4")], METRICS.render()) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/v1/status", get(status))
        .fallback(crate::push::not_found);
    if let Some(push) = push {
        app = app.merge(push.router());
    }
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            crate::events::emit(crate::events::HttpListenFailed { listen, error: &e });
            return;
        }
    };
    info!(%listen, push = ?push_sources, "serving /metrics, /healthz, /readyz, /v1/status and the push endpoint");
    let shutdown = async move {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    };
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        error!(error = %e, "HTTP endpoint failed");
    }
}

async fn readyz() -> (StatusCode, String) {
    match STATUS.not_ready() {
        None => (StatusCode::OK, "ready\n".to_string()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
    }
}

async fn status() -> ([(&'static str, &'static str); 1], String) {
    let body = serde_json::to_string_pretty(&STATUS.snapshot()).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    ([("content-type", "application/json")], body)
}
