//! Carrying out the recovery steps the engine decides: agent actions
//! through [`CommandRouter::send_command`], batch files on the watchdog host
//! through the batch channel's bounded runner, failover, rebalance and LUN
//! moves through the [`PlanExecutor`]. Each step runs as its own task and
//! reports its result (with what the executor said, for the audit log);
//! a cancelled step's task is aborted, which kills a batch file's process
//! group.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime},
};

use hyperwatch_policies::{
    decision::StepRun, input::StepResult, policy::StepAction, policy::render_summary,
};
use tokio::{sync::mpsc, task::JoinHandle};

use super::{notify::system_time, planner::PlanExecutor};
use crate::{
    channels::batch::{Program, ProgramError, describe_status, run_program},
    commands::{CommandError, CommandOutcome, CommandRouter},
    registry::Registry,
};

/// Captured output of a batch step kept for the audit log, per stream.
const BATCH_OUTPUT_LIMIT: usize = 16 * 1024;
/// How often a step for a disconnected host looks for its agent again:
/// after a watchdog restart agents reconnect within about a second.
const RECONNECT_POLL: Duration = Duration::from_millis(200);
/// Output quoted in an audit line, per stream.
const AUDIT_OUTPUT_CHARS: usize = 2000;

/// What became of a step, with what the executor said.
#[derive(Debug)]
pub struct StepReport {
    /// The step run.
    pub run: hyperwatch_policies::RunId,
    /// Its result, for the engine.
    pub result: StepResult,
    /// What happened, in words, for the audit log.
    pub detail: String,
}

/// Runs steps and reports their results on a channel.
pub struct StepRunner {
    commands: Arc<CommandRouter>,
    registry: Arc<Registry>,
    planner: Arc<dyn PlanExecutor>,
    reports: mpsc::Sender<StepReport>,
    running: HashMap<hyperwatch_policies::RunId, JoinHandle<()>>,
}

impl StepRunner {
    /// A runner reporting on `reports`.
    pub fn new(
        commands: Arc<CommandRouter>,
        registry: Arc<Registry>,
        planner: Arc<dyn PlanExecutor>,
        reports: mpsc::Sender<StepReport>,
    ) -> Self {
        Self {
            commands,
            registry,
            planner,
            reports,
            running: HashMap::new(),
        }
    }

    /// Starts a step. `labels` fill `{placeholders}` in agent-action
    /// parameters and batch arguments; `decided_at` plus the step's
    /// timeout is when the engine stops waiting.
    pub fn start(
        &mut self,
        run: StepRun,
        policy: &str,
        labels: BTreeMap<String, String>,
        decided_at: hyperwatch_policies::time::Timestamp,
    ) {
        self.running.retain(|_, t| !t.is_finished());
        let deadline = system_time(decided_at.plus(run.timeout));
        let id = run.run.clone();
        let key = id.clone();
        let reports = self.reports.clone();
        let task = match &run.action {
            StepAction::Wait { .. } => return,
            StepAction::AgentAction { action, params } => {
                let args: BTreeMap<String, String> = params
                    .iter()
                    .map(|(k, v)| (k.clone(), render_summary(v, policy, &labels)))
                    .collect();
                let (action, host) = (action.clone(), run.host.clone());
                let (commands, registry) = (self.commands.clone(), self.registry.clone());
                tokio::spawn(async move {
                    let (result, detail) = agent_action(
                        &commands,
                        &registry,
                        host,
                        &action,
                        args,
                        id.to_string(),
                        deadline,
                    )
                    .await;
                    report(&reports, id, result, detail).await;
                })
            }
            StepAction::Batch { command, args } => {
                let args: Vec<String> = args
                    .iter()
                    .map(|a| render_summary(a, policy, &labels))
                    .collect();
                let command = command.clone();
                let timeout = Duration::from_millis(run.timeout.0);
                tokio::spawn(async move {
                    let (result, detail) = batch(&command, &args, &run, &labels, timeout).await;
                    report(&reports, id, result, detail).await;
                })
            }
            StepAction::Failover | StepAction::Rebalance | StepAction::MoveLuns => {
                let planner = self.planner.clone();
                tokio::spawn(async move {
                    let label = run.action.label().to_owned();
                    let result = planner.execute(run).await;
                    let detail = format!("planner answered {label}: {result:?}");
                    report(&reports, id, result, detail).await;
                })
            }
        };
        self.running.insert(key, task);
    }

    /// Stops a step the engine no longer wants; says what was done.
    pub fn cancel(&mut self, run: &hyperwatch_policies::RunId) -> &'static str {
        match self.running.remove(run) {
            Some(t) if !t.is_finished() => {
                t.abort();
                "stopped it (a batch file's process group is killed; an agent action already sent runs to its end on the agent)"
            }
            _ => "it had already ended",
        }
    }
}

async fn report(
    reports: &mpsc::Sender<StepReport>,
    run: hyperwatch_policies::RunId,
    result: StepResult,
    detail: String,
) {
    // The runtime stopping is the only way this fails: the result is then
    // not needed (the step is awaited again after the restart).
    let _ = reports
        .send(StepReport {
            run,
            result,
            detail,
        })
        .await;
}

/// Sends the action to the host's agent with the step's run id, waiting
/// (until the step's deadline) for the agent to be connected: after a
/// watchdog restart the agents are back within about a second, and one
/// that already ran the run id answers with that run's result.
async fn agent_action(
    commands: &CommandRouter,
    registry: &Registry,
    host: Option<String>,
    action: &str,
    args: BTreeMap<String, String>,
    run_id: String,
    deadline: SystemTime,
) -> (StepResult, String) {
    let Some(host) = host else {
        let why = "the target is on no known host, so no agent can run it".to_owned();
        return (StepResult::NotAvailable(why.clone()), why);
    };
    while registry.connection(&host).is_none() {
        if SystemTime::now() >= deadline {
            let why =
                format!("the agent of host {host} was not connected before the step's deadline");
            return (StepResult::Failed(why.clone()), why);
        }
        tokio::time::sleep(RECONNECT_POLL).await;
    }
    match commands.send_step(&host, action, args, run_id).await {
        Ok(o) => outcome(&host, o),
        Err(e) => {
            let why = e.to_string();
            let result = match e {
                CommandError::UnknownHost(_) => StepResult::NotAvailable(why.clone()),
                _ => StepResult::Failed(why.clone()),
            };
            (result, format!("sending {action} to {host}: {why}"))
        }
    }
}

fn outcome(host: &str, o: CommandOutcome) -> (StepResult, String) {
    let how = match (o.exit_code, o.signal) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        (None, None) => "no exit status".to_owned(),
    };
    let mut detail = format!(
        "host {host} ran {} (command {}): {} ({how}) in {} ms",
        o.action, o.id, o.status, o.duration_ms
    );
    if o.repeated {
        detail.push_str(
            "; the agent had already run this step (sent again after a watchdog restart): this is its first run's result, it did not run again",
        );
    }
    if !o.message.is_empty() {
        detail.push_str(&format!("; {}", o.message));
    }
    for (name, text) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        if !text.trim().is_empty() {
            let cut: String = text.chars().take(AUDIT_OUTPUT_CHARS).collect();
            detail.push_str(&format!("\n{name}: {}", cut.trim_end()));
        }
    }
    let why = if o.message.is_empty() {
        format!("{} on {host}: {how}", o.status)
    } else {
        o.message.clone()
    };
    let result = match o.status {
        "succeeded" => StepResult::Succeeded,
        "refused" => StepResult::NotAvailable(why),
        _ => StepResult::Failed(why),
    };
    (result, detail)
}

/// Runs a batch step on the watchdog host: the incident in `HYPERWATCH_*`
/// variables and the step as JSON on stdin.
async fn batch(
    command: &str,
    args: &[String],
    run: &StepRun,
    labels: &BTreeMap<String, String>,
    timeout: Duration,
) -> (StepResult, String) {
    let mut env = vec![
        (
            "HYPERWATCH_INCIDENT_ID".to_owned(),
            run.run.incident.to_string(),
        ),
        ("HYPERWATCH_RUN_ID".to_owned(), run.run.to_string()),
        ("HYPERWATCH_TARGET".to_owned(), run.target.to_string()),
        (
            "HYPERWATCH_HOST".to_owned(),
            run.host.clone().unwrap_or_default(),
        ),
        ("HYPERWATCH_STEP".to_owned(), run.step.to_string()),
        ("HYPERWATCH_ATTEMPT".to_owned(), run.attempt.to_string()),
    ];
    for (k, v) in labels {
        let name: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        env.push((format!("HYPERWATCH_LABEL_{name}"), v.clone()));
    }
    let stdin = serde_json::to_vec_pretty(&serde_json::json!({
        "run": run.run.to_string(),
        "incident": run.run.incident.to_string(),
        "target": run.target.to_string(),
        "host": run.host,
        "step": run.step,
        "attempt": run.attempt,
        "attempts": run.attempts,
        "labels": labels,
    }))
    .unwrap_or_default();
    let program = Program {
        command: Path::new(command),
        args,
        env,
        stdin,
        timeout,
        output_limit: BATCH_OUTPUT_LIMIT,
        working_dir: None,
    };
    match run_program(program).await {
        Err(ProgramError::Start(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            let why = format!("{command} does not exist");
            (StepResult::NotAvailable(why.clone()), why)
        }
        Err(e) => {
            let why = format!("{command}: {e}");
            (StepResult::Failed(why.clone()), why)
        }
        Ok(r) => match r.status {
            None => {
                let why = format!(
                    "{command} did not finish within {timeout:?}: its process group was killed"
                );
                (
                    StepResult::Failed(why.clone()),
                    format!("{why}\n{}", r.output),
                )
            }
            Some(s) if s.success() => (
                StepResult::Succeeded,
                format!("{command} exited 0\n{}", r.output),
            ),
            Some(s) => {
                let why = format!("{command} failed with {}", describe_status(s));
                (
                    StepResult::Failed(why.clone()),
                    format!("{why}\n{}", r.output),
                )
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use hyperwatch_policies::{IncidentId, RunId, time::Duration as Span};

    use super::*;

    fn step(command: &str) -> StepRun {
        let target: hyperwatch_policies::target::TargetRef = "service:hv1/web".parse().unwrap();
        StepRun {
            run: RunId {
                incident: IncidentId(4),
                target: target.clone(),
                run: 1,
                step: 2,
                attempt: 1,
            },
            target,
            host: Some("hv1".into()),
            step: 2,
            attempt: 1,
            attempts: 1,
            timeout: Span::secs(5),
            action: StepAction::Batch {
                command: command.into(),
                args: Vec::new(),
            },
        }
    }

    fn script(dir: &Path, body: &str) -> String {
        let path = dir.join("step.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        let mut perm = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&path, perm).unwrap();
        path.display().to_string()
    }

    #[tokio::test]
    async fn a_batch_step_sees_the_incident_and_its_exit_status_is_the_result() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("seen");
        let cmd = script(
            dir.path(),
            &format!(
                "echo \"$HYPERWATCH_RUN_ID $HYPERWATCH_LABEL_RACK $1\" > {o}; cat >> {o}",
                o = out.display()
            ),
        );
        let labels = BTreeMap::from([("rack".to_owned(), "r7".to_owned())]);
        let args = ["{rack}".to_owned()];
        let rendered: Vec<String> = args
            .iter()
            .map(|a| render_summary(a, "p", &labels))
            .collect();
        let (result, detail) = batch(
            &cmd,
            &rendered,
            &step(&cmd),
            &labels,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(result, StepResult::Succeeded, "{detail}");
        let seen = std::fs::read_to_string(&out).unwrap();
        assert!(
            seen.starts_with("inc-4/service:hv1/web/run1/step2/try1 r7 r7\n"),
            "{seen}"
        );
        assert!(seen.contains("\"target\": \"service:hv1/web\""), "{seen}");

        let failing = script(dir.path(), "echo broken >&2; exit 3");
        let (result, detail) = batch(
            &failing,
            &[],
            &step(&failing),
            &labels,
            Duration::from_secs(5),
        )
        .await;
        assert!(
            matches!(&result, StepResult::Failed(why) if why.contains("exit status 3")),
            "{result:?}"
        );
        assert!(detail.contains("broken"), "the output is kept: {detail}");

        let (result, _) = batch(
            "/nonexistent/step",
            &[],
            &step("/nonexistent/step"),
            &labels,
            Duration::from_secs(5),
        )
        .await;
        assert!(matches!(result, StepResult::NotAvailable(_)), "{result:?}");
    }

    #[tokio::test]
    async fn a_hanging_batch_step_is_killed_with_its_children_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("child.pid");
        let cmd = script(
            dir.path(),
            &format!("sleep 300 & echo $! > {}; wait", pid.display()),
        );
        let started = std::time::Instant::now();
        let (result, _) = batch(
            &cmd,
            &[],
            &step(&cmd),
            &BTreeMap::new(),
            Duration::from_millis(500),
        )
        .await;
        assert!(
            matches!(&result, StepResult::Failed(why) if why.contains("did not finish")),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        let child: i32 = std::fs::read_to_string(&pid)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed (a zombie at most until its parent, gone too, is reaped).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let state = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let state = state.rsplit(')').next().unwrap_or("").trim().to_owned();
        assert!(
            state.is_empty() || state.starts_with('Z'),
            "the script's child survived: {state}"
        );
    }
}
