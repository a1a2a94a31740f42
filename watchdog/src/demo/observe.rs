//! What the demo sees of the running cluster, as an operator would: the
//! watchdog's HTTP API (hosts, incidents with their audit timelines and
//! deliveries, plans), the console's file, the batch script's log and the
//! SMTP sink's mailbox. Each poll keeps the latest state for the story and
//! puts what changed on the timeline.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;

use super::{files::DemoDir, timeline::Timeline};

/// Bound on one API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Incidents listed per poll: far more than the demo opens.
const INCIDENT_LIMIT: usize = 1000;
/// The shipped policy that speaks for agents without eBPF; the simulated
/// hosts have no kernel to measure, so their incidents of it are silenced
/// and left off the timeline.
pub const EBPF_POLICY: &str = "ebpf-unavailable";

/// The latest of everything, and what was already shown.
pub struct Observer {
    client: reqwest::Client,
    api: String,
    simulated: BTreeSet<String>,
    /// Hosts by id (the API's host views).
    pub hosts: BTreeMap<String, Value>,
    /// Incidents by number, with their timeline and notifications.
    pub incidents: BTreeMap<u64, Value>,
    /// Plans, newest first; None while the watchdog has no plans API.
    pub plans: Option<Vec<Value>>,
    /// Messages the SMTP sink accepted (its JSON line of each).
    pub mails: Vec<Value>,
    /// Lines the console channel wrote, and the batch script's, with
    /// when the demo read them.
    pub console: Vec<(f64, String)>,
    pub batch: Vec<(f64, String)>,
    shown_entries: BTreeMap<u64, usize>,
    settled: BTreeSet<u64>,
    host_marks: BTreeMap<String, (String, bool)>,
    plan_marks: BTreeMap<String, String>,
    mail_seen: BTreeSet<PathBuf>,
    offsets: BTreeMap<PathBuf, u64>,
    plans_checked: bool,
    dir: DemoDir,
}

impl Observer {
    /// Observes the watchdog at `api` (`http://ADDR`) and the files of `dir`.
    pub fn new(api: &str, dir: &DemoDir, simulated: &[&str]) -> Self {
        // reqwest is built without a default crypto provider; the API is
        // plain HTTP, but the client builder wants one installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            client: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("a plain HTTP client builds"),
            api: api.trim_end_matches('/').to_owned(),
            simulated: simulated.iter().map(|s| (*s).to_owned()).collect(),
            hosts: BTreeMap::new(),
            incidents: BTreeMap::new(),
            plans: None,
            mails: Vec::new(),
            console: Vec::new(),
            batch: Vec::new(),
            shown_entries: BTreeMap::new(),
            settled: BTreeSet::new(),
            host_marks: BTreeMap::new(),
            plan_marks: BTreeMap::new(),
            mail_seen: BTreeSet::new(),
            offsets: BTreeMap::new(),
            plans_checked: false,
            dir: dir.clone(),
        }
    }

    /// GET a JSON document; `None` for a 404.
    pub async fn get(&self, path: &str) -> Result<Option<Value>, String> {
        let r = self
            .client
            .get(format!("{}{path}", self.api))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !r.status().is_success() {
            return Err(format!("GET {path}: {}", r.status()));
        }
        r.json()
            .await
            .map(Some)
            .map_err(|e| format!("GET {path}: {e}"))
    }

    /// POSTs a JSON body; the answer's JSON.
    pub async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let r = self
            .client
            .post(format!("{}{path}", self.api))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = r.status();
        let json: Value = r.json().await.map_err(|e| format!("POST {path}: {e}"))?;
        if status.is_success() {
            Ok(json)
        } else {
            Err(format!("POST {path}: {status} {json}"))
        }
    }

    /// One round: every source, its news onto the timeline.
    pub async fn poll(&mut self, tl: &mut Timeline) -> Result<(), String> {
        self.poll_hosts(tl).await?;
        self.poll_incidents(tl).await?;
        self.poll_plans(tl).await?;
        self.tail_files(tl);
        self.read_mail(tl);
        Ok(())
    }

    async fn poll_hosts(&mut self, tl: &mut Timeline) -> Result<(), String> {
        let Some(Value::Array(hosts)) = self.get("/api/v1/hosts").await? else {
            return Err("GET /api/v1/hosts: not a list".into());
        };
        for h in hosts {
            let id = str_of(&h["id"]).to_owned();
            let state = str_of(&h["state"]).to_owned();
            let connected = h["connected"] == true;
            let at = unix_to_demo(tl, h["state_since"].as_f64());
            match self.host_marks.get(&id) {
                None => tl.push(at.min(tl.now()), &id, connected_line(&h)),
                Some((old, was_connected)) => {
                    if *old != state {
                        let why = if state == "failed" {
                            format!(
                                ": no heartbeat for {:.1} s",
                                h["silence_seconds"].as_f64().unwrap_or_default()
                            )
                        } else {
                            String::new()
                        };
                        tl.push(at, "watchdog", format!("host {id} {state}{why}"));
                    }
                    if *was_connected && !connected {
                        tl.say("watchdog", format!("host {id}: stream closed"));
                    }
                }
            }
            self.host_marks.insert(id.clone(), (state, connected));
            self.hosts.insert(id, h);
        }
        Ok(())
    }

    async fn poll_incidents(&mut self, tl: &mut Timeline) -> Result<(), String> {
        let path = format!("/api/v1/incidents?status=all&limit={INCIDENT_LIMIT}");
        let Some(Value::Array(list)) = self.get(&path).await? else {
            return Err(format!("GET {path}: not a list"));
        };
        for summary in list {
            let Some(num) = incident_number(&summary) else {
                continue;
            };
            if self.settled.contains(&num) {
                continue;
            }
            let id = format!("inc-{num}");
            let Some(detail) = self.get(&format!("/api/v1/incidents/{id}")).await? else {
                continue;
            };
            let quiet = self.is_quiet(&detail);
            let entries = detail["timeline"].as_array().cloned().unwrap_or_default();
            let shown = self.shown_entries.entry(num).or_default();
            for e in entries.iter().skip(*shown) {
                if !quiet {
                    let at = rfc3339_to_demo(tl, &e["at"]);
                    tl.push(at, "watchdog", str_of(&e["line"]).to_owned());
                }
            }
            *shown = entries.len();
            // Resolved and read after resolving: nothing more will change
            // but deliveries of its last notifications.
            let delivered = detail["notifications"]
                .as_array()
                .is_none_or(|n| n.iter().all(|d| d["state"] != "pending"));
            if detail["status"] == "resolved" && delivered {
                self.settled.insert(num);
            }
            self.incidents.insert(num, detail);
        }
        Ok(())
    }

    /// Whether an incident is left off the timeline: eBPF missing on a
    /// simulated host.
    pub fn is_quiet(&self, incident: &Value) -> bool {
        incident["policy"] == EBPF_POLICY
            && targets(incident).iter().all(|t| {
                t.strip_prefix("host:")
                    .is_some_and(|h| self.simulated.contains(h))
            })
    }

    async fn poll_plans(&mut self, tl: &mut Timeline) -> Result<(), String> {
        let Some(answer) = self.get("/api/v1/plans").await? else {
            if !self.plans_checked {
                tl.say(
                    "demo",
                    "this watchdog has no plans API (the planner is not wired in): failover, rebalance and LUN moves answer \"not available\" and escalate",
                );
            }
            self.plans_checked = true;
            return Ok(());
        };
        self.plans_checked = true;
        let plans = answer["plans"].as_array().cloned().unwrap_or_default();
        for p in plans.iter().rev() {
            let id = str_of(&p["id"]).to_owned();
            let mark = plan_mark(p);
            match self.plan_marks.get(&id) {
                Some(old) if *old == mark => continue,
                Some(_) => {}
                None => {
                    let at = unix_to_demo(tl, p["created"].as_f64());
                    tl.push(at, "planner", plan_made(p));
                }
            }
            self.show_moves(tl, p);
            if let Some(finished) = p["finished"].as_f64()
                && !self
                    .plan_marks
                    .get(&id)
                    .is_some_and(|m| m.ends_with(":final"))
            {
                let at = unix_to_demo(tl, Some(finished));
                tl.push(
                    at,
                    "planner",
                    format!(
                        "plan {id} {}: {}",
                        str_of(&p["state"]),
                        str_of(&p["summary"])
                    ),
                );
            }
            self.plan_marks.insert(id, mark);
        }
        self.plans = Some(plans);
        Ok(())
    }

    /// Moves whose state changed since the last look.
    fn show_moves(&self, tl: &mut Timeline, p: &Value) {
        let id = str_of(&p["id"]);
        let old = self.plan_marks.get(id).cloned().unwrap_or_default();
        for (i, m) in p["moves"].as_array().into_iter().flatten().enumerate() {
            let state = str_of(&m["state"]);
            let key = format!("{i}={state};");
            if old.contains(&key) || matches!(state, "pending" | "would-run") {
                continue;
            }
            let took = m["elapsed_ms"]
                .as_f64()
                .map(|ms| format!(" in {:.1} s", ms / 1e3))
                .unwrap_or_default();
            let error = m["error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            tl.say(
                "planner",
                format!(
                    "{} {} {} -> {}: {state}{took}{error}",
                    str_of(&m["how"]),
                    str_of(&m["item"]),
                    str_of(&m["from"]),
                    str_of(&m["to"])
                ),
            );
        }
    }

    /// New lines of the console's file and the batch script's log.
    fn tail_files(&mut self, tl: &mut Timeline) {
        for (file, source) in [("console.log", "console"), ("batch.log", "batch")] {
            let path = self.dir.path(file);
            for line in read_new(&path, self.offsets.entry(path.clone()).or_default()) {
                let shown = match source {
                    // "2026-...Z hyperwatch [PROBLEM] ...": the demo stamps it.
                    "console" => line
                        .split_once(" hyperwatch ")
                        .map_or(line.as_str(), |(_, rest)| rest)
                        .to_owned(),
                    _ => line.clone(),
                };
                tl.say(source, shown);
                let seen = (tl.now(), line);
                if source == "console" {
                    self.console.push(seen);
                } else {
                    self.batch.push(seen);
                }
            }
        }
    }

    /// Messages the sink accepted since the last look.
    fn read_mail(&mut self, tl: &mut Timeline) {
        let Ok(entries) = std::fs::read_dir(self.dir.path("mail")) else {
            return;
        };
        let mut new: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .filter(|p| !self.mail_seen.contains(p))
            .collect();
        new.sort();
        for path in new {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(meta) = serde_json::from_str::<Value>(text.lines().next().unwrap_or("")) else {
                continue;
            };
            let at = unix_to_demo(tl, meta["accepted_at"].as_f64());
            tl.push(
                at,
                "email",
                format!(
                    "the SMTP sink received \"{}\" for {}",
                    str_of(&meta["parsed"]["subject"]),
                    meta["rcpt_tos"]
                        .as_array()
                        .map(|r| r.iter().map(str_of).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default()
                ),
            );
            self.mails.push(meta);
            self.mail_seen.insert(path);
        }
    }
}

/// The incident's number (`inc-7`: 7).
pub fn incident_number(incident: &Value) -> Option<u64> {
    str_of(&incident["id"]).strip_prefix("inc-")?.parse().ok()
}

/// The `kind:id` of every target of an incident.
pub fn targets(incident: &Value) -> Vec<&str> {
    incident["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| str_of(&t["target"]))
        .collect()
}

/// A JSON string, or "".
pub fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// An RFC 3339 time of the API as seconds since the demo began.
pub fn rfc3339_to_demo(tl: &Timeline, v: &Value) -> f64 {
    humantime::parse_rfc3339_weak(str_of(v)).map_or_else(|_| tl.now(), |t| tl.since_start(t))
}

/// Unix seconds of the API as seconds since the demo began.
pub fn unix_to_demo(tl: &Timeline, v: Option<f64>) -> f64 {
    match v.filter(|s| *s > 0.0) {
        Some(s) => tl.since_start(UNIX_EPOCH + Duration::from_secs_f64(s)),
        None => tl.now(),
    }
}

/// Unix seconds as a wall-clock time.
pub fn unix_time(seconds: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs_f64(seconds.max(0.0))
}

fn connected_line(h: &Value) -> String {
    let inv = &h["inventory"];
    let roles = inv["roles"]
        .as_array()
        .map(|r| r.iter().map(str_of).collect::<Vec<_>>().join("+"))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "host".into());
    let luns: usize = inv["storage"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d["luns"].as_array().map_or(0, Vec::len))
        .sum();
    let count = |k: &str| inv[k].as_array().map_or(0, Vec::len);
    format!(
        "connected over mutual TLS: {roles}, {} cores, {} VMs, {} devices, {luns} LUNs, {} services",
        inv["cpu_cores"].as_u64().unwrap_or_default(),
        count("vms"),
        count("storage"),
        count("services")
    )
}

/// A plan's state and its moves' states, to see what changed.
fn plan_mark(p: &Value) -> String {
    let moves: String = p["moves"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, m)| format!("{i}={};", str_of(&m["state"])))
        .collect();
    let fin = if p["finished"].is_number() {
        ":final"
    } else {
        ""
    };
    format!("{}|{moves}{fin}", str_of(&p["state"]))
}

/// "plan P: rebalance of hv-1 for a policy: 2 moves (web-3 hv-1 -> hv-4 live, ...)".
fn plan_made(p: &Value) -> String {
    let moves: Vec<String> = p["moves"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            format!(
                "{} {} -> {} {}",
                str_of(&m["item"]),
                str_of(&m["from"]),
                str_of(&m["to"]),
                str_of(&m["how"])
            )
        })
        .collect();
    format!(
        "plan {} made: {} of {} ({}){}: {} move(s){}",
        str_of(&p["id"]),
        str_of(&p["kind"]),
        p["target"].as_str().unwrap_or("the cluster"),
        str_of(&p["trigger"]),
        if p["dry_run"] == true {
            ", dry run"
        } else {
            ""
        },
        moves.len(),
        if moves.is_empty() {
            String::new()
        } else {
            format!(": {}", moves.join(", "))
        }
    )
}

/// The complete lines appended to `path` since `offset` (which moves past
/// them).
fn read_new(path: &Path, offset: &mut u64) -> Vec<String> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if f.seek(SeekFrom::Start(*offset)).is_err() {
        return Vec::new();
    }
    let mut text = String::new();
    if f.read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    // A line still being written waits for its newline.
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    *offset += complete as u64;
    text[..complete].lines().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_lines_are_read_once() {
        let dir = std::env::temp_dir().join(format!("hw-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.log");
        std::fs::write(&path, "one\ntw").unwrap();
        let mut offset = 0;
        assert_eq!(read_new(&path, &mut offset), ["one"]);
        std::fs::write(&path, "one\ntwo\n").unwrap();
        assert_eq!(read_new(&path, &mut offset), ["two"]);
        assert!(read_new(&path, &mut offset).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plans_read_as_sentences() {
        let p = serde_json::json!({
            "id": "p-1", "kind": "rebalance", "target": "hv-1", "trigger": "policy",
            "dry_run": false, "state": "running",
            "moves": [{"item": "web-3", "from": "hv-1", "to": "hv-4", "how": "live", "state": "pending"}]
        });
        assert_eq!(
            plan_made(&p),
            "plan p-1 made: rebalance of hv-1 (policy): 1 move(s): web-3 hv-1 -> hv-4 live"
        );
        assert_eq!(plan_mark(&p), "running|0=pending;");
    }
}
