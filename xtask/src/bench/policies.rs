//! `cargo xtask bench policies`: runs the watchdog's policy-engine
//! benchmark (watchdog/benches/policies.rs: a failure storm on 10,000
//! hosts, per-input cost, snapshot size and commit time) on this tree and
//! on a baseline commit, and prints both with their ratios. The baseline is
//! the commit's source (`git archive`, so no worktree is registered) with
//! this tree's benchmark file copied in, built in its own target directory.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

use crate::sh;

/// The integrated main before the engine's host index: every host state
/// change re-evaluated every open incident there.
pub const BASELINE: &str = "7b901d62fe1a17ac4faa9044c78bdddd2fce79b9";

/// The bench target's entry, added to the baseline's watchdog/Cargo.toml.
const BENCH_ENTRY: &str = "\n[[bench]]\nname = \"policies\"\nharness = false\n";

pub fn run(hosts: usize, baseline: Option<&str>) -> anyhow::Result<()> {
    let root = sh::root();
    let policies = root.join("policies/default");
    let args = |label: &str| {
        vec![
            "--hosts".to_owned(),
            hosts.to_string(),
            "--policies".to_owned(),
            policies.display().to_string(),
            "--label".to_owned(),
            label.to_owned(),
        ]
    };
    let now = bench(&root, None, &args("this tree"))?;
    let Some(rev) = baseline else {
        return Ok(());
    };
    let base_dir = root.join("target/bench-baseline");
    let src = base_dir.join("src");
    if src.exists() {
        std::fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))?;
    }
    std::fs::create_dir_all(&src)?;
    eprintln!(
        "xtask: baseline {rev}: extracting it into {} and building it in release (minutes on 2 cores)",
        src.display()
    );
    let archive = Command::new("git")
        .current_dir(&root)
        .args(["archive", "--format=tar", rev])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run git archive")?;
    sh::run(
        Command::new("tar")
            .args(["-x", "-C"])
            .arg(&src)
            .stdin(archive.stdout.context("git archive's output")?),
    )?;
    std::fs::copy(
        root.join("watchdog/benches/policies.rs"),
        src.join("watchdog/benches/policies.rs"),
    )?;
    let manifest = src.join("watchdog/Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest)?;
    if !text.contains("name = \"policies\"") {
        text.push_str(BENCH_ENTRY);
        std::fs::write(&manifest, text)?;
    }
    let before = bench(&src, Some(&base_dir.join("target")), &args("baseline"))?;
    println!();
    println!(
        "policy engine, {hosts} hosts: baseline {} -> this tree",
        &rev[..rev.len().min(12)]
    );
    for (name, after) in &now {
        match before.iter().find(|(n, _)| n == name) {
            Some((_, b)) if *after > 0.0 => println!(
                "  {name:<22} {b:>12.1} -> {after:>10.1}   ({:.1}x)",
                b / after
            ),
            Some((_, b)) => println!("  {name:<22} {b:>12.1} -> {after:>10.1}"),
            None => println!("  {name:<22} {:>12} -> {after:>10.1}", "-"),
        }
    }
    println!("  (x: baseline / this tree; above 1 is faster or smaller now)");
    Ok(())
}

/// Runs the bench in `dir`, echoing its output; returns its `= NAME VALUE`
/// figures.
fn bench(dir: &Path, target: Option<&Path>, args: &[String]) -> anyhow::Result<Vec<(String, f64)>> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(dir)
        .args(["bench", "-p", "hyperwatch", "--bench", "policies", "--"])
        .args(args)
        .stdout(Stdio::piped());
    if let Some(t) = target {
        cmd.env("CARGO_TARGET_DIR", t);
    }
    eprintln!(
        "xtask: $ cargo bench -p hyperwatch --bench policies (in {})",
        dir.display()
    );
    let mut child = cmd.spawn().context("cannot run cargo bench")?;
    let mut figures = Vec::new();
    for line in BufReader::new(child.stdout.take().context("bench output")?).lines() {
        let line = line?;
        match line.strip_prefix("= ").and_then(|f| f.split_once(' ')) {
            Some((name, value)) => figures.push((
                name.to_owned(),
                value
                    .parse()
                    .with_context(|| format!("bench figure {line:?}"))?,
            )),
            None => println!("{line}"),
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("the policies bench in {} failed: {status}", dir.display());
    }
    Ok(figures)
}
