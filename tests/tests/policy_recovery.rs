//! Recovery end to end, with real processes: a watchdog running the shipped
//! service-crashed policy and an agent watching a real service (a process
//! found by its pidfile) with an allowlisted `restart-service` action (a
//! script that starts it again).
//!
//! * Killing the service makes the policy ask the agent to restart it; the
//!   restart is verified (the service is back) and the incident resolves
//!   without a page. A second kill within the hour escalates to the console
//!   at once: the recovery budget (one run per hour) is used up.
//! * Killing the watchdog with SIGKILL in the middle of an incident's
//!   recovery: after its restart the incident resumes at the step it was
//!   on, the step that had completed is not run again, and every
//!   notification arrives exactly once.
//! * Killing the watchdog with SIGKILL while the agent runs a step: the
//!   restarted watchdog sends the step again (same run id) and the agent
//!   answers with its first run's result instead of running the action a
//!   second time.

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use anyhow::Context;
use hyperwatch_tests::{
    process::AgentProcess,
    runtime::{
        ConsoleFile, incident, timeline, unused_email_and_sms, wait_new_incident, wait_status,
        wait_until, write_policy,
    },
    watchdog::{
        ClusterCerts, HEALTHY_WITHIN, WatchdogProcess, agent_config, start_agent, watchdog_config,
    },
};
use nix::{sys::signal, unistd::Pid};

/// Bound on a policy's reaction (detection 0.2 s, a restart script, the
/// agent's next search): generous for a loaded CI machine.
const REACTS_WITHIN: Duration = Duration::from_secs(15);
/// Service check interval: the agent runs without eBPF here (the e2e
/// configuration), so it polls the process.
const CHECK_INTERVAL: f64 = 0.2;

/// A script starting the service (a `sleep` recorded in a pidfile) and
/// logging each start with the name the action passed. Like `systemctl
/// restart` of a service that takes a moment to come up, it returns before
/// the service is seen up: the pidfile appears [`COMES_UP_AFTER`] later,
/// so the step's success reaches the watchdog before the service's state
/// does, and the verification is what resolves the incident.
fn service_script(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let script = dir.join("start-service.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n# $1: the service's name, from the policy's params\necho \"$1\" >> {log}\nsleep 3141 </dev/null >/dev/null 2>&1 &\npid=$!\n(sleep {COMES_UP_AFTER}; echo $pid > {pidfile}) </dev/null >/dev/null 2>&1 &\n",
            log = dir.join("starts.log").display(),
            pidfile = dir.join("service.pid").display()
        ),
    )?;
    Ok(script)
}

/// Seconds from the start script's exit to its service being visible.
const COMES_UP_AFTER: f64 = 0.5;

/// Starts the service before the agent, and waits for its pidfile.
fn start_initial(dir: &Path, script: &Path) -> anyhow::Result<()> {
    std::process::Command::new("/bin/sh")
        .arg(script)
        .arg("initial")
        .status()?;
    wait_until("the service's pidfile", REACTS_WITHIN, || {
        Ok(service_pid(dir).ok())
    })?;
    Ok(())
}

fn service_pid(dir: &Path) -> anyhow::Result<i32> {
    Ok(std::fs::read_to_string(dir.join("service.pid"))?
        .trim()
        .parse()?)
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim().to_owned()))
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

fn starts(dir: &Path) -> anyhow::Result<Vec<String>> {
    Ok(std::fs::read_to_string(dir.join("starts.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect())
}

fn kill_service(dir: &Path) -> anyhow::Result<()> {
    signal::kill(Pid::from_raw(service_pid(dir)?), signal::SIGKILL)?;
    Ok(())
}

fn agent_services(dir: &Path, actions: &str) -> String {
    format!(
        "[[services]]\nname = \"web\"\nprocess = {{ pidfile = \"{}\" }}\ninterval_seconds = {CHECK_INTERVAL}\n\n{actions}",
        dir.join("service.pid").display()
    )
}

#[test]
fn a_killed_service_is_restarted_without_a_page_and_a_second_kill_escalates() -> anyhow::Result<()>
{
    let certs = ClusterCerts::new("e2e")?;
    let dir = certs.dir.path();
    let console = ConsoleFile::new(dir)?;
    // The shipped policies, built in: no [policies] dir.
    let extra = format!("\n{}\n{}", console.channel(), unused_email_and_sms());
    let mut watchdog = WatchdogProcess::start(dir, &watchdog_config(&certs, 0, &extra))?;
    let script = service_script(dir)?;
    start_initial(dir, &script)?;
    certs.agent("hv-svc")?;
    let actions = format!(
        "[actions.restart-service]\nargv = [\"/bin/sh\", \"{}\", \"{{service}}\"]\ntimeout_seconds = 10.0\n",
        script.display()
    );
    let mut agent = start_agent(
        dir,
        "svc",
        &agent_config(
            &certs,
            watchdog.stream_addr,
            "hv-svc",
            "hv-svc",
            &agent_services(dir, &actions),
        ),
    )?;
    watchdog.wait_for("hv-svc connected", HEALTHY_WITHIN, |w| {
        Ok(w.host("hv-svc")?.filter(|h| h["connected"] == true))
    })?;
    // The service target is known (from the hello) and running.
    std::thread::sleep(Duration::from_secs(1));

    kill_service(dir)?;
    const TARGET: &str = "service:hv-svc/web";
    let first = wait_new_incident(&watchdog, "service-crashed", TARGET, None, REACTS_WITHIN)?;
    let resolved = match wait_status(&watchdog, &first, "resolved", REACTS_WITHIN) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{first}: {:#?}", incident(&watchdog, &first));
            eprintln!("watchdog log:\n{}", watchdog.log().join("\n"));
            eprintln!("agent log:\n{}", agent.log().join("\n"));
            return Err(e);
        }
    };
    let lines = timeline(&watchdog, &first)?;
    let want = [
        format!("{first} firing: service-crashed on {TARGET}"),
        format!("{first} run restart-service on {TARGET} (step 1, attempt 1 of 1)"),
        format!("{first} restart-service on {TARGET} succeeded"),
        format!("{first} restart-service on {TARGET} verified: the condition cleared"),
        format!("{first} resolved"),
    ];
    for w in want {
        assert!(lines.contains(&w), "no {w:?} in {lines:#?}");
    }
    assert_eq!(
        starts(dir)?,
        ["initial", "web"],
        "restarted once, with the service's name from the policy's params"
    );
    assert!(alive(service_pid(dir)?), "the service is back up");
    assert!(
        console
            .lines()?
            .iter()
            .all(|l| !l.contains(&format!("[{first}:"))),
        "a restart that worked pages nobody: {:?}",
        console.lines()?
    );
    assert!(resolved["resolved_at"].is_string(), "{resolved}");

    // Again within the hour: the budget (one run) is used up.
    kill_service(dir)?;
    let second = wait_new_incident(
        &watchdog,
        "service-crashed",
        TARGET,
        Some(&first),
        REACTS_WITHIN,
    )?;
    let line = console.wait_for(&format!("{second}:L1:problem"), REACTS_WITHIN)?;
    assert!(
        line.contains(TARGET) && line.contains("service web on hv-svc exited"),
        "{line}"
    );
    let lines = timeline(&watchdog, &second)?;
    assert!(
        lines.iter().any(|l| l.contains(&format!(
            "recovery of {TARGET} skipped: its budget of 1 run(s) per 1h is used up"
        ))),
        "{lines:#?}"
    );
    assert_eq!(starts(dir)?.len(), 2, "no second restart");
    assert_eq!(
        watchdog.metric(
            "hyperwatch_recovery_steps_total{step=\"restart-service\",result=\"verified\"}"
        )?,
        Some(1.0)
    );
    assert_eq!(
        watchdog.metric(
            "hyperwatch_notifications_decided_total{channel=\"console\",kind=\"problem\"}"
        )?,
        Some(1.0)
    );
    Ok(())
}

/// A watchdog running one policy file (`name`, `text`) with the agent
/// action `action` allowed, its console writing to a file; the watched
/// service running; and the agent of `host` watching it, `action` being
/// `argv` there. Marks the action writes go to `marks` in the directory.
struct OnePolicy {
    watchdog: WatchdogProcess,
    console: ConsoleFile,
    marks: std::path::PathBuf,
    dir: std::path::PathBuf,
    _agent: AgentProcess,
    _certs: ClusterCerts,
}

impl OnePolicy {
    fn start(
        name: &str,
        text: &str,
        host: &str,
        action: &str,
        argv: impl FnOnce(&Path) -> String,
    ) -> anyhow::Result<Self> {
        let certs = ClusterCerts::new("e2e")?;
        let dir = certs.dir.path().to_owned();
        let console = ConsoleFile::new(&dir)?;
        write_policy(&dir.join("policies"), name, text)?;
        let extra = format!(
            "\n[policies]\ndir = \"{}\"\nactions = [\"{action}\"]\n\n{}",
            dir.join("policies").display(),
            console.channel()
        );
        let watchdog = WatchdogProcess::start(&dir, &watchdog_config(&certs, 0, &extra))?;
        let script = service_script(&dir)?;
        start_initial(&dir, &script)?;
        certs.agent(host)?;
        let marks = dir.join("marks.log");
        let actions = format!(
            "[actions.{action}]\nargv = {}\ntimeout_seconds = 30.0\n",
            argv(&marks)
        );
        let agent = start_agent(
            &dir,
            host,
            &agent_config(
                &certs,
                watchdog.stream_addr,
                host,
                host,
                &agent_services(&dir, &actions),
            ),
        )?;
        watchdog.wait_for(&format!("{host} connected"), HEALTHY_WITHIN, |w| {
            Ok(w.host(host)?.filter(|h| h["connected"] == true))
        })?;
        // The service target is known (from the hello) and running.
        std::thread::sleep(Duration::from_secs(1));
        Ok(Self {
            watchdog,
            console,
            marks,
            dir,
            _agent: agent,
            _certs: certs,
        })
    }
}

/// Three steps: mark 1 (not verified after 1 s), wait 6 s, mark 3; the
/// console hears at once and again when recovery has failed.
const RESUME_POLICY: &str = r#"version = 1
summary = "service {name} on {host} is down"

[target]
kind = "service"

[when]
state = "service"
is = ["exited", "failed"]

[[step]]
kind = "agent-action"
action = "mark"
params = { step = "1" }
verify_within = "1s"

[[step]]
kind = "wait"
duration = "6s"

[[step]]
kind = "agent-action"
action = "mark"
params = { step = "3" }
verify_within = "1s"

[[escalate]]
notify = ["console"]

[[escalate]]
if = "recovery-failed"
notify = ["console"]
"#;

#[test]
fn a_watchdog_killed_mid_incident_resumes_the_step_it_was_on() -> anyhow::Result<()> {
    let OnePolicy {
        mut watchdog,
        console,
        marks,
        dir,
        _agent,
        _certs,
    } = OnePolicy::start("svc-steps", RESUME_POLICY, "hv-res", "mark", |marks| {
        format!(
            "[\"/bin/sh\", \"-c\", \"echo \\\"$0\\\" >> {}\", \"{{step}}\"]",
            marks.display()
        )
    })?;
    let dir = dir.as_path();

    kill_service(dir)?;
    console.wait_for("inc-1:L1:problem", REACTS_WITHIN)?;
    // Step 1 ran and was not verified; step 2 (the wait) is on.
    wait_until("inc-1 at step 2", REACTS_WITHIN, || {
        Ok(incident(&watchdog, "inc-1")?.filter(|i| i["targets"][0]["recovery"]["step"] == 2))
    })?;
    let killed_at = SystemTime::now();
    let status = watchdog.kill()?;
    assert!(!status.success(), "SIGKILL: {status}");
    let marks_at_kill = std::fs::read_to_string(&marks)?;
    assert_eq!(
        marks_at_kill, "1\n",
        "step 1 had completed, step 3 not begun"
    );

    watchdog.restart()?;
    let i = incident(&watchdog, "inc-1")?.context("inc-1 survives the crash")?;
    let recovery = &i["targets"][0]["recovery"];
    assert_eq!(
        (recovery["step"].as_u64(), recovery["action"].as_str()),
        (Some(2), Some("wait")),
        "resumed at the step it was on: {i}"
    );
    assert!(
        SystemTime::now().duration_since(killed_at)? < Duration::from_secs(6),
        "the restart came within the wait, so the resumption is observed"
    );

    console.wait_for("inc-1:L2:escalation", REACTS_WITHIN)?;
    let lines = timeline(&watchdog, "inc-1")?;
    for w in [
        "inc-1 mark on service:hv-res/web not verified: the condition did not clear within 1s",
        "inc-1 wait on service:hv-res/web over: the condition is still true",
        "inc-1 run mark on service:hv-res/web (step 3, attempt 1 of 1)",
        "inc-1 recovery of service:hv-res/web failed",
    ] {
        assert!(lines.iter().any(|l| l == w), "no {w:?} in {lines:#?}");
    }
    assert_eq!(
        std::fs::read_to_string(&marks)?,
        "1\n3\n",
        "step 1 not repeated after the restart; step 3 ran once"
    );
    for key in ["inc-1:L1:problem", "inc-1:L2:escalation"] {
        assert_eq!(
            console.with_key(key)?.len(),
            1,
            "{key} exactly once: {:?}",
            console.lines()?
        );
    }
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("inc-1 run mark") && l.contains("(step 1,"))
            .count(),
        1,
        "step 1 decided once: {lines:#?}"
    );
    Ok(())
}

/// One slow step (the agent's `slow-mark` takes [`SLOW_STEP`]); the
/// service stays down, so recovery fails and the console hears it.
const SLOW_POLICY: &str = r#"version = 1
summary = "service {name} on {host} is down"

[target]
kind = "service"

[when]
state = "service"
is = ["exited", "failed"]

[[step]]
kind = "agent-action"
action = "slow-mark"
timeout = "30s"
verify_within = "1s"

[[escalate]]
if = "recovery-failed"
notify = ["console"]
"#;

/// How long the slow step runs on the agent: long enough for the watchdog
/// to be killed, restarted and reconnected to while it runs.
const SLOW_STEP: u32 = 5;

#[test]
fn a_step_sent_again_after_a_watchdog_crash_is_not_run_twice() -> anyhow::Result<()> {
    let OnePolicy {
        mut watchdog,
        console,
        marks,
        dir,
        _agent,
        _certs,
    } = OnePolicy::start("svc-slow", SLOW_POLICY, "hv-dup", "slow-mark", |marks| {
        format!(
            "[\"/bin/sh\", \"-c\", \"echo run >> {}; sleep {SLOW_STEP}\"]",
            marks.display()
        )
    })?;
    let dir = dir.as_path();

    kill_service(dir)?;
    wait_until("the agent running the step", REACTS_WITHIN, || {
        Ok(std::fs::read_to_string(&marks)
            .ok()
            .filter(|m| !m.is_empty()))
    })?;
    let status = watchdog.kill()?;
    assert!(!status.success(), "SIGKILL: {status}");
    watchdog.restart()?;

    let answered = wait_until("the step's result after the restart", REACTS_WITHIN, || {
        Ok(timeline(&watchdog, "inc-1")?
            .into_iter()
            .find(|l| l.contains("ran slow-mark (command")))
    })?;
    assert!(
        answered.contains("the agent had already run this step"),
        "the agent answered from its first run: {answered}"
    );
    let lines = timeline(&watchdog, "inc-1")?;
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("sent again after a restart (awaited)")),
        "the restarted watchdog sent the step again: {lines:#?}"
    );
    console.wait_for("inc-1:L1:problem", REACTS_WITHIN)?;
    assert_eq!(
        std::fs::read_to_string(&marks)?,
        "run\n",
        "the action ran once, though the step was sent twice"
    );
    Ok(())
}
