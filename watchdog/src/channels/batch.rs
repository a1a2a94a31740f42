//! The batch channel: runs an operator's script with the incident in
//! environment variables (`HYPERWATCH_*`) and as JSON on stdin. The script
//! runs in its own process group; at the timeout the whole group is killed,
//! children included. Output is captured up to a bound and goes into the
//! audit record with the exit status.
//!
//! [`run_program`] is the bounded runner itself, shared with the policies'
//! batch steps.
//!
//! Exit status 0 means delivered. 75 (EX_TEMPFAIL, as sendmail uses it)
//! means "try again later"; any other status is a permanent failure that is
//! escalated at once. A timeout is retried.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use nix::{sys::signal, unistd::Pid};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{
    BoxFuture, BuildError, Channel, Message, Receipt, SendError,
    config::{DeliverySettings, TemplateSettings},
    template::{DEFAULT_BODY, Part, Templates},
};

/// Default bound on one run of the script.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on the captured output, per stream: enough for a useful
/// error message, small enough for the audit log.
const DEFAULT_OUTPUT_LIMIT: usize = 16 * 1024;
/// After the script exited, how long its output pipes may stay open (held by
/// a background child) before we stop reading them.
const PIPE_DRAIN_GRACE: Duration = Duration::from_secs(1);
/// The exit status that asks for a retry (EX_TEMPFAIL in sysexits.h).
const EX_TEMPFAIL: i32 = 75;

/// `[channels.NAME]` with `type = "batch"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// The script or program to run (absolute path recommended).
    pub command: PathBuf,
    /// Arguments passed to it.
    #[serde(default)]
    pub args: Vec<String>,
    /// Bound on one run; at the timeout the script's whole process group is
    /// killed (SIGKILL) and the attempt is retried.
    #[serde(
        default = "default_timeout",
        deserialize_with = "super::config::duration"
    )]
    pub timeout: Duration,
    /// Bound on the captured stdout and on the captured stderr, in bytes.
    #[serde(default = "default_output_limit")]
    pub output_limit: usize,
    /// Extra environment variables for the script.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working directory (default: the watchdog's).
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// Retries, rate limit, fallback.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// `HYPERWATCH_SUBJECT` and `HYPERWATCH_BODY` are rendered from these.
    #[serde(default)]
    pub templates: TemplateSettings,
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn default_output_limit() -> usize {
    DEFAULT_OUTPUT_LIMIT
}

/// The batch channel.
pub struct Batch {
    config: BatchConfig,
    templates: Templates,
}

impl Batch {
    /// Builds the channel from its configuration.
    pub fn build(
        name: &str,
        config: &BatchConfig,
        templates: &TemplateSettings,
    ) -> Result<Self, BuildError> {
        if config.timeout.is_zero() {
            return Err(BuildError::invalid(name, "timeout must be more than zero"));
        }
        Ok(Self {
            config: config.clone(),
            templates: Templates::new(name, templates, DEFAULT_BODY)?,
        })
    }

    /// The environment the script sees (besides the watchdog's own).
    fn environment(&self, message: &Message) -> Result<Vec<(String, String)>, SendError> {
        let render = |part| {
            self.templates
                .render(part, message)
                .map_err(|e| SendError::Permanent(e.to_string()))
        };
        let n = &message.notification;
        let mut env = vec![
            ("HYPERWATCH_INCIDENT_ID".to_owned(), n.incident_id.clone()),
            ("HYPERWATCH_LEVEL".to_owned(), n.level.to_string()),
            ("HYPERWATCH_REPEAT".to_owned(), n.repeat.to_string()),
            ("HYPERWATCH_STATUS".to_owned(), n.status.to_string()),
            ("HYPERWATCH_SEVERITY".to_owned(), n.severity.to_string()),
            ("HYPERWATCH_TARGET".to_owned(), n.target.clone()),
            ("HYPERWATCH_SUMMARY".to_owned(), n.summary.clone()),
            ("HYPERWATCH_POLICY".to_owned(), n.policy.clone()),
            (
                "HYPERWATCH_FIRED_AT".to_owned(),
                humantime::format_rfc3339_seconds(n.fired_at).to_string(),
            ),
            ("HYPERWATCH_IDEMPOTENCY_KEY".to_owned(), message.key.clone()),
            (
                "HYPERWATCH_TEST".to_owned(),
                u8::from(message.test).to_string(),
            ),
            (
                "HYPERWATCH_MORE".to_owned(),
                message.others.len().to_string(),
            ),
            ("HYPERWATCH_SUBJECT".to_owned(), render(Part::Subject)?),
            ("HYPERWATCH_BODY".to_owned(), render(Part::Body)?),
        ];
        for (k, v) in &n.labels {
            env.push((format!("HYPERWATCH_LABEL_{}", env_name(k)), v.clone()));
        }
        env.extend(self.config.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(env)
    }

    async fn run(&self, message: &Message) -> Result<Receipt, SendError> {
        let command = &self.config.command;
        let program = Program {
            command,
            args: &self.config.args,
            env: self.environment(message)?,
            stdin: serde_json::to_vec_pretty(&message.to_json()).unwrap_or_default(),
            timeout: self.config.timeout,
            output_limit: self.config.output_limit,
            working_dir: self.config.working_dir.as_deref(),
        };
        let run = run_program(program).await.map_err(|e| match e {
            ProgramError::Start(e) => {
                SendError::Permanent(format!("cannot run {}: {e}", command.display()))
            }
            ProgramError::Wait(e) => SendError::Transient(format!("waiting for script: {e}")),
        })?;
        let output = run.output;
        match run.status {
            None => Err(SendError::Transient(format!(
                "{} did not finish within {:?}: its process group was killed; {output}",
                command.display(),
                self.config.timeout
            ))),
            Some(s) if s.success() => Ok(Receipt {
                answer: "exit status 0".to_owned(),
                detail: output,
            }),
            Some(s) => {
                let text = format!(
                    "{} failed with {}; {output}",
                    command.display(),
                    describe_status(s)
                );
                if s.code() == Some(EX_TEMPFAIL) {
                    Err(SendError::Transient(text))
                } else {
                    Err(SendError::Permanent(text))
                }
            }
        }
    }
}

/// A program to run on the watchdog host: the batch channel's scripts and
/// the policies' batch steps.
pub struct Program<'a> {
    /// The program.
    pub command: &'a Path,
    /// Its arguments.
    pub args: &'a [String],
    /// Environment variables besides the watchdog's own.
    pub env: Vec<(String, String)>,
    /// Written to its stdin (a program that does not read it is fine).
    pub stdin: Vec<u8>,
    /// Bound on the run; then its whole process group is killed.
    pub timeout: Duration,
    /// Bound on the captured stdout and on the captured stderr, bytes.
    pub output_limit: usize,
    /// The working directory (default: the watchdog's).
    pub working_dir: Option<&'a Path>,
}

/// How a program run ended.
#[derive(Debug)]
pub struct ProgramRun {
    /// Its exit status; `None` when it was killed at the timeout.
    pub status: Option<std::process::ExitStatus>,
    /// Its captured stdout and stderr, cut to the bound.
    pub output: String,
}

/// A program that could not be run or waited for.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// It did not start (missing, not executable).
    #[error("cannot start it: {0}")]
    Start(std::io::Error),
    /// Waiting for it failed.
    #[error("waiting for it failed: {0}")]
    Wait(std::io::Error),
}

/// "exit status 3" or "killed by signal: 9 (SIGKILL)".
pub fn describe_status(s: std::process::ExitStatus) -> String {
    match s.code() {
        Some(code) => format!("exit status {code}"),
        None => format!("killed by {s}"),
    }
}

/// Kills a process group when dropped before [`GroupGuard::reaped`]: a
/// run abandoned half-way (its task cancelled) leaves nothing behind.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn reaped(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = signal::killpg(pgid, signal::Signal::SIGKILL);
        }
    }
}

/// Runs a program in its own process group with a bound: at the timeout
/// (or when the returned future is dropped) the whole group is killed,
/// children included; output is captured up to the bound.
pub async fn run_program(p: Program<'_>) -> Result<ProgramRun, ProgramError> {
    let mut cmd = tokio::process::Command::new(p.command);
    cmd.args(p.args)
        .envs(p.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so the timeout can kill its children too.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = p.working_dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(ProgramError::Start)?;
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    let mut guard = GroupGuard(pgid);

    let stdin_bytes = p.stdin;
    let mut stdin = child.stdin.take();
    let feed = async move {
        if let Some(stdin) = stdin.as_mut() {
            // A script that does not read stdin closes it: not an error.
            let _ = stdin.write_all(&stdin_bytes).await;
        }
    };
    let limit = p.output_limit;
    let stdout = tokio::spawn(capture(child.stdout.take(), limit));
    let stderr = tokio::spawn(capture(child.stderr.take(), limit));

    let waited = tokio::time::timeout(p.timeout, async {
        feed.await;
        child.wait().await
    })
    .await;
    let status = match waited {
        Ok(status) => {
            guard.reaped();
            Some(status.map_err(ProgramError::Wait)?)
        }
        Err(_) => {
            drop(guard);
            let _ = child.wait().await;
            None
        }
    };
    let out = drain(stdout).await;
    let err = drain(stderr).await;
    Ok(ProgramRun {
        status,
        output: format!("stdout:\n{out}\nstderr:\n{err}"),
    })
}

impl Channel for Batch {
    fn kind(&self) -> &'static str {
        "batch"
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.run(message))
    }
}

/// A label name as an environment variable suffix: upper case, anything
/// but letters and digits becomes `_`.
fn env_name(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Reads a stream to its end, keeping at most `limit` bytes.
async fn capture(stream: Option<impl AsyncRead + Unpin>, limit: usize) -> String {
    let Some(mut stream) = stream else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut total = 0usize;
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        total += n;
        let room = limit.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if total > kept.len() {
        text.push_str(&format!(
            "\n[... {} more bytes not kept]",
            total - kept.len()
        ));
    }
    text
}

/// The captured output, waiting at most [`PIPE_DRAIN_GRACE`] for a pipe a
/// background process still holds open.
async fn drain(task: tokio::task::JoinHandle<String>) -> String {
    match tokio::time::timeout(PIPE_DRAIN_GRACE, task).await {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => format!("[output lost: {e}]"),
        Err(_) => "[output not read: a background process still holds the pipe open]".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_become_variable_names() {
        assert_eq!(env_name("rack"), "RACK");
        assert_eq!(env_name("k8s.io/zone-a"), "K8S_IO_ZONE_A");
    }

    #[tokio::test]
    async fn capture_keeps_the_first_bytes_and_says_how_many_were_dropped() {
        let data: &[u8] = &[b'x'; 10_000];
        let text = capture(Some(data), 100).await;
        assert!(text.starts_with(&"x".repeat(100)));
        assert!(text.ends_with("[... 9900 more bytes not kept]"), "{text}");
    }
}
