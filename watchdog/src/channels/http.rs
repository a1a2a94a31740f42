//! What the HTTP channels (webhook, SMS gateways, Jira) share: the client
//! (rustls on ring, the system's roots plus an optional extra CA) and the
//! reading of an HTTP answer as delivered, retry, slow down or give up.

use std::{collections::BTreeMap, path::Path, time::Duration};

use reqwest::{
    RequestBuilder, Response, StatusCode,
    header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER},
};
use serde::Deserialize;

use super::{BuildError, Receipt, SendError, config::Secret};

/// How much of a response body goes into receipts and errors.
const ANSWER_EXCERPT: usize = 300;

/// An HTTP client with a per-request timeout and an optional extra CA (PEM).
pub fn client(
    channel: &str,
    timeout: Duration,
    ca_file: Option<&Path>,
) -> Result<reqwest::Client, BuildError> {
    // reqwest is built without a default crypto provider; ring is the one
    // the whole watchdog uses (lettre too). A second install is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("hyperwatch/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            BuildError::invalid(channel, format!("reading ca_file {}: {e}", path.display()))
        })?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
            BuildError::invalid(
                channel,
                format!("ca_file {} is not a PEM certificate: {e}", path.display()),
            )
        })?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build()
        .map_err(|e| BuildError::invalid(channel, format!("building the HTTP client: {e}")))
}

/// How an HTTP channel authenticates: basic (`username` and `password`) or
/// a bearer token; none when all are absent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAuth {
    /// User name for HTTP basic authentication.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for HTTP basic authentication.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Token sent as `Authorization: Bearer TOKEN`.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
}

/// [`HttpAuth`] with its secrets read.
#[derive(Clone, Debug, Default)]
pub enum Credentials {
    /// No authentication.
    #[default]
    None,
    /// HTTP basic.
    Basic(String, String),
    /// A bearer token.
    Bearer(String),
}

impl HttpAuth {
    /// Reads the secrets; errors name the channel.
    pub fn credentials(&self, channel: &str) -> Result<Credentials, BuildError> {
        let read = |s: &Secret| s.read().map_err(|e| BuildError::invalid(channel, e));
        match (&self.username, &self.password, &self.bearer_token) {
            (None, None, None) => Ok(Credentials::None),
            (Some(user), Some(password), None) => {
                Ok(Credentials::Basic(user.clone(), read(password)?))
            }
            (None, None, Some(token)) => Ok(Credentials::Bearer(read(token)?)),
            _ => Err(BuildError::invalid(
                channel,
                "auth: give either username and password, or bearer_token",
            )),
        }
    }
}

impl Credentials {
    /// Adds the Authorization header.
    pub fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Credentials::None => request,
            Credentials::Basic(user, password) => request.basic_auth(user, Some(password)),
            Credentials::Bearer(token) => request.bearer_auth(token),
        }
    }
}

/// A request that did not get an answer: always worth retrying.
pub fn request_error(what: &str, e: reqwest::Error) -> SendError {
    SendError::Transient(format!("{what}: {}", error_chain(&e)))
}

/// Reads an answer: 2xx is accepted, 429 asks us to slow down, 408 and 5xx
/// are retried, any other status is permanent (our request is wrong).
pub async fn answer(what: &str, response: Response) -> Result<(StatusCode, String), SendError> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.text().await.unwrap_or_default();
    let detail = format!("{what}: HTTP {status}: {}", excerpt(&body));
    if status.is_success() {
        Ok((status, body))
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        Err(SendError::RateLimited {
            detail,
            retry_after,
        })
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        Err(SendError::Transient(detail))
    } else {
        Err(SendError::Permanent(detail))
    }
}

/// A receipt for an accepted HTTP request.
pub fn receipt(status: StatusCode, body: &str) -> Receipt {
    Receipt::new(format!("HTTP {status}: {}", excerpt(body)))
}

/// The start of a body, on one line.
pub fn excerpt(body: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(ANSWER_EXCERPT) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

/// An error with its causes ("error sending request: connection refused").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Configured headers, checked when the channel is built.
pub fn header_map(
    channel: &str,
    headers: &BTreeMap<String, String>,
) -> Result<HeaderMap, BuildError> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| BuildError::invalid(channel, format!("header name {k:?}: {e}")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|e| BuildError::invalid(channel, format!("header {k:?} value: {e}")))?;
        map.insert(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_one_bounded_line() {
        assert_eq!(excerpt("a\n  b\tc"), "a b c");
        let long = "x".repeat(1000);
        assert_eq!(excerpt(&long).len(), ANSWER_EXCERPT + 3);
    }
}
