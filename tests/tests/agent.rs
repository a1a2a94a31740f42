//! End to end: the real hyperwatch-agent binary serving /metrics, checked by
//! promtool's strict parser, and refusing bad configuration.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use hyperwatch_tests::{
    http,
    process::{AgentProcess, binary},
};

/// Runs `promtool check metrics` (a strict parser plus a linter) on an
/// exposition. A parse error always fails. Of the lint findings, only one is
/// accepted: node_exporter's own camelCase `node_memory_*` names, which we
/// keep identical so existing dashboards work.
fn promtool_check(exposition: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (cargo xtask setup installs Debian's prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool exits 1 on a parse error and 3 on lint findings.
    match out.status.code() {
        Some(0) => Ok(()),
        Some(3) => {
            let unexpected: Vec<&str> = report
                .lines()
                .filter(|l| {
                    !(l.starts_with("node_memory_")
                        && l.ends_with(
                            "metric names should be written in 'snake_case' not 'camelCase'",
                        ))
                })
                .collect();
            if unexpected.is_empty() {
                Ok(())
            } else {
                Err(unexpected.join("\n"))
            }
        }
        _ => Err(report),
    }
}

/// The value of the first sample line that starts with `series`.
fn value(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn metrics_pass_promtool_and_carry_the_expected_series() {
    let agent = AgentProcess::start(&[]).unwrap();
    let response = http::get(agent.addr, "/metrics", &[]).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = response.body;
    promtool_check(&body)
        .unwrap_or_else(|e| panic!("promtool rejects the exposition:\n{e}\n{body}"));

    let load1 = value(&body, "node_load1").expect("node_load1 present");
    assert!(load1 >= 0.0);
    let idle =
        value(&body, "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}").expect("cpu 0 idle time");
    assert!(idle > 0.0, "{idle}");
    let total = value(&body, "node_memory_MemTotal_bytes").expect("MemTotal");
    let available = value(&body, "node_memory_MemAvailable_bytes").expect("MemAvailable");
    assert!(
        total > 1e8 && available > 0.0 && available < total,
        "{available} of {total}"
    );
    let boot = value(&body, "node_boot_time_seconds").expect("boot time");
    assert!(boot > 1.6e9, "{boot}");
    assert!(value(&body, "node_context_switches_total").expect("ctxt") > 0.0);
    assert!(
        value(&body, "node_network_receive_bytes_total{device=\"lo\"}").is_some(),
        "loopback counters present"
    );
    for collector in ["cpu", "stat", "meminfo", "diskstats", "netdev", "loadavg"] {
        assert_eq!(
            value(
                &body,
                &format!("hyperwatch_scrape_collector_success{{collector=\"{collector}\"}}")
            ),
            Some(1.0),
            "{collector} succeeded"
        );
    }
    assert_eq!(
        value(
            &body,
            "hyperwatch_scrape_collector_success{collector=\"loadavg\"}"
        ),
        Some(1.0)
    );
    let duration = value(
        &body,
        "hyperwatch_scrape_collector_duration_seconds{collector=\"loadavg\"}",
    )
    .expect("duration of loadavg");
    assert!((0.0..1.0).contains(&duration), "{duration}");
    assert!(body.contains("hyperwatch_build_info{version=\""));
    let ebpf = value(&body, "hyperwatch_ebpf_enabled").expect("hyperwatch_ebpf_enabled");
    assert!(ebpf == 0.0 || ebpf == 1.0);
}

#[test]
fn openmetrics_is_served_when_asked_for() {
    let agent = AgentProcess::start(&[]).unwrap();
    let response = http::get(
        agent.addr,
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    )
    .unwrap();
    assert_eq!(
        response.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(response.body.ends_with("# EOF\n"));
    assert!(response.body.contains("# TYPE node_load1 gauge\n"));
}

#[test]
fn index_and_healthz() {
    let agent = AgentProcess::start(&[]).unwrap();
    let health = http::get(agent.addr, "/healthz", &[]).unwrap();
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let index = http::get(agent.addr, "/", &[]).unwrap();
    assert!(index.body.contains("href=\"/metrics\""));
}

#[test]
fn a_disabled_collector_serves_nothing() {
    let agent = AgentProcess::start(&["--no-collector.loadavg"]).unwrap();
    let body = http::get(agent.addr, "/metrics", &[]).unwrap().body;
    assert!(!body.contains("node_load1"), "{body}");
    assert!(!body.contains("collector=\"loadavg\""));
}

#[test]
fn sigterm_stops_the_agent_cleanly() {
    let mut agent = AgentProcess::start(&[]).unwrap();
    let status = agent.terminate().unwrap();
    assert!(status.success(), "exit status {status}");
    let log = agent.log().join("\n");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("hyperwatch-agent stopped"), "{log}");
}

/// Writes `text` to a config file and runs the agent on it with `args`.
fn run_with_config(text: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(binary("hyperwatch-agent"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn check_config_accepts_the_printed_default() {
    let default = Command::new(binary("hyperwatch-agent"))
        .arg("--print-default-config")
        .output()
        .unwrap();
    let text = String::from_utf8(default.stdout).unwrap();
    let (code, stdout, _) = run_with_config(&text, &["--check-config"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("configuration is valid"));
}

#[test]
fn bad_configs_are_refused_with_file_line_and_column() {
    let cases = [
        (
            "[http]\nlisten = \"127.0.0.1:0\"\nport = 1\n",
            "FILE:3:1: unknown field `port`, expected `listen`",
        ),
        (
            "[collectors.cpu]\nenabled = 1\n",
            "FILE:2:11: invalid type: integer `1`, expected a boolean",
        ),
        (
            "[collectors.diskstats]\ndevice_exclude = '(sd'\n",
            "FILE:2:18: invalid regular expression",
        ),
        (
            "[collectors.cpuu]\nenabled = true\n",
            "FILE:1:13: unknown field `cpuu`",
        ),
    ];
    for (text, expected) in cases {
        for args in [&["--check-config"][..], &[][..]] {
            let (code, _, stderr) = run_with_config(text, args);
            assert_eq!(code, 1, "{text:?} {args:?}: {stderr}");
            assert!(
                stderr.contains(expected),
                "{text:?}: expected {expected:?} in\n{stderr}"
            );
        }
    }
}
