//! The daemon's HTTP endpoint: `/metrics` (Prometheus text format) and `/healthz`.

use crate::metrics::METRICS;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use tokio::sync::watch;
use tracing::{error, info};

/// Serves until `stop` turns true. A port that cannot be bound is logged and counted; ingestion
/// goes on without the endpoint.
pub async fn serve(listen: SocketAddr, mut stop: watch::Receiver<bool>) {
    let app = Router::new()
        .route("/metrics", get(|| async { ([("content-type", "text/plain; version=0.0.4")], METRICS.render()) }))
        .route("/healthz", get(|| async { "ok\n" }));
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            error!(%listen, error = %e, "cannot listen for /metrics; running without it");
            METRICS.errors.with_label_values(&["", "http"]).inc();
            return;
        }
    };
    info!(%listen, "serving /metrics and /healthz");
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
