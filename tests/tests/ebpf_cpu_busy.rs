//! Issue 2's eBPF check, end to end: while a thread pinned to one CPU spins
//! for 2 s, the agent's hyperwatch_cpu_busy_seconds_total for that CPU
//! rises by 2 s (within 10 %) and agrees with /proc/stat's non-idle time
//! for that CPU over the same window.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use hyperwatch_tests::{ebpf, metrics::Scrape, process::AgentProcess};

const SPIN: Duration = Duration::from_secs(2);

#[test]
fn a_pinned_spinning_thread_adds_its_seconds_to_its_cpu() -> anyhow::Result<()> {
    if !ebpf::available("a_pinned_spinning_thread_adds_its_seconds_to_its_cpu") {
        return Ok(());
    }
    let agent = AgentProcess::start(&[])?;
    let cpu = std::thread::available_parallelism()?.get() - 1;
    let label = cpu.to_string();
    let busy = |s: &Scrape| s.require("hyperwatch_cpu_busy_seconds_total", &[("cpu", &label)]);

    let stat_before = non_idle_seconds(cpu)?;
    let before = Scrape::get(agent.addr)?;
    let spun = spin_on(cpu, SPIN);
    let after = Scrape::get(agent.addr)?;
    let stat_after = non_idle_seconds(cpu)?;

    let measured = busy(&after)? - busy(&before)?;
    let proc_stat = stat_after - stat_before;
    eprintln!(
        "cpu {cpu}: spun {:.3} s; hyperwatch busy +{measured:.3} s; /proc/stat non-idle +{proc_stat:.3} s",
        spun.as_secs_f64()
    );
    let expected = spun.as_secs_f64();
    assert!(
        (measured - expected).abs() <= 0.10 * expected,
        "busy time rose by {measured:.3} s for a {expected:.3} s spin"
    );
    assert!(
        (measured - proc_stat).abs() <= 0.10 * proc_stat,
        "busy +{measured:.3} s disagrees with /proc/stat's +{proc_stat:.3} s"
    );
    Ok(())
}

/// Spins a thread pinned to `cpu` for `how_long`; returns how long it spun.
fn spin_on(cpu: usize, how_long: Duration) -> Duration {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let spinner = std::thread::spawn(move || {
        pin_to(cpu);
        let start = Instant::now();
        while !flag.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
        start.elapsed()
    });
    std::thread::sleep(how_long);
    stop.store(true, Ordering::Relaxed);
    spinner.join().expect("spinner")
}

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity
    // only touch the set we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set),
            0,
            "sched_setaffinity to CPU {cpu}"
        );
    }
}

/// user + nice + system + irq + softirq + steal of `cpu` in /proc/stat,
/// in seconds (iowait and idle are idle time).
fn non_idle_seconds(cpu: usize) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let prefix = format!("cpu{cpu} ");
    let line = stat
        .lines()
        .find(|l| l.starts_with(&prefix))
        .ok_or_else(|| anyhow::anyhow!("no {prefix} line in /proc/stat"))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let ticks = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}
