//! The demo's directory, made fresh for every run and removed at its end:
//! the cluster's CA and certificates, the policies in force (the shipped
//! ones compressed, and the demo's own), the simulated hosts' scenarios,
//! the configurations of the watchdog and every agent, the batch script
//! and the SMTP sink, and where every process logs. The texts are built by
//! pure functions; [`DemoDir::create`] writes them.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use hyperwatch_proto::spiffe::Role;

use super::{DemoError, scale::TimeScale};
use crate::certs;

/// The cluster's name, in every certificate.
pub const CLUSTER: &str = "demo";
/// The watchdog's certificate name.
const WATCHDOG_CERT: &str = "watchdog";

/// The simulated hosts and their scenarios (deploy/demo/scenarios), at
/// time scale 1.
pub const SCENARIOS: [(&str, &str); 6] = [
    (
        "hv-1",
        include_str!("../../../deploy/demo/scenarios/hv-1.toml"),
    ),
    (
        "hv-2",
        include_str!("../../../deploy/demo/scenarios/hv-2.toml"),
    ),
    (
        "hv-3",
        include_str!("../../../deploy/demo/scenarios/hv-3.toml"),
    ),
    (
        "hv-4",
        include_str!("../../../deploy/demo/scenarios/hv-4.toml"),
    ),
    (
        "st-1",
        include_str!("../../../deploy/demo/scenarios/st-1.toml"),
    ),
    (
        "st-2",
        include_str!("../../../deploy/demo/scenarios/st-2.toml"),
    ),
];

/// The demo's own policies, loaded beside the shipped ones.
pub const DEMO_POLICIES: [(&str, &str); 1] = [(
    "service-down.toml",
    include_str!("../../../deploy/demo/policies/service-down.toml"),
)];

/// The batch channels' script.
const BATCH_SCRIPT: &str = include_str!("../../../deploy/demo/batch-notify.sh");
/// The SMTP sink (aiosmtpd), the same the email channel's tests use.
const SMTP_SINK: &str = include_str!("../../tests/smtp_sink.py");

/// Racks of the simulated hosts: policies group heartbeat losses by rack.
fn rack(host: &str) -> &'static str {
    match host {
        "hv-1" | "hv-2" => "r1",
        "hv-3" | "hv-4" => "r2",
        _ => "r3",
    }
}

/// The label every simulated host carries, so a silence can name them.
pub const SIMULATED_LABEL: (&str, &str) = ("simulated", "yes");

/// The demo's directory and the paths in it.
#[derive(Clone, Debug)]
pub struct DemoDir {
    pub root: PathBuf,
}

/// Where the email channel sends: the sink on loopback.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// The SMTP sink.
    pub smtp: u16,
    /// The watchdog's HTTP API and status page.
    pub http: SocketAddr,
}

impl DemoDir {
    /// Makes a fresh directory under the system's temporary directory and
    /// writes the certificates, policies, scenarios and scripts.
    pub fn create(scale: TimeScale, local_host: &str) -> Result<Self, DemoError> {
        let root = std::env::temp_dir().join(format!(
            "hyperwatch-demo-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let dir = Self { root };
        for sub in [
            "certs",
            "policies",
            "scenarios",
            "agents",
            "logs",
            "mail",
            "lun-moves",
        ] {
            mkdir(&dir.path(sub))?;
        }
        dir.certificates(local_host)?;
        for (name, text) in crate::runtime::source::SHIPPED {
            let file = format!("policies/default/{name}");
            write(
                &dir.path("policies").join(name),
                &scale.policy(text, &file)?,
            )?;
        }
        for (name, text) in DEMO_POLICIES {
            let file = format!("deploy/demo/policies/{name}");
            write(
                &dir.path("policies").join(name),
                &scale.policy(text, &file)?,
            )?;
        }
        for (host, text) in SCENARIOS {
            let file = format!("deploy/demo/scenarios/{host}.toml");
            write(&dir.scenario(host), &scale.scenario(text, &file)?)?;
        }
        write(&dir.path("batch-notify.sh"), BATCH_SCRIPT)?;
        std::fs::set_permissions(
            dir.path("batch-notify.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .map_err(|e| DemoError::io("making executable", &dir.path("batch-notify.sh"), e))?;
        write(&dir.path("smtp_sink.py"), SMTP_SINK)?;
        for log in ["console.log", "batch.log"] {
            write(&dir.path(log), "")?;
        }
        Ok(dir)
    }

    /// A path in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// A simulated host's scenario.
    pub fn scenario(&self, host: &str) -> PathBuf {
        self.path("scenarios").join(format!("{host}.toml"))
    }

    /// An agent's configuration.
    pub fn agent_config(&self, host: &str) -> PathBuf {
        self.path("agents").join(format!("{host}.toml"))
    }

    /// A process's log (its stderr).
    pub fn log(&self, name: &str) -> PathBuf {
        self.path("logs").join(format!("{name}.log"))
    }

    /// The cluster CA, the watchdog's certificate (127.0.0.1, localhost)
    /// and one per host, as `hyperwatch certs init/issue` make them.
    fn certificates(&self, local_host: &str) -> Result<(), DemoError> {
        let certs = self.path("certs");
        certs::init_dir(CLUSTER, &certs)?;
        certs::issue_dir(
            &certs,
            Role::Watchdog(WATCHDOG_CERT.into()),
            &["localhost".into()],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )?;
        let hosts = SCENARIOS.iter().map(|(h, _)| *h).chain([local_host]);
        for host in hosts {
            certs::issue_dir(&certs, Role::Host(host.into()), &[], &[])?;
        }
        Ok(())
    }

    /// Writes the watchdog's configuration; its stream port is picked by
    /// the system (agents learn it from the watchdog's first line).
    pub fn write_watchdog_config(&self, ports: Ports) -> Result<PathBuf, DemoError> {
        let path = self.path("watchdog.toml");
        write(&path, &watchdog_config(self, ports))?;
        Ok(path)
    }

    /// Writes an agent's configuration streaming to `stream`; simulated
    /// hosts get their rack and the simulated label.
    pub fn write_agent_config(
        &self,
        host: &str,
        stream: SocketAddr,
        simulated: bool,
    ) -> Result<PathBuf, DemoError> {
        let path = self.agent_config(host);
        write(&path, &agent_config(self, host, stream, simulated))?;
        Ok(path)
    }
}

/// The watchdog's configuration: loopback listeners, the policies
/// directory, the store, and the demo's channels (console into a file the
/// demo shows, the batch script as the runbook hook and as SMS, email into
/// the sink).
pub fn watchdog_config(dir: &DemoDir, ports: Ports) -> String {
    let p = |n: &str| dir.path(n).display().to_string();
    let cert = |n: &str| dir.path("certs").join(n).display().to_string();
    format!(
        r#"# hyperwatch demo: the watchdog's configuration (written by `hyperwatch demo`).

[stream]
listen = "127.0.0.1:0"
ca = "{ca}"
cert = "{wd_cert}"
key = "{wd_key}"

[http]
listen = "{http}"

[commands]
# A simulated migration answers in a second or two.
timeout_seconds = 30.0

[policies]
# The shipped policies, time-compressed, and the demo's service-down.
dir = "{policies}"
actions = ["restart-service"]
poll_seconds = 2.0

[store]
path = "{store}"

# The placement service, moving VMs and LUNs through the simulated hosts'
# own vm-migrate-in/-out and lun-migrate-in/-out actions. The story's
# migrations and LUN moves are the policies' steps (host-cpu-capacity's
# rebalance, storage-capacity's move-luns): the periodic loops are off, or
# they would relieve hv-1 and d2 before the policies' waits ran out.
[planner]
interval_seconds = 0.0
# The simulated hosts send a summary a second.
min_samples = 5
settle_seconds = 10.0

[migration]
actuator = "agent"
execute_rebalance = true
# A simulated copy takes a second or two.
migration_timeout_seconds = 60
confirm_timeout_seconds = 20

[storage]
mover = "agent"
dry_run = false
state_dir = "{lun_moves}"
interval_seconds = 0.0
min_samples = 5
settle_seconds = 10.0
move_timeout_seconds = 60

# The console: a file the demo shows on its timeline.
[channels.console]
type = "console"
tty = "{console}"
syslog = false

# The on-call runbook hook: a batch file the demo ships.
[channels.runbook]
type = "batch"
command = "{script}"
args = ["runbook"]
timeout = "10s"
env = {{ DEMO_BATCH_LOG = "{batch_log}" }}

# The shipped policies page by SMS after long waits; the demo has no SMS
# gateway, so its pages go to the same script.
[channels.sms]
type = "batch"
command = "{script}"
args = ["sms"]
timeout = "10s"
env = {{ DEMO_BATCH_LOG = "{batch_log}" }}

# Email into the local SMTP sink the demo runs.
[channels.email]
type = "email"
from = "hyperwatch demo <hyperwatch@demo.invalid>"
to = ["oncall@demo.invalid"]
relays = [{{ host = "127.0.0.1", port = {smtp}, tls = "none" }}]
"#,
        ca = cert("ca.pem"),
        wd_cert = cert(&format!("{WATCHDOG_CERT}.pem")),
        wd_key = cert(&format!("{WATCHDOG_CERT}.key")),
        http = ports.http,
        policies = p("policies"),
        store = p("store.db"),
        lun_moves = p("lun-moves"),
        console = p("console.log"),
        script = p("batch-notify.sh"),
        batch_log = p("batch.log"),
        smtp = ports.smtp,
    )
}

/// An agent's configuration: mutual TLS to the watchdog, 1 s heartbeats
/// and telemetry (the usage windows fill within the compressed story).
pub fn agent_config(dir: &DemoDir, host: &str, stream: SocketAddr, simulated: bool) -> String {
    let cert = |n: &str| dir.path("certs").join(n).display().to_string();
    let labels = if simulated {
        format!(
            "cluster = \"{CLUSTER}\"\nrack = \"{}\"\n{} = \"{}\"\n",
            rack(host),
            SIMULATED_LABEL.0,
            SIMULATED_LABEL.1
        )
    } else {
        format!("cluster = \"{CLUSTER}\"\nrack = \"local\"\n")
    };
    // The simulated hosts model their machines; only the real agent may
    // load kernel programs (it does when run as root).
    let ebpf = if simulated {
        "[ebpf]\nenabled = false\n\n"
    } else {
        ""
    };
    format!(
        "# hyperwatch demo: the agent of {host} (written by `hyperwatch demo`).\n\n{ebpf}[stream]\nendpoints = [\"https://{stream}\"]\nhost_id = \"{host}\"\nca = \"{ca}\"\ncert = \"{host_cert}\"\nkey = \"{host_key}\"\nheartbeat_interval_seconds = 1.0\ntelemetry_interval_seconds = 1.0\nbackoff_initial_seconds = 0.2\nbackoff_max_seconds = 1.0\n\n[labels]\n{labels}",
        ca = cert("ca.pem"),
        host_cert = cert(&format!("{host}.pem")),
        host_key = cert(&format!("{host}.key")),
    )
}

fn mkdir(path: &Path) -> Result<(), DemoError> {
    std::fs::create_dir_all(path).map_err(|e| DemoError::io("creating", path, e))
}

fn write(path: &Path, text: &str) -> Result<(), DemoError> {
    std::fs::write(path, text).map_err(|e| DemoError::io("writing", path, e))
}

/// This machine's name as a host id (letters, digits, `-`, `.`, `_`), for
/// the real agent's certificate; "this-host" when it has none usable.
pub fn local_host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = name.trim();
    let taken = SCENARIOS.iter().any(|(h, _)| *h == name);
    if !taken && hyperwatch_proto::spiffe::valid_name(name) {
        name.to_owned()
    } else {
        "this-host".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configurations_check_and_the_scenarios_scale() {
        let dir = DemoDir::create(TimeScale(20.0), "local-1").unwrap();
        let ports = Ports {
            smtp: 2525,
            http: "127.0.0.1:0".parse().unwrap(),
        };
        let path = dir.write_watchdog_config(ports).unwrap();
        let config = crate::config::load(Some(&path)).unwrap();
        // The policies (shipped, compressed, and the demo's) check against
        // the demo's channels and actions, as `serve --check-config` does.
        let report = crate::runtime::check(&config).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            report.policies.iter().any(|p| p == "service-down"),
            "{report}"
        );
        assert!(report.policies.iter().any(|p| p == "host-cpu-capacity"));
        for host in ["hv-1", "local-1"] {
            let text = agent_config(
                &dir,
                host,
                "127.0.0.1:9".parse().unwrap(),
                host != "local-1",
            );
            assert!(text.contains(&format!("host_id = \"{host}\"")));
            assert!(dir.path("certs").join(format!("{host}.key")).exists());
        }
        let hv1 = std::fs::read_to_string(dir.scenario("hv-1")).unwrap();
        assert!(hv1.contains("at = 5.0"), "100 s at scale 20: {hv1}");
        std::fs::remove_dir_all(&dir.root).unwrap();
    }
}
