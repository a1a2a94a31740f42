//! Sending named actions to agents and awaiting their results:
//! [`CommandRouter::send_command`] is the internal API the policy runtime
//! uses; `POST /api/v1/hosts/{id}/actions/{name}` goes through it too. The
//! agent decides what the name means (its own allowlist).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hyperwatch_proto::v1;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::registry::Registry;

/// Why a command produced no result.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("host {0:?} is unknown")]
    UnknownHost(String),
    #[error("host {0:?} is not connected")]
    NotConnected(String),
    #[error("the stream to host {0:?} closed before the result came")]
    ConnectionLost(String),
    #[error("no result from host {host:?} within {timeout:?}")]
    TimedOut { host: String, timeout: Duration },
}

/// An agent's answer.
#[derive(Clone, Debug, Serialize)]
pub struct CommandOutcome {
    pub id: u64,
    pub host: String,
    pub action: String,
    /// "succeeded", "failed", "refused", "timed_out".
    pub status: &'static str,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub message: String,
    pub duration_ms: u64,
    /// The agent had already run this step's run id: this is the first
    /// run's result, and nothing ran now.
    pub repeated: bool,
}

impl CommandOutcome {
    fn from_result(host: &str, action: &str, r: v1::CommandResult) -> Self {
        let status = match v1::CommandStatus::try_from(r.status) {
            Ok(v1::CommandStatus::Succeeded) => "succeeded",
            Ok(v1::CommandStatus::Refused) => "refused",
            Ok(v1::CommandStatus::TimedOut) => "timed_out",
            _ => "failed",
        };
        Self {
            id: r.id,
            host: host.to_owned(),
            action: action.to_owned(),
            status,
            exit_code: r.exit_code,
            signal: r.signal,
            stdout: r.stdout,
            stderr: r.stderr,
            message: r.message,
            duration_ms: r.duration_ms,
            repeated: r.repeated,
        }
    }
}

struct Pending {
    connection: u64,
    reply: oneshot::Sender<v1::CommandResult>,
}

/// Commands in flight, by id.
pub struct CommandRouter {
    registry: Arc<Registry>,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
    timeout: Duration,
}

impl CommandRouter {
    pub fn new(registry: Arc<Registry>, timeout: Duration) -> Self {
        Self {
            registry,
            next_id: AtomicU64::new(1),
            pending: Mutex::default(),
            timeout,
        }
    }

    /// Asks `host`'s agent to run `action` with `args`; resolves with its
    /// result, or an error when the host is not connected, the stream
    /// closes first, or no result comes within the configured bound.
    pub async fn send_command(
        &self,
        host: &str,
        action: &str,
        args: BTreeMap<String, String>,
    ) -> Result<CommandOutcome, CommandError> {
        self.send_step(host, action, args, String::new()).await
    }

    /// [`Self::send_command`] for a recovery step: `run_id` (the engine's
    /// step run id) goes along, so an agent that has already run the step
    /// (the watchdog restarted before its result came) answers with that
    /// run's result instead of running it again.
    pub async fn send_step(
        &self,
        host: &str,
        action: &str,
        args: BTreeMap<String, String>,
        run_id: String,
    ) -> Result<CommandOutcome, CommandError> {
        let outcome = self.send(host, action, args, run_id).await;
        let label = match &outcome {
            Ok(o) => o.status,
            Err(CommandError::TimedOut { .. }) => "no_result",
            Err(CommandError::ConnectionLost(_)) => "connection_lost",
            Err(_) => "not_sent",
        };
        self.registry.metrics.command(label);
        outcome
    }

    async fn send(
        &self,
        host: &str,
        action: &str,
        args: BTreeMap<String, String>,
        run_id: String,
    ) -> Result<CommandOutcome, CommandError> {
        self.registry
            .entry(host)
            .ok_or_else(|| CommandError::UnknownHost(host.to_owned()))?;
        let connection = self
            .registry
            .connection(host)
            .ok_or_else(|| CommandError::NotConnected(host.to_owned()))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, result) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(
            id,
            Pending {
                connection: connection.id,
                reply,
            },
        );
        let message = v1::WatchdogMessage {
            body: Some(v1::watchdog_message::Body::Command(v1::Command {
                id,
                action: action.to_owned(),
                args: args.into_iter().collect(),
                run_id: run_id.clone(),
            })),
        };
        tracing::info!(%host, %action, id, %run_id, "sending command");
        if connection.outbound.send(Ok(message)).await.is_err() {
            self.pending.lock().expect("pending lock").remove(&id);
            return Err(CommandError::ConnectionLost(host.to_owned()));
        }
        match tokio::time::timeout(self.timeout, result).await {
            Ok(Ok(r)) => Ok(CommandOutcome::from_result(host, action, r)),
            Ok(Err(_)) => Err(CommandError::ConnectionLost(host.to_owned())),
            Err(_) => {
                self.pending.lock().expect("pending lock").remove(&id);
                Err(CommandError::TimedOut {
                    host: host.to_owned(),
                    timeout: self.timeout,
                })
            }
        }
    }

    /// A result arrived from an agent.
    pub fn complete(&self, result: v1::CommandResult) {
        match self
            .pending
            .lock()
            .expect("pending lock")
            .remove(&result.id)
        {
            Some(p) => {
                let _ = p.reply.send(result);
            }
            None => tracing::warn!(id = result.id, "result for an unknown or expired command"),
        }
    }

    /// A stream ended: its commands will get no result.
    pub fn connection_closed(&self, connection: u64) {
        self.pending
            .lock()
            .expect("pending lock")
            .retain(|_, p| p.connection != connection);
    }
}
