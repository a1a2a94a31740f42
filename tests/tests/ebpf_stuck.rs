//! Stuck CPUs: a real-time thread pinned to one CPU spins for 0.8 s with
//! nothing able to preempt it, so that CPU does not switch; with a 0.3 s
//! threshold the agent reports it stuck, then recovered once it switches,
//! and the gauge showed the time since its last switch meanwhile (at
//! least the threshold, at its highest).
//!
//! 0.8 s stays under the kernel's real-time throttling (950 ms of every
//! second), which would otherwise let other tasks in and end the episode.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use hyperwatch_agent::{Agent, config, events::AgentEvent};
use hyperwatch_tests::ebpf;

const SPIN: Duration = Duration::from_millis(800);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_held_by_one_task_is_reported_stuck_then_recovered() -> anyhow::Result<()> {
    if !ebpf::available("a_cpu_held_by_one_task_is_reported_stuck_then_recovered") {
        return Ok(());
    }
    let config = config::parse(
        "[collectors.vm]\nenabled = false\n[collectors.cpu_stuck]\nthreshold_seconds = 0.3\n",
        "stuck.toml",
    )?;
    let agent = Arc::new(Agent::new(&config));
    anyhow::ensure!(agent.ebpf_enabled(), "eBPF did not load");
    let mut bus = agent.events().subscribe();
    let _tasks = agent.start();
    let cpu = std::thread::available_parallelism()?.get() - 1;

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let spinner = std::thread::spawn(move || -> anyhow::Result<()> {
        // SAFETY: plain syscalls on this thread with valid arguments.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            anyhow::ensure!(libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0);
            let param = libc::sched_param { sched_priority: 50 };
            anyhow::ensure!(
                libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0,
                "SCHED_FIFO: {}",
                std::io::Error::last_os_error()
            );
        }
        // Runs on its CPU now: from here on nothing switches it out.
        let _ = started_tx.send(());
        let end = Instant::now() + SPIN;
        while Instant::now() < end && !flag.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
        Ok(())
    });

    // Meanwhile the gauge shows the CPU's time without a switch.
    started_rx
        .recv_timeout(Duration::from_secs(5))
        .context("the spinner did not start")?;
    // Read every 50 ms while it spins: the highest reading is the gauge's
    // answer. (A stop-class kernel thread, such as the load balancer's
    // migration thread on a busy machine, can still switch the CPU once
    // mid-spin; one reading at a fixed time would then see a short gap.)
    let mut since = 0.0_f64;
    let spin_end = tokio::time::Instant::now() + SPIN - Duration::from_millis(50);
    while tokio::time::Instant::now() < spin_end {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let reading = agent
            .gather()
            .iter()
            .find(|f| f.name == "hyperwatch_cpu_since_last_switch_seconds")
            .and_then(|f| f.get(&[("cpu", &cpu.to_string())]))
            .context("no gauge for the CPU")?;
        since = since.max(reading);
    }
    eprintln!("cpu {cpu}: at most {since:.3} s since its last switch");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut stuck_seen = false;
    let stuck_for = loop {
        let event = tokio::time::timeout_at(deadline, bus.recv())
            .await
            .context("no stuck/recovered events for the CPU")??;
        match event {
            AgentEvent::CpuStuck {
                cpu: c,
                since_switch_seconds,
                ..
            } if c as usize == cpu => {
                eprintln!("stuck event: {since_switch_seconds:.3} s");
                assert!(since_switch_seconds >= 0.3);
                stuck_seen = true;
            }
            AgentEvent::CpuRecovered {
                cpu: c,
                stuck_seconds,
                ..
            } if c as usize == cpu => {
                break stuck_seconds;
            }
            _ => {}
        }
    };
    stop.store(true, Ordering::Relaxed);
    spinner.join().expect("spinner")?;
    assert!(stuck_seen, "recovered without having been stuck");
    eprintln!("recovered after {stuck_for:.3} s");
    assert!(since >= 0.3, "the gauge showed {since:.3} s mid-spin");
    // At least the threshold (the stuck event came after it), at most the
    // spin and the agent's sampling.
    assert!(
        (0.3..=1.5).contains(&stuck_for),
        "stuck for {stuck_for:.3} s"
    );
    Ok(())
}
