//! The email channel: SMTP (lettre over the sessions of [`super::smtp`]),
//! to a list of relays tried in turn. Each relay speaks STARTTLS (the default), implicit TLS, or plain
//! SMTP, which is accepted only for a relay on the loopback interface (a
//! local MTA). Messages have a text and an HTML part; the Message-ID is
//! derived from the idempotency key so that mail systems that deduplicate
//! by Message-ID drop a resend, and the key is also in a header.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use lettre::{
    Message as Mail,
    message::{
        MultiPart,
        header::{HeaderName, HeaderValue},
    },
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, TlsParameters},
    },
};
use rustls::pki_types::ServerName;
use serde::Deserialize;

use super::{
    BoxFuture, BuildError, Channel, Message, Receipt, SendError,
    config::{DeliverySettings, Secret, TemplateSettings},
    smtp::{self, Protection},
    template::{DEFAULT_BODY, Part, Templates},
};

/// The header carrying the idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "X-Hyperwatch-Idempotency-Key";
/// The header carrying the incident id, for mail filters.
pub const INCIDENT_HEADER: &str = "X-Hyperwatch-Incident";
/// Submission ports (RFC 8314): STARTTLS on 587, implicit TLS on 465; 25
/// for a plain local relay.
const STARTTLS_PORT: u16 = 587;
const IMPLICIT_TLS_PORT: u16 = 465;
const PLAIN_PORT: u16 = 25;

/// `[channels.NAME]` with `type = "email"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The sender ("hyperwatch <hyperwatch@example.net>").
    pub from: String,
    /// The recipients; one message goes to all of them.
    pub to: Vec<String>,
    /// The relays, tried in order until one accepts the message.
    pub relays: Vec<RelayConfig>,
    /// Retries, rate limit, fallback, attempt timeout.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// Subject, text body and HTML body.
    #[serde(default)]
    pub templates: TemplateSettings,
}

/// One relay.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Host name or address (also the name its certificate must carry).
    pub host: String,
    /// Port; default 587 for STARTTLS, 465 for implicit TLS, 25 for plain.
    #[serde(default)]
    pub port: Option<u16>,
    /// "starttls" (required, never downgraded), "implicit" (SMTPS), or
    /// "none" (only for a relay on the loopback interface).
    #[serde(default)]
    pub tls: TlsMode,
    /// An extra CA certificate (PEM) to trust for this relay.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// User name for SMTP AUTH (only over TLS).
    #[serde(default)]
    pub username: Option<String>,
    /// Password for SMTP AUTH.
    #[serde(default)]
    pub password: Option<Secret>,
}

/// How a relay connection is protected.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS; fails if the relay cannot.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
    /// No TLS: a local relay only.
    None,
}

struct Relay {
    label: String,
    smtp: smtp::Relay,
}

/// The email channel.
pub struct Email {
    from: lettre::message::Mailbox,
    to: Vec<lettre::message::Mailbox>,
    relays: Vec<Relay>,
    /// Bound on one relay's exchange: the attempt timeout shared by the
    /// relays, so a relay that hangs leaves time for the next.
    relay_timeout: Duration,
    templates: Templates,
}

impl Email {
    /// Builds the channel from its configuration.
    pub fn build(
        name: &str,
        config: &EmailConfig,
        templates: &TemplateSettings,
    ) -> Result<Self, BuildError> {
        let mailbox = |s: &str, field: &str| {
            s.parse::<lettre::message::Mailbox>().map_err(|e| {
                BuildError::invalid(name, format!("{field} {s:?} is not an email address: {e}"))
            })
        };
        if config.to.is_empty() {
            return Err(BuildError::invalid(name, "`to` lists no recipient"));
        }
        if config.relays.is_empty() {
            return Err(BuildError::invalid(name, "`relays` lists no SMTP relay"));
        }
        Ok(Self {
            from: mailbox(&config.from, "from")?,
            to: config
                .to
                .iter()
                .map(|t| mailbox(t, "to"))
                .collect::<Result<_, _>>()?,
            relays: config
                .relays
                .iter()
                .map(|r| relay(name, r))
                .collect::<Result<_, _>>()?,
            relay_timeout: config.delivery.attempt_timeout / config.relays.len() as u32,
            templates: Templates::new(name, templates, DEFAULT_BODY)?,
        })
    }

    fn compose(&self, message: &Message) -> Result<Mail, SendError> {
        let render = |part| {
            self.templates
                .render(part, message)
                .map_err(|e| SendError::Permanent(e.to_string()))
        };
        let domain = self.from.email.domain().to_owned();
        let mut builder = Mail::builder()
            .from(self.from.clone())
            .subject(render(Part::Subject)?)
            .message_id(Some(format!(
                "<{}@{domain}>",
                message_id_part(&message.key)
            )))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(IDEMPOTENCY_HEADER),
                message.key.clone(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(INCIDENT_HEADER),
                message.notification.incident_id.clone(),
            ));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                render(Part::Body)?,
                render(Part::Html)?,
            ))
            .map_err(|e| SendError::Permanent(format!("composing the message: {e}")))
    }

    async fn deliver(&self, message: &Message) -> Result<Receipt, SendError> {
        let mail = self.compose(message)?;
        let mut failures = Vec::new();
        let mut all_permanent = true;
        let bytes = mail.formatted();
        for relay in &self.relays {
            let sent =
                tokio::time::timeout(self.relay_timeout, relay.smtp.send(mail.envelope(), &bytes))
                    .await;
            match sent {
                Err(_) => {
                    all_permanent = false;
                    failures.push(format!(
                        "{}: no answer within {:?}",
                        relay.label, self.relay_timeout
                    ));
                }
                Ok(Ok(response)) => {
                    let answer = format!(
                        "{} {}",
                        response.code(),
                        response.message().collect::<Vec<_>>().join(" ")
                    );
                    return Ok(Receipt::new(format!("{}: {answer}", relay.label)));
                }
                Ok(Err(e)) => {
                    all_permanent &= e.is_permanent();
                    failures.push(format!("{}: {}", relay.label, super::http::error_chain(&e)));
                }
            }
        }
        let text = failures.join("; ");
        // A 5xx from every relay (recipient refused, auth failed) will not
        // change on retry; anything else (refused connection, 4xx) might.
        if all_permanent {
            Err(SendError::Permanent(text))
        } else {
            Err(SendError::Transient(text))
        }
    }
}

impl Channel for Email {
    fn kind(&self) -> &'static str {
        "email"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.deliver(message))
    }
}

fn relay(channel: &str, r: &RelayConfig) -> Result<Relay, BuildError> {
    let invalid = |m: String| BuildError::invalid(channel, format!("relay {}: {m}", r.host));
    let host = r.host.trim_matches(['[', ']']).to_owned();
    let ca = match &r.ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| invalid(format!("reading ca_file {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let (protection, default_port) = match r.tls {
        TlsMode::Starttls => {
            let mut builder = TlsParameters::builder(host.clone());
            if let Some(pem) = &ca {
                let cert =
                    Certificate::from_pem(pem).map_err(|e| invalid(format!("ca_file: {e}")))?;
                builder = builder.add_root_certificate(cert);
            }
            let parameters = builder
                .build_rustls()
                .map_err(|e| invalid(format!("TLS setup: {e}")))?;
            (Protection::Starttls(parameters), STARTTLS_PORT)
        }
        TlsMode::Implicit => {
            let config = smtp::implicit_tls_config(ca.as_deref())
                .map_err(|e| invalid(format!("TLS setup: {e}")))?;
            let name = ServerName::try_from(host.clone())
                .map_err(|e| invalid(format!("not a host name for TLS: {e}")))?;
            (Protection::Implicit { config, name }, IMPLICIT_TLS_PORT)
        }
        TlsMode::None => {
            if !is_loopback(&r.host) {
                return Err(invalid(
                    "tls = \"none\" is only allowed for a relay on the loopback interface \
                     (localhost, 127.0.0.1, ::1); use \"starttls\" or \"implicit\""
                        .to_owned(),
                ));
            }
            (Protection::None, PLAIN_PORT)
        }
    };
    let port = r.port.unwrap_or(default_port);
    let credentials = match (&r.username, &r.password) {
        (Some(user), Some(password)) => Some(Credentials::new(
            user.clone(),
            password.read().map_err(invalid)?,
        )),
        (None, None) => None,
        _ => {
            return Err(invalid(
                "give both username and password, or neither".to_owned(),
            ));
        }
    };
    Ok(Relay {
        label: format!("{}:{port}", r.host),
        smtp: smtp::Relay::new(host, port, protection, credentials),
    })
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The idempotency key as the left part of a Message-ID (dot-atom text).
fn message_id_part(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_smtp_only_to_loopback() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("smtp.example.net"));
        assert!(!is_loopback("10.0.0.1"));
        let config = RelayConfig {
            host: "smtp.example.net".to_owned(),
            port: None,
            tls: TlsMode::None,
            ca_file: None,
            username: None,
            password: None,
        };
        let err = relay("mail", &config)
            .err()
            .expect("plain remote relay refused");
        assert!(err.to_string().contains("loopback"), "{err}");
    }

    #[test]
    fn message_id_is_dot_atom() {
        assert_eq!(message_id_part("inc-7:L1:problem"), "inc-7.L1.problem");
    }
}
