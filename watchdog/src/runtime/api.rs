//! The operators' HTTP surface of the policy runtime: incidents with their
//! audit timelines ("why did or didn't it page"), acknowledgements,
//! silences, host maintenance, the policies in force, and Alertmanager's
//! webhook. Changes answer once they are committed to the store.

use std::time::Duration;

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
use crate::store::Store;

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
}

/// The routes.
pub fn router(state: RuntimeApi) -> Router {
    Router::new()
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/incidents/{id}", get(incident))
        .route("/api/v1/incidents/{id}/ack", post(ack).delete(unack))
        .route("/api/v1/silences", get(silences).post(add_silence))
        .route("/api/v1/silences/{id}", axum::routing::delete(remove_silence))
        .route(
            "/api/v1/hosts/{id}/maintenance",
            post(maintenance_on).delete(maintenance_off),
        )
        .route("/api/v1/policies", get(policies))
        .route("/api/v1/alertmanager", post(alerts))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

impl RuntimeApi {
    /// Asks the engine's task; `None` when it is gone or too slow.
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, Response> {
        let (tx, rx) = oneshot::channel();
        let unavailable = || error(StatusCode::SERVICE_UNAVAILABLE, "the policy engine is not running");
        self.requests.send(make(tx)).await.map_err(|_| unavailable())?;
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
    ) -> Result<Vec<Result<Vec<Decision>, EngineError>>, Response> {
        self.ask(|reply| Request::Inputs { kinds, reply })
            .await?
            .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e))
    }

    /// Applies one input; a refusal is the response.
    async fn apply_one(&self, kind: InputKind) -> Result<Vec<Decision>, Response> {
        let mut results = self.apply(vec![kind]).await?;
        results.pop().expect("one result per input").map_err(refusal)
    }
}

fn refusal(e: EngineError) -> Response {
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
fn until(field: &str, text: Option<&str>) -> Result<Option<Timestamp>, Response> {
    text.map(|t| {
        Span::parse(t)
            .map(|d| now().plus(d))
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("`{field}`: {e}")))
    })
    .transpose()
}

fn body<T: for<'de> Deserialize<'de> + Default>(bytes: &[u8]) -> Result<T, Response> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("request body: {e}")))
}

fn incident_id(text: &str) -> Result<IncidentId, Response> {
    text.parse()
        .map_err(|e: hyperwatch_policies::input::IdError| error(StatusCode::BAD_REQUEST, e.to_string()))
}

/// `?status=open|resolved|all&limit=N`.
#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

async fn incidents(State(s): State<RuntimeApi>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let status = q.status.as_deref().unwrap_or("open");
    let (open, resolved) = match status {
        "open" => (true, false),
        "resolved" => (false, true),
        "all" => (true, true),
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("status {other:?}: use open, resolved or all"),
            );
        }
    };
    let mut out: Vec<IncidentView> = Vec::new();
    if open {
        match s.ask(|reply| Request::Incidents { reply }).await {
            Ok(mut v) => {
                v.reverse();
                out.extend(v);
            }
            Err(r) => return r,
        }
    }
    if resolved {
        match s.store.incidents(true, limit).await {
            Ok(rows) => out.extend(rows.iter().map(IncidentView::stored)),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
    out.truncate(limit);
    Json(out).into_response()
}

/// One incident with its timeline and its notifications' deliveries.
#[derive(Serialize)]
struct IncidentDetail {
    #[serde(flatten)]
    incident: IncidentView,
    timeline: Vec<TimelineEntry>,
    notifications: Vec<DeliveryView>,
}

async fn incident(State(s): State<RuntimeApi>, Path(id): Path<String>) -> Response {
    let id = match incident_id(&id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let view = match s.ask(|reply| Request::Incident { id, reply }).await {
        Ok(Some(v)) => v,
        Ok(None) => match s.store.incident(&id.to_string()).await {
            Ok(Some(row)) => IncidentView::stored(&row),
            Ok(None) => return error(StatusCode::NOT_FOUND, format!("there is no incident {id}")),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Err(r) => return r,
    };
    let key = id.to_string();
    let (timeline, deliveries) = match (
        s.store.audit(Some(&key), TIMELINE_LIMIT).await,
        s.store.deliveries(&key).await,
    ) {
        (Ok(t), Ok(d)) => (t, d),
        (Err(e), _) | (_, Err(e)) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
    };
    Json(IncidentDetail {
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
    .into_response()
}

/// `{"for": "1h", "by": "alice"}`; both optional (until resolved, "api").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckRequest {
    #[serde(rename = "for")]
    duration: Option<String>,
    by: Option<String>,
}

async fn ack(State(s): State<RuntimeApi>, Path(id): Path<String>, bytes: axum::body::Bytes) -> Response {
    let result = async {
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
        Ok::<_, Response>(Json(serde_json::json!({
            "incident": incident.to_string(),
            "acked_by": by,
            "until": until.map(rfc3339),
            "decisions": lines(&decisions),
        })))
    };
    result.await.map_or_else(|r| r, IntoResponse::into_response)
}

async fn unack(State(s): State<RuntimeApi>, Path(id): Path<String>) -> Response {
    let result = async {
        let incident = incident_id(&id)?;
        let decisions = s.apply_one(InputKind::Unack { incident }).await?;
        Ok::<_, Response>(Json(serde_json::json!({
            "incident": incident.to_string(),
            "decisions": lines(&decisions),
        })))
    };
    result.await.map_or_else(|r| r, IntoResponse::into_response)
}

async fn silences(State(s): State<RuntimeApi>) -> Response {
    match s.ask(|reply| Request::Silences { reply }).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
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

async fn add_silence(State(s): State<RuntimeApi>, bytes: axum::body::Bytes) -> Response {
    let result = async {
        let req: SilenceRequest = body(&bytes)?;
        let matchers = req
            .matchers
            .iter()
            .map(|m| m.parse::<Matcher>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
        let until = match (req.duration.as_deref(), req.until.as_deref()) {
            (Some(d), None) => until("for", Some(d))?.expect("given"),
            (None, Some(u)) => {
                let t = humantime::parse_rfc3339_weak(u).map_err(|e| {
                    error(StatusCode::BAD_REQUEST, format!("`until` {u:?}: {e}"))
                })?;
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
        let matches_nothing = decisions.iter().any(|d| {
            matches!(&d.kind, DecisionKind::SilenceMatchesNothing { silence } if *silence == id)
        });
        Ok::<_, Response>(
            (
                StatusCode::CREATED,
                Json(serde_json::json!({
                    "silence": view,
                    "matches_nothing": matches_nothing,
                    "decisions": lines(&decisions),
                })),
            )
                .into_response(),
        )
    };
    result.await.unwrap_or_else(|r| r)
}

async fn remove_silence(State(s): State<RuntimeApi>, Path(id): Path<String>) -> Response {
    match s.apply_one(InputKind::Unsilence { id: id.clone() }).await {
        Ok(decisions) => Json(serde_json::json!({
            "silence": id,
            "decisions": lines(&decisions),
        }))
        .into_response(),
        Err(r) => r,
    }
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
) -> Response {
    let result = async {
        let req: MaintenanceRequest = body(&bytes)?;
        let until = until("for", req.duration.as_deref())?;
        let decisions = s
            .apply_one(InputKind::Maintenance {
                host: host.clone(),
                until,
            })
            .await?;
        Ok::<_, Response>(Json(serde_json::json!({
            "host": host,
            "maintenance": true,
            "until": until.map(rfc3339),
            "decisions": lines(&decisions),
        })))
    };
    result.await.map_or_else(|r| r, IntoResponse::into_response)
}

async fn maintenance_off(State(s): State<RuntimeApi>, Path(host): Path<String>) -> Response {
    match s
        .apply_one(InputKind::MaintenanceEnd { host: host.clone() })
        .await
    {
        Ok(decisions) => Json(serde_json::json!({
            "host": host,
            "maintenance": false,
            "decisions": lines(&decisions),
        }))
        .into_response(),
        Err(r) => r,
    }
}

async fn policies(State(s): State<RuntimeApi>) -> Response {
    match s.ask(|reply| Request::Policies { reply }).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn alerts(State(s): State<RuntimeApi>, bytes: axum::body::Bytes) -> Response {
    let hook: Webhook = match serde_json::from_slice(&bytes) {
        Ok(h) => h,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not an Alertmanager webhook body: {e}"),
            );
        }
    };
    if hook.version != WEBHOOK_VERSION {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "webhook version {:?}: this watchdog reads version {WEBHOOK_VERSION}",
                hook.version
            ),
        );
    }
    let (kinds, skipped) = alertmanager::inputs(&hook);
    let accepted = kinds.len();
    let results = match s.apply(kinds).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let refused: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    let decisions: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|d| lines(d))
        .collect();
    Json(serde_json::json!({
        "accepted": accepted - refused.len(),
        "skipped": skipped,
        "refused": refused,
        "decisions": decisions,
    }))
    .into_response()
}
