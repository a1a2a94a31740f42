//! The agent's HTTP endpoint: /metrics (content-negotiated), /healthz and a
//! small index page at /.

use std::{future::Future, sync::Arc};

use axum::{
    Router,
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse},
    routing::get,
};
use tokio::net::TcpListener;

use crate::{Agent, exposition};

/// Serves until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    agent: Arc<Agent>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(agent);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The routes, exposed for tests.
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(index))
        .with_state(agent)
}

async fn metrics(
    axum::extract::State(agent): axum::extract::State<Arc<Agent>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = exposition::Format::negotiate(accept);
    let body = exposition::encode(agent.gather(), format);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
}

async fn index() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html><head><title>hyperwatch-agent</title></head><body>",
        "<h1>hyperwatch-agent</h1><p>Version ",
        env!("CARGO_PKG_VERSION"),
        "</p><ul><li><a href=\"/metrics\">Metrics</a></li>",
        "<li><a href=\"/healthz\">Health</a></li></ul></body></html>\n"
    ))
}
