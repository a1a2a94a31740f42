//! The status page in a real headless browser (Debian's chromium driven by
//! Playwright, tests/browser/status_page.mjs): a real watchdog and three
//! real agents over mutual TLS; the page loads without console errors and
//! shows a host as failed within seconds of its agent being SIGKILLed, and
//! one whose agent was stopped (SIGTERM, a goodbye) as grey "stopped". And
//! incidents, plans and LUNs that providers register reach the page.
//! Screenshots go to target/tmp/status-page/.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, bail, ensure};
use hyperwatch::{
    config,
    service::Watchdog,
    status::{IncidentSummary, LunSummary, MigrationSummary, PlanSummary, StorageSummary},
};
use hyperwatch_tests::{
    process::AgentProcess,
    watchdog::{
        HEALTHY_WITHIN, WatchdogProcess, agent_config, start_agent, start_cluster,
        wanting_ebpf_that_fails,
    },
};
use nix::{sys::signal, unistd::Pid};
use serde_json::Value;

/// The script and its node_modules (installed by `cargo xtask setup`).
const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/browser");
/// Bound on the browser starting and the page showing the cluster
/// (the script's own load bound is 20 s).
const READY_WITHIN: Duration = Duration::from_secs(60);
/// Bound on the script finishing after READY (its fail bound is 10 s).
const DONE_WITHIN: Duration = Duration::from_secs(60);

/// Where screenshots go.
fn artifact(name: &str) -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page");
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(name))
}

/// The browser script running, its stdout lines arriving on a channel.
struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Browser {
    fn start(url: &str, screenshot: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let script = Path::new(BROWSER_DIR).join("status_page.mjs");
        ensure!(
            Path::new(BROWSER_DIR)
                .join("node_modules/playwright-core")
                .exists(),
            "playwright-core is not installed in {BROWSER_DIR}; run `cargo xtask setup`"
        );
        ensure!(
            Path::new("/usr/bin/chromium").exists(),
            "/usr/bin/chromium is missing; run `cargo xtask setup` (Debian package chromium)"
        );
        let mut child = Command::new("node")
            .arg(&script)
            .arg(url)
            .arg(screenshot)
            .args(args)
            .current_dir(BROWSER_DIR)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning node (Debian package nodejs, or Node.js 20+ on PATH)")?;
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (tx, stderr) = mpsc::channel();
        let err = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        })
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest.
    fn expect_line(&mut self, prefix: &str, within: Duration) -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    eprintln!("browser: {line}");
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.trim().to_owned());
                    }
                    if line.starts_with("RESULT") {
                        bail!("the browser script ended early: {line}");
                    }
                }
                Err(_) => bail!(
                    "no {prefix:?} from the browser script within {within:?}; its stderr:\n{}",
                    self.stderr.try_iter().collect::<Vec<_>>().join("\n")
                ),
            }
        }
    }

    fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// The RESULT document, after checking the script succeeded.
    fn finish(mut self) -> anyhow::Result<Value> {
        let result: Value = serde_json::from_str(&self.expect_line("RESULT", DONE_WITHIN)?)?;
        let status = wait_bounded(&mut self.child, DONE_WITHIN)?;
        let stderr: Vec<String> = self.stderr.try_iter().collect();
        ensure!(
            status.success(),
            "browser script failed ({status}): {result}\n{}",
            stderr.join("\n")
        );
        Ok(result)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_bounded(child: &mut Child, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(s);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "browser script still running {within:?} after its result"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_page_loads_clean_and_shows_a_killed_agent_as_failed_and_a_stopped_one_grey()
-> anyhow::Result<()> {
    let hosts = ["hv-a", "hv-b", "hv-c"];
    let (certs, watchdog, mut agents): (_, WatchdogProcess, Vec<AgentProcess>) =
        start_cluster(&hosts[..2], "")?;
    // hv-c wants eBPF and cannot load it (the others run without it by
    // design): the shipped ebpf-unavailable policy has an incident to show.
    certs.agent("hv-c")?;
    let dir = certs.dir.path();
    let config = agent_config(&certs, watchdog.stream_addr, "hv-c", "hv-c", "");
    let config = wanting_ebpf_that_fails(&config, &dir.join("no-tracefs"));
    agents.push(start_agent(dir, "hv-c", &config)?);
    watchdog.wait_for("hv-c healthy", HEALTHY_WITHIN, |w| {
        Ok(w.host("hv-c")?.filter(|v| v["state"] == "healthy"))
    })?;
    let url = format!("http://{}/", watchdog.http_addr);
    let screenshot = artifact("failed-host.png")?;
    let mut browser = Browser::start(
        &url,
        &screenshot,
        &[
            "--hosts",
            &hosts.join(","),
            "--fail",
            "hv-b",
            "--stop",
            "hv-a",
            // The policy runtime runs the shipped policies: hv-c wants
            // eBPF and runs without it, so ebpf-unavailable has it pending.
            "--expect",
            "#incident-body [data-incident]=>ebpf-unavailable",
            // The placement service runs and has made no plan yet.
            "--expect",
            "#plan-body .note=>No plans yet.",
        ],
    )?;
    browser.expect_line("READY", READY_WITHIN)?;

    // `systemctl stop` on hv-a: it says goodbye before it exits.
    let status = agents[0].terminate()?;
    assert!(status.success(), "hv-a stopped cleanly: {status}");
    let victim = &mut agents[1];
    signal::kill(Pid::from_raw(victim.pid() as i32), signal::Signal::SIGKILL)?;
    browser.send("killed")?;
    let result = browser.finish()?;
    eprintln!("screenshot: {}", screenshot.display());

    assert_eq!(result["consoleErrors"], serde_json::json!([]), "{result}");
    let after = result["failedAfterMs"]
        .as_f64()
        .context("no failedAfterMs")?;
    eprintln!("the page showed hv-b failed {after:.0} ms after the SIGKILL");
    let text = result["failedTileText"].as_str().unwrap_or_default();
    assert!(
        text.contains("hv-b") && text.contains("FAILED"),
        "tile text {text:?}"
    );
    assert!(
        result["failedTileStyle"]["backgroundImage"]
            .as_str()
            .unwrap_or_default()
            .contains("repeating-linear-gradient"),
        "a failed tile is striped red: {result}"
    );
    let text = result["stoppedTileText"].as_str().unwrap_or_default();
    assert!(
        text.contains("hv-a") && text.to_lowercase().contains("stopped"),
        "tile text {text:?}"
    );
    assert_eq!(
        result["stoppedTileStyle"]["backgroundColor"], "rgb(195, 199, 207)",
        "a stopped tile is grey (--stopped), not coloured by its last CPU figure: {result}"
    );
    let states: Vec<(String, String)> = result["hostsAfter"]
        .as_array()
        .context("no hostsAfter")?
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap_or_default().to_owned(),
                h["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("hv-a".into(), "stopped".into()),
            ("hv-b".into(), "failed".into()),
            ("hv-c".into(), "healthy".into())
        ]
    );
    // The API agrees with the page.
    assert_eq!(watchdog.state("hv-b")?.as_deref(), Some("failed"));
    let png = std::fs::read(&screenshot)?;
    assert!(
        png.starts_with(b"\x89PNG"),
        "{} is not a PNG",
        screenshot.display()
    );
    Ok(())
}

#[test]
fn incidents_plans_and_luns_from_providers_reach_the_page() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let text = "[stream]\nlisten = \"127.0.0.1:0\"\ninsecure = true\ncluster = \"lab\"\n[http]\nlisten = \"127.0.0.1:0\"\n";
    let watchdog = runtime.block_on(Watchdog::bind(config::parse(text, "test.toml")?))?;
    let (stream, http) = (watchdog.stream_addr, watchdog.http_addr);
    let minutes_ago = |m: f64| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
            - 60.0 * m
    };
    let (opened, planned) = (minutes_ago(7.0), minutes_ago(3.0));
    // What a policy runtime, a planner and a rebalancer would register.
    watchdog.status.provide_incidents(move || {
        vec![IncidentSummary {
            id: "inc-42".into(),
            policy: "service-crash".into(),
            target: "hv-x/nginx".into(),
            state: "escalated".into(),
            step: Some("2/3 restart-service nginx".into()),
            level: 2,
            since: opened,
        }]
    });
    watchdog.status.provide_plans(move || {
        vec![PlanSummary {
            id: "plan-9".into(),
            mode: "rebalance".into(),
            moves: 2,
            done: 1,
            failed: 0,
            started: planned,
            reason: "hv-x CPU 0.93 over 0.85".into(),
            dry_run: false,
            migrations: vec![MigrationSummary {
                item: "web-7".into(),
                from: "hv-x".into(),
                to: "hv-y".into(),
                state: "done".into(),
            }],
        }]
    });
    watchdog.status.provide_storage(|| {
        vec![StorageSummary {
            host: "st-1".into(),
            device: "array-a".into(),
            capacity: 4 << 40,
            used: 3 << 40,
            luns: vec![
                LunSummary {
                    id: "lun-db".into(),
                    size: 2 << 40,
                    consumer: "db-1".into(),
                },
                LunSummary {
                    id: "lun-web".into(),
                    size: 1 << 40,
                    consumer: "web-7".into(),
                },
            ],
        }]
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(watchdog.run(async {
        let _ = stop_rx.await;
    }));
    let dir = tempfile::tempdir()?;
    let _agent = start_agent(
        dir.path(),
        "hv-x",
        &format!(
            "[ebpf]\nenabled = false\n[stream]\nendpoints = [\"http://{stream}\"]\ninsecure = true\nhost_id = \"hv-x\"\ntelemetry_interval_seconds = 1.0\n"
        ),
    )?;

    let screenshot = artifact("providers.png")?;
    let browser = Browser::start(
        &format!("http://{http}/"),
        &screenshot,
        &[
            "--hosts",
            "hv-x",
            "--expect",
            "[data-incident=\"inc-42\"]=>2/3 restart-service nginx",
            "--expect",
            "[data-incident=\"inc-42\"] .level.up=>2",
            "--expect",
            "[data-plan=\"plan-9\"]=>hv-x CPU 0.93 over 0.85",
            "--expect",
            "[data-migration=\"web-7\"]=>web-7: hv-x → hv-y (done)",
            "--expect",
            "[data-device=\"st-1/array-a\"]=>75 %",
            "--expect",
            "[data-lun=\"lun-db\"]=>2.0 TiB (db-1)",
            // The grid shows the agent's measured CPU, not a placeholder.
            "--expect",
            "[data-host=\"hv-x\"]=>/CPU \\d+ %/",
        ],
    )?;
    let mut browser = browser;
    browser.expect_line("READY", READY_WITHIN)?;
    let result = browser.finish()?;
    eprintln!("screenshot: {}", screenshot.display());
    assert_eq!(result["consoleErrors"], serde_json::json!([]), "{result}");
    let _ = stop_tx.send(());
    runtime.block_on(server)??;
    Ok(())
}
