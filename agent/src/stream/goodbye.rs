//! The last message of an agent stopping on purpose (SIGTERM, SIGINT): a
//! Goodbye, so the watchdog marks the host stopped instead of failing it
//! over, and a bounded wait for the watchdog's receipt (it ends the stream).

use std::time::Duration;

use hyperwatch_proto::v1;
use tokio::sync::mpsc;
use tonic::Streaming;

/// The reason a stopping agent gives; the watchdog logs it and shows it in
/// the host's state change.
pub const REASON: &str = "agent stopping";

/// How long a stopping agent waits for the watchdog to take its goodbye:
/// many round trips on a LAN, yet short beside systemd's stop timeout
/// (90 s by default), so `systemctl stop` stays quick.
pub const RECEIPT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the goodbye may not have arrived.
#[derive(Debug, thiserror::Error)]
pub enum GoodbyeError {
    #[error("the stream had closed before the goodbye")]
    Closed,
    #[error("the stream failed after the goodbye: {0}")]
    Stream(String),
    #[error("no receipt within {RECEIPT_TIMEOUT:?} (a watchdog older than the goodbye?)")]
    NoReceipt,
}

/// Queues the goodbye on `tx` and waits, at most [`RECEIPT_TIMEOUT`] in
/// all, until the watchdog ends `inbound`: it does so once it has handled
/// the goodbye. What the watchdog sends meanwhile (acks, commands) is
/// dropped; a command is not started by an agent on its way out.
pub async fn say(
    tx: mpsc::Sender<v1::AgentMessage>,
    inbound: &mut Streaming<v1::WatchdogMessage>,
) -> Result<(), GoodbyeError> {
    let goodbye = v1::AgentMessage {
        body: Some(v1::agent_message::Body::Goodbye(v1::Goodbye {
            reason: REASON.to_owned(),
        })),
    };
    let receipt = async {
        tx.send(goodbye).await.map_err(|_| GoodbyeError::Closed)?;
        // Nothing follows the goodbye.
        drop(tx);
        loop {
            match inbound.message().await {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(()),
                Err(status) => {
                    return Err(GoodbyeError::Stream(format!(
                        "{:?}: {}",
                        status.code(),
                        status.message()
                    )));
                }
            }
        }
    };
    tokio::time::timeout(RECEIPT_TIMEOUT, receipt)
        .await
        .map_err(|_| GoodbyeError::NoReceipt)?
}

#[cfg(test)]
#[path = "goodbye_tests.rs"]
mod tests;
