//! Service checks, in process against real peers: a process (found by its
//! command line, its death seen through the kernel's exit events), a TCP
//! listener, an HTTP server whose status the test switches, and a systemd
//! unit. Each turns down and back up, and each event carries the time the
//! change happened.
//!
//! systemd is not PID 1 in this container, so the systemd check can only be
//! seen down here, with systemctl's own reason; its up path (`active`) is
//! covered by the unit test of the output classification.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpListener,
    process::{Child, Command},
    sync::{
        Arc,
        atomic::{AtomicU16, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, bail};
use hyperwatch_agent::{
    Agent, config,
    events::{AgentEvent, ExitOutcome, ServiceChange},
};
use hyperwatch_tests::ebpf;
use nix::{sys::signal, unistd::Pid};
use tokio::sync::broadcast;

/// Check interval of the polled services.
const INTERVAL: f64 = 0.2;
/// Bound on waiting for any one event.
const EVENT_BOUND: Duration = Duration::from_secs(10);
/// How far an event's time may be from the moment the test made the change:
/// the process start time has 10 ms ticks; polled checks stamp the start of
/// the first check after the change, at most one interval later.
const SLACK: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_goes_down_and_up_with_the_right_times() -> anyhow::Result<()> {
    if !ebpf::available("every_kind_goes_down_and_up_with_the_right_times") {
        return Ok(());
    }
    let tcp = TcpListener::bind("127.0.0.1:0")?;
    let tcp_addr = tcp.local_addr()?;
    let web = HttpServer::start()?;
    let (mut sleeper, _) = spawn_sleeper()?;
    let text = format!(
        r#"
[http]
listen = "127.0.0.1:0"
[collectors.vm]
enabled = false

[[services]]
name = "sleeper"
process = {{ cmdline = '^sleep 314\.1592$' }}
interval_seconds = {INTERVAL}

[[services]]
name = "db"
tcp = {{ address = "{tcp_addr}" }}
interval_seconds = {INTERVAL}
timeout_seconds = 1.0

[[services]]
name = "web"
http = {{ url = "http://127.0.0.1:{}/health", expect_status = 200 }}
interval_seconds = {INTERVAL}

[[services]]
name = "unit"
systemd = {{ unit = "hyperwatch-test.service" }}
interval_seconds = 1.0
"#,
        web.port
    );
    let agent = Agent::new(&config::parse(&text, "services-test.toml")?);
    anyhow::ensure!(agent.ebpf_enabled(), "eBPF did not load");
    let mut bus = agent.events().subscribe();
    let _tasks = agent.start();

    let mut first = BTreeMap::new();
    while first.len() < 4 {
        let c = next_change(&mut bus, None).await?;
        first.insert(c.service.clone(), c);
    }
    for name in ["sleeper", "db", "web"] {
        assert!(first[name].up, "{name} should start up: {:?}", first[name]);
    }
    let unit = &first["unit"];
    assert!(
        !unit.up,
        "no systemd here, the unit cannot be active: {unit:?}"
    );
    assert!(!unit.reason.is_empty());
    eprintln!("systemd check: {}", unit.reason);

    // Down: kill the process, close the port, answer 503.
    let killed = SystemTime::now();
    let sent = Instant::now();
    signal::kill(Pid::from_raw(sleeper.id() as i32), signal::SIGKILL)?;
    let down = expect(&mut bus, "sleeper", false).await?;
    let seen_after = sent.elapsed();
    sleeper.wait()?;
    assert_near(&down, killed, Duration::from_millis(50))?;
    assert!(down.reason.contains("killed by SIGKILL"), "{}", down.reason);
    assert!(
        seen_after < Duration::from_millis(100),
        "the process death took {seen_after:?} to reach the bus"
    );

    let closed = SystemTime::now();
    drop(tcp);
    assert_after(&expect(&mut bus, "db", false).await?, closed)?;

    let failing = SystemTime::now();
    web.status.store(503, Ordering::SeqCst);
    let web_down = expect(&mut bus, "web", false).await?;
    assert_after(&web_down, failing)?;
    assert!(
        web_down.reason.contains("answered 503, expected 200"),
        "{}",
        web_down.reason
    );

    // Up again.
    let (mut sleeper, started) = spawn_sleeper()?;
    assert_near(&expect(&mut bus, "sleeper", true).await?, started, SLACK)?;
    let reopened = SystemTime::now();
    let tcp = TcpListener::bind(tcp_addr).context("re-binding the TCP port")?;
    assert_after(&expect(&mut bus, "db", true).await?, reopened)?;
    let healthy = SystemTime::now();
    web.status.store(200, Ordering::SeqCst);
    assert_after(&expect(&mut bus, "web", true).await?, healthy)?;

    let families = agent.gather();
    let up = families
        .iter()
        .find(|f| f.name == "hyperwatch_service_up")
        .context("no hyperwatch_service_up")?;
    for (service, kind, want) in [
        ("sleeper", "process", 1.0),
        ("db", "tcp", 1.0),
        ("web", "http", 1.0),
        ("unit", "systemd", 0.0),
    ] {
        assert_eq!(
            up.get(&[("service", service), ("kind", kind)]),
            Some(want),
            "{service}"
        );
    }
    sleeper.kill()?;
    sleeper.wait()?;
    drop(tcp);
    Ok(())
}

#[tokio::test]
async fn the_death_of_a_watched_process_is_on_the_bus_with_its_cause() -> anyhow::Result<()> {
    if !ebpf::available("the_death_of_a_watched_process_is_on_the_bus_with_its_cause") {
        return Ok(());
    }
    let child = Command::new("sleep").arg("271.828").spawn()?;
    wait_for_exec(&child, "sleep")?;
    let text = "[collectors.vm]\nenabled = false\n[[services]]\nname = \"e\"\nprocess = { cmdline = '^sleep 271\\.828$' }\ninterval_seconds = 30\n";
    let agent = Agent::new(&config::parse(text, "t.toml")?);
    let mut bus = agent.events().subscribe();
    let _tasks = agent.start();
    expect(&mut bus, "e", true).await?;
    let mut child = child;
    signal::kill(Pid::from_raw(child.id() as i32), signal::SIGTERM)?;
    child.wait()?;
    // With a 30 s interval only the exit event can report this in time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let event = tokio::time::timeout_at(deadline, bus.recv())
            .await
            .context("no ProcessExited event")??;
        if let AgentEvent::ProcessExited { service, exit } = event {
            assert_eq!(service, "e");
            assert_eq!(exit.pid, child.id());
            assert_eq!(
                exit.outcome,
                ExitOutcome::Signaled {
                    signal: 15,
                    name: "SIGTERM".into()
                }
            );
            return Ok(());
        }
    }
}

/// The next ServiceChanged event (of `service`, when given).
async fn next_change(
    bus: &mut broadcast::Receiver<AgentEvent>,
    service: Option<&str>,
) -> anyhow::Result<ServiceChange> {
    let deadline = tokio::time::Instant::now() + EVENT_BOUND;
    loop {
        let event = tokio::time::timeout_at(deadline, bus.recv())
            .await
            .with_context(|| {
                format!("no service change of {service:?} within {EVENT_BOUND:?}")
            })??;
        if let AgentEvent::ServiceChanged(c) = event
            && service.is_none_or(|s| s == c.service)
        {
            return Ok(c);
        }
    }
}

async fn expect(
    bus: &mut broadcast::Receiver<AgentEvent>,
    service: &str,
    up: bool,
) -> anyhow::Result<ServiceChange> {
    let c = next_change(bus, Some(service)).await?;
    if c.up != up {
        bail!("{service}: expected up={up}, got {c:?}");
    }
    eprintln!(
        "{service} {}: {} ({:?})",
        if up { "up" } else { "down" },
        c.reason,
        c.at
    );
    Ok(c)
}

fn assert_near(c: &ServiceChange, when: SystemTime, slack: Duration) -> anyhow::Result<()> {
    let off = match c.at.duration_since(when) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    anyhow::ensure!(
        off <= slack,
        "{}: event time {:?} is {off:?} from {when:?}",
        c.service,
        c.at
    );
    Ok(())
}

/// A polled check stamps the start of the first check that saw the change:
/// after it, within one interval.
fn assert_after(c: &ServiceChange, when: SystemTime) -> anyhow::Result<()> {
    let early = when.duration_since(c.at).unwrap_or_default();
    let late = c.at.duration_since(when).unwrap_or_default();
    anyhow::ensure!(
        early <= Duration::from_millis(10) && late <= Duration::from_secs_f64(INTERVAL) + SLACK,
        "{}: event time {:?} vs change at {when:?}",
        c.service,
        c.at
    );
    Ok(())
}

fn spawn_sleeper() -> anyhow::Result<(Child, SystemTime)> {
    let started = SystemTime::now();
    let child = Command::new("sleep").arg("314.1592").spawn()?;
    wait_for_exec(&child, "sleep")?;
    Ok((child, started))
}

fn wait_for_exec(child: &Child, comm: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{}/comm", child.id()))?.trim() != comm {
        anyhow::ensure!(Instant::now() < deadline, "{comm} did not start");
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// A minimal HTTP server answering every request with a switchable status.
struct HttpServer {
    port: u16,
    status: Arc<AtomicU16>,
}

impl HttpServer {
    fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let status = Arc::new(AtomicU16::new(200));
        let answer = status.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = [0u8; 1024];
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = stream.read(&mut request);
                let code = answer.load(Ordering::SeqCst);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} Test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Ok(Self { port, status })
    }
}
