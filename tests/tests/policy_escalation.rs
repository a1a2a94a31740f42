//! Escalation end to end, with real processes and real receivers:
//!
//! * A host's agent is killed; the failure detector declares it failed, the
//!   heartbeat policy fires, and each ladder level's notification reaches
//!   its receiver at the policy's time (within 1 s): the email at 2 s in
//!   the aiosmtpd sink, the SMS at 5 s at a local HTTP gateway.
//! * Alerts from Alertmanager's webhook open incidents; `hyperwatch ack`
//!   (the CLI, a real process) is told to the console that had the page and
//!   stops the acknowledged incident's escalation while the other one
//!   escalates; `hyperwatch silence add` reports a
//!   silence that matches nothing; a resolved alert resolves the incident.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyperwatch_tests::{
    http,
    runtime::{
        ConsoleFile, SmsGateway, SmtpSink, cli, time, timeline, wait_new_incident, wait_status,
        wait_until, write_policy,
    },
    watchdog::{
        ClusterCerts, HEALTHY_WITHIN, WatchdogProcess, agent_config, start_agent, watchdog_config,
    },
};

/// How far a notification may arrive from the policy's time: the issue's
/// bound.
const TOLERANCE: Duration = Duration::from_secs(1);
/// Bound on the failure detector declaring a silent host failed (3 s) and
/// the incident showing in the API.
const FIRES_WITHIN: Duration = Duration::from_secs(15);
/// Bound on anything else the test waits for.
const WITHIN: Duration = Duration::from_secs(15);

const HEARTBEAT_POLICY: &str = r#"version = 1
summary = "host {name} (rack {rack}) stopped sending heartbeats"
severity = "critical"

[target]
kind = "host"

[when]
state = "host"
is = "failed"

[[escalate]]
after = "2s"
notify = ["email"]

[[escalate]]
after = "5s"
notify = ["sms"]
"#;

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

#[test]
fn each_ladder_level_reaches_its_receiver_at_the_policys_time() -> anyhow::Result<()> {
    let certs = ClusterCerts::new("e2e")?;
    let dir = certs.dir.path();
    let console = ConsoleFile::new(dir)?;
    let sink = SmtpSink::start(&dir.join("mail"))?;
    let sms = SmsGateway::start()?;
    write_policy(&dir.join("policies"), "heartbeat", HEARTBEAT_POLICY)?;
    let extra = format!(
        "\n[policies]\ndir = \"{}\"\n\n{}\n{}\n{}",
        dir.join("policies").display(),
        console.channel(),
        sink.channel("email"),
        sms.channel("sms"),
    );
    let watchdog = WatchdogProcess::start(dir, &watchdog_config(&certs, 0, &extra))?;
    certs.agent("hv-hb")?;
    let mut agent = start_agent(
        dir,
        "hb",
        &agent_config(
            &certs,
            watchdog.stream_addr,
            "hv-hb",
            "hv-hb",
            "[labels]\ncluster = \"e2e\"\nrack = \"r9\"\n",
        ),
    )?;
    let host = watchdog.wait_for("hv-hb healthy", HEALTHY_WITHIN, |w| {
        Ok(w.host("hv-hb")?
            .filter(|h| h["state"] == "healthy" && h["heartbeats"].as_u64() >= Some(3)))
    })?;
    assert_eq!(host["labels"]["rack"], "r9", "the agent's [labels]: {host}");

    agent.kill()?;
    let id = wait_new_incident(&watchdog, "heartbeat", "host:hv-hb", None, FIRES_WITHIN)?;
    let fired = wait_status(&watchdog, &id, "firing", WITHIN)?;
    let fired_at = unix(time(&fired["fired_at"])?);

    let mail = wait_until("the level 1 email", WITHIN, || {
        Ok(sink.mails()?.into_iter().next())
    })?;
    let text = wait_until("the level 2 SMS", WITHIN, || {
        Ok(sms.received().into_iter().next())
    })?;
    let mail_after = mail["accepted_at"].as_f64().unwrap_or_default() - fired_at;
    let sms_after = unix(text.at) - fired_at;
    eprintln!("email {mail_after:.3} s and SMS {sms_after:.3} s after the incident fired");
    for (what, after, want) in [("email", mail_after, 2.0), ("SMS", sms_after, 5.0)] {
        assert!(
            after >= want - 0.05 && after < want + TOLERANCE.as_secs_f64(),
            "{what} arrived {after:.3} s after firing, the policy says {want} s"
        );
    }
    assert_eq!(
        mail["parsed"]["idempotency_key"],
        format!("{id}:L1:problem"),
        "{mail}"
    );
    assert!(
        mail["parsed"]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("host:hv-hb")),
        "{mail}"
    );
    assert_eq!(
        text.body["key"],
        format!("{id}:L2:escalation"),
        "{:?}",
        text
    );
    assert!(
        text.body["text"]
            .as_str()
            .is_some_and(|t| t.contains("host hv-hb (rack r9) stopped")),
        "the summary has the host's label from its agent: {:?}",
        text
    );
    // Once each, not more.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.mails()?.len(), 1);
    assert_eq!(sms.received().len(), 1);
    let detail = hyperwatch_tests::runtime::incident(&watchdog, &id)?.expect("the incident");
    let delivered: Vec<&str> = detail["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["state"] == "delivered")
        .filter_map(|n| n["channel"].as_str())
        .collect();
    assert_eq!(delivered, ["email", "sms"], "{detail}");
    Ok(())
}

const ALERT_POLICY: &str = r#"version = 1
summary = "{name} is under high load"

[target]
kind = "host"

[when]
state = "alert:HighLoad"
is = "firing"

[[escalate]]
notify = ["console"]

[[escalate]]
after = "2s"
unless = "acked"
notify = ["console"]
"#;

fn alert(host: &str, status: &str) -> String {
    format!(
        r#"{{"version":"4","status":"{status}","receiver":"hyperwatch","groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://alertmanager:9093","groupKey":"{{}}:{{alertname=\"HighLoad\"}}","truncatedAlerts":0,"alerts":[{{"status":"{status}","labels":{{"alertname":"HighLoad","instance":"{host}:9100","job":"node"}},"annotations":{{"summary":"load"}},"startsAt":"2024-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus/graph","fingerprint":"f{host}"}}]}}"#
    )
}

#[test]
fn an_ack_through_the_cli_stops_escalation_and_an_empty_silence_is_reported() -> anyhow::Result<()>
{
    let certs = ClusterCerts::new("e2e")?;
    let dir = certs.dir.path();
    let console = ConsoleFile::new(dir)?;
    write_policy(&dir.join("policies"), "high-load", ALERT_POLICY)?;
    let extra = format!(
        "\n[policies]\ndir = \"{}\"\n\n{}",
        dir.join("policies").display(),
        console.channel()
    );
    let watchdog = WatchdogProcess::start(dir, &watchdog_config(&certs, 0, &extra))?;
    let api = format!("http://{}", watchdog.http_addr);

    for host in ["hv-acked", "hv-loud"] {
        let r = http::post(
            watchdog.http_addr,
            "/api/v1/alertmanager",
            &alert(host, "firing"),
        )?;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("\"accepted\":1"), "{}", r.body);
    }
    let acked = wait_new_incident(&watchdog, "high-load", "host:hv-acked", None, WITHIN)?;
    let loud = wait_new_incident(&watchdog, "high-load", "host:hv-loud", None, WITHIN)?;
    console.wait_for(&format!("{acked}:L1:problem"), WITHIN)?;

    let out = cli(&["ack", &acked, "--for", "1h", "--by", "alice", "--api", &api])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains(&format!("{acked} acknowledged by alice")),
        "{stdout}"
    );

    // The console, which had the page, hears who acknowledged it.
    let told = console.wait_for(&format!("{acked}:L1:acknowledgement"), WITHIN)?;
    assert!(told.contains("acknowledged by alice"), "{told}");

    // The other incident shows the level would have come.
    console.wait_for(&format!("{loud}:L2:escalation"), WITHIN)?;
    let held = format!("{acked} level 2 held: acked by alice");
    wait_until("the held level in the audit", WITHIN, || {
        Ok(timeline(&watchdog, &acked)?
            .into_iter()
            .find(|l| l.starts_with(&held)))
    })?;
    assert!(
        console
            .with_key(&format!("{acked}:L2:escalation"))?
            .is_empty(),
        "the acked incident did not escalate: {:?}",
        console.lines()?
    );

    // The status page lists both, with the level each reached.
    let status = watchdog.get_json("/api/v1/status")?;
    assert_eq!(status["incidents"]["available"], true, "{status}");
    let items = status["incidents"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let level = |id: &str| {
        items
            .iter()
            .find(|i| i["id"] == id)
            .and_then(|i| i["level"].as_u64())
    };
    assert_eq!(
        (level(&acked), level(&loud)),
        (Some(1), Some(2)),
        "{status}"
    );
    assert!(
        watchdog
            .metric("hyperwatch_incidents_open{policy=\"high-load\",state=\"firing\",level=\"2\"}")?
            .is_some_and(|n| n >= 1.0),
        "the status metrics count the escalated incident"
    );

    let out = cli(&[
        "silence",
        "add",
        "rack=nowhere",
        "--for",
        "1h",
        "--api",
        &api,
    ])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(stderr.contains("matches nothing"), "{stderr}");
    let out = cli(&[
        "silence",
        "add",
        "host=hv-loud",
        "--for",
        "1h",
        "--api",
        &api,
    ])?;
    assert!(out.status.success(), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("matches nothing"),
        "{out:?}"
    );
    let listed = cli(&["silence", "list", "--api", &api])?;
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("rack=nowhere") && listed.contains("host=hv-loud"),
        "{listed}"
    );

    let out = cli(&["ack", "inc-999", "--api", &api])?;
    assert_eq!(out.status.code(), Some(1), "no such incident: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("inc-999 is not open"));

    let r = http::post(
        watchdog.http_addr,
        "/api/v1/alertmanager",
        &alert("hv-acked", "resolved"),
    )?;
    assert_eq!(r.status, 200, "{}", r.body);
    wait_status(&watchdog, &acked, "resolved", WITHIN)?;
    console.wait_for(&format!("{acked}:L1:recovery"), WITHIN)?;
    Ok(())
}
