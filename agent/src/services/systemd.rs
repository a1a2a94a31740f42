//! The systemd check: up when `systemctl is-active UNIT` says `active`.
//! systemctl asks systemd over D-Bus; where systemd is not running (a
//! container), the check is down and the reason is systemctl's own message.

use std::process::Stdio;

/// Runs systemctl is-active and reads its answer.
pub async fn probe(unit: &str) -> Result<(), String> {
    let output = tokio::process::Command::new("systemctl")
        .args(["is-active", "--", unit])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("running systemctl is-active {unit}: {e}"))?;
    classify(
        unit,
        &String::from_utf8_lossy(&output.stdout),
        &String::from_utf8_lossy(&output.stderr),
    )
}

/// Up only for `active`; any other state (inactive, failed, activating,
/// deactivating, reloading is active) or an error is down with the reason.
fn classify(unit: &str, stdout: &str, stderr: &str) -> Result<(), String> {
    let state = stdout.lines().next().unwrap_or("").trim();
    match state {
        "active" | "reloading" => Ok(()),
        "" => Err(format!(
            "systemctl is-active {unit}: {}",
            stderr.lines().next().unwrap_or("no answer").trim()
        )),
        other => Err(format!("unit {unit} is {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        assert_eq!(classify("a.service", "active\n", ""), Ok(()));
        assert_eq!(
            classify("a.service", "failed\n", ""),
            Err("unit a.service is failed".into())
        );
        assert_eq!(
            classify(
                "a.service",
                "",
                "System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down\n"
            ),
            Err("systemctl is-active a.service: System has not been booted with systemd as init system (PID 1). Can't operate.".into())
        );
    }
}
