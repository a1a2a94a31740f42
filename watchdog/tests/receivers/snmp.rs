//! HYPERWATCH-MIB loads cleanly in net-snmp and agrees with the encoder's
//! OIDs; snmptrapd receives the SNMP channel's traps and informs and
//! decodes them with the MIB: names, not bare OIDs.

use std::{
    path::PathBuf,
    process::Command,
    sync::mpsc,
    time::{Duration, Instant},
};

use hyperwatch::channels::{
    Status,
    snmp::{notification_oid, object, object_oid},
};

use super::support::{Harness, Receiver, free_udp_port, notification};

const TRAP_TIMEOUT: Duration = Duration::from_secs(20);

/// mibs/ of this repository.
fn our_mibs() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../mibs"))
        .canonicalize()
        .unwrap()
}

/// The IETF base MIBs HYPERWATCH-MIB imports (SNMPv2-SMI, -TC, -CONF,
/// SNMP-FRAMEWORK-MIB). Debian's net-snmp leaves them out; erlang-snmp
/// ships them (cargo xtask setup installs it).
fn base_mibs() -> PathBuf {
    std::fs::read_dir("/usr/lib/erlang/lib")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("mibs"))
        .find(|p| p.join("SNMPv2-SMI.mib").exists())
        .expect("the IETF base MIBs: install erlang-snmp (cargo xtask setup does)")
}

fn mib_path() -> String {
    format!("{}:{}", our_mibs().display(), base_mibs().display())
}

fn dotted(oid: &[u32]) -> String {
    oid.iter().map(|a| format!(".{a}")).collect()
}

#[test]
fn mib_loads_without_errors_and_matches_the_encoder() {
    let names = [
        ("hyperwatchProblem", notification_oid(Status::Problem)),
        ("hyperwatchRecovery", notification_oid(Status::Recovery)),
        (
            "hyperwatchAcknowledgement",
            notification_oid(Status::Acknowledgement),
        ),
        ("hyperwatchEscalation", notification_oid(Status::Escalation)),
        ("hyperwatchFlapping", notification_oid(Status::Flapping)),
        ("hyperwatchIncidentId.0", object_oid(object::INCIDENT_ID)),
        ("hyperwatchLevel.0", object_oid(object::LEVEL)),
        ("hyperwatchRepeat.0", object_oid(object::REPEAT)),
        ("hyperwatchStatus.0", object_oid(object::STATUS)),
        ("hyperwatchSeverity.0", object_oid(object::SEVERITY)),
        ("hyperwatchTarget.0", object_oid(object::TARGET)),
        ("hyperwatchSummary.0", object_oid(object::SUMMARY)),
        ("hyperwatchPolicy.0", object_oid(object::POLICY)),
        ("hyperwatchLabels.0", object_oid(object::LABELS)),
        ("hyperwatchFiredAt.0", object_oid(object::FIRED_AT)),
        (
            "hyperwatchIdempotencyKey.0",
            object_oid(object::IDEMPOTENCY_KEY),
        ),
        (
            "hyperwatchMoreIncidents.0",
            object_oid(object::MORE_INCIDENTS),
        ),
        ("hyperwatchTest.0", object_oid(object::TEST)),
        ("hyperwatchNote.0", object_oid(object::NOTE)),
    ];
    let out = Command::new("snmptranslate")
        .args(["-m", "HYPERWATCH-MIB", "-M", &mib_path(), "-On"])
        .args(names.iter().map(|(n, _)| format!("HYPERWATCH-MIB::{n}")))
        .output()
        .expect("snmptranslate (cargo xtask setup installs the snmp package)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "snmptranslate failed:\n{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got: Vec<&str> = stdout.lines().filter(|l| !l.is_empty()).collect();
    let want: Vec<String> = names.iter().map(|(_, oid)| dotted(oid)).collect();
    assert_eq!(got, want);

    // The same with net-snmp's own MIB list added, as an operator would
    // load it (-m +HYPERWATCH-MIB): no message about our module.
    let out = Command::new("snmptranslate")
        .args([
            "-m",
            "+HYPERWATCH-MIB",
            "-M",
            &format!("+{}", mib_path()),
            "-On",
            "HYPERWATCH-MIB::hyperwatchFlapping",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("HYPERWATCH"), "{stderr}");
}

/// snmptrapd in the foreground on a loopback port, logging to stdout.
struct TrapReceiver {
    process: Receiver,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TrapReceiver {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("snmptrapd.conf");
        std::fs::write(&conf, "authCommunity log public\n").unwrap();
        let port = free_udp_port();
        let mut cmd = Command::new("snmptrapd");
        cmd.args(["-f", "-Lo", "-C", "-n"])
            .arg("-c")
            .arg(&conf)
            .args(["-m", "HYPERWATCH-MIB:SNMPv2-MIB", "-M", &mib_path()])
            .arg(format!("udp:127.0.0.1:{port}"))
            // Keep its persistent state out of /var/lib/snmp.
            .env("SNMP_PERSISTENT_DIR", dir.path());
        Self {
            process: Receiver::spawn(cmd, "NET-SNMP version"),
            port,
            _dir: dir,
        }
    }

    /// The first decoded notification whose text contains `marker`.
    fn wait_for(&self, marker: &str) -> String {
        let deadline = Instant::now() + TRAP_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.process.lines.recv_timeout(left) {
                Ok(line) if line.contains(marker) => return line,
                Ok(line) => seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout)
                | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!(
                        "no notification with {marker:?} within {TRAP_TIMEOUT:?}; snmptrapd said:\n{}",
                        seen.join("\n")
                    )
                }
            }
        }
    }
}

fn config(port: u16, inform: bool) -> String {
    format!(
        r#"
        [channels.nms]
        type = "snmp"
        target = "127.0.0.1:{port}"
        community = "public"
        inform = {inform}
        [channels.nms.delivery]
        initial_backoff = "200ms"
        attempt_timeout = "5s"
        "#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snmptrapd_decodes_the_trap_with_the_mib() {
    let receiver = TrapReceiver::start();
    let h = Harness::start(&config(receiver.port, false));
    h.enqueue(&notification("inc-trap", Status::Problem), &["nms"])
        .await;
    let trap = receiver.wait_for("inc-trap");
    for expected in [
        "SNMPv2-MIB::sysUpTime.0 = Timeticks:",
        "SNMPv2-MIB::snmpTrapOID.0 = OID: HYPERWATCH-MIB::hyperwatchProblem",
        "HYPERWATCH-MIB::hyperwatchIncidentId.0 = STRING: inc-trap",
        "HYPERWATCH-MIB::hyperwatchLevel.0 = Gauge32: 1",
        "HYPERWATCH-MIB::hyperwatchStatus.0 = INTEGER: problem(1)",
        "HYPERWATCH-MIB::hyperwatchSeverity.0 = INTEGER: critical(1)",
        "HYPERWATCH-MIB::hyperwatchTarget.0 = STRING: host hv-12",
        "HYPERWATCH-MIB::hyperwatchSummary.0 = STRING: heartbeats stopped 45 s ago",
        "HYPERWATCH-MIB::hyperwatchLabels.0 = STRING: rack=r7",
        "HYPERWATCH-MIB::hyperwatchFiredAt.0 = STRING: ",
        "HYPERWATCH-MIB::hyperwatchIdempotencyKey.0 = STRING: inc-trap:L1:problem",
        "HYPERWATCH-MIB::hyperwatchTest.0 = INTEGER: false(2)",
    ] {
        assert!(trap.contains(expected), "{expected:?} missing in:\n{trap}");
    }
    // sysUpTime.0 and snmpTrapOID.0 come first.
    let up = trap.find("sysUpTime.0").unwrap();
    let oid = trap.find("snmpTrapOID.0").unwrap();
    let first_object = trap.find("HYPERWATCH-MIB::hyperwatchIncidentId").unwrap();
    assert!(up < oid && oid < first_object, "{trap}");
    assert!(!trap.contains(".1.3.6.1.4.1."), "no bare OIDs: {trap}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inform_is_acknowledged_by_snmptrapd() {
    let receiver = TrapReceiver::start();
    let h = Harness::start(&config(receiver.port, true));
    h.enqueue(&notification("inc-inform", Status::Recovery), &["nms"])
        .await;
    let trap = receiver.wait_for("inc-inform");
    assert!(
        trap.contains("OID: HYPERWATCH-MIB::hyperwatchRecovery"),
        "{trap}"
    );
    let d = super::support::wait_for("the acknowledgement", TRAP_TIMEOUT, async || {
        let d = h
            .outbox
            .find("inc-inform:L1:recovery", "nms", "")
            .await
            .unwrap()?;
        d.outcome
            .clone()
            .filter(|o| o.contains("acknowledged"))
            .map(|_| d)
    })
    .await;
    assert_eq!(d.attempts, 1);
    h.stop().await;
}
