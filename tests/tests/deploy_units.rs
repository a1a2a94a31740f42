//! The deployment files in deploy/: the example configurations check with
//! the real binaries; the systemd units verify with systemd-analyze, the
//! watchdog's scores as strictly hardened; and the agent, run with exactly
//! its unit's capability bounding set and no_new_privs, still loads and
//! runs its eBPF programs. (The .deb packages are checked by `cargo xtask
//! package`, which `cargo xtask test` runs on the debug build.)

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use hyperwatch_tests::{ebpf, metrics::Scrape, process::AgentProcess, process::binary};

/// The repository's deploy/ directory.
fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// systemd-analyze's exposure score past which a service is not "OK" (its
/// own scale: <= 2 OK, <= 4.5 medium, above exposed).
const STRICT_EXPOSURE: f64 = 2.0;
/// Bound on the agent's eBPF programs showing they run.
const EBPF_RUNNING_WITHIN: Duration = Duration::from_secs(20);

fn run(cmd: &mut Command) -> anyhow::Result<(bool, String)> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

#[test]
fn example_configurations_check_with_the_real_binaries() -> anyhow::Result<()> {
    let agent = deploy("examples/agent.toml");
    let (ok, text) = run(Command::new(binary("hyperwatch-agent"))
        .arg("--check-config")
        .arg("--config")
        .arg(&agent))?;
    assert!(ok, "{}: {text}", agent.display());
    assert!(text.contains("configuration is valid"), "{text}");

    let watchdog = deploy("examples/watchdog.toml");
    let (ok, text) = run(Command::new(binary("hyperwatch"))
        .args(["serve", "--check-config", "--config"])
        .arg(&watchdog))?;
    assert!(ok, "{}: {text}", watchdog.display());
    assert!(text.contains("configuration is valid"), "{text}");

    // The check is real: a typo in a copy fails and names its place.
    let dir = tempfile::tempdir()?;
    let broken = dir.path().join("agent.toml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&agent)?.replace("[stream]", "[stream]\nendpionts = []"),
    )?;
    let (ok, text) = run(Command::new(binary("hyperwatch-agent"))
        .arg("--check-config")
        .arg("--config")
        .arg(&broken))?;
    assert!(!ok && text.contains("endpionts"), "{text}");
    Ok(())
}

/// A unit with its /usr/bin paths pointed at this build's binaries
/// (systemd-analyze verify checks that ExecStart= programs exist).
fn unit_for_this_build(name: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(deploy(&format!("systemd/{name}")))?;
    let build = binary("hyperwatch");
    let bin_dir = build
        .parent()
        .context("binary directory")?
        .display()
        .to_string();
    let path = dir.join(name);
    std::fs::write(&path, text.replace("/usr/bin/", &format!("{bin_dir}/")))?;
    Ok(path)
}

/// The "Overall exposure level" of `systemd-analyze security --offline`.
fn exposure(unit: &Path) -> anyhow::Result<(f64, String)> {
    let (_, text) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit))?;
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .with_context(|| format!("no exposure level in:\n{text}"))?;
    let score = line
        .rsplit(':')
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no score in {line:?}"))?;
    Ok((score, line.trim().to_owned()))
}

#[test]
fn units_verify_and_the_watchdog_is_strictly_hardened() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for name in ["hyperwatch-agent.service", "hyperwatch-watchdog.service"] {
        let unit = unit_for_this_build(name, dir.path())?;
        let (ok, text) = run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit))?;
        assert!(ok && text.trim().is_empty(), "{name}: {text}");
    }
    let (watchdog, line) = exposure(&dir.path().join("hyperwatch-watchdog.service"))?;
    eprintln!("{line}");
    assert!(
        watchdog <= STRICT_EXPOSURE,
        "the watchdog needs no privilege and should score OK: {line}"
    );
    let (agent, line) = exposure(&dir.path().join("hyperwatch-agent.service"))?;
    eprintln!("{line} (root with eBPF capabilities; see the unit's notes)");
    assert!(agent > watchdog, "{line}");
    Ok(())
}

/// CapabilityBoundingSet= of a unit, as setpriv's list (`+bpf,+perfmon`).
fn bounding_set(unit: &str) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(deploy(&format!("systemd/{unit}")))?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .with_context(|| format!("{unit} has no CapabilityBoundingSet="))?;
    Ok(line
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect())
}

/// The CapBnd mask of a process, from /proc (`self` for this one).
fn cap_bounding(pid: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .context("no CapBnd")?;
    Ok(u64::from_str_radix(hex.trim(), 16)?)
}

/// Bit numbers of the capabilities the agent's unit names
/// (linux/capability.h).
fn cap_bit(name: &str) -> anyhow::Result<u32> {
    Ok(match name {
        "dac_read_search" => 2,
        "kill" => 5,
        "sys_ptrace" => 19,
        "sys_admin" => 21,
        "sys_resource" => 24,
        "perfmon" => 38,
        "bpf" => 39,
        other => anyhow::bail!("capability {other} is not in this test's table; add its bit"),
    })
}

#[test]
fn the_agent_runs_ebpf_with_exactly_its_units_capabilities() -> anyhow::Result<()> {
    if !ebpf::available("the_agent_runs_ebpf_with_exactly_its_units_capabilities") {
        return Ok(());
    }
    let caps = bounding_set("hyperwatch-agent.service")?;
    ensure!(
        caps.iter().any(|c| c == "bpf"),
        "the unit lacks CAP_BPF: {caps:?}"
    );
    let keep: Vec<String> = caps.iter().map(|c| format!("+{c}")).collect();
    let bounding = format!("-all,{}", keep.join(","));
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "[collectors.vm]\nenabled = false\n")?;
    // As systemd would start it: root, bounding set from the unit,
    // NoNewPrivileges=yes.
    let agent = AgentProcess::start_under(
        &[
            "setpriv",
            "--bounding-set",
            &bounding,
            "--no-new-privs",
            "--",
        ],
        &["--config", config.to_str().context("utf-8 path")?],
    )?;
    // A container may itself lack some of them: the agent gets the rest.
    let ours = cap_bounding("self")?;
    let mut unit_mask = 0u64;
    for c in &caps {
        let bit = 1u64 << cap_bit(c)?;
        unit_mask |= bit;
        if ours & bit == 0 {
            eprintln!(
                "note: this machine's bounding set lacks CAP_{}",
                c.to_uppercase()
            );
        }
    }
    let mask = cap_bounding(&agent.pid().to_string())?;
    ensure!(
        mask == unit_mask & ours,
        "the agent's CapBnd {mask:#x} is not the unit's set {caps:?} ({unit_mask:#x}) within ours ({ours:#x})"
    );

    let deadline = Instant::now() + EBPF_RUNNING_WITHIN;
    loop {
        let s = Scrape::get(agent.addr)?;
        let enabled = s.value("hyperwatch_ebpf_enabled", &[]);
        let runs = s.histogram("hyperwatch_runqueue_latency_seconds", &[]).ok();
        if enabled == Some(1.0) && runs.is_some_and(|(count, _)| count > 0.0) {
            eprintln!(
                "eBPF runs under CapBnd {mask:#x}: run-queue waits counted {:?}",
                runs.map(|r| r.0)
            );
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "with the unit's capabilities {caps:?} the agent reports hyperwatch_ebpf_enabled {enabled:?} and run-queue counts {runs:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
