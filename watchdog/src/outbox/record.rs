//! What the outbox records: a delivery to make ([`NewDelivery`]), a recorded
//! one ([`Delivery`]) and where it stands ([`State`]), and one attempt's
//! audit record ([`Attempt`]).

use crate::channels::Notification;

/// A delivery to record.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    /// The idempotency key; with channel and recipient, unique.
    pub key: String,
    /// The channel's name.
    pub channel: String,
    /// The recipient, for channels that fan out; empty otherwise.
    pub recipient: String,
    /// What to deliver.
    pub notification: Notification,
    /// A delivery note (why this is a fallback or a failure notice).
    pub note: Option<String>,
    /// Channels that already failed to deliver this notification.
    pub tried: Vec<String>,
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not accepted yet; will be attempted at `next_attempt_ms`.
    Pending,
    /// The receiver accepted it.
    Delivered,
    /// Retrying stopped; the failure was escalated.
    Failed,
}

impl State {
    /// The stored name ("pending", "delivered", "failed").
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Delivered => "delivered",
            State::Failed => "failed",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(State::Pending),
            "delivered" => Some(State::Delivered),
            "failed" => Some(State::Failed),
            _ => None,
        }
    }
}

/// A recorded delivery.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Row id.
    pub id: i64,
    /// The idempotency key.
    pub key: String,
    /// The channel's name.
    pub channel: String,
    /// The recipient (empty when the channel does not fan out).
    pub recipient: String,
    /// What to deliver.
    pub notification: Notification,
    /// A delivery note.
    pub note: Option<String>,
    /// Channels that already failed to deliver this notification.
    pub tried: Vec<String>,
    /// Where it stands.
    pub state: State,
    /// When it was recorded (Unix milliseconds).
    pub enqueued_ms: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// The receiver's answer (delivered) or the last error.
    pub outcome: Option<String>,
}

/// One attempt, for the audit log.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// When (Unix milliseconds).
    pub at_ms: i64,
    /// Whether the receiver accepted.
    pub accepted: bool,
    /// The receiver's answer or the error, with captured output.
    pub detail: String,
}
