//! `cargo xtask run`: builds (release) and starts the main job in the
//! foreground; Ctrl-C stops it cleanly.

use std::process::Command;

use crate::sh;

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let root = sh::root();
    sh::run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "--package",
        "hyperwatch-agent",
    ]))?;
    let binary = root.join("target/release/hyperwatch-agent");
    eprintln!("xtask: starting {} (Ctrl-C stops it)", binary.display());
    // The agent handles SIGINT itself; its exit status is ours.
    sh::run(Command::new(binary).args(args))
}
