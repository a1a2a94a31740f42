//! The console channel: one line on the watchdog's terminal (stderr) or on a
//! configured tty or pty, and the same line to syslog through the local
//! socket (/dev/log), which systemd-journald also listens on, so it reaches
//! the journal on systemd hosts. It is the channel of last resort: every
//! delivery failure of another channel is reported here.

use std::{
    io::Write,
    os::unix::{fs::OpenOptionsExt, net::UnixDatagram},
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::{
    BoxFuture, BuildError, Channel, Message, Receipt, SendError, Severity, Status,
    config::{DeliverySettings, TemplateSettings},
    template::{DEFAULT_BODY, Part, Templates},
};

/// Where syslog listens on Linux (and journald's syslog compatibility socket).
const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";
/// The syslog facility "daemon" (RFC 5424 section 6.2.1: 3), shifted as in PRI.
const FACILITY_DAEMON: u8 = 3 << 3;

/// `[channels.NAME]` with `type = "console"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// A terminal to write to (a tty or pty such as "/dev/tty1" or
    /// "/dev/pts/3"); absent: the watchdog's own stderr.
    #[serde(default)]
    pub tty: Option<PathBuf>,
    /// Also send the line to syslog (and so the journal).
    #[serde(default = "yes")]
    pub syslog: bool,
    /// The syslog socket; when it does not exist the syslog copy is skipped
    /// and the receipt says so.
    #[serde(default = "default_syslog_socket")]
    pub syslog_socket: PathBuf,
    /// Retries, rate limit, fallback.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// The line is the `subject` template.
    #[serde(default)]
    pub templates: TemplateSettings,
}

fn yes() -> bool {
    true
}

fn default_syslog_socket() -> PathBuf {
    PathBuf::from(DEFAULT_SYSLOG_SOCKET)
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            tty: None,
            syslog: true,
            syslog_socket: default_syslog_socket(),
            delivery: DeliverySettings::default(),
            templates: TemplateSettings::default(),
        }
    }
}

/// The console channel.
pub struct Console {
    tty: Option<PathBuf>,
    syslog: Option<PathBuf>,
    templates: Templates,
}

impl Console {
    /// Builds the channel from its configuration.
    pub fn build(
        name: &str,
        config: &ConsoleConfig,
        templates: &TemplateSettings,
    ) -> Result<Self, BuildError> {
        Ok(Self {
            tty: config.tty.clone(),
            syslog: config.syslog.then(|| config.syslog_socket.clone()),
            templates: Templates::new(name, templates, DEFAULT_BODY)?,
        })
    }
}

impl Channel for Console {
    fn kind(&self) -> &'static str {
        "console"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(async move {
            let mut line = self
                .templates
                .render(Part::Subject, message)
                .map_err(|e| SendError::Permanent(e.to_string()))?;
            if let Some(note) = &message.note {
                line = format!("{note}: {line}");
            }
            let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
            let terminal_line = format!("{stamp} hyperwatch {line} [{}]\n", message.key);
            let tty = self.tty.clone();
            let written =
                tokio::task::spawn_blocking(move || write_terminal(tty.as_deref(), &terminal_line))
                    .await
                    .map_err(|e| SendError::Transient(format!("console writer failed: {e}")))??;
            let syslog = match &self.syslog {
                None => "syslog off".to_owned(),
                Some(socket) => {
                    let priority = FACILITY_DAEMON | syslog_severity(message);
                    match write_syslog(socket, priority, &line) {
                        Ok(()) => format!("syslog {}", socket.display()),
                        // The terminal copy is the delivery; a host without a
                        // syslog socket is reported, not retried forever.
                        Err(e) => format!("syslog skipped ({}: {e})", socket.display()),
                    }
                }
            };
            Ok(Receipt::new(format!("written to {written}; {syslog}")))
        })
    }
}

/// Writes the line to the tty, or stderr; returns where it went.
fn write_terminal(tty: Option<&Path>, line: &str) -> Result<String, SendError> {
    match tty {
        None => {
            let mut err = std::io::stderr().lock();
            err.write_all(line.as_bytes())
                .and_then(|()| err.flush())
                .map_err(|e| SendError::Transient(format!("writing to stderr: {e}")))?;
            Ok("stderr".to_owned())
        }
        Some(path) => {
            // O_NOCTTY: writing to a terminal must not make it ours.
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .custom_flags(nix::libc::O_NOCTTY)
                .open(path)
                .map_err(|e| SendError::Transient(format!("opening {}: {e}", path.display())))?;
            file.write_all(line.as_bytes())
                .map_err(|e| SendError::Transient(format!("writing to {}: {e}", path.display())))?;
            Ok(path.display().to_string())
        }
    }
}

/// Sends one RFC 3164-style datagram; the receiver adds its own timestamp.
fn write_syslog(socket: &Path, priority: u8, line: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    // A stalled syslog daemon must not stall the console: a full socket
    // buffer fails this copy (WouldBlock) instead of blocking.
    sock.set_nonblocking(true)?;
    let datagram = format!("<{priority}>hyperwatch[{}]: {line}", std::process::id());
    sock.send_to(datagram.as_bytes(), socket)?;
    Ok(())
}

/// Syslog severities (RFC 5424 section 6.2.1).
fn syslog_severity(message: &Message) -> u8 {
    const CRIT: u8 = 2;
    const WARNING: u8 = 4;
    const NOTICE: u8 = 5;
    const INFO: u8 = 6;
    let n = &message.notification;
    if message.note.is_some() {
        // A delivery failure: someone was not told.
        return CRIT;
    }
    match (n.status, n.severity) {
        (Status::Recovery | Status::Acknowledgement, _) => NOTICE,
        (_, Severity::Critical) => CRIT,
        (_, Severity::Warning) => WARNING,
        (_, Severity::Info) => INFO,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::channels::notification::tests::sample;

    #[tokio::test]
    async fn writes_to_syslog_socket_with_priority() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("log");
        let listener = UnixDatagram::bind(&socket).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let tty = dir.path().join("terminal");
        std::fs::write(&tty, "").unwrap();
        let config = ConsoleConfig {
            tty: Some(tty.clone()),
            syslog_socket: socket.clone(),
            ..Default::default()
        };
        let console = Console::build("console", &config, &TemplateSettings::default()).unwrap();
        let receipt = console
            .send(&Message::single(sample("inc-9"), ""))
            .await
            .unwrap();
        assert!(receipt.answer.contains("syslog"), "{receipt:?}");

        let mut buf = [0u8; 2048];
        let n = listener.recv(&mut buf).unwrap();
        let datagram = String::from_utf8_lossy(&buf[..n]);
        // daemon (3) * 8 + crit (2) = 26
        assert!(datagram.starts_with("<26>hyperwatch["), "{datagram}");
        assert!(
            datagram.contains("[PROBLEM] critical host hv-12"),
            "{datagram}"
        );
        let written = std::fs::read_to_string(&tty).unwrap();
        assert!(written.contains("[inc-9:L1:problem]"), "{written}");
    }

    #[tokio::test]
    async fn missing_syslog_socket_is_reported_not_failed() {
        let dir = tempfile::tempdir().unwrap();
        let tty = dir.path().join("terminal");
        std::fs::write(&tty, "").unwrap();
        let config = ConsoleConfig {
            tty: Some(tty),
            syslog_socket: dir.path().join("absent"),
            ..Default::default()
        };
        let console = Console::build("console", &config, &TemplateSettings::default()).unwrap();
        let receipt = console
            .send(&Message::single(sample("inc-9"), ""))
            .await
            .unwrap();
        assert!(receipt.answer.contains("syslog skipped"), "{receipt:?}");
    }
}
