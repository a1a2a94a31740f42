//! Hot reload of the policies, end to end: a running watchdog notices a
//! policy file that changed; a file that does not check is not applied (the
//! running set stays and keeps working, the error names file, line and
//! column in the log and the API, and the metrics say so); the fixed file
//! is applied; SIGHUP reloads too.

use std::time::Duration;

use hyperwatch_tests::{
    http,
    runtime::{ConsoleFile, wait_new_incident, wait_until, write_policy},
    watchdog::{ClusterCerts, WatchdogProcess, watchdog_config},
};
use nix::{sys::signal, unistd::Pid};

/// How often the watchdog looks at the files here.
const POLL: &str = "0.2";
/// Bound on a reload being noticed and applied.
const WITHIN: Duration = Duration::from_secs(10);

fn alert_policy(alert: &str) -> String {
    format!(
        "version = 1\n\n[target]\nkind = \"host\"\n\n[when]\nstate = \"alert:{alert}\"\nis = \"firing\"\n\n[[escalate]]\nnotify = [\"console\"]\n"
    )
}

fn alert(alert: &str, host: &str) -> String {
    format!(
        r#"{{"version":"4","alerts":[{{"status":"firing","labels":{{"alertname":"{alert}","host":"{host}"}}}}]}}"#
    )
}

fn policies(w: &WatchdogProcess) -> anyhow::Result<Vec<String>> {
    Ok(w.get_json("/api/v1/policies")?["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect())
}

#[test]
fn a_broken_policy_is_not_applied_and_the_fixed_one_is() -> anyhow::Result<()> {
    let certs = ClusterCerts::new("e2e")?;
    let dir = certs.dir.path();
    let pdir = dir.join("policies");
    let console = ConsoleFile::new(dir)?;
    write_policy(&pdir, "first", &alert_policy("First"))?;
    let extra = format!(
        "\n[policies]\ndir = \"{}\"\npoll_seconds = {POLL}\n\n{}",
        pdir.display(),
        console.channel()
    );
    let mut watchdog = WatchdogProcess::start(dir, &watchdog_config(&certs, 0, &extra))?;
    assert_eq!(policies(&watchdog)?, ["first"]);
    assert_eq!(
        watchdog.metric("hyperwatch_policy_reload_success")?,
        Some(1.0)
    );

    // `kind = "hots"`: line 4, column 8.
    let broken = alert_policy("Second").replace("kind = \"host\"", "kind = \"hots\"");
    write_policy(&pdir, "second", &broken)?;
    wait_until("the refused reload in the metrics", WITHIN, || {
        Ok(watchdog
            .metric("hyperwatch_policy_reload_errors_total")?
            .filter(|n| *n == 1.0))
    })?;
    assert_eq!(
        watchdog.metric("hyperwatch_policy_reload_success")?,
        Some(0.0)
    );
    let status = watchdog.get_json("/api/v1/policies")?;
    assert_eq!(policies(&watchdog)?, ["first"], "the running set stays");
    let error = status["last_reload"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("second.toml:4:8"), "{status}");
    assert!(error.contains("did you mean `host`?"), "{status}");
    assert!(
        watchdog
            .log()
            .iter()
            .any(|l| l.contains("policy reload refused")),
        "the refusal is logged"
    );
    // The running set still works.
    let r = http::post(
        watchdog.http_addr,
        "/api/v1/alertmanager",
        &alert("First", "hv-1"),
    )?;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = wait_new_incident(&watchdog, "first", "host:hv-1", None, WITHIN)?;
    console.wait_for(&format!("{id}:L1:problem"), WITHIN)?;

    write_policy(&pdir, "second", &alert_policy("Second"))?;
    wait_until("the fixed set applied", WITHIN, || {
        Ok(watchdog
            .metric("hyperwatch_policy_reload_success")?
            .filter(|v| *v == 1.0))
    })?;
    assert_eq!(policies(&watchdog)?, ["first", "second"]);
    assert_eq!(
        watchdog.metric("hyperwatch_policy_reloads_total{trigger=\"change\"}")?,
        Some(2.0)
    );
    assert_eq!(
        watchdog.metric("hyperwatch_policy_reload_errors_total")?,
        Some(1.0)
    );
    let r = http::post(
        watchdog.http_addr,
        "/api/v1/alertmanager",
        &alert("Second", "hv-2"),
    )?;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = wait_new_incident(&watchdog, "second", "host:hv-2", None, WITHIN)?;
    console.wait_for(&format!("{id}:L1:problem"), WITHIN)?;

    signal::kill(Pid::from_raw(watchdog.pid() as i32), signal::SIGHUP)?;
    wait_until("the SIGHUP reload", WITHIN, || {
        Ok(watchdog
            .metric("hyperwatch_policy_reloads_total{trigger=\"sighup\"}")?
            .filter(|n| *n == 1.0))
    })?;
    assert_eq!(
        watchdog.metric("hyperwatch_policy_reload_success")?,
        Some(1.0)
    );
    Ok(())
}
