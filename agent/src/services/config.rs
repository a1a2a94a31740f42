//! `[[services]]` in the agent configuration: what to watch and how. Each
//! entry names one check (process, tcp, http or systemd); the checks are
//! validated when the file is read, so `--check-config` catches mistakes
//! with their line and column.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use regex::Regex;
use serde::{Deserialize, Deserializer};

use crate::events::ServiceKind;

/// One watched service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub name: String,
    pub check: Check,
    /// Time between checks (for a process: between searches while it is
    /// down; its death is seen at once through the exit events).
    pub interval: Duration,
    /// Bound on one check.
    pub timeout: Duration,
}

/// What one service check looks at.
#[derive(Clone, Debug)]
pub enum Check {
    Process(ProcessMatch),
    Tcp { address: String },
    Http { url: HttpUrl, expect_status: u16 },
    Systemd { unit: String },
}

impl Check {
    pub fn kind(&self) -> ServiceKind {
        match self {
            Check::Process(_) => ServiceKind::Process,
            Check::Tcp { .. } => ServiceKind::Tcp,
            Check::Http { .. } => ServiceKind::Http,
            Check::Systemd { .. } => ServiceKind::Systemd,
        }
    }
}

/// How the processes of a process check are recognised.
#[derive(Clone, Debug)]
pub enum ProcessMatch {
    /// comm, or the base name of argv[0] (comm is cut to 15 bytes).
    Name(String),
    /// A regular expression over the command line, arguments joined by spaces.
    Cmdline(Regex),
    /// The pid written in this file.
    Pidfile(PathBuf),
}

/// A parsed `http://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses `http://HOST[:PORT][/PATH]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            if url.starts_with("https://") {
                "https is not supported by the http check; use a tcp check on the TLS port, or an http:// health endpoint".to_owned()
            } else {
                format!("`{url}` is not an http:// URL")
            }
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let port_of = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("bad port `{p}` in `{url}`"))
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("unclosed `[` in `{url}`"))?;
            match after.strip_prefix(':') {
                Some(p) => (host, port_of(p)?),
                None => (host, 80),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, port_of(p)?),
                None => (authority, 80),
            }
        };
        if host.is_empty() {
            return Err(format!("no host in `{url}`"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

/// `[[services]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    /// The service's name: the `service` label and the name in events.
    name: String,
    /// Watch processes: `{ name = "nginx" }`, `{ cmdline = "regex" }` or
    /// `{ pidfile = "/run/nginx.pid" }`.
    process: Option<RawProcess>,
    /// Connect to `{ address = "HOST:PORT" }`.
    tcp: Option<RawTcp>,
    /// GET `{ url = "http://...", expect_status = 200 }`.
    http: Option<RawHttp>,
    /// A systemd unit's state: `{ unit = "nginx.service" }` is up when active.
    systemd: Option<RawSystemd>,
    /// Seconds between checks.
    #[serde(default = "default_interval")]
    interval_seconds: f64,
    /// Seconds one check may take before it counts as down.
    #[serde(default = "default_timeout")]
    timeout_seconds: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    /// Process name (comm or argv[0]'s base name).
    name: Option<String>,
    /// Regular expression over the command line.
    cmdline: Option<String>,
    /// File holding the pid.
    pidfile: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTcp {
    /// HOST:PORT to connect to.
    address: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// The http:// URL to GET.
    url: String,
    /// The status that means up.
    #[serde(default = "default_status")]
    expect_status: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystemd {
    /// The unit, e.g. `nginx.service`.
    unit: String,
}

/// 5 s: a dead service is noticed within one Prometheus scrape interval.
fn default_interval() -> f64 {
    5.0
}

/// 2 s: a local service answers in milliseconds; one that takes seconds is
/// as good as down for its clients.
fn default_timeout() -> f64 {
    2.0
}

fn default_status() -> u16 {
    200
}

impl TryFrom<RawService> for ServiceConfig {
    type Error = String;

    fn try_from(raw: RawService) -> Result<Self, String> {
        let name = raw.name;
        let mut checks = Vec::new();
        if let Some(p) = raw.process {
            let mut ways = Vec::new();
            if let Some(n) = p.name {
                ways.push(ProcessMatch::Name(n));
            }
            if let Some(c) = p.cmdline {
                let re = Regex::new(&c).map_err(|e| {
                    format!("service `{name}`: invalid cmdline regular expression: {e}")
                })?;
                ways.push(ProcessMatch::Cmdline(re));
            }
            if let Some(f) = p.pidfile {
                ways.push(ProcessMatch::Pidfile(f));
            }
            if ways.len() != 1 {
                return Err(format!(
                    "service `{name}`: a process check takes exactly one of name, cmdline or pidfile"
                ));
            }
            checks.push(Check::Process(ways.remove(0)));
        }
        if let Some(t) = raw.tcp {
            if !t.address.contains(':') {
                return Err(format!(
                    "service `{name}`: tcp address `{}` needs a port (HOST:PORT)",
                    t.address
                ));
            }
            checks.push(Check::Tcp { address: t.address });
        }
        if let Some(h) = raw.http {
            let url = HttpUrl::parse(&h.url).map_err(|e| format!("service `{name}`: {e}"))?;
            checks.push(Check::Http {
                url,
                expect_status: h.expect_status,
            });
        }
        if let Some(s) = raw.systemd {
            checks.push(Check::Systemd { unit: s.unit });
        }
        if checks.len() != 1 {
            return Err(format!(
                "service `{name}`: give exactly one check: process, tcp, http or systemd"
            ));
        }
        let seconds = |v: f64, what: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(format!(
                    "service `{name}`: {what} must be a positive number of seconds"
                ))
            }
        };
        Ok(ServiceConfig {
            interval: seconds(raw.interval_seconds, "interval_seconds")?,
            timeout: seconds(raw.timeout_seconds, "timeout_seconds")?,
            check: checks.remove(0),
            name,
        })
    }
}

/// All `[[services]]`, with unique names.
#[derive(Clone, Debug, Default)]
pub struct Services(pub Vec<ServiceConfig>);

impl<'de> Deserialize<'de> for Services {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Vec::<RawService>::deserialize(d)?;
        let mut services = Vec::with_capacity(raw.len());
        let mut names = BTreeSet::new();
        for r in raw {
            let s = ServiceConfig::try_from(r).map_err(serde::de::Error::custom)?;
            if !names.insert(s.name.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "two services are called `{}`; names must be unique",
                    s.name
                )));
            }
            services.push(s);
        }
        Ok(Services(services))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        services: Services,
    }

    fn parse(text: &str) -> Result<Vec<ServiceConfig>, String> {
        toml::from_str::<Doc>(text)
            .map(|d| d.services.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_kind_parses() {
        let s = parse(
            r#"
[[services]]
name = "nginx"
process = { name = "nginx" }

[[services]]
name = "worker"
process = { cmdline = "python3 .*worker\\.py" }
interval_seconds = 1

[[services]]
name = "pg"
tcp = { address = "127.0.0.1:5432" }

[[services]]
name = "api"
http = { url = "http://localhost:8080/healthz", expect_status = 204 }
timeout_seconds = 0.5

[[services]]
name = "libvirtd"
systemd = { unit = "libvirtd.service" }
"#,
        )
        .unwrap();
        assert_eq!(s.len(), 5);
        assert!(matches!(&s[0].check, Check::Process(ProcessMatch::Name(n)) if n == "nginx"));
        assert_eq!(s[1].interval, Duration::from_secs(1));
        assert_eq!(s[2].check.kind(), ServiceKind::Tcp);
        match &s[3].check {
            Check::Http { url, expect_status } => {
                assert_eq!(url.host, "localhost");
                assert_eq!(url.port, 8080);
                assert_eq!(url.path, "/healthz");
                assert_eq!(*expect_status, 204);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s[3].timeout, Duration::from_millis(500));
        assert_eq!(s[4].interval, Duration::from_secs(5));
    }

    #[test]
    fn mistakes_are_named() {
        let two = parse(
            "[[services]]\nname = \"x\"\ntcp = { address = \"a:1\" }\nsystemd = { unit = \"u\" }\n",
        );
        assert!(two.unwrap_err().contains("give exactly one check"));
        let none = parse("[[services]]\nname = \"x\"\n");
        assert!(none.unwrap_err().contains("give exactly one check"));
        let https = parse("[[services]]\nname = \"x\"\nhttp = { url = \"https://a/\" }\n");
        assert!(https.unwrap_err().contains("https is not supported"));
        let dup = parse(
            "[[services]]\nname = \"x\"\ntcp = { address = \"a:1\" }\n[[services]]\nname = \"x\"\ntcp = { address = \"a:2\" }\n",
        );
        assert!(dup.unwrap_err().contains("two services are called `x`"));
        let port = parse("[[services]]\nname = \"x\"\ntcp = { address = \"localhost\" }\n");
        assert!(port.unwrap_err().contains("needs a port"));
        let proc2 =
            parse("[[services]]\nname = \"x\"\nprocess = { name = \"a\", pidfile = \"/p\" }\n");
        assert!(
            proc2
                .unwrap_err()
                .contains("exactly one of name, cmdline or pidfile")
        );
        let unknown = parse("[[services]]\nname = \"x\"\ntcp = { adress = \"a:1\" }\n");
        assert!(unknown.unwrap_err().contains("unknown field `adress`"));
    }

    #[test]
    fn urls() {
        assert_eq!(
            HttpUrl::parse("http://10.0.0.1").unwrap(),
            HttpUrl {
                host: "10.0.0.1".into(),
                port: 80,
                path: "/".into()
            }
        );
        assert_eq!(HttpUrl::parse("http://[::1]:81/x?y").unwrap().host, "::1");
        assert!(HttpUrl::parse("http://h:99999/").is_err());
    }
}
