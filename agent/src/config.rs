//! The agent's TOML configuration: an embedded default, loading with errors
//! that name file, line and column, and the collector switches.

use std::{
    collections::BTreeMap,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use regex::Regex;
use serde::{Deserialize, Deserializer};

use crate::{
    ebpf::budget::BudgetConfig, services::config::Services, stuck::StuckConfig, vm::VmConfig,
};

/// The embedded default configuration (agent/default.toml).
pub const DEFAULT_CONFIG: &str = include_str!("../default.toml");

/// Name shown for the embedded default in error messages.
pub const DEFAULT_CONFIG_NAME: &str = "<embedded default config>";

/// A configuration file that could not be read or does not check.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}\n{excerpt}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        message: String,
        excerpt: String,
    },
    #[error("{file}: {field}: {message}")]
    Value {
        file: String,
        field: String,
        message: String,
    },
}

/// The whole agent configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP endpoint for /metrics.
    pub http: HttpConfig,
    /// Roots of /proc, /sys and tracefs.
    pub paths: PathsConfig,
    /// Kernel programs.
    pub ebpf: EbpfConfig,
    /// Per-collector settings.
    pub collectors: CollectorsConfig,
    /// Storage backends the `storage` collector inventories.
    pub storage: StorageConfig,
    /// Watched services (`[[services]]`), each with one check.
    pub services: Services,
    /// The stream to the watchdog (off while `endpoints` is empty).
    pub stream: StreamConfig,
    /// The named actions the watchdog may ask for, by name: the allowlist.
    pub actions: BTreeMap<String, ActionConfig>,
    /// This host's labels (cluster, rack, tenant, ...), sent to the
    /// watchdog in the hello: recovery policies select and group by them.
    pub labels: BTreeMap<String, String>,
}

/// Where the storage inventory looks: LVM volume groups, directory pools
/// and plain block devices. Empty lists report nothing.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// LVM volume groups whose PVs (devices) and LVs (LUNs) are reported.
    pub lvm_volume_groups: Vec<String>,
    /// Passed to LVM commands as `--config` (e.g. `devices{use_devicesfile=0}`
    /// in a container); empty for none.
    pub lvm_config: Option<String>,
    /// Directory pools by name: a directory of disk image files on a
    /// mounted file system.
    pub directory_pools: std::collections::BTreeMap<String, PathBuf>,
    /// Plain block devices by kernel name (`sdb`); partitions are LUNs.
    pub block_devices: Vec<String>,
}

/// The stream to the watchdog.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Watchdog URLs, tried in order with failover: `https://HOST:9478`, or
    /// `http://` with `insecure`. Empty: no stream.
    pub endpoints: Vec<String>,
    /// This host's id; it must match the certificate's
    /// spiffe://CLUSTER/host/HOST. Empty: the host name.
    pub host_id: String,
    /// The cluster CA certificate (PEM).
    pub ca: PathBuf,
    /// This agent's certificate (PEM), from `hyperwatch certs issue --host`.
    pub cert: PathBuf,
    /// This agent's private key (PEM).
    pub key: PathBuf,
    /// Plain TCP without TLS, for local trials only (logged as a warning).
    pub insecure: bool,
    /// Seconds between heartbeats.
    pub heartbeat_interval_seconds: f64,
    /// Seconds between telemetry summaries.
    pub telemetry_interval_seconds: f64,
    /// Further metric families (by name) sent in every telemetry summary.
    pub telemetry_metrics: Vec<String>,
    /// Events and telemetry kept while the watchdog is unreachable; beyond
    /// it the oldest are dropped and counted.
    pub buffer_records: usize,
    /// First reconnect delay, seconds (doubling, with jitter).
    pub backoff_initial_seconds: f64,
    /// Longest reconnect delay, seconds.
    pub backoff_max_seconds: f64,
    /// Bound on connecting and on the watchdog's welcome, seconds.
    pub connect_timeout_seconds: f64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        let certs = Path::new("/etc/hyperwatch/certs");
        Self {
            endpoints: Vec::new(),
            host_id: String::new(),
            ca: certs.join("ca.pem"),
            cert: certs.join("agent.pem"),
            key: certs.join("agent.key"),
            insecure: false,
            heartbeat_interval_seconds: 1.0,
            telemetry_interval_seconds: 10.0,
            telemetry_metrics: Vec::new(),
            buffer_records: 10_000,
            backoff_initial_seconds: 0.5,
            backoff_max_seconds: 10.0,
            connect_timeout_seconds: 5.0,
        }
    }
}

/// One allowed action.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// Program and arguments, run without a shell; an element `{NAME}` is
    /// replaced by the command's argument NAME.
    pub argv: Vec<String>,
    /// Seconds before the action is killed.
    #[serde(default = "default_action_timeout")]
    pub timeout_seconds: f64,
}

fn default_action_timeout() -> f64 {
    30.0
}

/// The HTTP endpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port to listen on; port 0 picks a free port (tests).
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
        }
    }
}

/// hyperwatch-agent's own port, beside node_exporter's 9100.
pub const DEFAULT_PORT: u16 = 9477;

/// Roots of the pseudo file systems.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    /// procfs root, normally /proc.
    pub procfs: PathBuf,
    /// sysfs root, normally /sys.
    pub sysfs: PathBuf,
    /// tracefs mount point; mounted there when missing.
    pub tracefs: PathBuf,
    /// udev's device database, normally /run/udev/data: disk model, serial,
    /// file system and device-mapper names (node_exporter's
    /// --path.udev.data).
    pub udev_data: PathBuf,
}

impl Default for PathsConfig {
    fn default() -> Self {
        Self {
            procfs: "/proc".into(),
            sysfs: "/sys".into(),
            tracefs: "/sys/kernel/tracing".into(),
            udev_data: "/run/udev/data".into(),
        }
    }
}

/// Kernel programs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EbpfConfig {
    /// Load the eBPF programs at start.
    pub enabled: bool,
    /// The cost a program may have before it is detached.
    pub budget: BudgetConfig,
    /// Also attach a program that does nothing to sched_switch, so the cost
    /// figures can be read against the tracepoint's own (benchmarks only).
    pub attach_noop_baseline: bool,
}

impl Default for EbpfConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            budget: BudgetConfig::default(),
            attach_noop_baseline: false,
        }
    }
}

/// A collector with nothing to configure but its switch.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Toggle {
    /// Whether the collector runs.
    pub enabled: bool,
}

impl Default for Toggle {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// A collector over named devices, with node_exporter-style filters.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceCollector {
    /// Whether the collector runs.
    pub enabled: bool,
    /// Devices whose name matches are skipped (regex, empty for none).
    pub device_exclude: Pattern,
    /// When set, only devices whose name matches are reported.
    pub device_include: Pattern,
}

impl Default for DeviceCollector {
    fn default() -> Self {
        Self {
            enabled: true,
            device_exclude: Pattern::default(),
            device_include: Pattern::default(),
        }
    }
}

impl DeviceCollector {
    /// Whether a device passes the include and exclude patterns.
    pub fn accepts(&self, device: &str) -> bool {
        self.device_include
            .0
            .as_ref()
            .is_none_or(|r| r.is_match(device))
            && !self
                .device_exclude
                .0
                .as_ref()
                .is_some_and(|r| r.is_match(device))
    }
}

/// A regular expression from the config; the empty string means none.
#[derive(Clone, Default)]
pub struct Pattern(pub Option<Regex>);

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(r) => write!(f, "{:?}", r.as_str()),
            None => f.write_str("none"),
        }
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(Pattern(None));
        }
        Regex::new(&text)
            .map(|r| Pattern(Some(r)))
            .map_err(|e| serde::de::Error::custom(format!("invalid regular expression: {e}")))
    }
}

/// Every collector's settings, by collector name.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorsConfig {
    /// node_cpu_seconds_total and friends from /proc/stat.
    pub cpu: Toggle,
    /// Context switches, forks, interrupts, boot time, procs from /proc/stat.
    pub stat: Toggle,
    /// Load averages from /proc/loadavg.
    pub loadavg: Toggle,
    /// node_memory_*_bytes from /proc/meminfo.
    pub meminfo: Toggle,
    /// Block device counters from /proc/diskstats.
    pub diskstats: DeviceCollector,
    /// Network interface counters from /proc/net/dev.
    pub netdev: DeviceCollector,
    /// Pressure stall information from /proc/pressure.
    pub pressure: Toggle,
    /// Scheduler statistics from /proc/schedstat.
    pub schedstat: Toggle,
    /// eBPF per-CPU busy time from sched_switch.
    pub cpu_busy: Toggle,
    /// Storage devices and LUNs of the `[storage]` backends.
    pub storage: Toggle,
    /// eBPF run-queue latency histogram.
    pub runqueue: Toggle,
    /// eBPF disk IO latency histograms by device and operation.
    pub disk_latency: DeviceCollector,
    /// eBPF process exit and OOM kill counts.
    pub process_exits: Toggle,
    /// eBPF time since each CPU's last context switch, and stuck-CPU events.
    pub cpu_stuck: StuckConfig,
    /// eBPF programs' own run counts and run time.
    pub ebpf_cost: Toggle,
    /// The VMs on this host: inventory and usage.
    pub vm: VmConfig,
}

impl Default for CollectorsConfig {
    fn default() -> Self {
        Self {
            cpu: Toggle::default(),
            stat: Toggle::default(),
            loadavg: Toggle::default(),
            meminfo: Toggle::default(),
            diskstats: DeviceCollector {
                enabled: true,
                device_exclude: Pattern(Some(
                    Regex::new(DISKSTATS_DEFAULT_EXCLUDE).expect("constant regex"),
                )),
                device_include: Pattern::default(),
            },
            netdev: DeviceCollector::default(),
            pressure: Toggle::default(),
            schedstat: Toggle::default(),
            cpu_busy: Toggle::default(),
            storage: Toggle::default(),
            runqueue: Toggle::default(),
            disk_latency: DeviceCollector::default(),
            process_exits: Toggle::default(),
            cpu_stuck: StuckConfig::default(),
            ebpf_cost: Toggle::default(),
            vm: VmConfig::default(),
        }
    }
}

/// node_exporter's `--collector.diskstats.device-exclude` default.
pub const DISKSTATS_DEFAULT_EXCLUDE: &str = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

impl CollectorsConfig {
    /// The `enabled` switch of the collector called `name`.
    pub fn enabled_mut(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "cpu" => &mut self.cpu.enabled,
            "stat" => &mut self.stat.enabled,
            "loadavg" => &mut self.loadavg.enabled,
            "meminfo" => &mut self.meminfo.enabled,
            "diskstats" => &mut self.diskstats.enabled,
            "netdev" => &mut self.netdev.enabled,
            "pressure" => &mut self.pressure.enabled,
            "schedstat" => &mut self.schedstat.enabled,
            "cpu_busy" => &mut self.cpu_busy.enabled,
            "storage" => &mut self.storage.enabled,
            "runqueue" => &mut self.runqueue.enabled,
            "disk_latency" => &mut self.disk_latency.enabled,
            "process_exits" => &mut self.process_exits.enabled,
            "cpu_stuck" => &mut self.cpu_stuck.enabled,
            "ebpf_cost" => &mut self.ebpf_cost.enabled,
            "vm" => &mut self.vm.enabled,
            _ => return None,
        })
    }
}

/// Parses configuration text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let config: Config = parse_toml(text, file)?;
    check_stream(&config, file)?;
    Ok(config)
}

/// Value checks of [stream] and [actions] that serde cannot express.
fn check_stream(c: &Config, file: &str) -> Result<(), ConfigError> {
    let s = &c.stream;
    let fail = |field: &str, message: String| {
        Err(ConfigError::Value {
            file: file.to_owned(),
            field: field.to_owned(),
            message,
        })
    };
    for (field, v) in [
        (
            "stream.heartbeat_interval_seconds",
            s.heartbeat_interval_seconds,
        ),
        (
            "stream.telemetry_interval_seconds",
            s.telemetry_interval_seconds,
        ),
        ("stream.backoff_initial_seconds", s.backoff_initial_seconds),
        ("stream.backoff_max_seconds", s.backoff_max_seconds),
        ("stream.connect_timeout_seconds", s.connect_timeout_seconds),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return fail(
                field,
                format!("must be a positive number of seconds, not {v}"),
            );
        }
    }
    if s.buffer_records == 0 {
        return fail("stream.buffer_records", "must be at least 1".into());
    }
    let scheme = if s.insecure { "http://" } else { "https://" };
    for e in &s.endpoints {
        if !e.starts_with(scheme) {
            return fail(
                "stream.endpoints",
                format!("{e:?} must start with {scheme} (insecure = {})", s.insecure),
            );
        }
    }
    for (name, a) in &c.actions {
        if a.argv.is_empty() || a.argv[0].is_empty() {
            return fail(&format!("actions.{name}.argv"), "needs a program".into());
        }
        if !(a.timeout_seconds.is_finite() && a.timeout_seconds > 0.0) {
            return fail(
                &format!("actions.{name}.timeout_seconds"),
                "must be a positive number of seconds".into(),
            );
        }
    }
    Ok(())
}

fn parse_toml(text: &str, file: &str) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let (line, column) = line_column(text, offset);
        let source_line = text.lines().nth(line - 1).unwrap_or("");
        ConfigError::Invalid {
            file: file.to_owned(),
            line,
            column,
            message: e.message().to_owned(),
            excerpt: format!("  {source_line}\n  {}^", " ".repeat(column - 1)),
        }
    })
}

/// Loads the file at `path`, or the embedded default when `None`.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        None => parse(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            parse(&text, &path.display().to_string())
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_checks() {
        let c = parse(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME).unwrap();
        assert_eq!(c.http.listen.port(), DEFAULT_PORT);
        assert!(!c.collectors.diskstats.accepts("sda1"));
        assert!(!c.collectors.diskstats.accepts("nvme0n1p2"));
        assert!(!c.collectors.diskstats.accepts("loop3"));
        assert!(c.collectors.diskstats.accepts("sda"));
        assert!(c.collectors.diskstats.accepts("nvme0n1"));
        assert!(c.collectors.diskstats.accepts("dm-0"));
    }

    #[test]
    fn embedded_default_file_matches_built_in_defaults() {
        let file = parse(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME).unwrap();
        assert_eq!(format!("{file:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn an_empty_file_means_defaults() {
        let c = parse("", "empty.toml").unwrap();
        assert_eq!(c.http.listen.port(), DEFAULT_PORT);
        assert!(!c.collectors.diskstats.accepts("loop0"));
    }

    #[test]
    fn unknown_key_names_file_line_column_and_valid_keys() {
        let err = parse("[http]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n", "a.toml").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("a.toml:3:1: unknown field `listne`"),
            "{msg}"
        );
        assert!(msg.contains("expected `listen`"), "{msg}");
    }

    #[test]
    fn wrong_type_names_the_place() {
        let err = parse("[ebpf]\nenabled = \"yes\"\n", "b.toml").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("b.toml:2:11: invalid type: string"),
            "{msg}"
        );
    }

    #[test]
    fn bad_pattern_names_the_place() {
        let text = "[collectors.netdev]\ndevice_exclude = '^(eth'\n";
        let msg = parse(text, "c.toml").unwrap_err().to_string();
        assert!(
            msg.starts_with("c.toml:2:18: invalid regular expression"),
            "{msg}"
        );
    }

    #[test]
    fn stream_and_actions_parse_and_check() {
        let text = "[stream]\nendpoints = ['https://wd1:9478', 'https://wd2:9478']\nhost_id = 'hv1'\n\n[actions.restart]\nargv = ['systemctl', 'restart', '{service}']\n";
        let c = parse(text, "s.toml").unwrap();
        assert_eq!(c.stream.endpoints.len(), 2);
        assert_eq!(c.stream.heartbeat_interval_seconds, 1.0);
        assert_eq!(c.actions["restart"].timeout_seconds, 30.0);
        let msg = parse("[stream]\nendpoints = ['http://wd:9478']\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(
                "t.toml: stream.endpoints: \"http://wd:9478\" must start with https://"
            ),
            "{msg}"
        );
        let msg = parse("[stream]\nheartbeat_interval_seconds = 0\n", "u.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("stream.heartbeat_interval_seconds"), "{msg}");
        let msg = parse("[actions.x]\nargv = []\n", "v.toml")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("v.toml: actions.x.argv: needs a program"),
            "{msg}"
        );
    }

    #[test]
    fn include_and_exclude_combine() {
        let text = "[collectors.netdev]\ndevice_include = '^(eth|en)'\ndevice_exclude = 'en1$'\n";
        let c = parse(text, "d.toml").unwrap();
        assert!(c.collectors.netdev.accepts("eth0"));
        assert!(c.collectors.netdev.accepts("enp3s0"));
        assert!(!c.collectors.netdev.accepts("en1"));
        assert!(!c.collectors.netdev.accepts("lo"));
    }
}
