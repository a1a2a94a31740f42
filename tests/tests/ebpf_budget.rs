//! The eBPF cost budget, end to end: a program over its budget (here
//! sched_wakeup, given a 1 ns budget) is detached and logged, and the other
//! programs keep working.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    time::{Duration, Instant},
};

use anyhow::Context;
use hyperwatch_tests::{ebpf, metrics::Scrape, process::AgentProcess};

/// Bound on the detach: the budget is checked every second.
const DETACH_BOUND: Duration = Duration::from_secs(20);

#[test]
fn a_program_over_budget_is_detached_and_the_rest_keep_working() -> anyhow::Result<()> {
    if !ebpf::available("a_program_over_budget_is_detached_and_the_rest_keep_working") {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "[ebpf.budget]\ncheck_interval_seconds = 1.0\nmin_runs = 10\n\n[ebpf.budget.programs]\nsched_wakeup = 1\n\n[collectors.vm]\nenabled = false\n",
    )?;
    let mut agent = AgentProcess::start(&["--config", config.to_str().context("utf-8 path")?])?;

    let attached =
        |s: &Scrape, p: &str| s.require("hyperwatch_ebpf_program_attached", &[("program", p)]);
    let deadline = Instant::now() + DETACH_BOUND;
    loop {
        ping_pong(Duration::from_millis(200))?;
        if attached(&Scrape::get(agent.addr)?, "sched_wakeup")? == 0.0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "sched_wakeup not detached within {DETACH_BOUND:?}"
        );
    }
    let log = agent.log().join("\n");
    assert!(
        log.contains("over its budget")
            && log.contains("sched_wakeup")
            && log.contains("exceeds the budget of 1 ns"),
        "the detach is not logged:\n{log}"
    );

    let before = Scrape::get(agent.addr)?;
    ping_pong(Duration::from_secs(1))?;
    let after = Scrape::get(agent.addr)?;
    let runs =
        |s: &Scrape, p: &str| s.require("hyperwatch_ebpf_program_runs_total", &[("program", p)]);
    assert_eq!(
        runs(&after, "sched_wakeup")?,
        runs(&before, "sched_wakeup")?,
        "a detached program must not run"
    );
    for program in [
        "sched_switch",
        "sched_wakeup_new",
        "block_rq_issue",
        "sched_process_exit",
    ] {
        assert_eq!(
            attached(&after, program)?,
            1.0,
            "{program} should stay attached"
        );
    }
    assert!(runs(&after, "sched_switch")? > runs(&before, "sched_switch")?);
    let busy = |s: &Scrape| -> f64 {
        s.all("hyperwatch_cpu_busy_seconds_total", &[])
            .iter()
            .map(|x| x.value)
            .sum()
    };
    assert!(busy(&after) > busy(&before), "busy time stopped");
    let (count_before, _) = before.histogram("hyperwatch_runqueue_latency_seconds", &[])?;
    let (count_after, _) = after.histogram("hyperwatch_runqueue_latency_seconds", &[])?;
    assert!(
        count_after > count_before,
        "run-queue latency stopped (preemptions still start waits)"
    );
    Ok(())
}

/// Two threads passing a byte back and forth: a wakeup and a context switch
/// per hop.
fn ping_pong(how_long: Duration) -> anyhow::Result<()> {
    let (mut a, mut b) = UnixStream::pair()?;
    let echo = std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        while b.read_exact(&mut byte).is_ok() {
            if b.write_all(&byte).is_err() {
                break;
            }
        }
    });
    let end = Instant::now() + how_long;
    let mut byte = [0u8; 1];
    while Instant::now() < end {
        a.write_all(&byte)?;
        a.read_exact(&mut byte)?;
    }
    drop(a);
    let _ = echo.join();
    Ok(())
}
