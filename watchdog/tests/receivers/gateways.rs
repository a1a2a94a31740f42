//! HTTP receivers for the SMS, webhook and Jira tests: real HTTP servers
//! (axum on loopback) that check authentication and fields the way the
//! real services do, record what they accepted, and answer 429 or 500 on
//! demand from a script of statuses.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
}

/// State shared by the handlers and the test.
#[derive(Default)]
pub struct Log {
    /// Every request, in order.
    pub requests: Vec<Seen>,
    /// Statuses to answer with before accepting (429, 500, ...).
    pub script: VecDeque<u16>,
    /// How long to take before answering (a slow receiver).
    pub delay: Duration,
}

pub type Shared = Arc<Mutex<Log>>;

/// Serves `router` on a free loopback port.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn authorized(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(expected)
}

/// Pops the next scripted failure, if any.
fn scripted(log: &Shared) -> Option<Response> {
    let status = log.lock().unwrap().script.pop_front()?;
    let mut response = (StatusCode::from_u16(status).unwrap(), "scripted failure").into_response();
    if status == 429 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, "1".parse().unwrap());
    }
    Some(response)
}

fn record(log: &Shared, headers: &HeaderMap, body: &[u8], status: u16) {
    log.lock().unwrap().requests.push(Seen {
        at: Instant::now(),
        headers: headers.clone(),
        body: String::from_utf8_lossy(body).into_owned(),
        status,
    });
}

/// A Twilio-style SMS API for account `sid` with auth token `token`.
pub async fn twilio(sid: &str, token: &str) -> (SocketAddr, Shared) {
    let log = Shared::default();
    let auth = basic(sid, token);
    let path = format!("/2010-04-01/Accounts/{sid}/Messages.json");
    let router = Router::new()
        .route(
            &path,
            post(
                move |State(log): State<Shared>, headers: HeaderMap, body: Bytes| async move {
                    let response = twilio_answer(&log, &auth, &headers, &body);
                    record(&log, &headers, &body, response.status().as_u16());
                    response
                },
            ),
        )
        .with_state(log.clone());
    (serve(router).await, log)
}

fn twilio_answer(log: &Shared, auth: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    if !authorized(headers, auth) {
        return (
            StatusCode::UNAUTHORIZED,
            json!({"code": 20003, "message": "Authenticate"}).to_string(),
        )
            .into_response();
    }
    let form: HashMap<String, String> = serde_urlencoded_pairs(body);
    for field in ["To", "From", "Body"] {
        if form.get(field).is_none_or(|v| v.is_empty()) {
            return (
                StatusCode::BAD_REQUEST,
                json!({"code": 21604, "message": format!("A '{field}' parameter is required.")})
                    .to_string(),
            )
                .into_response();
        }
    }
    if let Some(r) = scripted(log) {
        return r;
    }
    let n = log.lock().unwrap().requests.len();
    (
        StatusCode::CREATED,
        json!({"sid": format!("SM{n:032}"), "status": "queued"}).to_string(),
    )
        .into_response()
}

/// Parses an application/x-www-form-urlencoded body.
pub fn serde_urlencoded_pairs(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// A generic JSON receiver (webhook or SMS gateway) at `path` that requires
/// `Authorization: Bearer TOKEN`.
pub async fn json_receiver(path: &'static str, token: &str) -> (SocketAddr, Shared) {
    let log = Shared::default();
    let auth = format!("Bearer {token}");
    let router = Router::new()
        .route(
            path,
            post(
                move |State(log): State<Shared>, headers: HeaderMap, body: Bytes| async move {
                    let delay = log.lock().unwrap().delay;
                    tokio::time::sleep(delay).await;
                    let response = if !authorized(&headers, &auth) {
                        (StatusCode::UNAUTHORIZED, "bad token").into_response()
                    } else if serde_json::from_slice::<Value>(&body).is_err() {
                        (StatusCode::BAD_REQUEST, "body is not JSON").into_response()
                    } else if let Some(r) = scripted(&log) {
                        r
                    } else {
                        (StatusCode::OK, "{\"ok\":true}").into_response()
                    };
                    record(&log, &headers, &body, response.status().as_u16());
                    response
                },
            ),
        )
        .with_state(log.clone());
    (serve(router).await, log)
}

/// A Jira issue in the mini Jira.
#[derive(Clone, Debug)]
pub struct Issue {
    pub key: String,
    pub labels: Vec<String>,
    pub summary: String,
    pub description: String,
    pub comments: Vec<String>,
    pub status: String,
}

/// The mini Jira's state.
#[derive(Default)]
pub struct Jira {
    pub issues: Vec<Issue>,
    /// "create" or "comment": do it, but answer 502 as if the answer was lost.
    pub lose_answer_of: VecDeque<&'static str>,
    pub requests: usize,
}

pub type SharedJira = Arc<Mutex<Jira>>;

/// A small Jira REST v2 (search, create, get, comment, transitions) for
/// project OPS, with basic auth `user:token`.
pub async fn jira(user: &str, token: &str) -> (SocketAddr, SharedJira) {
    let state = SharedJira::default();
    let auth = Arc::new(basic(user, token));
    let guard = move |headers: &HeaderMap| authorized(headers, &auth);
    let g1 = guard.clone();
    let g2 = guard.clone();
    let g3 = guard.clone();
    let g4 = guard.clone();
    let g5 = guard.clone();
    let router = Router::new()
        .route(
            "/rest/api/2/search",
            get(move |State(j): State<SharedJira>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                if !g1(&headers) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                let jql = q.get("jql").cloned().unwrap_or_default();
                let label = jql.split("labels = \"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
                let mut j = j.lock().unwrap();
                j.requests += 1;
                let issues: Vec<Value> = j
                    .issues
                    .iter()
                    .rev()
                    .filter(|i| i.labels.iter().any(|l| l == label) && jql.contains("project = \"OPS\""))
                    .map(|i| json!({"key": i.key, "fields": {"status": {"name": i.status,
                        "statusCategory": {"key": if i.status == "Done" { "done" } else { "new" }}}}}))
                    .collect();
                axum::Json(json!({"issues": issues})).into_response()
            }),
        )
        .route(
            "/rest/api/2/issue",
            post(move |State(j): State<SharedJira>, headers: HeaderMap, axum::Json(body): axum::Json<Value>| async move {
                if !g2(&headers) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                let f = &body["fields"];
                if f["project"]["key"] != "OPS" || f["summary"].as_str().is_none_or(str::is_empty) || f["issuetype"]["name"].is_null() {
                    return (StatusCode::BAD_REQUEST, json!({"errors": {"fields": "project, summary, issuetype required"}}).to_string()).into_response();
                }
                let mut j = j.lock().unwrap();
                j.requests += 1;
                let key = format!("OPS-{}", j.issues.len() + 1);
                j.issues.push(Issue {
                    key: key.clone(),
                    labels: f["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_owned()).collect(),
                    summary: f["summary"].as_str().unwrap().to_owned(),
                    description: f["description"].as_str().unwrap_or_default().to_owned(),
                    comments: Vec::new(),
                    status: "To Do".to_owned(),
                });
                if j.lose_answer_of.front() == Some(&"create") {
                    j.lose_answer_of.pop_front();
                    return StatusCode::BAD_GATEWAY.into_response();
                }
                (StatusCode::CREATED, axum::Json(json!({"key": key}))).into_response()
            }),
        )
        .route(
            "/rest/api/2/issue/{key}",
            get(move |State(j): State<SharedJira>, headers: HeaderMap, Path(key): Path<String>| async move {
                if !g3(&headers) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                let mut j = j.lock().unwrap();
                j.requests += 1;
                let Some(i) = j.issues.iter().find(|i| i.key == key) else {
                    return StatusCode::NOT_FOUND.into_response();
                };
                let comments: Vec<Value> = i.comments.iter().map(|c| json!({"body": c})).collect();
                axum::Json(json!({"key": key, "fields": {"description": i.description,
                    "comment": {"comments": comments}}})).into_response()
            }),
        )
        .route(
            "/rest/api/2/issue/{key}/comment",
            post(move |State(j): State<SharedJira>, headers: HeaderMap, Path(key): Path<String>, axum::Json(body): axum::Json<Value>| async move {
                if !g4(&headers) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                let mut j = j.lock().unwrap();
                j.requests += 1;
                let lose = j.lose_answer_of.front() == Some(&"comment");
                let Some(i) = j.issues.iter_mut().find(|i| i.key == key) else {
                    return StatusCode::NOT_FOUND.into_response();
                };
                i.comments.push(body["body"].as_str().unwrap_or_default().to_owned());
                if lose {
                    j.lose_answer_of.pop_front();
                    return StatusCode::BAD_GATEWAY.into_response();
                }
                (StatusCode::CREATED, axum::Json(json!({"id": "1"}))).into_response()
            }),
        )
        .route(
            "/rest/api/2/issue/{key}/transitions",
            get(move |headers: HeaderMap| async move {
                if !g5(&headers) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                axum::Json(json!({"transitions": [{"id": "11", "name": "In Progress"}, {"id": "31", "name": "Done"}]}))
                    .into_response()
            })
            .post(move |State(j): State<SharedJira>, headers: HeaderMap, Path(key): Path<String>, axum::Json(body): axum::Json<Value>| async move {
                if !guard(&headers) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                let mut j = j.lock().unwrap();
                j.requests += 1;
                let Some(i) = j.issues.iter_mut().find(|i| i.key == key) else {
                    return StatusCode::NOT_FOUND.into_response();
                };
                match body["transition"]["id"].as_str() {
                    Some("31") => i.status = "Done".to_owned(),
                    Some("11") => i.status = "In Progress".to_owned(),
                    _ => return StatusCode::BAD_REQUEST.into_response(),
                }
                StatusCode::NO_CONTENT.into_response()
            }),
        )
        .with_state(state.clone());
    (serve(router).await, state)
}
