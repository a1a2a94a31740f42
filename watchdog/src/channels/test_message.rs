//! `hyperwatch notify test CHANNEL`: sends a clearly marked test message
//! through the real channel, to every recipient, and reports what each
//! receiver answered. It bypasses the outbox on purpose: the operator wants
//! to see this attempt's answer now, not a retry later.

use std::time::{Duration, SystemTime};

use super::{ChannelSet, Message, Notification, Receipt, SendError, Severity, Status};

/// Extra time beyond the channel's attempt timeout before giving up on an
/// answer (a channel's own timeouts fire first).
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// What one recipient's receiver answered.
#[derive(Debug)]
pub struct TestOutcome {
    /// The recipient (empty for channels that send one message).
    pub recipient: String,
    /// The receiver's answer, or why there was none.
    pub result: Result<Receipt, SendError>,
}

/// The channel named on the command line does not exist.
#[derive(Debug, thiserror::Error)]
#[error("no channel named {name:?} (configured: {known})")]
pub struct UnknownChannel {
    /// The name given.
    pub name: String,
    /// The configured names.
    pub known: String,
}

/// The test message for a channel: marked as a test in every template,
/// header and varbind, with an incident id no real incident has.
pub fn message(channel: &str) -> Message {
    let now = SystemTime::now();
    let stamp = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut message = Message::single(
        Notification {
            incident_id: format!("notify-test-{stamp}"),
            level: 0,
            repeat: 0,
            status: Status::Problem,
            severity: Severity::Info,
            target: format!("channel {channel}"),
            summary: format!("test message through channel {channel:?}; no action is needed"),
            policy: "hyperwatch notify test".to_owned(),
            labels: Default::default(),
            fired_at: now,
            decided_at: now,
        },
        "",
    );
    message.test = true;
    message
}

/// Sends the test message through `name` to each of its recipients.
pub async fn send(channels: &ChannelSet, name: &str) -> Result<Vec<TestOutcome>, UnknownChannel> {
    let entry = channels.get(name).ok_or_else(|| UnknownChannel {
        name: name.to_owned(),
        known: channels.names().join(", "),
    })?;
    let bound = entry.delivery.attempt_timeout + ANSWER_MARGIN;
    let mut outcomes = Vec::new();
    for recipient in entry.channel.recipients() {
        let mut m = message(name);
        m.recipient = recipient.clone();
        let result = match tokio::time::timeout(bound, entry.channel.send(&m)).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Transient(format!("no answer within {bound:?}"))),
        };
        outcomes.push(TestOutcome { recipient, result });
    }
    Ok(outcomes)
}
