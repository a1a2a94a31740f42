//! Any hypervisor, through command lines: one argv template per step, with
//! `{vm}`, `{source}` and `{destination}` replaced. No shell is involved
//! (an argv is run as is), so ids cannot inject anything; a template that
//! needs a shell says `["sh", "-c", "...", ...]` itself.
//!
//! A step succeeds when its command exits 0; `confirm` says "running" by
//! exiting 0 and "not yet" by exiting 1. Commands are killed when the
//! executor's timeout for their step runs out.

use std::process::Stdio;

use serde::{Deserialize, Serialize};

use super::{Actuator, ActuatorError, ActuatorFuture, MigrationRequest};
use crate::planner::MoveKind;

/// Bytes of a failed command's stderr kept in the error.
const STDERR_KEPT: usize = 2048;

/// The command lines of a [`CommandActuator`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandTemplates {
    /// Live-migrates `{vm}` from `{source}` to `{destination}`; returns when
    /// the copy is complete.
    pub migrate: Vec<String>,
    /// Exits 0 when `{destination}` runs `{vm}`, 1 when it does not yet.
    pub confirm: Vec<String>,
    /// Releases the source copy. Empty when `migrate` already does.
    #[serde(default)]
    pub release: Vec<String>,
    /// Undoes a failed or unconfirmed migration, leaving `{vm}` running on
    /// `{source}`.
    pub abort: Vec<String>,
    /// Starts `{vm}` on `{destination}` when `{source}` has failed. Empty:
    /// restarts are not supported.
    #[serde(default)]
    pub restart: Vec<String>,
}

/// Runs the templates.
#[derive(Debug, Clone)]
pub struct CommandActuator {
    templates: CommandTemplates,
}

impl CommandActuator {
    pub fn new(templates: CommandTemplates) -> Self {
        CommandActuator { templates }
    }
}

/// `template` with the request's names in place of the placeholders.
pub fn fill(template: &[String], request: &MigrationRequest) -> Vec<String> {
    template
        .iter()
        .map(|arg| {
            arg.replace("{vm}", &request.vm)
                .replace("{source}", &request.source)
                .replace("{destination}", &request.destination)
        })
        .collect()
}

/// Kills a command's whole process group when dropped before disarmed: a
/// timed-out `sh -c` must not leave its children copying on.
struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Runs `argv` in its own process group; returns its exit code, stdout and
/// stderr, or an error when it could not start or was killed by a signal.
/// Dropping the future kills the whole group.
pub async fn run(argv: &[String]) -> Result<(i32, String, String), ActuatorError> {
    let (program, args) = argv.split_first().ok_or_else(|| ActuatorError::Io {
        what: "an empty command template".to_owned(),
        source: std::io::ErrorKind::InvalidInput.into(),
    })?;
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ActuatorError::Io {
            what: format!("starting `{program}`"),
            source,
        })?;
    let mut group = GroupKill(child.id().and_then(|pid| i32::try_from(pid).ok()));
    let output = child
        .wait_with_output()
        .await
        .map_err(|source| ActuatorError::Io {
            what: format!("waiting for `{program}`"),
            source,
        })?;
    group.0 = None;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let code = output.status.code().ok_or_else(|| ActuatorError::Command {
        command: argv.join(" "),
        status: output.status.to_string(),
        stderr: text(&output.stderr),
    })?;
    Ok((code, text(&output.stdout), text(&output.stderr)))
}

/// Runs `argv` and requires exit code 0.
pub async fn run_ok(argv: &[String]) -> Result<String, ActuatorError> {
    match run(argv).await? {
        (0, stdout, _) => Ok(stdout),
        (code, _, stderr) => {
            let mut stderr = stderr.trim().to_owned();
            stderr.truncate(stderr.floor_char_boundary(STDERR_KEPT));
            Err(ActuatorError::Command {
                command: argv.join(" "),
                status: format!("exit code {code}"),
                stderr,
            })
        }
    }
}

impl Actuator for CommandActuator {
    fn name(&self) -> &'static str {
        "command"
    }

    fn transfer<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            let template = match request.kind {
                MoveKind::Live => &self.templates.migrate,
                MoveKind::Restart if self.templates.restart.is_empty() => {
                    return Err(ActuatorError::Unsupported {
                        actuator: "command",
                        what: "restart VMs (no `restart` template)",
                    });
                }
                MoveKind::Restart => &self.templates.restart,
            };
            run_ok(&fill(template, request)).await.map(drop)
        })
    }

    fn confirm_running<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, bool> {
        Box::pin(async move {
            let argv = fill(&self.templates.confirm, request);
            match run(&argv).await? {
                (0, _, _) => Ok(true),
                (1, _, _) => Ok(false),
                (code, _, stderr) => Err(ActuatorError::Command {
                    command: argv.join(" "),
                    status: format!("exit code {code}"),
                    stderr,
                }),
            }
        })
    }

    fn release_source<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            if self.templates.release.is_empty() || request.kind == MoveKind::Restart {
                return Ok(());
            }
            run_ok(&fill(&self.templates.release, request))
                .await
                .map(drop)
        })
    }

    fn abort<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            run_ok(&fill(&self.templates.abort, request))
                .await
                .map(drop)
        })
    }
}
