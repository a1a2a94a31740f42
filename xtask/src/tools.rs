//! Setup steps beyond Debian packages, for the deployment and browser
//! tests: Node.js with playwright-core in tests/browser (the status page
//! test drives Debian's chromium with it), and cargo-deb (`cargo xtask
//! package`). Each checks first (milliseconds) and installs only what lacks.

use std::process::Command;

use anyhow::{Context, bail};

use crate::{setup, sh};

/// cargo-deb release verified with this project's compiler (rust-version
/// 1.85, builds on rustc 1.95).
pub const CARGO_DEB_VERSION: &str = "3.8.0";

/// Oldest Node.js major the pinned playwright-core (1.61) runs on; Debian
/// 12 ships 18.
const NODE_MIN_MAJOR: u32 = 18;

/// Node.js and npm on PATH, else Debian's packages.
pub fn ensure_node() -> anyhow::Result<()> {
    let major = node_major();
    let npm = sh::stdout(Command::new("npm").arg("--version")).is_some();
    match major {
        Some(m) if m >= NODE_MIN_MAJOR && npm => return Ok(()),
        Some(m) if m < NODE_MIN_MAJOR => bail!(
            "Node.js {m} is too old for playwright-core (the status page test); install Node.js {NODE_MIN_MAJOR} or later"
        ),
        _ => {}
    }
    eprintln!(
        "xtask setup: need Node.js and npm: the status page test drives chromium through playwright-core"
    );
    if !setup::is_root() {
        bail!(
            "Node.js or npm missing and not root. Install them with:\n  sudo apt-get install -y nodejs npm"
        );
    }
    sh::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "nodejs", "npm"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn node_major() -> Option<u32> {
    let v = sh::stdout(Command::new("node").arg("--version"))?;
    v.trim()
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// playwright-core in tests/browser/node_modules, as package-lock.json
/// pins it (`npm ci`, only when the installed version differs).
pub fn ensure_playwright() -> anyhow::Result<()> {
    let dir = sh::root().join("tests/browser");
    let lock = std::fs::read_to_string(dir.join("package-lock.json"))
        .context("reading tests/browser/package-lock.json")?;
    let wanted = locked_version(&lock, "playwright-core")
        .context("tests/browser/package-lock.json does not pin playwright-core")?;
    let installed = std::fs::read_to_string(dir.join("node_modules/playwright-core/package.json"))
        .ok()
        .and_then(|p| package_version(&p));
    if installed.as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    eprintln!("xtask setup: installing playwright-core {wanted} into tests/browser (npm ci)");
    sh::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir),
    )
    .context("npm ci in tests/browser")
}

/// The version of `node_modules/NAME` in a package-lock.json (v3).
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let key = format!("\"node_modules/{name}\"");
    let rest = &lock[lock.find(&key)? + key.len()..];
    package_version(rest)
}

/// The first `"version": "X"` in a package.json text.
fn package_version(text: &str) -> Option<String> {
    let rest = &text[text.find("\"version\"")? + "\"version\"".len()..];
    let start = rest.find('"')? + 1;
    let end = start + rest[start..].find('"')?;
    Some(rest[start..end].to_owned())
}

/// cargo-deb, for `cargo xtask package`.
pub fn ensure_cargo_deb() -> anyhow::Result<()> {
    let installed = sh::stdout(Command::new("cargo").args(["deb", "--version"]));
    if installed.is_some_and(|v| v.contains(CARGO_DEB_VERSION)) {
        return Ok(());
    }
    eprintln!(
        "xtask setup: installing cargo-deb {CARGO_DEB_VERSION} (builds the .deb packages; a few minutes, once)"
    );
    sh::run(Command::new("cargo").args([
        "install",
        "cargo-deb",
        "--locked",
        "--version",
        CARGO_DEB_VERSION,
    ]))
    .context("installing cargo-deb")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_locked_and_installed_versions() {
        let lock = r#"{"packages": {"": {"dependencies": {"playwright-core": "1.61.1"}},
            "node_modules/playwright-core": {"version": "1.61.1", "license": "Apache-2.0"}}}"#;
        assert_eq!(
            locked_version(lock, "playwright-core").as_deref(),
            Some("1.61.1")
        );
        assert_eq!(locked_version(lock, "left-pad"), None);
        assert_eq!(
            package_version("{\"name\": \"playwright-core\", \"version\": \"1.60.0\"}").as_deref(),
            Some("1.60.0")
        );
    }
}
