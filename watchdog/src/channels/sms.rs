//! The SMS channel, through an HTTP gateway: the Twilio-style REST API (a
//! form POST of To, From and Body to
//! `{base_url}/2010-04-01/Accounts/{account_sid}/Messages.json` with basic
//! auth; any compatible gateway works through `base_url`), or a templated
//! HTTP request for other gateways. Texts are cut to `max_segments`
//! (see [`super::segments`]). Each recipient is its own delivery, so one
//! failing number never resends to the others.

use std::{collections::BTreeMap, path::PathBuf};

use minijinja::{Environment, value::Serde};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::{
    BoxFuture, BuildError, Channel, Message, Receipt, SendError,
    config::{DeliverySettings, Secret, TemplateSettings},
    http::{self, Credentials, HttpAuth, header_map},
    segments,
    template::{DEFAULT_SMS, Part, Templates},
};

/// Twilio's API host, the default `base_url`.
const TWILIO_BASE_URL: &str = "https://api.twilio.com";
/// Default bound on segments per message: two segments carry a full
/// default text; more costs money without helping someone paged at night.
const DEFAULT_MAX_SEGMENTS: usize = 2;

/// `[channels.NAME]` with `type = "sms"`; exactly one of `twilio` or `http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// Phone numbers to text (E.164, "+15550100").
    pub to: Vec<String>,
    /// Longest text, in SMS segments; longer texts are cut with "...".
    #[serde(default = "default_max_segments")]
    pub max_segments: usize,
    /// A Twilio-style gateway.
    #[serde(default)]
    pub twilio: Option<TwilioConfig>,
    /// Any other gateway, through a templated HTTP request.
    #[serde(default)]
    pub http: Option<HttpGatewayConfig>,
    /// An extra CA certificate (PEM) to trust for the gateway.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Retries, rate limit (per recipient), fallback.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// The text is the `body` template (default: one short line).
    #[serde(default)]
    pub templates: TemplateSettings,
}

fn default_max_segments() -> usize {
    DEFAULT_MAX_SEGMENTS
}

/// `[channels.NAME.twilio]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// The account SID (the basic-auth user and part of the URL).
    pub account_sid: String,
    /// The auth token (the basic-auth password).
    pub auth_token: Secret,
    /// The sending number.
    pub from: String,
    /// The API's base URL; change it for a compatible gateway or a test server.
    #[serde(default = "default_twilio_base_url")]
    pub base_url: String,
}

fn default_twilio_base_url() -> String {
    TWILIO_BASE_URL.to_owned()
}

/// `[channels.NAME.http]`: a request described by templates that see
/// `recipient`, `text` (already cut to length) and `key`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpGatewayConfig {
    /// URL template, for example "https://gw.example/send?to={{ recipient|urlencode }}".
    pub url: String,
    /// HTTP method.
    #[serde(default = "default_method")]
    pub method: String,
    /// Header templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body template, for example `{"to": {{ recipient|tojson }}, "text": {{ text|tojson }}}`.
    #[serde(default)]
    pub body: Option<String>,
    /// The body's Content-Type.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Authentication (basic or bearer).
    #[serde(default)]
    pub auth: HttpAuth,
}

fn default_method() -> String {
    "POST".to_owned()
}

fn default_content_type() -> String {
    "application/json".to_owned()
}

enum Gateway {
    Twilio {
        url: String,
        from: String,
        credentials: Credentials,
    },
    Http {
        method: Method,
        env: Box<Environment<'static>>,
        headers: Vec<String>,
        content_type: String,
        credentials: Credentials,
    },
}

/// The SMS channel.
pub struct Sms {
    to: Vec<String>,
    max_segments: usize,
    gateway: Gateway,
    client: reqwest::Client,
    templates: Templates,
}

/// What gateway templates see.
#[derive(Serialize)]
struct GatewayContext<'a> {
    recipient: &'a str,
    text: &'a str,
    key: &'a str,
}

impl Sms {
    /// Builds the channel from its configuration.
    pub fn build(
        name: &str,
        config: &SmsConfig,
        templates: &TemplateSettings,
    ) -> Result<Self, BuildError> {
        if config.to.is_empty() {
            return Err(BuildError::invalid(name, "`to` lists no phone number"));
        }
        let gateway = match (&config.twilio, &config.http) {
            (Some(t), None) => Gateway::Twilio {
                url: format!(
                    "{}/2010-04-01/Accounts/{}/Messages.json",
                    t.base_url.trim_end_matches('/'),
                    t.account_sid
                ),
                from: t.from.clone(),
                credentials: Credentials::Basic(
                    t.account_sid.clone(),
                    t.auth_token
                        .read()
                        .map_err(|e| BuildError::invalid(name, e))?,
                ),
            },
            (None, Some(h)) => http_gateway(name, h)?,
            _ => {
                return Err(BuildError::invalid(
                    name,
                    "give exactly one gateway: a [twilio] or an [http] table",
                ));
            }
        };
        Ok(Self {
            to: config.to.clone(),
            max_segments: config.max_segments,
            gateway,
            client: http::client(
                name,
                config.delivery.attempt_timeout,
                config.ca_file.as_deref(),
            )?,
            templates: Templates::new(name, templates, DEFAULT_SMS)?,
        })
    }

    async fn text(&self, message: &Message) -> Result<Receipt, SendError> {
        let rendered = self
            .templates
            .render(Part::Body, message)
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        let text = segments::fit(rendered.trim(), self.max_segments);
        let recipient = message.recipient.as_str();
        let request = match &self.gateway {
            Gateway::Twilio {
                url,
                from,
                credentials,
            } => credentials.apply(
                self.client
                    .post(url)
                    .header("Idempotency-Key", &message.key)
                    .form(&[
                        ("To", recipient),
                        ("From", from.as_str()),
                        ("Body", text.as_str()),
                    ]),
            ),
            Gateway::Http {
                method,
                env,
                headers,
                content_type,
                credentials,
            } => {
                let ctx = GatewayContext {
                    recipient,
                    text: &text,
                    key: &message.key,
                };
                let render = |name: &str| {
                    env.get_template(name)
                        .and_then(|t| t.render(Serde(&ctx)))
                        .map_err(|e| {
                            SendError::Permanent(format!("gateway template {name}: {e:#}"))
                        })
                };
                let mut rendered = BTreeMap::new();
                for header in headers {
                    rendered.insert(header.clone(), render(&format!("header:{header}"))?);
                }
                let rendered = header_map("sms gateway", &rendered)
                    .map_err(|e| SendError::Permanent(e.to_string()))?;
                // The key goes along; an operator's header of the same
                // name replaces it (`headers` replaces, `header` appends).
                let mut request = self
                    .client
                    .request(method.clone(), render("url")?)
                    .header("Idempotency-Key", &message.key)
                    .headers(rendered);
                if env.get_template("body").is_ok() {
                    request = request
                        .header(reqwest::header::CONTENT_TYPE, content_type)
                        .body(render("body")?);
                }
                credentials.apply(request)
            }
        };
        let what = format!("SMS to {recipient}");
        let response = request
            .send()
            .await
            .map_err(|e| http::request_error(&what, e))?;
        let (status, body) = http::answer(&what, response).await?;
        let mut receipt = http::receipt(status, &body);
        receipt.detail = format!("{} segment(s): {text}", segments::count(&text));
        Ok(receipt)
    }
}

fn http_gateway(name: &str, h: &HttpGatewayConfig) -> Result<Gateway, BuildError> {
    let method = Method::from_bytes(h.method.to_ascii_uppercase().as_bytes())
        .map_err(|e| BuildError::invalid(name, format!("http.method {:?}: {e}", h.method)))?;
    let mut env = Environment::new();
    let mut add = |template: String, source: &str| {
        env.add_template_owned(template.clone(), source.to_owned())
            .map_err(|e| {
                BuildError::invalid(name, format!("http gateway template {template}: {e:#}"))
            })
    };
    add("url".to_owned(), &h.url)?;
    for (k, v) in &h.headers {
        add(format!("header:{k}"), v)?;
    }
    if let Some(body) = &h.body {
        add("body".to_owned(), body)?;
    }
    Ok(Gateway::Http {
        method,
        env: Box::new(env),
        headers: h.headers.keys().cloned().collect(),
        content_type: h.content_type.clone(),
        credentials: h.auth.credentials(name)?,
    })
}

impl Channel for Sms {
    fn kind(&self) -> &'static str {
        "sms"
    }

    fn recipients(&self) -> Vec<String> {
        self.to.clone()
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.text(message))
    }
}
