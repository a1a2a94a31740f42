//! The escalation channels: one file per kind behind one trait, [`Channel`],
//! built from the `[channels.NAME]` tables of the configuration.
//!
//! Layout:
//! * [`notification`]: the input ([`Notification`]) and what a channel sends ([`Message`]).
//! * [`config`]: the `[channels.NAME]` tables and the settings every kind shares.
//! * [`template`]: subject and body templates with defaults per kind.
//! * [`console`], [`batch`], [`email`], [`sms`], [`snmp`], [`webhook`],
//!   [`jira`]: the kinds. [`email`] talks to relays through [`smtp`];
//!   [`snmp`] encodes its packets with [`ber`];
//!   [`sms`] counts segments with [`segments`]; [`webhook`], [`sms`] and
//!   [`jira`] share [`http`].
//! * [`test_message`]: `hyperwatch notify test CHANNEL`.
//!
//! A channel only sends: retries, rate limits, digests and fallbacks are the
//! outbox's job ([`crate::outbox`]).

pub mod batch;
pub mod ber;
pub mod config;
pub mod console;
pub mod email;
pub mod http;
pub mod jira;
pub mod notification;
pub mod segments;
pub mod sms;
pub mod smtp;
pub mod snmp;
pub mod template;
pub mod test_message;
pub mod webhook;

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration};

pub use config::{ChannelConfig, ChannelsConfig};
pub use notification::{Message, Notification, Severity, Status};

/// The name of the channel that always exists and always receives
/// delivery failures: a configured `[channels.console]`, or a default
/// console (stderr and syslog) when none is configured.
pub const CONSOLE: &str = "console";

/// A boxed future, so that [`Channel`] stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One way of telling people about an incident.
pub trait Channel: Send + Sync {
    /// The kind, as in `type = "..."`.
    fn kind(&self) -> &'static str;

    /// The recipients this channel sends to one by one; the outbox keeps one
    /// delivery per recipient so that one failing number does not resend to
    /// the others. A single empty recipient means "one delivery".
    fn recipients(&self) -> Vec<String> {
        vec![String::new()]
    }

    /// Sends one message; `Ok` only when the receiver accepted it.
    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Receipt, SendError>>;
}

/// What the receiver answered when it accepted a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The receiver's answer in one line ("250 2.0.0 Ok: queued as 4F2",
    /// "HTTP 201 SM123", "exit status 0").
    pub answer: String,
    /// Further detail for the audit record (captured script output).
    pub detail: String,
}

impl Receipt {
    /// A receipt with no further detail.
    pub fn new(answer: impl Into<String>) -> Self {
        Self {
            answer: answer.into(),
            detail: String::new(),
        }
    }
}

/// Why a message was not accepted.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: connection refused, timeout, 5xx, 4xx SMTP replies.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The receiver asked to slow down (HTTP 429), maybe saying for how long.
    #[error("rate limited by the receiver{}: {detail}", retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default())]
    RateLimited {
        /// What the receiver answered.
        detail: String,
        /// How long it asked us to wait.
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (bad credentials, rejected recipient, 4xx HTTP):
    /// the failure is escalated at once.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// A channel that cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A template does not compile.
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    /// A setting is wrong; the text names the channel and the field.
    #[error("channel {channel:?}: {message}")]
    Invalid {
        /// The channel's name.
        channel: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A fallback names a channel that does not exist.
    #[error(
        "channel {channel:?}: fallback {fallback:?} is not a configured channel (known: {known})"
    )]
    UnknownFallback {
        /// The channel whose fallback list is wrong.
        channel: String,
        /// The unknown name.
        fallback: String,
        /// The configured names.
        known: String,
    },
}

impl BuildError {
    pub(crate) fn invalid(channel: &str, message: impl Into<String>) -> Self {
        BuildError::Invalid {
            channel: channel.to_owned(),
            message: message.into(),
        }
    }
}

/// A built channel with its delivery settings.
pub struct ChannelEntry {
    /// The channel's name.
    pub name: String,
    /// The channel.
    pub channel: Arc<dyn Channel>,
    /// Retries, rate limit, fallback, concurrency.
    pub delivery: config::DeliverySettings,
}

/// Every configured channel by name, plus the console that always exists.
pub struct ChannelSet {
    entries: BTreeMap<String, Arc<ChannelEntry>>,
}

impl ChannelSet {
    /// Builds every channel; checks templates, settings and fallback names.
    pub fn build(config: &ChannelsConfig) -> Result<Self, BuildError> {
        let mut entries = BTreeMap::new();
        for (name, c) in config {
            entries.insert(name.clone(), Arc::new(build_one(name, c)?));
        }
        if !entries.contains_key(CONSOLE) {
            let default = ChannelConfig::Console(console::ConsoleConfig::default());
            entries.insert(CONSOLE.to_owned(), Arc::new(build_one(CONSOLE, &default)?));
        }
        let known = entries.keys().cloned().collect::<Vec<_>>().join(", ");
        for entry in entries.values() {
            for fallback in &entry.delivery.fallback {
                if !entries.contains_key(fallback) {
                    return Err(BuildError::UnknownFallback {
                        channel: entry.name.clone(),
                        fallback: fallback.clone(),
                        known,
                    });
                }
            }
        }
        Ok(Self { entries })
    }

    /// A channel by name.
    pub fn get(&self, name: &str) -> Option<&Arc<ChannelEntry>> {
        self.entries.get(name)
    }

    /// Every channel, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ChannelEntry>> {
        self.entries.values()
    }

    /// The configured names, for error messages.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }
}

fn build_one(name: &str, config: &ChannelConfig) -> Result<ChannelEntry, BuildError> {
    let templates = config.templates();
    let channel: Arc<dyn Channel> = match config {
        ChannelConfig::Console(c) => Arc::new(console::Console::build(name, c, templates)?),
        ChannelConfig::Batch(c) => Arc::new(batch::Batch::build(name, c, templates)?),
        ChannelConfig::Email(c) => Arc::new(email::Email::build(name, c, templates)?),
        ChannelConfig::Sms(c) => Arc::new(sms::Sms::build(name, c, templates)?),
        ChannelConfig::Snmp(c) => Arc::new(snmp::Snmp::build(name, c)?),
        ChannelConfig::Webhook(c) => Arc::new(webhook::Webhook::build(name, c, templates)?),
        ChannelConfig::Jira(c) => Arc::new(jira::Jira::build(name, c, templates)?),
    };
    let delivery = config.delivery().clone();
    if delivery.concurrency == 0 {
        return Err(BuildError::invalid(
            name,
            "delivery.concurrency must be at least 1",
        ));
    }
    if let Some(limit) = delivery.rate_limit
        && (limit.messages == 0 || limit.per.is_zero())
    {
        return Err(BuildError::invalid(
            name,
            "delivery.rate_limit needs messages >= 1 and a non-zero period",
        ));
    }
    Ok(ChannelEntry {
        name: name.to_owned(),
        channel,
        delivery,
    })
}
