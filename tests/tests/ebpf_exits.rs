//! Process exits and OOM kills through the kernel's ring buffer, in
//! process: a child killed with SIGKILL is reported with its signal within
//! 100 ms; SIGTERM (which the kernel turns into a SIGKILL for a process
//! without a handler) is still reported as SIGTERM; an exit status is
//! reported as such; an OOM kill in a memory-limited cgroup is reported as
//! one, on the event bus and in the metrics.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hyperwatch_agent::{
    Agent, config,
    events::{AgentEvent, ExitOutcome, ProcessExit},
};
use hyperwatch_tests::ebpf;
use nix::{sys::signal, unistd::Pid};
use tokio::sync::broadcast;

/// Issue 4: an exit is reported within 100 ms.
const REPORT_BOUND: Duration = Duration::from_millis(100);
/// Bound on waiting for the OOM killer (it acts within a second).
const OOM_BOUND: Duration = Duration::from_secs(20);

fn agent() -> anyhow::Result<Agent> {
    let config = config::parse(
        "[http]\nlisten = '127.0.0.1:0'\n[collectors.vm]\nenabled = false\n",
        "test",
    )?;
    let agent = Agent::new(&config);
    anyhow::ensure!(agent.ebpf_enabled(), "eBPF did not load (see the log)");
    Ok(agent)
}

/// Starts `sleep 600` and waits until it has exec'd (its comm is `sleep`).
fn sleeper() -> anyhow::Result<Child> {
    let child = Command::new("sleep").arg("600").spawn()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{}/comm", child.id()))?.trim() != "sleep" {
        if Instant::now() > deadline {
            bail!("sleep did not start");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(child)
}

/// The exit of `pid` from the feed, waiting at most `bound`.
async fn exit_of(
    rx: &mut broadcast::Receiver<ProcessExit>,
    pid: u32,
    bound: Duration,
) -> anyhow::Result<ProcessExit> {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let exit = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .with_context(|| format!("no exit of pid {pid} within {bound:?}"))??;
        if exit.pid == pid {
            return Ok(exit);
        }
    }
}

#[tokio::test]
async fn killed_children_are_reported_with_their_signal_within_100ms() -> anyhow::Result<()> {
    if !ebpf::available("killed_children_are_reported_with_their_signal_within_100ms") {
        return Ok(());
    }
    let agent = agent()?;
    let mut exits = agent.exit_feed().context("exit feed")?.subscribe();
    let _tasks = agent.start();

    for (sig, name) in [(signal::SIGKILL, "SIGKILL"), (signal::SIGTERM, "SIGTERM")] {
        let mut child = sleeper()?;
        let pid = child.id();
        let sent = Instant::now();
        signal::kill(Pid::from_raw(pid as i32), sig)?;
        let exit = exit_of(&mut exits, pid, REPORT_BOUND).await?;
        let latency = sent.elapsed();
        child.wait()?;
        eprintln!("{name}: reported after {latency:?}: {exit:?}");
        assert_eq!(
            exit.outcome,
            ExitOutcome::Signaled {
                signal: sig as u32,
                name: name.into()
            }
        );
        assert_eq!(exit.comm, "sleep");
        assert!(latency <= REPORT_BOUND, "{name} reported after {latency:?}");
    }

    let mut child = Command::new("sh").args(["-c", "exit 3"]).spawn()?;
    let pid = child.id();
    let exit = exit_of(&mut exits, pid, REPORT_BOUND * 10).await?;
    child.wait()?;
    assert_eq!(exit.outcome, ExitOutcome::Exited { code: 3 });

    let families = agent.gather();
    let exits_total = families
        .iter()
        .find(|f| f.name == "hyperwatch_process_exits")
        .context("no hyperwatch_process_exits family")?;
    for (how, signal) in [
        ("signal", "SIGKILL"),
        ("signal", "SIGTERM"),
        ("exit_failure", ""),
    ] {
        let n = exits_total
            .get(&[("how", how), ("signal", signal)])
            .unwrap_or(0.0);
        assert!(
            n >= 1.0,
            "hyperwatch_process_exits_total{{how={how},signal={signal}}} = {n}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_oom_kill_in_a_memory_limited_cgroup_is_reported() -> anyhow::Result<()> {
    if !ebpf::available("an_oom_kill_in_a_memory_limited_cgroup_is_reported") {
        return Ok(());
    }
    let agent = agent()?;
    let mut bus = agent.events().subscribe();
    let mut exits = agent.exit_feed().context("exit feed")?.subscribe();
    let _tasks = agent.start();

    let cgroup = MemoryCgroup::create(64 << 20)?;
    // awk (Debian's mawk, always installed) doubles a string up to 512 MiB,
    // far past the 64 MiB limit; swap is limited too.
    let script = format!(
        "echo $$ > {} && exec awk 'BEGIN {{ s = \"x\"; while (length(s) < 536870912) s = s s }}'",
        cgroup.procs().display()
    );
    let mut hog = Command::new("sh").args(["-c", &script]).spawn()?;
    let pid = hog.id();

    let deadline = tokio::time::Instant::now() + OOM_BOUND;
    let victim = loop {
        let event = tokio::time::timeout_at(deadline, bus.recv())
            .await
            .context("no OomKill event on the bus")??;
        if let AgentEvent::OomKill {
            pid: victim, comm, ..
        } = event
        {
            eprintln!("OOM kill: pid {victim} ({comm})");
            if victim == pid {
                break comm;
            }
        }
    };
    assert_eq!(victim, "awk");
    let exit = exit_of(&mut exits, pid, OOM_BOUND).await?;
    assert_eq!(
        exit.outcome,
        ExitOutcome::Signaled {
            signal: 9,
            name: "SIGKILL".into()
        }
    );
    hog.wait()?;
    let families = agent.gather();
    let ooms = families
        .iter()
        .find(|f| f.name == "hyperwatch_oom_kills")
        .and_then(|f| f.get(&[]))
        .context("no hyperwatch_oom_kills_total")?;
    assert!(ooms >= 1.0);
    Ok(())
}

/// A memory cgroup with a limit: cgroup v2 (memory.max) where the memory
/// controller is on the unified hierarchy, else v1 (memory.limit_in_bytes)
/// under this process's own memory cgroup (containers often run hybrid).
struct MemoryCgroup {
    dir: PathBuf,
}

impl MemoryCgroup {
    fn create(limit: u64) -> anyhow::Result<Self> {
        let name = format!("hyperwatch-oom-test-{}", std::process::id());
        let v2 = Path::new("/sys/fs/cgroup");
        let v2_memory = std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"));
        if v2_memory {
            let own = own_cgroup("0::")?;
            let dir = v2.join(own.trim_start_matches('/')).join(&name);
            std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::write(dir.join("memory.max"), limit.to_string())?;
            let _ = std::fs::write(dir.join("memory.swap.max"), "0");
            return Ok(Self { dir });
        }
        let own = own_cgroup(":memory:")?;
        let dir = Path::new("/sys/fs/cgroup/memory")
            .join(own.trim_start_matches('/'))
            .join(&name);
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("memory.limit_in_bytes"), limit.to_string())?;
        let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), limit.to_string());
        Ok(Self { dir })
    }

    fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }
}

fn own_cgroup(marker: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup")?;
    text.lines()
        .find_map(|l| l.find(marker).map(|i| l[i + marker.len()..].to_owned()))
        .with_context(|| format!("no {marker} line in /proc/self/cgroup: {text}"))
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // The cgroup is empty once the victim is reaped.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
