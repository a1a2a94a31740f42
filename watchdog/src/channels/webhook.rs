//! The generic webhook: a JSON POST for ticket systems and anything else that
//! speaks HTTP. The body is documented and stable:
//!
//! ```json
//! {
//!   "idempotency_key": "inc-42:L1:problem",
//!   "incident_id": "inc-42", "level": 1, "repeat": 0,
//!   "status": "problem", "severity": "critical",
//!   "target": "host hv-12", "summary": "heartbeats stopped 45 s ago",
//!   "policy": "hypervisor-heartbeat", "labels": {"rack": "r7"},
//!   "fired_at": "2025-01-01T12:00:00Z", "decided_at": "2025-01-01T12:00:30.000Z",
//!   "test": false, "note": null,
//!   "more_incidents": 0, "others": [],
//!   "subject": "[PROBLEM] critical host hv-12: heartbeats stopped 45 s ago",
//!   "body": "..."
//! }
//! ```
//!
//! The key is also sent as the `Idempotency-Key` header, so receivers that
//! deduplicate can do it without parsing the body. Any 2xx is accepted.

use std::{collections::BTreeMap, path::PathBuf};

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::{
    BoxFuture, BuildError, Channel, Message, Receipt, SendError,
    config::{DeliverySettings, TemplateSettings},
    http::{self, Credentials, HttpAuth, header_map},
    template::{DEFAULT_BODY, Part, Templates},
};

/// The header that carries the idempotency key (the IETF httpapi draft's name).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// `[channels.NAME]` with `type = "webhook"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST the JSON body.
    pub url: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Authentication (basic or bearer).
    #[serde(default)]
    pub auth: HttpAuth,
    /// An extra CA certificate (PEM) to trust for this endpoint.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Retries, rate limit, fallback, attempt timeout.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// The `subject` and `body` fields of the JSON are rendered from these.
    #[serde(default)]
    pub templates: TemplateSettings,
}

/// The webhook channel.
pub struct Webhook {
    url: reqwest::Url,
    headers: HeaderMap,
    credentials: Credentials,
    client: reqwest::Client,
    templates: Templates,
}

impl Webhook {
    /// Builds the channel from its configuration.
    pub fn build(
        name: &str,
        config: &WebhookConfig,
        templates: &TemplateSettings,
    ) -> Result<Self, BuildError> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| BuildError::invalid(name, format!("url {:?}: {e}", config.url)))?;
        Ok(Self {
            url,
            headers: header_map(name, &config.headers)?,
            credentials: config.auth.credentials(name)?,
            client: http::client(
                name,
                config.delivery.attempt_timeout,
                config.ca_file.as_deref(),
            )?,
            templates: Templates::new(name, templates, DEFAULT_BODY)?,
        })
    }

    async fn post(&self, message: &Message) -> Result<Receipt, SendError> {
        let render = |part| {
            self.templates
                .render(part, message)
                .map_err(|e| SendError::Permanent(e.to_string()))
        };
        let mut body = message.to_json();
        body["subject"] = render(Part::Subject)?.into();
        body["body"] = render(Part::Body)?.into();
        let request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(IDEMPOTENCY_HEADER, &message.key)
            .json(&body);
        let response = self
            .credentials
            .apply(request)
            .send()
            .await
            .map_err(|e| http::request_error(&format!("POST {}", self.url), e))?;
        let (status, text) = http::answer(&format!("POST {}", self.url), response).await?;
        Ok(http::receipt(status, &text))
    }
}

impl Channel for Webhook {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.post(message))
    }
}
