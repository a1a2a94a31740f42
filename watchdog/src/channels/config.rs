//! The `[channels.NAME]` tables of the watchdog configuration: one table per
//! channel, `type = "email"` (etc.) choosing the kind, the kind's own fields
//! beside it, and two optional sub-tables every kind shares:
//! `[channels.NAME.delivery]` (retries, rate limit, fallback) and
//! `[channels.NAME.templates]` (subject and body).
//!
//! ```toml
//! [channels.oncall-mail]
//! type = "email"
//! from = "hyperwatch@example.net"
//! to = ["oncall@example.net"]
//! relays = [{ host = "smtp1.example.net" }, { host = "smtp2.example.net" }]
//!
//! [channels.oncall-mail.delivery]
//! give_up_after = "30m"
//! fallback = ["oncall-sms"]
//! rate_limit = { messages = 10, per = "1m" }
//! ```

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Deserializer};

use super::{
    batch::BatchConfig, console::ConsoleConfig, email::EmailConfig, jira::JiraConfig,
    sms::SmsConfig, snmp::SnmpConfig, webhook::WebhookConfig,
};

/// Every channel, by the name policies use to refer to it.
pub type ChannelsConfig = BTreeMap<String, ChannelConfig>;

/// The watchdog configuration file as the channels see it: the `[channels]`
/// tables, and nothing else (the other tables belong to other parts, whose
/// own loaders check them). Until the watchdog has one configuration type,
/// `hyperwatch notify` reads the file through this.
#[derive(Debug, Deserialize)]
pub struct ChannelsSection {
    /// The `[channels.NAME]` tables.
    #[serde(default)]
    pub channels: ChannelsConfig,
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid; the message has the line and column.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml and serde said, with line, column and the expected values.
        message: String,
    },
}

/// Reads the `[channels]` tables of a watchdog configuration file.
pub fn load(path: &Path) -> Result<ChannelsConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str::<ChannelsSection>(&text)
        .map(|s| s.channels)
        .map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

/// One `[channels.NAME]` table; `type` chooses the kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ChannelConfig {
    /// A message on the watchdog's terminal or a tty, and to syslog/journal.
    Console(ConsoleConfig),
    /// Run an operator's script with the incident in its environment and on stdin.
    Batch(BatchConfig),
    /// Email through SMTP relays.
    Email(EmailConfig),
    /// SMS through an HTTP gateway (Twilio-style or a templated request).
    Sms(SmsConfig),
    /// SNMPv2c traps or informs.
    Snmp(SnmpConfig),
    /// A JSON POST to a ticket system or any HTTP endpoint.
    Webhook(WebhookConfig),
    /// Jira issues: create, comment on repeat, transition on resolve.
    Jira(JiraConfig),
}

impl ChannelConfig {
    /// The kind's name, as written in `type = "..."`.
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Console(_) => "console",
            ChannelConfig::Batch(_) => "batch",
            ChannelConfig::Email(_) => "email",
            ChannelConfig::Sms(_) => "sms",
            ChannelConfig::Snmp(_) => "snmp",
            ChannelConfig::Webhook(_) => "webhook",
            ChannelConfig::Jira(_) => "jira",
        }
    }

    /// The retry, rate-limit and fallback settings.
    pub fn delivery(&self) -> &DeliverySettings {
        match self {
            ChannelConfig::Console(c) => &c.delivery,
            ChannelConfig::Batch(c) => &c.delivery,
            ChannelConfig::Email(c) => &c.delivery,
            ChannelConfig::Sms(c) => &c.delivery,
            ChannelConfig::Snmp(c) => &c.delivery,
            ChannelConfig::Webhook(c) => &c.delivery,
            ChannelConfig::Jira(c) => &c.delivery,
        }
    }

    /// The operator's templates (empty fields mean the kind's defaults).
    /// SNMP traps carry the incident's fields as varbinds, not text.
    pub fn templates(&self) -> &TemplateSettings {
        static NONE: TemplateSettings = TemplateSettings {
            subject: None,
            body: None,
            html: None,
        };
        match self {
            ChannelConfig::Console(c) => &c.templates,
            ChannelConfig::Batch(c) => &c.templates,
            ChannelConfig::Email(c) => &c.templates,
            ChannelConfig::Sms(c) => &c.templates,
            ChannelConfig::Snmp(_) => &NONE,
            ChannelConfig::Webhook(c) => &c.templates,
            ChannelConfig::Jira(c) => &c.templates,
        }
    }
}

/// Default first retry delay: a relay that dropped one connection is
/// usually back within seconds.
const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(2);
/// Default longest retry delay: an outage is noticed within a minute of
/// its end.
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Default bound on retrying one notification before the failure itself is
/// escalated: the issue asks for delivery through a ten-minute relay
/// outage, with margin.
const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(30 * 60);
/// Default bound on one attempt (connect, TLS, send, answer).
const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of messages one channel sends at the same time.
const DEFAULT_CONCURRENCY: usize = 4;

/// `[channels.NAME.delivery]`: how the outbox delivers to this channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// Delay before the first retry; doubles with every failed attempt
    /// (with random jitter), up to `max_backoff`.
    #[serde(deserialize_with = "duration")]
    pub initial_backoff: Duration,
    /// Longest delay between two attempts.
    #[serde(deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// Bound on the total time spent retrying one notification. After it,
    /// the failure is escalated: the notification goes to the `fallback`
    /// channels and a delivery-failure notice to the `console` channel.
    #[serde(deserialize_with = "duration")]
    pub give_up_after: Duration,
    /// Bound on one attempt (connect, TLS, send, answer).
    #[serde(deserialize_with = "duration")]
    pub attempt_timeout: Duration,
    /// Channels (by name) that receive the notification when this one gave
    /// up, tried in order: the first that has not been tried for it yet.
    pub fallback: Vec<String>,
    /// At most this many messages per period, per recipient; a burst beyond
    /// it is sent as one digest ("... and 37 more incidents"). None: no limit.
    pub rate_limit: Option<RateLimit>,
    /// How many messages this channel sends at the same time.
    pub concurrency: usize,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            fallback: Vec::new(),
            rate_limit: None,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// A rate limit: `messages` per `per`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Messages allowed per period (also the size of a burst sent at once).
    pub messages: u32,
    /// The period, for example "1m".
    #[serde(deserialize_with = "duration")]
    pub per: Duration,
}

/// `[channels.NAME.templates]`: minijinja templates for what this channel
/// sends; an absent field keeps the kind's default. The variables are the
/// notification's fields (`incident_id`, `level`, `repeat`, `status`,
/// `severity`, `target`, `summary`, `policy`, `labels`, `fired_at`,
/// `decided_at`) and `key` (the idempotency key), `test` (a test message),
/// `more` (how many further incidents this digest holds), `others` (their
/// notifications), `note` (a delivery note) and `channel` (this channel's name).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSettings {
    /// Subject line (email subject, Jira summary, console and syslog line).
    pub subject: Option<String>,
    /// Plain-text body (email text part, SMS text, Jira description and comments).
    pub body: Option<String>,
    /// HTML body (email HTML part; auto-escaped).
    pub html: Option<String>,
}

/// A secret: inline text, `{ file = "/path" }` (first line, trimmed) or
/// `{ env = "VAR" }`. Prefer the file or the environment, so the
/// configuration can be shared without the secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Secret {
    /// The secret itself.
    Inline(String),
    /// A file holding the secret.
    File {
        /// Path of the file.
        file: PathBuf,
    },
    /// An environment variable holding the secret.
    Env {
        /// Name of the variable.
        env: String,
    },
}

impl Secret {
    /// Reads the secret; the error names where it was looked for.
    pub fn read(&self) -> Result<String, String> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::File { file } => std::fs::read_to_string(file)
                .map(|s| s.lines().next().unwrap_or_default().trim().to_owned())
                .map_err(|e| format!("reading secret file {}: {e}", file.display())),
            Secret::Env { env } => std::env::var(env)
                .map_err(|_| format!("environment variable {env} (a secret) is not set")),
        }
    }
}

/// Deserializes a duration written as humantime text ("500ms", "30s", "5m").
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "bad duration {text:?}: {e} (write for example \"500ms\", \"30s\", \"5m\", \"1h\")"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ChannelsConfig, toml::de::Error> {
        #[derive(Deserialize)]
        struct File {
            channels: ChannelsConfig,
        }
        toml::from_str::<File>(text).map(|f| f.channels)
    }

    #[test]
    fn reads_kind_common_tables_and_durations() {
        let c = parse(
            r#"
            [channels.ops]
            type = "console"
            [channels.ops.delivery]
            give_up_after = "90s"
            fallback = ["pager"]
            rate_limit = { messages = 5, per = "1m" }
            [channels.ops.templates]
            subject = "{{ summary }}"
            "#,
        )
        .unwrap();
        let ops = &c["ops"];
        assert_eq!(ops.kind(), "console");
        assert_eq!(ops.delivery().give_up_after, Duration::from_secs(90));
        assert_eq!(ops.delivery().initial_backoff, DEFAULT_INITIAL_BACKOFF);
        assert_eq!(ops.delivery().fallback, ["pager"]);
        assert_eq!(ops.delivery().rate_limit.unwrap().messages, 5);
        assert_eq!(ops.templates().subject.as_deref(), Some("{{ summary }}"));
    }

    #[test]
    fn unknown_field_is_an_error_with_line_and_column() {
        let err = parse(
            r#"
            [channels.ops]
            type = "console"
            colour = "red"
            "#,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("colour"), "{text}");
        assert!(text.contains("line 2"), "{text}");
    }

    #[test]
    fn bad_duration_says_what_to_write() {
        let err = parse(
            r#"
            [channels.ops]
            type = "console"
            delivery = { give_up_after = "soon" }
            "#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"30s\""), "{err}");
    }

    #[test]
    fn unknown_type_is_an_error() {
        let err = parse("[channels.x]\ntype = \"pigeon\"\n").unwrap_err();
        assert!(err.to_string().contains("pigeon"), "{err}");
    }
}
