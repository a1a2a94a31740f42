//! The agent's HTTP endpoint: /metrics (content-negotiated), /healthz and a
//! small index page at /.

use std::{collections::HashMap, future::Future, net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::ConnectInfo,
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::{Agent, exposition};

/// Serves until `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    agent: Arc<Agent>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(agent);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// The routes, exposed for tests.
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/events", post(post_event))
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

/// A generic event from a local tool (a hypervisor hook, a script).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalEvent {
    /// What happened, e.g. "vm_migrated".
    name: String,
    /// Details, as strings.
    #[serde(default)]
    fields: HashMap<String, String>,
}

/// POST /api/v1/events: queues a generic event for the watchdog. Only
/// from this host (loopback), since the port may be open to scrapers.
async fn post_event(
    axum::extract::State(agent): axum::extract::State<Arc<Agent>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Response {
    if !peer.ip().is_loopback() {
        return (
            StatusCode::FORBIDDEN,
            "events are accepted from this host only\n",
        )
            .into_response();
    }
    let Some(events) = agent.watchdog_events() else {
        return (
            StatusCode::CONFLICT,
            "no stream to a watchdog is configured ([stream] endpoints)\n",
        )
            .into_response();
    };
    match serde_json::from_slice::<LocalEvent>(&body) {
        Ok(e) if !e.name.is_empty() => {
            let seq = events.send_generic(&e.name, e.fields);
            Json(serde_json::json!({ "seq": seq })).into_response()
        }
        Ok(_) => (StatusCode::BAD_REQUEST, "event name is empty\n").into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("event body: {e}\n")).into_response(),
    }
}
