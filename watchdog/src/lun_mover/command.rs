//! The `command` mover: a templated command for storage the project cannot
//! drive itself (an array's CLI, a cloud API tool). Arguments are given as
//! a list, never through a shell; `{lun}`, `{from}`, `{to}` and `{bytes}`
//! are replaced in each. An optional check command settles interrupted
//! moves; without one an interrupted move is run again, so the move command
//! must be idempotent (as array migration commands are).

use std::{
    io::Read,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde::Deserialize;

use super::{Cancel, Journal, LunMover, MoveError, MoveOrder, Phase, Recovered};

/// How often a running command is polled for exit and cancel.
const POLL: Duration = Duration::from_millis(50);
/// Bound on the check command: it asks a storage system a question.
const CHECK_TIMEOUT: Duration = Duration::from_secs(300);
/// Bytes of a failed command's stderr kept for the error message.
const STDERR_KEPT: usize = 4096;

/// The command mover's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandMoverConfig {
    /// Program and arguments that move a LUN, e.g.
    /// `["arrayctl", "migrate", "{lun}", "--to", "{to}"]`.
    pub run: Vec<String>,
    /// Program and arguments that exit 0 when the LUN is at `{to}` and
    /// non-zero when it is still at `{from}`; settles interrupted moves.
    #[serde(default)]
    pub check: Option<Vec<String>>,
}

/// Moves LUNs with an operator's command.
pub struct CommandMover {
    config: CommandMoverConfig,
}

impl CommandMover {
    pub fn new(config: CommandMoverConfig) -> Self {
        Self { config }
    }
}

/// `template` with the order's fields filled in.
fn expand(template: &[String], order: &MoveOrder) -> Vec<String> {
    template
        .iter()
        .map(|a| {
            a.replace("{lun}", &order.lun)
                .replace("{from}", &order.from)
                .replace("{to}", &order.to)
                .replace("{bytes}", &order.bytes.to_string())
        })
        .collect()
}

/// Runs `argv` to its end, killing it when cancelled or past `timeout`.
/// Ok(true) for exit 0, Ok(false) for another exit.
pub(super) fn run_bounded(
    argv: &[String],
    cancel: &Cancel,
    timeout: Option<Duration>,
) -> Result<(bool, String), MoveError> {
    let (program, args) = argv.split_first().ok_or_else(|| MoveError::Command {
        command: String::new(),
        status: "not run".into(),
        stderr: "the command template is empty".into(),
    })?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(MoveError::io("starting", program))?;
    let mut stderr = child.stderr.take().expect("piped");
    let reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(MoveError::io("waiting for", program))?
        {
            break status;
        }
        if cancel.is_cancelled() || timeout.is_some_and(|t| started.elapsed() > t) {
            kill(&mut child);
            return Err(MoveError::Cancelled);
        }
        thread::sleep(POLL);
    };
    let mut text = reader.join().unwrap_or_default();
    if text.len() > STDERR_KEPT {
        let cut = text.floor_char_boundary(text.len() - STDERR_KEPT);
        text.drain(..cut);
    }
    Ok((status.success(), format!("{status}\n{}", text.trim())))
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn failed(argv: &[String], detail: String) -> MoveError {
    let (status, stderr) = detail.split_once('\n').unwrap_or((&detail, ""));
    MoveError::Command {
        command: argv.join(" "),
        status: status.to_owned(),
        stderr: stderr.to_owned(),
    }
}

impl LunMover for CommandMover {
    fn name(&self) -> &'static str {
        "command"
    }

    fn describe(&self, order: &MoveOrder) -> String {
        format!("run `{}`", expand(&self.config.run, order).join(" "))
    }

    fn run(
        &self,
        order: &MoveOrder,
        journal: &mut Journal,
        cancel: &Cancel,
    ) -> Result<(), MoveError> {
        journal.advance(Phase::Copying, &[])?;
        let argv = expand(&self.config.run, order);
        match run_bounded(&argv, cancel, None)? {
            (true, _) => journal.advance(Phase::Switched, &[]),
            (false, detail) => Err(failed(&argv, detail)),
        }
    }

    fn recover(&self, journal: &mut Journal) -> Result<Recovered, MoveError> {
        let order = journal.record().order.clone();
        let never = Cancel::default();
        if let Some(check) = &self.config.check {
            let argv = expand(check, &order);
            let (at_destination, _) = run_bounded(&argv, &never, Some(CHECK_TIMEOUT))?;
            return Ok(if at_destination {
                Recovered::Finished
            } else {
                Recovered::RolledBack
            });
        }
        let argv = expand(&self.config.run, &order);
        match run_bounded(&argv, &never, None)? {
            (true, _) => Ok(Recovered::Finished),
            (false, detail) => Err(failed(&argv, detail)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> MoveOrder {
        MoveOrder {
            lun: "vol 1".into(),
            from: "a".into(),
            to: "b".into(),
            bytes: 42,
        }
    }

    fn mover(run: &[&str], check: Option<&[&str]>) -> CommandMover {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        CommandMover::new(CommandMoverConfig {
            run: own(run),
            check: check.map(own),
        })
    }

    #[test]
    fn runs_the_template_without_a_shell_and_reports_failure() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!("printf '%s|' \"$@\" > {}", out.display());
        let m = mover(
            &[
                "sh", "-c", &script, "sh", "{lun}", "{from}", "{to}", "{bytes}",
            ],
            None,
        );
        let mut j = Journal::create(dir.path(), "command", &order()).unwrap();
        m.run(&order(), &mut j, &Cancel::default()).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "vol 1|a|b|42|");

        let bad = mover(&["sh", "-c", "echo no room >&2; exit 3"], None);
        let err = bad
            .run(&order(), &mut j, &Cancel::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exit status: 3") && err.contains("no room"),
            "{err}"
        );
    }

    #[test]
    fn a_cancelled_command_is_killed_and_the_check_settles_it() {
        let dir = tempfile::tempdir().unwrap();
        let m = mover(&["sleep", "30"], Some(&["sh", "-c", "test {to} = b"]));
        let mut j = Journal::create(dir.path(), "command", &order()).unwrap();
        let cancel = Cancel::default();
        cancel.cancel();
        let start = Instant::now();
        assert!(matches!(
            m.run(&order(), &mut j, &cancel),
            Err(MoveError::Cancelled)
        ));
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(m.recover(&mut j).unwrap(), Recovered::Finished);
        let not_there = mover(&["true"], Some(&["false"]));
        assert_eq!(not_there.recover(&mut j).unwrap(), Recovered::RolledBack);
    }
}
