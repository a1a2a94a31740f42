//! The watchdog's TOML configuration: an embedded default, loading with
//! errors that name file, line and column, and checks of the values.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::{
    channels::ChannelsConfig,
    detector::DetectorParams,
    placement::config::{MigrationConfig, PlannerConfig, StorageConfig},
};

/// The embedded default configuration (watchdog/default.toml).
pub const DEFAULT_CONFIG: &str = include_str!("../default.toml");

/// Name shown for the embedded default in error messages.
pub const DEFAULT_CONFIG_NAME: &str = "<embedded default config>";

/// A configuration that could not be read or does not check.
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
    #[error("{file}: [{section}] {field}: {message}")]
    Value {
        file: String,
        section: &'static str,
        field: &'static str,
        message: String,
    },
}

/// The whole watchdog configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The agents' stream endpoint and its perimeter.
    pub stream: StreamConfig,
    /// The HTTP API and /metrics.
    pub http: HttpConfig,
    /// Failure detection.
    pub detector: DetectorConfig,
    /// Commands to agents.
    pub commands: CommandsConfig,
    /// The recovery policies the watchdog runs.
    pub policies: PoliciesConfig,
    /// The durable store: incidents, engine state, audit log, outbox.
    pub store: StoreConfig,
    /// The notification channels, by the name policies use
    /// (`[channels.NAME]`, see [`crate::channels::config`]). `console`
    /// always exists, configured here or not. A configuration without any
    /// `[channels]` table gets the embedded default's (console, email to
    /// the local relay, sms to a local gateway), which the shipped policies
    /// name.
    pub channels: ChannelsConfig,
    /// VM placement: the planner's settings, constraints and capacity loop.
    pub planner: PlannerConfig,
    /// Carrying VM plans out: limits, timeouts, the actuator.
    pub migration: MigrationConfig,
    /// LUN placement: thresholds, the storage loop, the LUN executor and
    /// mover.
    pub storage: StorageConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            stream: StreamConfig::default(),
            http: HttpConfig::default(),
            detector: DetectorConfig::default(),
            commands: CommandsConfig::default(),
            policies: PoliciesConfig::default(),
            store: StoreConfig::default(),
            channels: default_channels(),
            planner: PlannerConfig::default(),
            migration: MigrationConfig::default(),
            storage: StorageConfig::default(),
        }
    }
}

/// The `[channels]` of the embedded default configuration.
pub fn default_channels() -> ChannelsConfig {
    toml::from_str::<crate::channels::config::ChannelsSection>(DEFAULT_CONFIG)
        .expect("the embedded default's channels parse (tested)")
        .channels
}

/// Where agents connect and who may.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Address and port for agents; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// The cluster CA certificate (PEM).
    pub ca: PathBuf,
    /// This watchdog's certificate chain (PEM).
    pub cert: PathBuf,
    /// This watchdog's private key (PEM).
    pub key: PathBuf,
    /// Plain TCP, no authentication: local trials only.
    pub insecure: bool,
    /// The cluster's name; empty takes it from the CA certificate.
    pub cluster: String,
    /// Connections held at once.
    pub max_connections: usize,
    /// Bound on a TLS handshake, seconds.
    pub handshake_timeout_seconds: f64,
    /// Bound on the wait for an agent's hello, seconds.
    pub hello_timeout_seconds: f64,
    /// Largest message accepted from an agent, bytes.
    pub max_message_bytes: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        let certs = Path::new("/etc/hyperwatch/certs");
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], hyperwatch_proto::DEFAULT_STREAM_PORT)),
            ca: certs.join("ca.pem"),
            cert: certs.join("watchdog.pem"),
            key: certs.join("watchdog.key"),
            insecure: false,
            cluster: String::new(),
            max_connections: 20_000,
            handshake_timeout_seconds: 10.0,
            hello_timeout_seconds: 10.0,
            max_message_bytes: hyperwatch_proto::MAX_MESSAGE_BYTES,
        }
    }
}

/// The HTTP endpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port of the API and /metrics; port 0 picks a free port.
    pub listen: SocketAddr,
}

/// The watchdog's HTTP port, beside the stream's 9478.
pub const DEFAULT_HTTP_PORT: u16 = 9479;

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_HTTP_PORT)),
        }
    }
}

/// Failure detection; see [`crate::detector`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Phi at which a host becomes suspect.
    pub suspect_phi: f64,
    /// Phi past which, after the minimum silence, a host is failed.
    pub failure_phi: f64,
    /// Pause tolerated on top of the mean silence, seconds.
    pub acceptable_pause_seconds: f64,
    /// Floor of the silence standard deviation, seconds.
    pub min_std_deviation_seconds: f64,
    /// No host is failed before this much silence, seconds.
    pub min_silence_seconds: f64,
    /// Every host is failed after this much silence, seconds.
    pub hard_timeout_seconds: f64,
    /// Recent heartbeats the statistics cover.
    pub window: usize,
    /// How often verdicts are evaluated, seconds.
    pub check_interval_seconds: f64,
    /// Time without suspicion after which a recovered host is healthy, seconds.
    pub recovery_seconds: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            suspect_phi: 1.0,
            failure_phi: 16.0,
            acceptable_pause_seconds: 1.0,
            min_std_deviation_seconds: 0.1,
            min_silence_seconds: 2.0,
            hard_timeout_seconds: 2.9,
            window: 100,
            check_interval_seconds: 0.05,
            recovery_seconds: 10.0,
        }
    }
}

impl DetectorConfig {
    /// The pure detector's parameters.
    pub fn params(&self) -> DetectorParams {
        DetectorParams {
            suspect_phi: self.suspect_phi,
            failure_phi: self.failure_phi,
            acceptable_pause: secs(self.acceptable_pause_seconds),
            min_std_deviation: secs(self.min_std_deviation_seconds),
            min_silence: secs(self.min_silence_seconds),
            hard_timeout: secs(self.hard_timeout_seconds),
            window: self.window,
        }
    }

    /// How often verdicts are evaluated.
    pub fn check_interval(&self) -> Duration {
        secs(self.check_interval_seconds)
    }

    /// Calm time before a recovered host is healthy again.
    pub fn recovery(&self) -> Duration {
        secs(self.recovery_seconds)
    }
}

/// Commands to agents.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandsConfig {
    /// Bound on waiting for a command's result, seconds.
    pub timeout_seconds: f64,
}

impl Default for CommandsConfig {
    fn default() -> Self {
        Self {
            timeout_seconds: 60.0,
        }
    }
}

/// `[policies]`: which recovery policies run, and what they are checked
/// against.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoliciesConfig {
    /// A directory of policy files (`*.toml`, `*.test.toml` skipped).
    /// Absent: the shipped policies built into the binary.
    pub dir: Option<PathBuf>,
    /// The agent action names the agents' allowlists have: a policy step
    /// naming any other action is an error.
    pub actions: Vec<String>,
    /// How often the policy files are looked at for changes, seconds (they
    /// are also reloaded on SIGHUP).
    pub poll_seconds: f64,
}

/// The action the shipped policies use (service-crashed.toml).
pub const RESTART_SERVICE_ACTION: &str = "restart-service";

impl Default for PoliciesConfig {
    fn default() -> Self {
        Self {
            dir: None,
            actions: vec![RESTART_SERVICE_ACTION.to_owned()],
            poll_seconds: 2.0,
        }
    }
}

/// `[store]`: the SQLite file holding the engine's state, incidents, the
/// audit log and the notification outbox.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The database file; its directory is created if missing.
    pub path: PathBuf,
    /// The engine's state is saved with every decision and otherwise at
    /// most this often, seconds: a crash costs condition tracking since
    /// the last save, never a decision.
    pub snapshot_interval_seconds: f64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("/var/lib/hyperwatch/store.db"),
            snapshot_interval_seconds: 5.0,
        }
    }
}

/// Seconds from a checked config value (see [`check`]).
pub fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::MAX)
}

/// Parses configuration text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| {
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
    })?;
    check(&config, file)?;
    Ok(config)
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

/// Value checks serde cannot express.
fn check(c: &Config, file: &str) -> Result<(), ConfigError> {
    let fail = |section, field, message: String| {
        Err(ConfigError::Value {
            file: file.to_owned(),
            section,
            field,
            message,
        })
    };
    let d = &c.detector;
    let positive = [
        ("acceptable_pause_seconds", d.acceptable_pause_seconds, true),
        (
            "min_std_deviation_seconds",
            d.min_std_deviation_seconds,
            false,
        ),
        ("min_silence_seconds", d.min_silence_seconds, false),
        ("hard_timeout_seconds", d.hard_timeout_seconds, false),
        ("check_interval_seconds", d.check_interval_seconds, false),
        ("recovery_seconds", d.recovery_seconds, true),
    ];
    for (field, value, zero_ok) in positive {
        if !(value.is_finite() && (value > 0.0 || zero_ok && value == 0.0)) {
            return fail(
                "detector",
                field,
                format!("must be a positive number of seconds, not {value}"),
            );
        }
    }
    if d.min_silence_seconds > d.hard_timeout_seconds {
        return fail(
            "detector",
            "min_silence_seconds",
            format!(
                "{} is longer than hard_timeout_seconds ({}); the minimum silence must not exceed the hard timeout",
                d.min_silence_seconds, d.hard_timeout_seconds
            ),
        );
    }
    if !(d.suspect_phi > 0.0 && d.failure_phi >= d.suspect_phi) {
        return fail(
            "detector",
            "failure_phi",
            "needs 0 < suspect_phi <= failure_phi".into(),
        );
    }
    if d.window < 2 {
        return fail("detector", "window", "needs at least 2 heartbeats".into());
    }
    let s = &c.stream;
    for (field, value) in [
        ("handshake_timeout_seconds", s.handshake_timeout_seconds),
        ("hello_timeout_seconds", s.hello_timeout_seconds),
    ] {
        if !(value.is_finite() && value > 0.0) {
            return fail(
                "stream",
                field,
                format!("must be a positive number of seconds, not {value}"),
            );
        }
    }
    if s.max_connections == 0 {
        return fail("stream", "max_connections", "must be at least 1".into());
    }
    if s.max_message_bytes < 1024 {
        return fail(
            "stream",
            "max_message_bytes",
            "must be at least 1024".into(),
        );
    }
    if !s.cluster.is_empty() && !hyperwatch_proto::spiffe::valid_name(&s.cluster) {
        return fail(
            "stream",
            "cluster",
            format!(
                "{:?} is not a valid cluster name (letters, digits, '-', '.', '_')",
                s.cluster
            ),
        );
    }
    for (section, field, value) in [
        ("policies", "poll_seconds", c.policies.poll_seconds),
        (
            "store",
            "snapshot_interval_seconds",
            c.store.snapshot_interval_seconds,
        ),
    ] {
        if !(value.is_finite() && value > 0.0) {
            return fail(
                section,
                field,
                format!("must be a positive number of seconds, not {value}"),
            );
        }
    }
    if c.store.path.as_os_str().is_empty() {
        return fail("store", "path", "names no file".into());
    }
    if let Err(e) = crate::placement::config::check(&c.planner, &c.migration, &c.storage) {
        return fail(e.section, e.field, e.message);
    }
    if !(c.commands.timeout_seconds.is_finite() && c.commands.timeout_seconds > 0.0) {
        return fail(
            "commands",
            "timeout_seconds",
            "must be a positive number of seconds".into(),
        );
    }
    Ok(())
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_checks_and_matches_built_in_defaults() {
        let file = parse(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME).unwrap();
        assert_eq!(format!("{file:?}"), format!("{:?}", Config::default()));
        assert_eq!(
            file.channels.keys().collect::<Vec<_>>(),
            ["console", "email", "sms"],
            "the shipped policies notify these"
        );
        crate::channels::ChannelSet::build(&file.channels).expect("the default channels build");
        let bare = parse("[http]\nlisten = \"127.0.0.1:1\"\n", "bare.toml").unwrap();
        assert_eq!(
            bare.channels.keys().collect::<Vec<_>>(),
            ["console", "email", "sms"],
            "a file without [channels] gets the default ones"
        );
        let own = parse("[channels.pager]\ntype = \"console\"\n", "own.toml").unwrap();
        assert_eq!(own.channels.keys().collect::<Vec<_>>(), ["pager"]);
        assert_eq!(file.stream.listen.port(), 9478);
        assert!(file.http.listen.ip().is_loopback());
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let err = parse("[detector]\nwindow = 10\nwindw = 3\n", "w.toml").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("w.toml:3:1: unknown field `windw`"),
            "{err}"
        );
    }

    #[test]
    fn placement_sections_are_checked_with_their_place() {
        let err = parse("[planner]\ncpu_treshold = 0.7\n", "p.toml").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("p.toml:2:1: unknown field `cpu_treshold`"),
            "{err}"
        );
        let err = parse("[storage]\nmover = \"command\"\n", "s.toml").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("s.toml: [storage] command: mover = \"command\" needs"),
            "{err}"
        );
        let err = parse("[storage.groups.fast]\nmax_capacity_used = 1.5\n", "g.toml").unwrap_err();
        assert!(err.to_string().contains("[storage] groups"), "{err}");
        let ok = parse(
            "[migration]\nexecute_rebalance = true\n[storage]\ndry_run = false\n",
            "ok.toml",
        )
        .unwrap();
        assert!(ok.migration.execute_rebalance && !ok.storage.dry_run);
    }

    #[test]
    fn inconsistent_detector_values_name_the_field() {
        let err = parse(
            "[detector]\nmin_silence_seconds = 5.0\nhard_timeout_seconds = 3.0\n",
            "d.toml",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("d.toml: [detector] min_silence_seconds"),
            "{msg}"
        );
        let err = parse("[detector]\ncheck_interval_seconds = -1\n", "e.toml").unwrap_err();
        assert!(err.to_string().contains("check_interval_seconds"), "{err}");
    }
}
