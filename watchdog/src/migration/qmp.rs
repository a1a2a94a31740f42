//! A minimal QEMU Machine Protocol client over a unix socket: the greeting,
//! capability negotiation, and commands with their replies; asynchronous
//! events in between are skipped. Every exchange is bounded by
//! [`QMP_TIMEOUT`].

use std::{path::Path, time::Duration};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{
        UnixStream,
        unix::{OwnedReadHalf, OwnedWriteHalf},
    },
};

/// Bound on connecting and on each command's reply. QMP answers in
/// milliseconds; `quit` waits for the guest to stop, still well under this.
pub const QMP_TIMEOUT: Duration = Duration::from_secs(10);

/// A QMP failure.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {QMP_TIMEOUT:?} to {0}")]
    Timeout(String),
    #[error("the connection closed while waiting for {0}")]
    Closed(String),
    #[error("not QMP: {0:?}")]
    Protocol(String),
    #[error("`{command}` refused: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
}

/// A negotiated QMP connection.
pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Qmp {
    /// Connects to `socket`, reads the greeting and leaves capability
    /// negotiation mode.
    pub async fn connect(socket: &Path) -> Result<Self, QmpError> {
        let stream = tokio::time::timeout(QMP_TIMEOUT, UnixStream::connect(socket))
            .await
            .map_err(|_| QmpError::Timeout("connect".to_owned()))?
            .map_err(QmpError::Connect)?;
        let (read, writer) = stream.into_split();
        let mut qmp = Qmp {
            reader: BufReader::new(read),
            writer,
        };
        let greeting = qmp.read_message("the greeting").await?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(greeting.to_string()));
        }
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    /// Runs `command` and returns its `return` value.
    pub async fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        let mut message = json!({ "execute": command });
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        let mut line = message.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).await?;
        loop {
            let reply = self.read_message(command).await?;
            if let Some(value) = reply.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = reply.get("error") {
                let field = |name: &str| {
                    error
                        .get(name)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                return Err(QmpError::Command {
                    command: command.to_owned(),
                    class: field("class"),
                    desc: field("desc"),
                });
            }
            if reply.get("event").is_none() {
                return Err(QmpError::Protocol(reply.to_string()));
            }
        }
    }

    /// One JSON message (one line), within [`QMP_TIMEOUT`].
    async fn read_message(&mut self, waiting_for: &str) -> Result<Value, QmpError> {
        let mut line = String::new();
        let read = tokio::time::timeout(QMP_TIMEOUT, self.reader.read_line(&mut line))
            .await
            .map_err(|_| QmpError::Timeout(waiting_for.to_owned()))??;
        if read == 0 {
            return Err(QmpError::Closed(waiting_for.to_owned()));
        }
        serde_json::from_str(&line).map_err(|_| QmpError::Protocol(line.trim_end().to_owned()))
    }
}
