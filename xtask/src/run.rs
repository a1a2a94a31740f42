//! `cargo xtask run`: builds (release) the watchdog and the agent and runs
//! the demo (`hyperwatch demo`: a watchdog, this host's agent and a
//! simulated cluster telling one story), in the foreground. `cargo xtask
//! run --agent` starts the agent alone, as this command did before the
//! demo existed.

use std::{os::unix::process::CommandExt, process::Command};

use anyhow::Context;

use crate::sh;

/// What to run.
pub enum Job {
    /// `hyperwatch demo`.
    Demo,
    /// `hyperwatch-agent` with its embedded default configuration.
    Agent,
}

pub fn run(job: Job, args: &[String]) -> anyhow::Result<()> {
    let root = sh::root();
    let mut build = Command::new("cargo");
    build
        .current_dir(&root)
        .args(["build", "--release", "--package", "hyperwatch-agent"]);
    if matches!(job, Job::Demo) {
        // The demo runs the agent binary beside its own.
        build.args(["--package", "hyperwatch"]);
    }
    sh::run(&mut build)?;
    let release = root.join("target/release");
    let mut command = match job {
        Job::Demo => {
            let mut c = Command::new(release.join("hyperwatch"));
            c.arg("demo");
            c
        }
        Job::Agent => Command::new(release.join("hyperwatch-agent")),
    };
    command.args(args);
    eprintln!(
        "xtask: $ {} (Ctrl-C stops it)",
        std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    // exec: the program takes this process's place, so Ctrl-C reaches it
    // alone (cargo, our parent, waits it out) and it stops its children
    // and prints its last lines before the shell prompt comes back; its
    // exit status is ours.
    let error = command.exec();
    Err(error).with_context(|| format!("cannot start {}", command.get_program().to_string_lossy()))
}
