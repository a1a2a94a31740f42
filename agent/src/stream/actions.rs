//! Named actions the watchdog may ask for, from the agent's own allowlist
//! (`[actions.NAME] argv = [...]`). Arguments fill whole `{placeholder}`
//! elements of the argv; nothing else is ever run, no shell is involved,
//! and a value cannot smuggle in an option.
//!
//! [`CommandHandler`] is what the stream asks: the [`Allowlist`] in a real
//! agent, the simulated host in simulation mode.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    pin::Pin,
    process::Stdio,
    time::{Duration, Instant},
};

use hyperwatch_proto::v1::{self, CommandStatus};

use crate::config::ActionConfig;

/// Captured output kept per stream (stdout, stderr): enough for a reason,
/// small enough for the stream.
const OUTPUT_LIMIT: usize = 4096;

/// A command's result, to come.
pub type ResultFuture<'a> = Pin<Box<dyn Future<Output = v1::CommandResult> + Send + 'a>>;

/// Answers the watchdog's commands; always with a result.
pub trait CommandHandler: Send + Sync {
    fn handle(&self, command: v1::Command) -> ResultFuture<'_>;
}

/// The `[actions]` allowlist of the configuration: programs run without a
/// shell.
pub struct Allowlist(pub BTreeMap<String, ActionConfig>);

impl CommandHandler for Allowlist {
    fn handle(&self, command: v1::Command) -> ResultFuture<'_> {
        Box::pin(run(&self.0, command))
    }
}

/// Runs `command` if the allowlist has it; always returns a result.
pub async fn run(
    allowlist: &BTreeMap<String, ActionConfig>,
    command: v1::Command,
) -> v1::CommandResult {
    let started = Instant::now();
    let mut result = v1::CommandResult {
        id: command.id,
        ..Default::default()
    };
    let Some(action) = allowlist.get(&command.action) else {
        result.status = CommandStatus::Refused as i32;
        result.message = format!(
            "action {:?} is not in this agent's allowlist",
            command.action
        );
        tracing::warn!(action = %command.action, "refused a command not in the allowlist");
        return result;
    };
    let argv = match expand(&action.argv, &command.args) {
        Ok(a) => a,
        Err(message) => {
            result.status = CommandStatus::Refused as i32;
            result.message = message;
            tracing::warn!(action = %command.action, reason = %result.message, "refused a command");
            return result;
        }
    };
    tracing::info!(action = %command.action, ?argv, "running action");
    let child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            result.status = CommandStatus::Failed as i32;
            result.message = format!("cannot start {:?}: {e}", argv[0]);
            return result;
        }
    };
    let limit = Duration::try_from_secs_f64(action.timeout_seconds).unwrap_or(Duration::MAX);
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Err(_) => {
            result.status = CommandStatus::TimedOut as i32;
            result.message = format!("killed after {limit:?}");
        }
        Ok(Err(e)) => {
            result.status = CommandStatus::Failed as i32;
            result.message = format!("waiting for {:?}: {e}", argv[0]);
        }
        Ok(Ok(out)) => {
            use std::os::unix::process::ExitStatusExt;
            result.exit_code = out.status.code();
            result.signal = out.status.signal();
            result.stdout = cut(&out.stdout);
            result.stderr = cut(&out.stderr);
            result.status = if out.status.success() {
                CommandStatus::Succeeded as i32
            } else {
                result.message = format!("{:?} exited with {}", argv[0], out.status);
                CommandStatus::Failed as i32
            };
        }
    }
    result.duration_ms = started.elapsed().as_millis() as u64;
    result
}

/// The argv with placeholders filled; every argument must fill one and
/// every placeholder must be filled.
fn expand(argv: &[String], args: &HashMap<String, String>) -> Result<Vec<String>, String> {
    let mut used = 0;
    let mut out = Vec::with_capacity(argv.len());
    for element in argv {
        let name = element.strip_prefix('{').and_then(|e| e.strip_suffix('}'));
        match name {
            Some(name) => {
                let value = args
                    .get(name)
                    .ok_or_else(|| format!("argument {name:?} is missing"))?;
                if value.is_empty() || value.starts_with('-') || value.contains('\0') {
                    return Err(format!(
                        "argument {name:?} = {value:?} is not acceptable (empty, an option, or a NUL)"
                    ));
                }
                used += 1;
                out.push(value.clone());
            }
            None => out.push(element.clone()),
        }
    }
    if used < args.len() {
        let unknown: Vec<&String> = args
            .keys()
            .filter(|k| !argv.iter().any(|e| e == &format!("{{{k}}}")))
            .collect();
        return Err(format!("arguments {unknown:?} are not used by this action"));
    }
    if out.is_empty() {
        return Err("the action has an empty argv".into());
    }
    Ok(out)
}

fn cut(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(OUTPUT_LIMIT)]);
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowlist() -> BTreeMap<String, ActionConfig> {
        let mut m = BTreeMap::new();
        m.insert(
            "echo".into(),
            ActionConfig {
                argv: vec!["/bin/echo".into(), "hello".into(), "{who}".into()],
                timeout_seconds: 5.0,
            },
        );
        m.insert(
            "sleep".into(),
            ActionConfig {
                argv: vec!["/bin/sleep".into(), "5".into()],
                timeout_seconds: 0.2,
            },
        );
        m
    }

    fn command(action: &str, args: &[(&str, &str)]) -> v1::Command {
        v1::Command {
            id: 7,
            action: action.into(),
            args: args
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            run_id: String::new(),
        }
    }

    #[tokio::test]
    async fn runs_an_allowed_action_with_its_argument() {
        let r = run(&allowlist(), command("echo", &[("who", "world")])).await;
        assert_eq!(r.status, CommandStatus::Succeeded as i32, "{r:?}");
        assert_eq!(
            (r.id, r.stdout.as_str(), r.exit_code),
            (7, "hello world\n", Some(0))
        );
    }

    #[tokio::test]
    async fn refuses_unknown_actions_and_bad_arguments() {
        for (c, why) in [
            (command("rm", &[]), "allowlist"),
            (command("echo", &[]), "missing"),
            (command("echo", &[("who", "--help")]), "not acceptable"),
            (command("echo", &[("who", "x"), ("extra", "y")]), "not used"),
        ] {
            let r = run(&allowlist(), c).await;
            assert_eq!(r.status, CommandStatus::Refused as i32, "{r:?}");
            assert!(r.message.contains(why), "{}", r.message);
        }
    }

    #[tokio::test]
    async fn kills_an_action_past_its_time_limit() {
        let r = run(&allowlist(), command("sleep", &[])).await;
        assert_eq!(r.status, CommandStatus::TimedOut as i32, "{r:?}");
        assert!(r.duration_ms < 2000);
    }
}
