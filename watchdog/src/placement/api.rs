//! The plans API: `GET /api/v1/plans` (recent plans, newest first, without
//! the plans themselves), `GET /api/v1/plans/{id}` (one, with its plan),
//! and `POST /api/v1/plans` (an operator's plan: recorded as a dry run, or
//! started and answered at once while it runs).

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;

use super::{
    PlacementService,
    history::{Kind, Trigger},
    step::{PlanOrder, Refusal},
};

/// The body of `POST /api/v1/plans`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    /// "rebalance", "failover" or "move-luns".
    pub kind: Kind,
    /// The host (rebalance, failover) or `HOST/DEVICE` (move-luns), with or
    /// without its `host:` / `storage-device:` prefix; absent: the whole
    /// cluster (every failed host for failover).
    #[serde(default)]
    pub target: Option<String>,
    /// Carry the plan out; false (the default): record what it would do.
    #[serde(default)]
    pub execute: bool,
}

/// The routes, to merge beside the watchdog's API.
pub fn routes(service: PlacementService) -> Router {
    Router::new()
        .route("/api/v1/plans", get(list).post(create))
        .route("/api/v1/plans/{id}", get(one))
        .with_state(service)
}

async fn list(State(s): State<PlacementService>) -> Response {
    Json(serde_json::json!({ "plans": s.history().list() })).into_response()
}

async fn one(State(s): State<PlacementService>, Path(id): Path<String>) -> Response {
    match s.history().get(&id) {
        Some(r) => Json(r).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no plan {id:?} (the history keeps the newest plans only)"),
        ),
    }
}

async fn create(State(s): State<PlacementService>, body: axum::body::Bytes) -> Response {
    let body: PlanBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "request body: {e}; send {{\"kind\": \"rebalance\"|\"failover\"|\"move-luns\", \"target\": \"...\", \"execute\": true|false}}"
                ),
            );
        }
    };
    let order = PlanOrder {
        kind: body.kind,
        target: body.target.as_deref().map(|t| bare(body.kind, t)),
        trigger: Trigger::Operator,
        execute: Some(body.execute),
    };
    let answer = if body.execute {
        s.execute(order).await.map(|r| (StatusCode::ACCEPTED, r))
    } else {
        s.dry_run(order).map(|r| (StatusCode::CREATED, r))
    };
    match answer {
        Ok((status, record)) => (status, Json(record)).into_response(),
        Err(refusal) => {
            let status = match refusal {
                Refusal::UnknownTarget(_) => StatusCode::NOT_FOUND,
                Refusal::NotAvailable(_) => StatusCode::UNPROCESSABLE_ENTITY,
                Refusal::Conflict(_) => StatusCode::CONFLICT,
                Refusal::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, refusal.to_string())
        }
    }
}

/// The target without the prefix a policy target reference carries.
fn bare(kind: Kind, target: &str) -> String {
    let prefix = match kind {
        Kind::MoveLuns => "storage-device:",
        Kind::Rebalance | Kind::Failover => "host:",
    };
    target.strip_prefix(prefix).unwrap_or(target).to_owned()
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};
    use tower::ServiceExt;

    use super::*;
    use crate::placement::tests::Lab;

    async fn call(
        app: &Router,
        method: &str,
        path: &str,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        let response = app
            .clone()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::from(body.to_owned()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn plans_are_made_listed_and_shown() {
        let lab = Lab::new("");
        lab.overloaded_pair();
        let app = routes(lab.service.clone());
        let (status, made) = call(
            &app,
            "POST",
            "/api/v1/plans",
            r#"{"kind":"rebalance","target":"host:hv-a"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{made}");
        assert_eq!(made["state"], "dry-run");
        assert_eq!(made["trigger"], "operator");
        assert_eq!(made["target"], "hv-a");
        assert_eq!(made["detail"]["type"], "vms");
        assert_eq!(made["moves"][0]["state"], "would-run");
        let id = made["id"].as_str().unwrap();
        let (status, list) = call(&app, "GET", "/api/v1/plans", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["plans"][0]["id"], id);
        assert!(list["plans"][0].get("detail").is_none());
        let (status, one) = call(&app, "GET", &format!("/api/v1/plans/{id}"), "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(one["summary"], made["summary"]);
    }

    #[tokio::test]
    async fn bad_requests_get_clear_errors_and_codes() {
        let lab = Lab::new("");
        lab.overloaded_pair();
        let app = routes(lab.service.clone());
        for (body, code, says) in [
            (
                r#"{"kind":"shuffle"}"#,
                StatusCode::BAD_REQUEST,
                "unknown variant `shuffle`",
            ),
            (
                r#"{"kind":"rebalance","force":true}"#,
                StatusCode::BAD_REQUEST,
                "unknown field `force`",
            ),
            (
                r#"{"kind":"rebalance","target":"hv-q"}"#,
                StatusCode::NOT_FOUND,
                "no hypervisor \"hv-q\"",
            ),
            (
                r#"{"kind":"failover","target":"hv-a"}"#,
                StatusCode::CONFLICT,
                "not failed",
            ),
            (
                r#"{"kind":"move-luns","target":"st-x/d1"}"#,
                StatusCode::NOT_FOUND,
                "no storage device",
            ),
        ] {
            let (status, answer) = call(&app, "POST", "/api/v1/plans", body).await;
            assert_eq!(status, code, "{body}: {answer}");
            let e = answer["error"].as_str().unwrap();
            assert!(e.contains(says), "{body}: {e}");
        }
        let (status, answer) = call(&app, "GET", "/api/v1/plans/p0-0", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(answer["error"].as_str().unwrap().contains("p0-0"));
    }
}
