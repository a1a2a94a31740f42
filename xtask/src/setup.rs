//! `cargo xtask setup`: installs what a fresh machine lacks for the build
//! and the tests, idempotently. Each step first checks (milliseconds) and
//! only then installs, saying what it does.
//!
//! * rust-src for the active toolchain: the eBPF crate builds `core` itself
//!   (`-Z build-std=core`, allowed on stable through RUSTC_BOOTSTRAP=1).
//! * Debian packages: the LLVM whose major version matches rustc's (for
//!   bpf-linker), what the demo runs, and the real programs the tests
//!   talk to.
//! * bpf-linker, built against that LLVM.
//! * Node.js with playwright-core, and cargo-deb ([`crate::tools`]).

use std::{path::PathBuf, process::Command, time::Instant};

use anyhow::{Context, bail};

use crate::sh;

/// The bpf-linker release verified with this project's compiler.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Debian packages the main job (`cargo xtask run`, the demo) needs.
const RUN_PACKAGES: &[(&str, &str)] = &[(
    "python3-aiosmtpd",
    "the demo's local SMTP sink, which receives its escalation email (Debian's /usr/bin/python3 runs it)",
)];

/// Debian packages the tests need besides the LLVM ones.
const TEST_PACKAGES: &[(&str, &str)] = &[
    (
        "prometheus",
        "promtool, the strict exposition-format checker",
    ),
    (
        "prometheus-node-exporter",
        "node_exporter, the reference our procfs metrics are compared with",
    ),
    (
        "lvm2",
        "pvs/lvs/pvmove for the storage inventory and LUN mover tests on loop devices",
    ),
    (
        "qemu-system-x86",
        "real VMs for the VM inventory test (tests/tests/vm.rs; its iPXE ROM makes network traffic)",
    ),
    ("iproute2", "ip, to bring the test VMs' tap devices up"),
    (
        "python3-aiosmtpd",
        "the real SMTP server (STARTTLS, implicit TLS, AUTH) the email channel is tested against",
    ),
    (
        "snmptrapd",
        "net-snmp's trap receiver: decodes the SNMP channel's traps with HYPERWATCH-MIB",
    ),
    (
        "snmp",
        "snmptranslate: checks that net-snmp loads mibs/HYPERWATCH-MIB.txt without errors",
    ),
    (
        "chromium",
        "the headless browser the status page test drives (tests/tests/status_page.rs)",
    ),
    (
        "systemd",
        "systemd-analyze: verifies the units in deploy/systemd and scores their hardening",
    ),
    (
        "erlang-snmp",
        "the IETF base MIBs (SNMPv2-SMI, -TC, -CONF, -MIB, SNMP-FRAMEWORK-MIB) that Debian's \
         net-snmp leaves out and HYPERWATCH-MIB imports",
    ),
];

pub fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let llvm = rustc_llvm_major()?;
    ensure_rust_src()?;
    let mut packages: Vec<(String, String)> = [
        format!("llvm-{llvm}-dev"),
        format!("libpolly-{llvm}-dev"),
        "zlib1g-dev".to_owned(),
        "libzstd-dev".to_owned(),
    ]
    .into_iter()
    .map(|p| (p, format!("bpf-linker's build against LLVM {llvm}")))
    .collect();
    for (p, why) in RUN_PACKAGES.iter().chain(TEST_PACKAGES) {
        if !packages.iter().any(|(have, _)| have == p) {
            packages.push(((*p).to_owned(), (*why).to_owned()));
        }
    }
    ensure_packages(&packages)?;
    ensure_bpf_linker(llvm)?;
    crate::tools::ensure_node()?;
    crate::tools::ensure_playwright()?;
    crate::tools::ensure_cargo_deb()?;
    eprintln!(
        "xtask setup: ready (LLVM {llvm}, rust-src, bpf-linker, test packages, playwright-core, cargo-deb) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The LLVM major version of the compiler (`rustc -vV`).
fn rustc_llvm_major() -> anyhow::Result<u32> {
    let out = sh::stdout(Command::new("rustc").arg("-vV"))
        .context("`rustc -vV` failed; is the Rust toolchain installed (rustup)?")?;
    out.lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next()?.trim().parse().ok())
        .context("`rustc -vV` shows no `LLVM version:` line")
}

fn ensure_rust_src() -> anyhow::Result<()> {
    let sysroot = sh::stdout(Command::new("rustc").args(["--print", "sysroot"]))
        .context("`rustc --print sysroot` failed")?;
    let core = PathBuf::from(sysroot.trim()).join("lib/rustlib/src/rust/library/core/Cargo.toml");
    if core.exists() {
        return Ok(());
    }
    eprintln!("xtask setup: installing rust-src (the eBPF crate builds core from source)");
    sh::run(Command::new("rustup").args(["component", "add", "rust-src"])).context(
        "installing rust-src; without rustup, install the toolchain's rust-src component by hand",
    )
}

/// Installs the Debian packages that are missing.
fn ensure_packages(packages: &[(String, String)]) -> anyhow::Result<()> {
    let missing: Vec<&(String, String)> = packages
        .iter()
        .filter(|(name, _)| !dpkg_installed(name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    for (name, why) in &missing {
        eprintln!("xtask setup: need Debian package {name}: {why}");
    }
    let names: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
    if !is_root() {
        bail!(
            "missing Debian packages and not root, so they cannot be installed here.\n\
             Install them with:\n  sudo apt-get install -y {}\nthen run this command again.",
            names.join(" ")
        );
    }
    let install = || {
        let mut cmd = Command::new("apt-get");
        cmd.args(["install", "-y", "--no-install-recommends"])
            .args(&names)
            .env("DEBIAN_FRONTEND", "noninteractive");
        sh::run(&mut cmd)
    };
    if install().is_err() {
        eprintln!("xtask setup: refreshing the package lists and trying again");
        sh::run(Command::new("apt-get").arg("update"))?;
        install().with_context(|| format!("apt-get could not install {}", names.join(" ")))?;
    }
    Ok(())
}

fn dpkg_installed(package: &str) -> bool {
    sh::stdout(Command::new("dpkg-query").args(["-W", "-f", "${db:Status-Abbrev}", package]))
        .is_some_and(|s| s.starts_with("ii"))
}

/// Whether this process runs as root (may install packages).
pub fn is_root() -> bool {
    sh::stdout(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

/// Where `cargo install` puts binaries.
pub fn cargo_bin_dir() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
        .join("bin")
}

/// The LLVM major version an installed bpf-linker links against, if any.
fn bpf_linker_llvm() -> Option<u32> {
    let path = cargo_bin_dir().join("bpf-linker");
    let ldd = sh::stdout(Command::new("ldd").arg(&path))?;
    ldd.lines()
        .find_map(|l| l.trim().strip_prefix("libLLVM.so."))
        .or_else(|| ldd.lines().find_map(|l| l.trim().strip_prefix("libLLVM-")))
        .and_then(|v| v.split(['.', ' ']).next()?.parse().ok())
}

fn ensure_bpf_linker(llvm: u32) -> anyhow::Result<()> {
    match bpf_linker_llvm() {
        Some(v) if v == llvm => return Ok(()),
        Some(v) => eprintln!(
            "xtask setup: bpf-linker is built against LLVM {v}, rustc uses {llvm}: rebuilding"
        ),
        None => eprintln!(
            "xtask setup: installing bpf-linker {BPF_LINKER_VERSION} against LLVM {llvm} (a few minutes, once)"
        ),
    }
    let prefix = format!("/usr/lib/llvm-{llvm}");
    let mut cmd = Command::new("cargo");
    cmd.args([
        "install",
        "bpf-linker",
        "--force",
        "--version",
        BPF_LINKER_VERSION,
    ])
    .args([
        "--no-default-features",
        "--features",
        &format!("llvm-{llvm}"),
    ])
    // Without these, the build finds the distribution's default llvm-config
    // (another major version) through PATH.
    .env("LLVM_PREFIX", &prefix)
    .env(format!("LLVM_SYS_{llvm}1_PREFIX"), &prefix);
    sh::run(&mut cmd).context("building bpf-linker")?;
    match bpf_linker_llvm() {
        Some(v) if v == llvm => Ok(()),
        other => bail!("bpf-linker was installed but links LLVM {other:?}, not {llvm}"),
    }
}
