//! `cargo xtask package`: builds hyperwatch-agent and hyperwatch-watchdog
//! .deb packages with cargo-deb (metadata in agent/Cargo.toml and
//! watchdog/Cargo.toml), then checks them: the control fields, the exact
//! file list with modes, conffiles and maintainer scripts (`dpkg-deb -f, -c,
//! -e`), the unpacked binaries checking the packaged example configurations,
//! and, as root, a real `dpkg -i` of both into a throwaway copy-on-write
//! root (install, user creation, unit enabling, `systemd-analyze verify`,
//! purge) that leaves this machine untouched.
//!
//! `cargo xtask test` runs the same checks on packages of the debug build
//! (seconds, no release build); `cargo xtask package` makes release ones.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail, ensure};

use crate::{setup, sh};

/// Which build goes into the packages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Release,
    /// The debug build `cargo xtask test` already made: packaged to check
    /// the packaging quickly, not to ship.
    Dev,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Dev => "dev",
        }
    }
}

/// One package and what it must hold.
struct Deb {
    /// The cargo package (`cargo deb -p`).
    crate_name: &'static str,
    /// The cargo profile its release package is built with.
    release_profile: &'static str,
    /// The Debian package.
    package: &'static str,
    /// Files (not directories) with their modes: exactly these, no others.
    files: &'static [(&'static str, &'static str)],
    /// Packaged file and the repository file it must equal.
    copies: &'static [(&'static str, &'static str)],
    /// Substrings of the Depends field.
    depends: &'static [&'static str],
    /// Substrings of the postinst.
    postinst: &'static [&'static str],
    /// The binary's arguments that check the packaged configuration.
    check_config: &'static [&'static str],
}

const AGENT: Deb = Deb {
    crate_name: "hyperwatch-agent",
    // Optimised for size: the agent's RSS budget (see Cargo.toml).
    release_profile: "agent-release",
    package: "hyperwatch-agent",
    files: &[
        ("./usr/bin/hyperwatch-agent", "-rwxr-xr-x"),
        ("./etc/hyperwatch/agent.toml", "-rw-r-----"),
        (
            "./usr/lib/systemd/system/hyperwatch-agent.service",
            "-rw-r--r--",
        ),
        ("./usr/share/doc/hyperwatch-agent/README.md", "-rw-r--r--"),
        ("./usr/share/doc/hyperwatch-agent/copyright", "-rw-r--r--"),
    ],
    copies: &[
        (
            "usr/lib/systemd/system/hyperwatch-agent.service",
            "deploy/systemd/hyperwatch-agent.service",
        ),
        ("etc/hyperwatch/agent.toml", "deploy/examples/agent.toml"),
    ],
    depends: &["libc6"],
    postinst: &[
        "deb-systemd-helper enable hyperwatch-agent.service",
        "/etc/hyperwatch/certs",
    ],
    check_config: &["--check-config", "--config"],
};

const WATCHDOG: Deb = Deb {
    crate_name: "hyperwatch",
    release_profile: "release",
    package: "hyperwatch-watchdog",
    files: &[
        ("./usr/bin/hyperwatch", "-rwxr-xr-x"),
        ("./etc/hyperwatch/watchdog.toml", "-rw-r-----"),
        (
            "./usr/lib/systemd/system/hyperwatch-watchdog.service",
            "-rw-r--r--",
        ),
        ("./usr/share/snmp/mibs/HYPERWATCH-MIB.txt", "-rw-r--r--"),
        (
            "./usr/share/doc/hyperwatch-watchdog/README.md",
            "-rw-r--r--",
        ),
        (
            "./usr/share/doc/hyperwatch-watchdog/copyright",
            "-rw-r--r--",
        ),
    ],
    copies: &[
        (
            "usr/lib/systemd/system/hyperwatch-watchdog.service",
            "deploy/systemd/hyperwatch-watchdog.service",
        ),
        (
            "etc/hyperwatch/watchdog.toml",
            "deploy/examples/watchdog.toml",
        ),
        (
            "usr/share/snmp/mibs/HYPERWATCH-MIB.txt",
            "mibs/HYPERWATCH-MIB.txt",
        ),
    ],
    depends: &["libc6", "adduser"],
    postinst: &[
        "adduser --system",
        "deb-systemd-helper enable hyperwatch-watchdog.service",
    ],
    check_config: &["serve", "--check-config", "--config"],
};

impl Deb {
    /// The cargo profile of this package's build.
    fn profile(&self, profile: Profile) -> &'static str {
        match profile {
            Profile::Release => self.release_profile,
            Profile::Dev => "dev",
        }
    }
}

/// Builds, packages and checks; returns the .deb files.
pub fn run(profile: Profile) -> anyhow::Result<Vec<PathBuf>> {
    let root = sh::root();
    let out = root.join("target/debian").join(profile.name());
    for deb in [&AGENT, &WATCHDOG] {
        let mut build = Command::new("cargo");
        build
            .current_dir(&root)
            .args(["build", "--bins", "-p", deb.crate_name])
            .args(["--profile", deb.profile(profile)]);
        sh::run(&mut build)?;
    }
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(&out)?;
    let mut debs = Vec::new();
    for deb in [&AGENT, &WATCHDOG] {
        let path = make(deb, profile, &out)?;
        check_contents(deb, &path)?;
        eprintln!("xtask package: {} checked", path.display());
        debs.push(path);
    }
    if setup::is_root() {
        install_into_throwaway_root(&debs)?;
    } else {
        eprintln!(
            "xtask package: NOT checked: installing into a throwaway root needs root (CI runs it as root)"
        );
    }
    Ok(debs)
}

/// `cargo deb` for one package; the path of the .deb it made.
fn make(deb: &Deb, profile: Profile, out: &Path) -> anyhow::Result<PathBuf> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(sh::root())
        .args(["deb", "--no-build", "-p", deb.crate_name])
        .args(["--profile", deb.profile(profile)])
        .arg("--output")
        .arg(out);
    if profile == Profile::Dev {
        // A throwaway package: quick compression, and cargo-deb's note that
        // dev builds are not for releases is expected.
        cmd.args(["--fast", "--quiet"]);
    }
    sh::run(&mut cmd)?;
    let prefix = format!("{}_", deb.package);
    std::fs::read_dir(out)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .with_context(|| format!("cargo deb made no {prefix}*.deb in {}", out.display()))
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("running {shown}"))?;
    ensure!(
        out.status.success(),
        "{shown} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Control fields, file list and modes, conffiles, postinst, the unpacked
/// files against the repository's, and the binary on its own config.
fn check_contents(deb: &Deb, path: &Path) -> anyhow::Result<()> {
    let name = path.display();
    let fields = output(
        Command::new("dpkg-deb")
            .arg("-f")
            .arg(path)
            .args(["Package", "Depends"]),
    )?;
    ensure!(
        fields.contains(&format!("Package: {}\n", deb.package)),
        "{name}: control fields {fields:?} do not name package {}",
        deb.package
    );
    for d in deb.depends {
        ensure!(fields.contains(d), "{name}: Depends lacks {d}: {fields:?}");
    }

    // `dpkg-deb -c`: "MODE OWNER SIZE DATE TIME PATH".
    let listing = output(Command::new("dpkg-deb").arg("-c").arg(path))?;
    let files: BTreeMap<String, String> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let mode = words.next()?.to_owned();
            Some((words.nth(4)?.to_owned(), mode))
        })
        .collect();
    let wanted: BTreeMap<String, String> = deb
        .files
        .iter()
        .map(|(p, m)| ((*p).to_owned(), (*m).to_owned()))
        .collect();
    ensure!(
        files == wanted,
        "{name}: files and modes\n  are:    {files:?}\n  wanted: {wanted:?}"
    );

    let dir = tempdir("hyperwatch-deb")?;
    let control = dir.join("control");
    output(Command::new("dpkg-deb").arg("-e").arg(path).arg(&control))?;
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap_or_default();
    let config = deb.copies[1].0;
    ensure!(
        conffiles.lines().collect::<Vec<_>>() == [format!("/{config}")],
        "{name}: conffiles are {conffiles:?}, wanted /{config}"
    );
    let postinst = std::fs::read_to_string(control.join("postinst"))
        .with_context(|| format!("{name}: no postinst"))?;
    for s in deb.postinst {
        ensure!(postinst.contains(s), "{name}: postinst lacks {s:?}");
    }
    output(Command::new("sh").arg("-n").arg(control.join("postinst")))
        .with_context(|| format!("{name}: postinst is not valid sh"))?;

    let unpacked = dir.join("root");
    output(Command::new("dpkg-deb").arg("-x").arg(path).arg(&unpacked))?;
    for (packaged, source) in deb.copies {
        let a = std::fs::read(unpacked.join(packaged))?;
        let b = std::fs::read(sh::root().join(source))?;
        ensure!(a == b, "{name}: /{packaged} differs from {source}");
    }
    let binary = unpacked.join(deb.files[0].0.trim_start_matches("./"));
    let version = output(Command::new(&binary).arg("--version"))?;
    ensure!(
        version.contains(env!("CARGO_PKG_VERSION")),
        "{name}: --version says {version:?}"
    );
    let checked = output(
        Command::new(&binary)
            .args(deb.check_config)
            .arg(unpacked.join(config)),
    )?;
    ensure!(
        checked.contains("configuration is valid"),
        "{name}: check-config said {checked:?}"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A fresh directory under the system's temporary directory.
fn tempdir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The install check, run by `sh` in a private mount namespace: an overlay
/// of / on tmpfs (writes go to memory, the machine is untouched), chrooted.
const THROWAWAY_INSTALL: &str = include_str!("package_install.sh");

/// `dpkg -i` of both packages into a throwaway copy of this machine; the
/// script checks what the install did and that purge removes it.
fn install_into_throwaway_root(debs: &[PathBuf]) -> anyhow::Result<()> {
    eprintln!("xtask package: installing both packages into a throwaway root (overlay, chroot)");
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-eu", "-c"])
        .arg(THROWAWAY_INSTALL)
        .arg("package_install.sh")
        .args(debs);
    let out = cmd.output().context("running unshare (util-linux)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stdout
        .lines()
        .filter(|l| l.starts_with("ok: ") || l.starts_with("FAILED: "))
    {
        eprintln!("xtask package:   {line}");
    }
    if !out.status.success() {
        bail!(
            "the throwaway install failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
    }
    Ok(())
}
