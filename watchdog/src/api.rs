//! The HTTP API and /metrics (axum): hosts and their state, one host with
//! its inventory, usage windows and recent events, the storage map, named
//! actions sent to a host's agent, and the status page with its aggregated
//! endpoint.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;

use crate::{
    cluster_view,
    commands::{CommandError, CommandRouter},
    registry::Registry,
    status::{self, StatusSources},
};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub registry: Arc<Registry>,
    pub commands: Arc<CommandRouter>,
    /// What other parts provide to the status page.
    pub status: Arc<StatusSources>,
}

/// The routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(status::page))
        .route("/api/v1/status", get(status::get))
        .route("/api/v1/hosts", get(hosts))
        .route("/api/v1/hosts/{id}", get(host))
        .route("/api/v1/hosts/{id}/actions/{name}", post(action))
        .route("/api/v1/storage", get(storage))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

async fn hosts(State(s): State<ApiState>) -> Response {
    Json(s.registry.snapshot()).into_response()
}

async fn host(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    match s.registry.host(&id) {
        Some(h) => Json(h).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no host {id:?}")),
    }
}

/// Every host's storage devices with the LUNs on them.
async fn storage(State(s): State<ApiState>) -> Response {
    Json(cluster_view::storage_map(&s.registry.capacity())).into_response()
}

/// Body of an action request; an empty body means no arguments.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionRequest {
    /// Values for the action's placeholders.
    #[serde(default)]
    args: BTreeMap<String, String>,
}

async fn action(
    State(s): State<ApiState>,
    Path((id, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let request: ActionRequest = if body.is_empty() {
        ActionRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("request body: {e}")),
        }
    };
    match s.commands.send_command(&id, &name, request.args).await {
        Ok(outcome) => Json(outcome).into_response(),
        Err(e) => {
            let status = match e {
                CommandError::UnknownHost(_) => StatusCode::NOT_FOUND,
                CommandError::NotConnected(_) | CommandError::ConnectionLost(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                CommandError::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
            };
            error(status, e.to_string())
        }
    }
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let body = s.registry.metrics.encode(&s.registry.count_by_state());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
