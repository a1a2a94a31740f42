//! The Jira channel (REST API v2, Jira Server/Data Center and Cloud): one
//! issue per incident, found again by a label (`hyperwatch-INCIDENT`).
//! The first page creates the issue; later notifications comment on it;
//! the recovery comments and transitions it (to "Done" by default).
//!
//! Every description and comment carries the idempotency key, and the issue
//! is searched before anything is written, so a retry after a lost answer
//! neither creates a second issue nor comments twice.

use std::path::PathBuf;

use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    BoxFuture, BuildError, Channel, Message, Receipt, SendError, Status,
    config::{DeliverySettings, TemplateSettings},
    http::{self, Credentials, HttpAuth},
    template::{DEFAULT_BODY, Part, Templates},
};

/// `[channels.NAME]` with `type = "jira"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    /// The Jira base URL ("https://jira.example.net").
    pub url: String,
    /// The project key issues are created in ("OPS").
    pub project: String,
    /// The issue type of new issues.
    #[serde(default = "default_issue_type")]
    pub issue_type: String,
    /// The transition that resolves an issue, by name.
    #[serde(default = "default_resolve_transition")]
    pub resolve_transition: String,
    /// Labels are this prefix plus the incident id.
    #[serde(default = "default_label_prefix")]
    pub label_prefix: String,
    /// The JQL search endpoint: "/rest/api/2/search" (Server, Data Center)
    /// or "/rest/api/2/search/jql" (Cloud).
    #[serde(default = "default_search_path")]
    pub search_path: String,
    /// Authentication: basic (Cloud: email and API token) or a bearer
    /// personal access token (Data Center).
    #[serde(default)]
    pub auth: HttpAuth,
    /// An extra CA certificate (PEM) to trust for this Jira.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Retries, rate limit, fallback, attempt timeout.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// Summary (`subject`) and description/comment text (`body`).
    #[serde(default)]
    pub templates: TemplateSettings,
}

fn default_issue_type() -> String {
    "Task".to_owned()
}

fn default_resolve_transition() -> String {
    "Done".to_owned()
}

fn default_label_prefix() -> String {
    "hyperwatch-".to_owned()
}

fn default_search_path() -> String {
    "/rest/api/2/search".to_owned()
}

/// The Jira channel.
pub struct Jira {
    base: Url,
    config: JiraConfig,
    credentials: Credentials,
    client: reqwest::Client,
    templates: Templates,
}

/// An issue found by its label.
struct Issue {
    key: String,
    done: bool,
}

impl Jira {
    /// Builds the channel from its configuration.
    pub fn build(
        name: &str,
        config: &JiraConfig,
        templates: &TemplateSettings,
    ) -> Result<Self, BuildError> {
        let base = Url::parse(&config.url)
            .map_err(|e| BuildError::invalid(name, format!("url {:?}: {e}", config.url)))?;
        Ok(Self {
            base,
            config: config.clone(),
            credentials: config.auth.credentials(name)?,
            client: http::client(
                name,
                config.delivery.attempt_timeout,
                config.ca_file.as_deref(),
            )?,
            templates: Templates::new(name, templates, DEFAULT_BODY)?,
        })
    }

    fn url(&self, path: &str) -> Result<Url, SendError> {
        self.base
            .join(path)
            .map_err(|e| SendError::Permanent(format!("Jira URL {path}: {e}")))
    }

    /// Sends a request and reads a JSON answer (empty for 204).
    async fn call(&self, what: &str, request: reqwest::RequestBuilder) -> Result<Value, SendError> {
        let response = self
            .credentials
            .apply(request)
            .send()
            .await
            .map_err(|e| http::request_error(what, e))?;
        let (_, body) = http::answer(what, response).await?;
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body).map_err(|e| {
            SendError::Transient(format!(
                "{what}: answer is not JSON: {e}: {}",
                http::excerpt(&body)
            ))
        })
    }

    fn label(&self, message: &Message) -> String {
        let id: String = message
            .notification
            .incident_id
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        format!("{}{id}", self.config.label_prefix)
    }

    async fn find(&self, label: &str) -> Result<Option<Issue>, SendError> {
        let jql = format!(
            "project = \"{}\" AND labels = \"{label}\" ORDER BY created DESC",
            self.config.project
        );
        let url = self.url(&self.config.search_path)?;
        let found = self
            .call(
                "Jira search",
                self.client.get(url).query(&[
                    ("jql", jql.as_str()),
                    ("fields", "status"),
                    ("maxResults", "1"),
                ]),
            )
            .await?;
        Ok(found["issues"]
            .as_array()
            .and_then(|a| a.first())
            .map(|issue| Issue {
                key: issue["key"].as_str().unwrap_or_default().to_owned(),
                done: issue["fields"]["status"]["statusCategory"]["key"] == "done",
            }))
    }

    /// Whether the issue already carries this message (a retry).
    async fn already_has(&self, issue: &str, key: &str) -> Result<bool, SendError> {
        let url = self.url(&format!("/rest/api/2/issue/{issue}"))?;
        let found = self
            .call(
                "Jira issue",
                self.client
                    .get(url)
                    .query(&[("fields", "description,comment")]),
            )
            .await?;
        let description = found["fields"]["description"].as_str().unwrap_or_default();
        let comments = found["fields"]["comment"]["comments"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(description.contains(key)
            || comments
                .iter()
                .any(|c| c["body"].as_str().is_some_and(|b| b.contains(key))))
    }

    async fn resolve(&self, issue: &str) -> Result<String, SendError> {
        let url = self.url(&format!("/rest/api/2/issue/{issue}/transitions"))?;
        let listed = self
            .call("Jira transitions", self.client.get(url.clone()))
            .await?;
        let transitions = listed["transitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let wanted = &self.config.resolve_transition;
        let Some(id) = transitions
            .iter()
            .find(|t| {
                t["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(wanted))
            })
            .and_then(|t| t["id"].as_str())
        else {
            let names: Vec<&str> = transitions
                .iter()
                .filter_map(|t| t["name"].as_str())
                .collect();
            return Err(SendError::Permanent(format!(
                "{issue} has no transition {wanted:?} (available: {}); set resolve_transition",
                names.join(", ")
            )));
        };
        self.call(
            "Jira transition",
            self.client
                .post(url)
                .json(&json!({ "transition": { "id": id } })),
        )
        .await?;
        Ok(format!("transitioned {issue} with {wanted:?}"))
    }

    async fn deliver(&self, message: &Message) -> Result<Receipt, SendError> {
        let render = |part| {
            let mut text = self
                .templates
                .render(part, message)
                .map_err(|e| SendError::Permanent(e.to_string()))?;
            // Deduplication looks for the key: keep it even when an
            // operator's template leaves it out.
            if matches!(part, Part::Body) && !text.contains(&message.key) {
                text.push_str(&format!("\n\nIdempotency key: {}", message.key));
            }
            Ok::<_, SendError>(text)
        };
        let label = self.label(message);
        let status = message.notification.status;
        let issue = self.find(&label).await?;
        let Some(issue) = issue else {
            if matches!(status, Status::Recovery | Status::Acknowledgement) {
                return Ok(Receipt::new(format!(
                    "no Jira issue labelled {label}: nothing to {}",
                    if status == Status::Recovery {
                        "resolve"
                    } else {
                        "acknowledge"
                    }
                )));
            }
            let url = self.url("/rest/api/2/issue")?;
            let body = json!({ "fields": {
                "project": { "key": self.config.project },
                "issuetype": { "name": self.config.issue_type },
                "summary": render(Part::Subject)?,
                "description": render(Part::Body)?,
                "labels": [label, "hyperwatch"],
            }});
            let created = self
                .call("Jira create", self.client.post(url).json(&body))
                .await?;
            return Ok(Receipt::new(format!(
                "created {}",
                created["key"].as_str().unwrap_or("an issue")
            )));
        };
        let mut done = Vec::new();
        if self.already_has(&issue.key, &message.key).await? {
            done.push(format!("{} already has {}", issue.key, message.key));
        } else {
            let url = self.url(&format!("/rest/api/2/issue/{}/comment", issue.key))?;
            self.call(
                "Jira comment",
                self.client
                    .post(url)
                    .json(&json!({ "body": render(Part::Body)? })),
            )
            .await?;
            done.push(format!("commented on {}", issue.key));
        }
        if status == Status::Recovery && !issue.done {
            done.push(self.resolve(&issue.key).await?);
        }
        Ok(Receipt::new(done.join("; ")))
    }
}

impl Channel for Jira {
    fn kind(&self) -> &'static str {
        "jira"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.deliver(message))
    }
}
