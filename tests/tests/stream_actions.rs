//! Commands from the watchdog to an agent, end to end: an action in the
//! agent's allowlist runs with its argument and returns its output; an
//! action it does not list is refused by the agent; an unknown host is a
//! 404.

use hyperwatch_tests::{
    http,
    watchdog::{
        ClusterCerts, HEALTHY_WITHIN, WatchdogProcess, agent_config, start_agent, watchdog_config,
    },
};
use std::net::SocketAddr;

fn post(addr: SocketAddr, path: &str, body: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let r = http::post(addr, path, body)?;
    Ok((r.status, serde_json::from_str(&r.body)?))
}

#[test]
fn allowlisted_actions_run_and_others_are_refused() -> anyhow::Result<()> {
    let certs = ClusterCerts::new("e2e")?;
    let watchdog = WatchdogProcess::start(certs.dir.path(), &watchdog_config(&certs, 0, ""))?;
    certs.agent("hv-act")?;
    let actions =
        "[actions.greet]\nargv = [\"/bin/echo\", \"hello\", \"{who}\"]\ntimeout_seconds = 5.0\n";
    let _agent = start_agent(
        certs.dir.path(),
        "act",
        &agent_config(&certs, watchdog.stream_addr, "hv-act", "hv-act", actions),
    )?;
    watchdog.wait_for("hv-act connected", HEALTHY_WITHIN, |w| {
        Ok(w.host("hv-act")?
            .filter(|h| h["connected"] == true)
            .map(|_| ()))
    })?;
    let api = watchdog.http_addr;

    let (status, r) = post(
        api,
        "/api/v1/hosts/hv-act/actions/greet",
        r#"{"args":{"who":"world"}}"#,
    )?;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["stdout"], "hello world\n");
    assert_eq!(r["exit_code"], 0);

    let (status, r) = post(api, "/api/v1/hosts/hv-act/actions/reboot", "")?;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "refused", "{r}");
    assert!(
        r["message"].as_str().unwrap_or("").contains("allowlist"),
        "{r}"
    );

    let (status, r) = post(
        api,
        "/api/v1/hosts/hv-act/actions/greet",
        r#"{"args":{"who":"--version"}}"#,
    )?;
    assert_eq!(
        (status, r["status"].as_str()),
        (200, Some("refused")),
        "no options through arguments: {r}"
    );

    let (status, _) = post(api, "/api/v1/hosts/nobody/actions/greet", "")?;
    assert_eq!(status, 404);
    assert_eq!(
        watchdog.metric("hyperwatch_commands_total{outcome=\"succeeded\"}")?,
        Some(1.0)
    );
    assert_eq!(
        watchdog.metric("hyperwatch_commands_total{outcome=\"refused\"}")?,
        Some(2.0)
    );
    Ok(())
}
