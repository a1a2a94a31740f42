//! The operators' HTTP surface of the policy runtime: incidents with their
//! audit timelines ("why did or didn't it page"), acknowledgements,
//! silences, host maintenance, the policies in force, and Alertmanager's
//! webhook. Changes answer once they are committed to the store.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use hyperwatch_policies::{
    Decision, DecisionKind, EngineError, IncidentId, InputKind,
    input::{Matcher, Silence},
    time::{Duration as Span, Timestamp},
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{
    alertmanager::{self, WEBHOOK_VERSION, Webhook},
    driver::{Request, now},
    view::{DeliveryView, IncidentView, SilenceView, TimelineEntry, rfc3339},
};
use crate::{registry::Registry, store::Store};

/// Bound on waiting for the engine's task to answer (it commits to disk
/// before answering a change).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);
/// Incidents listed at most by default, and at all.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// Audit lines shown with one incident (the latest).
const TIMELINE_LIMIT: usize = 2000;
/// Who an acknowledgement or silence is from when the request does not say.
const ANONYMOUS: &str = "api";

/// What the handlers share.
#[derive(Clone)]
pub struct RuntimeApi {
    pub(super) requests: mpsc::Sender<Request>,
    pub(super) store: Store,
    /// Maintenance is also the registry's flag the planner reads (a host
    /// in maintenance is drained and receives nothing).
    pub(super) registry: Arc<Registry>,
}

/// The routes.
pub fn router(state: RuntimeApi) -> Router {
    Router::new()
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/incidents/{id}", get(incident))
        .route("/api/v1/incidents/{id}/ack", post(ack).delete(unack))
        .route("/api/v1/silences", get(silences).post(add_silence))
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(remove_silence),
        )
        .route(
            "/api/v1/hosts/{id}/maintenance",
            post(maintenance_on).delete(maintenance_off),
        )
        .route("/api/v1/policies", get(policies))
        .route("/api/v1/alertmanager", post(alerts))
        .with_state(state)
}

/// A refused or failed request: its status and why, as `{"error": "..."}`.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError(status, message.into())
}

/// What a handler answers.
type Answer = Result<Response, ApiError>;

impl RuntimeApi {
    /// Asks the engine's task; `None` when it is gone or too slow.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        let unavailable = || {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the policy engine is not running",
            )
        };
        self.requests
            .send(make(tx))
            .await
            .map_err(|_| unavailable())?;
        match tokio::time::timeout(ANSWER_WITHIN, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(unavailable()),
            Err(_) => Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the policy engine did not answer within {ANSWER_WITHIN:?}"),
            )),
        }
    }

    /// Applies inputs; each gives its decisions or the engine's refusal.
    async fn apply(
        &self,
        kinds: Vec<InputKind>,
    ) -> Result<Vec<Result<Vec<Decision>, EngineError>>, ApiError> {
        self.ask(|reply| Request::Inputs { kinds, reply })
            .await?
            .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e))
    }

    /// Applies one input; a refusal is the response.
    async fn apply_one(&self, kind: InputKind) -> Result<Vec<Decision>, ApiError> {
        let mut results = self.apply(vec![kind]).await?;
        results
            .pop()
            .expect("one result per input")
            .map_err(refusal)
    }
}

fn refusal(e: EngineError) -> ApiError {
    let status = match e {
        EngineError::UnknownIncident(_) | EngineError::UnknownSilence(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, e.to_string())
}

fn lines(decisions: &[Decision]) -> Vec<String> {
    decisions.iter().map(Decision::line).collect()
}

/// A duration in the policies' syntax ("90s", "1h30m"), from now.
fn until(field: &str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    text.map(|t| {
        Span::parse(t)
            .map(|d| now().plus(d))
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("`{field}`: {e}")))
    })
    .transpose()
}

fn body<T: for<'de> Deserialize<'de> + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("request body: {e}")))
}

fn incident_id(text: &str) -> Result<IncidentId, ApiError> {
    text.parse()
        .map_err(|e: hyperwatch_policies::input::IdError| {
            error(StatusCode::BAD_REQUEST, e.to_string())
        })
}

/// `?status=open|resolved|all&limit=N`.
#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

async fn incidents(State(s): State<RuntimeApi>, Query(q): Query<ListQuery>) -> Answer {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let (open, resolved) = match q.status.as_deref().unwrap_or("open") {
        "open" => (true, false),
        "resolved" => (false, true),
        "all" => (true, true),
        other => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("status {other:?}: use open, resolved or all"),
            ));
        }
    };
    let mut out: Vec<IncidentView> = Vec::new();
    if open {
        let mut v = s.ask(|reply| Request::Incidents { reply }).await?;
        v.reverse();
        out.extend(v);
    }
    if resolved {
        let rows = s.store.incidents(true, limit).await.map_err(internal)?;
        out.extend(rows.iter().map(IncidentView::stored));
    }
    out.truncate(limit);
    Ok(Json(out).into_response())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// One incident with its timeline and its notifications' deliveries.
#[derive(Serialize)]
struct IncidentDetail {
    #[serde(flatten)]
    incident: IncidentView,
    timeline: Vec<TimelineEntry>,
    notifications: Vec<DeliveryView>,
}

async fn incident(State(s): State<RuntimeApi>, Path(id): Path<String>) -> Answer {
    let id = incident_id(&id)?;
    let view = match s.ask(|reply| Request::Incident { id, reply }).await? {
        Some(v) => v,
        None => match s.store.incident(&id.to_string()).await.map_err(internal)? {
            Some(row) => IncidentView::stored(&row),
            None => {
                return Err(error(
                    StatusCode::NOT_FOUND,
                    format!("there is no incident {id}"),
                ));
            }
        },
    };
    let key = id.to_string();
    let timeline = s
        .store
        .audit(Some(&key), TIMELINE_LIMIT)
        .await
        .map_err(internal)?;
    let deliveries = s.store.deliveries(&key).await.map_err(internal)?;
    Ok(Json(IncidentDetail {
        incident: view,
        timeline: timeline.iter().map(TimelineEntry::of).collect(),
        notifications: deliveries
            .into_iter()
            .map(|d| DeliveryView {
                key: d.key,
                channel: d.channel,
                recipient: d.recipient,
                state: d.state.as_str(),
                attempts: d.attempts,
                outcome: d.outcome,
                note: d.note,
            })
            .collect(),
    })
    .into_response())
}

/// `{"for": "1h", "by": "alice"}`; both optional (until resolved, "api").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckRequest {
    #[serde(rename = "for")]
    duration: Option<String>,
    by: Option<String>,
}

async fn ack(
    State(s): State<RuntimeApi>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> Answer {
    let incident = incident_id(&id)?;
    let req: AckRequest = body(&bytes)?;
    let until = until("for", req.duration.as_deref())?;
    let by = req.by.unwrap_or_else(|| ANONYMOUS.to_owned());
    let decisions = s
        .apply_one(InputKind::Ack {
            incident,
            until,
            by: by.clone(),
        })
        .await?;
    Ok(Json(serde_json::json!({
        "incident": incident.to_string(),
        "acked_by": by,
        "until": until.map(rfc3339),
        "decisions": lines(&decisions),
    }))
    .into_response())
}

async fn unack(State(s): State<RuntimeApi>, Path(id): Path<String>) -> Answer {
    let incident = incident_id(&id)?;
    let decisions = s.apply_one(InputKind::Unack { incident }).await?;
    Ok(Json(serde_json::json!({
        "incident": incident.to_string(),
        "decisions": lines(&decisions),
    }))
    .into_response())
}

async fn silences(State(s): State<RuntimeApi>) -> Answer {
    let all = s.ask(|reply| Request::Silences { reply }).await?;
    Ok(Json(all).into_response())
}

/// A new silence: matchers (`label=glob`, `label!=glob`) and an expiry,
/// `for` (from now) or `until` (RFC 3339).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceRequest {
    id: Option<String>,
    matchers: Vec<String>,
    #[serde(rename = "for")]
    duration: Option<String>,
    until: Option<String>,
    by: Option<String>,
    comment: Option<String>,
}

async fn add_silence(State(s): State<RuntimeApi>, bytes: axum::body::Bytes) -> Answer {
    let req: SilenceRequest = body(&bytes)?;
    let matchers = req
        .matchers
        .iter()
        .map(|m| m.parse::<Matcher>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let until = match (req.duration.as_deref(), req.until.as_deref()) {
        (Some(d), None) => until("for", Some(d))?.unwrap_or_default(),
        (None, Some(u)) => {
            let t = humantime::parse_rfc3339_weak(u)
                .map_err(|e| error(StatusCode::BAD_REQUEST, format!("`until` {u:?}: {e}")))?;
            let ms = t
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            Timestamp(ms)
        }
        _ => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "give the silence's expiry as exactly one of `for` (\"2h\") or `until` (RFC 3339)",
            ));
        }
    };
    let id = match req.id {
        Some(id) if !id.trim().is_empty() => id,
        _ => s.ask(|reply| Request::SilenceId { reply }).await?,
    };
    let silence = Silence {
        id: id.clone(),
        matchers,
        until,
        by: req.by.unwrap_or_else(|| ANONYMOUS.to_owned()),
        comment: req.comment.unwrap_or_default(),
    };
    let view = SilenceView::of(&silence);
    let decisions = s.apply_one(InputKind::Silence(silence)).await?;
    let matches_nothing = decisions.iter().any(
        |d| matches!(&d.kind, DecisionKind::SilenceMatchesNothing { silence } if *silence == id),
    );
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "silence": view,
            "matches_nothing": matches_nothing,
            "decisions": lines(&decisions),
        })),
    )
        .into_response())
}

async fn remove_silence(State(s): State<RuntimeApi>, Path(id): Path<String>) -> Answer {
    let decisions = s.apply_one(InputKind::Unsilence { id: id.clone() }).await?;
    Ok(Json(serde_json::json!({
        "silence": id,
        "decisions": lines(&decisions),
    }))
    .into_response())
}

/// `{"for": "2h"}`; without it, until ended by hand.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceRequest {
    #[serde(rename = "for")]
    duration: Option<String>,
}

async fn maintenance_on(
    State(s): State<RuntimeApi>,
    Path(host): Path<String>,
    bytes: axum::body::Bytes,
) -> Answer {
    let req: MaintenanceRequest = body(&bytes)?;
    let until = until("for", req.duration.as_deref())?;
    let decisions = s
        .apply_one(InputKind::Maintenance {
            host: host.clone(),
            until,
        })
        .await?;
    // The planner's flag has no expiry: a timed maintenance is ended there
    // by `DELETE` (the policies' hold ends by itself).
    let known = s.registry.set_maintenance(&host, true);
    Ok(Json(serde_json::json!({
        "host": host,
        "maintenance": true,
        "known_host": known,
        "until": until.map(rfc3339),
        "decisions": lines(&decisions),
    }))
    .into_response())
}

async fn maintenance_off(State(s): State<RuntimeApi>, Path(host): Path<String>) -> Answer {
    let decisions = s
        .apply_one(InputKind::MaintenanceEnd { host: host.clone() })
        .await?;
    s.registry.set_maintenance(&host, false);
    Ok(Json(serde_json::json!({
        "host": host,
        "maintenance": false,
        "decisions": lines(&decisions),
    }))
    .into_response())
}

async fn policies(State(s): State<RuntimeApi>) -> Answer {
    let v = s.ask(|reply| Request::Policies { reply }).await?;
    Ok(Json(v).into_response())
}

async fn alerts(State(s): State<RuntimeApi>, bytes: axum::body::Bytes) -> Answer {
    let hook: Webhook = serde_json::from_slice(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("not an Alertmanager webhook body: {e}"),
        )
    })?;
    if hook.version != WEBHOOK_VERSION {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "webhook version {:?}: this watchdog reads version {WEBHOOK_VERSION}",
                hook.version
            ),
        ));
    }
    let (kinds, skipped) = alertmanager::inputs(&hook);
    let accepted = kinds.len();
    let results = s.apply(kinds).await?;
    let refused: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    let decisions: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|d| lines(d))
        .collect();
    Ok(Json(serde_json::json!({
        "accepted": accepted - refused.len(),
        "skipped": skipped,
        "refused": refused,
        "decisions": decisions,
    }))
    .into_response())
}
