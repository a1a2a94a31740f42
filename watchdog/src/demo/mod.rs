//! `hyperwatch demo`: the whole system on one machine with embedded
//! defaults. It makes a fresh cluster CA and certificates, starts a local
//! SMTP sink, the watchdog with the shipped policies (time-compressed) and
//! the demo's channels, this host's real agent and six simulated hosts
//! (four hypervisors with VMs, two storage hosts with LUNs) speaking mutual
//! TLS, then tells a story in which each architecture acts once, printing
//! one merged timeline as it happens. It ends with a summary (or runs on
//! with `--forever`); Ctrl-C stops every process and removes the directory.
//!
//! Layout:
//! * [`scale`]: dividing the policies' waits and the scenarios' times.
//! * [`files`]: the demo's directory: certificates, policies, scenarios,
//!   configurations, scripts.
//! * [`procs`]: the child processes, their groups and their stop.
//! * [`start`]: their stdout lines, and bounded waits for each to start.
//! * [`timeline`]: the merged, time-ordered stream of lines.
//! * [`observe`]: what the watchdog's API, the console, the batch script
//!   and the mail sink show.
//! * [`story`]: the five steps and how each is recognised.
//! * [`summary`]: the opening and the closing text.
//!
//! Exit status: 0 when every step of the story happened (or after Ctrl-C
//! or SIGTERM stopped it cleanly); 1 when a step did not happen in time;
//! 3 when the demo cannot start or the watchdog dies.

pub mod files;
pub mod observe;
pub mod procs;
pub mod scale;
pub mod start;
pub mod story;
pub mod summary;
pub mod timeline;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use serde_json::json;
use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::mpsc,
};

use self::{
    files::{DemoDir, Ports, SCENARIOS, SIMULATED_LABEL},
    observe::{EBPF_POLICY, Observer},
    procs::Processes,
    scale::{ScaleError, TimeScale},
    start::{
        Lines, addresses, connected, forward, free_port, http_address, log_tail, path_str,
        show_line, wait_line,
    },
    story::{KILL, Story},
    summary::Places,
    timeline::Timeline,
};

/// How often the API and the files are looked at.
const POLL: Duration = Duration::from_millis(500);
/// A progress line when nothing was printed for this long.
const PROGRESS_AFTER: Duration = Duration::from_secs(5);
/// Polls of the API that may fail in a row before the demo gives up.
const POLL_FAILURES: u32 = 20;
/// The watchdog's name among the processes.
const WATCHDOG: &str = "watchdog";
/// The SMTP sink's.
const SINK: &str = "smtp-sink";
/// Debian's python, where python3-aiosmtpd is installed (a pyenv or venv
/// python earlier on PATH would not see it).
const PYTHON: &str = "/usr/bin/python3";

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Start { what: String, message: String },
    #[error(transparent)]
    Scale(#[from] ScaleError),
    #[error("certificates: {0}")]
    Certs(#[from] crate::certs::CertsError),
}

impl DemoError {
    fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.to_owned(),
            source,
        }
    }

    fn start(what: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Start {
            what: what.into(),
            message: message.into(),
        }
    }
}

/// What `hyperwatch demo` was asked.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// How much faster than real time the story runs.
    pub scale: TimeScale,
    /// Keep running after the story, until Ctrl-C.
    pub forever: bool,
    /// Where the status page and API listen; a taken port falls back to a
    /// free one.
    pub http: SocketAddr,
    /// Keep the demo's directory at the end.
    pub keep: bool,
    /// The agent binary; default: `hyperwatch-agent` beside this one.
    pub agent: Option<PathBuf>,
}

/// How the story ended.
enum Ending {
    /// Every step settled or was missed.
    Told,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// The watchdog died, or its API stopped answering.
    Broken(String),
}

/// Runs the demo; see the module's exit statuses.
pub fn run(options: DemoOptions) -> ExitCode {
    // One thread: the children's parent-death signal follows the thread
    // that started them, which must live as long as the demo.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hyperwatch demo: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(demo(options)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hyperwatch demo: {e}");
            ExitCode::from(3)
        }
    }
}

/// The binaries the demo runs.
struct Binaries {
    watchdog: PathBuf,
    agent: PathBuf,
    python: PathBuf,
}

impl Binaries {
    fn find(agent: Option<PathBuf>) -> Result<Self, DemoError> {
        let watchdog = std::env::current_exe()
            .map_err(|e| DemoError::start("this program's path", e.to_string()))?;
        let agent = agent.unwrap_or_else(|| watchdog.with_file_name("hyperwatch-agent"));
        if !agent.exists() {
            return Err(DemoError::start(
                "hyperwatch-agent",
                format!(
                    "{} does not exist; build it (`cargo build -p hyperwatch-agent`, or run the demo with `cargo xtask run`) or name it with --agent",
                    agent.display()
                ),
            ));
        }
        Ok(Self {
            watchdog,
            agent,
            python: PathBuf::from(PYTHON),
        })
    }
}

/// Removes the demo's directory when dropped, unless asked to keep it.
struct DirGuard<'a> {
    dir: &'a DemoDir,
    keep: bool,
}

impl Drop for DirGuard<'_> {
    fn drop(&mut self) {
        if self.keep {
            println!("demo directory kept: {}", self.dir.root.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir.root);
        }
    }
}

/// Ctrl-C and SIGTERM, caught from the start: one that arrives while the
/// children start is acted on as soon as the story's loop runs, rather
/// than killing the demo before it can stop them in order.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    fn install() -> Result<Self, DemoError> {
        let install =
            |kind| signal(kind).map_err(|e| DemoError::start("the signal handlers", e.to_string()));
        Ok(Self {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }
}

async fn demo(options: DemoOptions) -> Result<ExitCode, DemoError> {
    let mut stop = StopSignals::install()?;
    let mut tl = Timeline::default();
    let scale = options.scale;
    let bins = Binaries::find(options.agent.clone())?;
    let local = files::local_host_name();
    let dir = DemoDir::create(scale, &local)?;
    let _guard = DirGuard {
        dir: &dir,
        keep: options.keep,
    };
    // Dropped before the guard: every child is gone before the directory.
    let mut procs = Processes::default();
    let (tx, mut rx) = mpsc::unbounded_channel();
    tl.banner(&format!(
        "hyperwatch demo: a watchdog, {local}'s real agent and six simulated hosts (hv-1..hv-4 run VMs, st-1 and st-2 serve LUNs), all on this machine over mutual TLS.\nstarted at {}; directory {}; Ctrl-C stops everything.",
        humantime::format_rfc3339_millis(tl.started_wall()),
        dir.root.display()
    ));

    // The mail sink first: the watchdog's email channel points at it.
    let smtp = free_port()?;
    let sink = dir.path("smtp_sink.py");
    let mail = dir.path("mail");
    let listen = format!("127.0.0.1:{smtp}");
    let sink_args = [
        path_str(&sink)?,
        "--listen",
        &listen,
        "--mode",
        "plain",
        "--dir",
        path_str(&mail)?,
    ];
    let (_, out) = procs.spawn(SINK, &bins.python, &sink_args, &dir.log(SINK))?;
    forward(out, SINK, &tx);
    wait_line(&mut rx, &mut tl, SINK, |l| l.contains("READY"), &dir).await.map_err(|e| {
        DemoError::start(
            "the SMTP sink",
            format!("{e}\n(it needs python3 with aiosmtpd: `apt-get install python3-aiosmtpd`, which `cargo xtask setup` does)"),
        )
    })?;
    tl.say(
        "demo",
        format!(
            "SMTP sink listening on {listen}, keeping mail in {}",
            mail.display()
        ),
    );

    let http = http_address(options.http, &mut tl);
    let config = dir.write_watchdog_config(Ports { smtp, http })?;
    let (_, out) = procs.spawn(
        WATCHDOG,
        &bins.watchdog,
        &["serve", "--config", path_str(&config)?],
        &dir.log(WATCHDOG),
    )?;
    forward(out, WATCHDOG, &tx);
    let announced = wait_line(
        &mut rx,
        &mut tl,
        WATCHDOG,
        |l| l.starts_with("hyperwatch: cluster"),
        &dir,
    )
    .await?;
    let (stream, api) = addresses(&announced)?;
    tl.say(
        "demo",
        format!("watchdog up: agents' stream at {stream} (mutual TLS, cluster {}), API at http://{api}/", files::CLUSTER),
    );
    let mut obs = Observer::new(&format!("http://{api}"), &dir, &SCENARIOS.map(|(h, _)| h));

    // The real agent, kept out of the story: in maintenance it is watched
    // and shown, but the planner sends it no VMs (it runs none of the
    // simulated ones) and the policies leave it alone.
    let config = dir.write_agent_config(&local, stream, false)?;
    let (_, out) = procs.spawn(
        &local,
        &bins.agent,
        &["--config", path_str(&config)?, "--listen", "127.0.0.1:0"],
        &dir.log(&local),
    )?;
    forward(out, &local, &tx);
    let line = wait_line(
        &mut rx,
        &mut tl,
        &local,
        |l| l.contains("metrics at http://"),
        &dir,
    )
    .await?;
    let agent_metrics = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse::<SocketAddr>().ok());
    connected(&obs, &local, &dir).await?;
    let ebpf = obs
        .get(&format!("/api/v1/hosts/{local}"))
        .await
        .ok()
        .flatten()
        .is_some_and(|h| {
            h["capabilities"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c == "ebpf"))
        });
    tl.say(
        &local,
        format!(
            "real agent up ({}), metrics at http://{}/metrics",
            if ebpf {
                "eBPF on"
            } else {
                "procfs only: eBPF needs root"
            },
            agent_metrics.map_or("?".into(), |a| a.to_string())
        ),
    );
    obs.post(&format!("/api/v1/hosts/{local}/maintenance"), json!({}))
        .await
        .map_err(|e| DemoError::start("maintenance of the real host", e))?;
    tl.say("demo", format!("{local} in maintenance: measured and shown, never a migration destination, left alone by the policies"));
    obs.post(
        "/api/v1/silences",
        json!({
            "matchers": [format!("policy={EBPF_POLICY}"), format!("{}={}", SIMULATED_LABEL.0, SIMULATED_LABEL.1)],
            "for": "24h",
            "by": "demo",
            "comment": "simulated hosts model their machines: there is no kernel to measure",
        }),
    )
    .await
    .map_err(|e| DemoError::start("the silence of simulated hosts' eBPF incidents", e))?;

    // The simulated hosts: their scenarios' clocks start now.
    let t0 = tl.now();
    for (host, _) in SCENARIOS {
        let config = dir.write_agent_config(host, stream, true)?;
        let scenario = dir.scenario(host);
        let args = [
            "--config",
            path_str(&config)?,
            "--simulate",
            path_str(&scenario)?,
            "--listen",
            "127.0.0.1:0",
        ];
        let (_, out) = procs.spawn(host, &bins.agent, &args, &dir.log(host))?;
        forward(out, host, &tx);
    }
    let mut story = Story::new(scale, t0, &dir.path("policies"))?;
    let places = Places {
        api,
        agent: agent_metrics,
        local: &local,
        dir: &dir.root,
    };
    let places_text = summary::places(&places);
    tl.banner(&format!(
        "{}Where to look while it runs:\n{places_text}\n",
        summary::opening(scale, &story)
    ));

    let ending = tell(
        &mut stop,
        &mut tl,
        &mut procs,
        &mut rx,
        &mut obs,
        &mut story,
        scale.real(KILL.1) + t0,
        options.forever,
        &places_text,
    )
    .await;
    tl.flush_all();
    let code = match &ending {
        Ending::Told if story.all_done() => ExitCode::SUCCESS,
        Ending::Told => ExitCode::from(1),
        Ending::Interrupted => ExitCode::SUCCESS,
        Ending::Broken(why) => {
            tl.banner(&format!(
                "hyperwatch demo: {why}\n{}",
                log_tail(&dir.log(WATCHDOG))
            ));
            ExitCode::from(3)
        }
    };
    if !options.forever || matches!(ending, Ending::Interrupted) {
        tl.banner(&summary::closing(
            &story,
            &obs,
            &places_text,
            options.forever,
        ));
    }
    tl.banner("stopping: the watchdog first, then the agents and the mail sink");
    let forced = procs.stop_all(WATCHDOG).await;
    if !forced.is_empty() {
        tl.banner(&format!(
            "killed after the grace period: {}",
            forced.join(", ")
        ));
    }
    tl.banner(&format!(
        "stopped: every process is gone{}",
        if options.keep {
            ""
        } else {
            "; the demo's directory is removed"
        }
    ));
    Ok(code)
}

/// The story: polls, kills hv-2 on time, prints progress, until every step
/// settled or was missed (or forever), or a signal.
#[allow(clippy::too_many_arguments)]
async fn tell(
    stop: &mut StopSignals,
    tl: &mut Timeline,
    procs: &mut Processes,
    rx: &mut Lines,
    obs: &mut Observer,
    story: &mut Story,
    kill_at: f64,
    forever: bool,
    places_text: &str,
) -> Ending {
    let mut tick = tokio::time::interval(POLL);
    let mut killed = false;
    let mut failures = 0;
    let mut told = false;
    loop {
        tokio::select! {
            _ = stop.interrupt.recv() => { tl.say("demo", "Ctrl-C: stopping"); return Ending::Interrupted }
            _ = stop.terminate.recv() => { tl.say("demo", "SIGTERM: stopping"); return Ending::Interrupted }
            Some((name, Some(line))) = rx.recv() => show_line(tl, &name, &line),
            _ = tick.tick() => {
                if !killed && tl.now() >= kill_at {
                    killed = true;
                    match procs.kill(KILL.0).await {
                        Ok(pid) => tl.say("demo", format!("SIGKILL to {}'s agent (pid {pid}): the host dies without a word", KILL.0)),
                        Err(e) => tl.say("demo", format!("cannot kill {}: {e}", KILL.0)),
                    }
                }
                while let Some((name, status)) = procs.exited() {
                    if name == WATCHDOG {
                        return Ending::Broken(format!("the watchdog exited ({status})"));
                    }
                    tl.say("demo", format!("{name} exited ({status})"));
                }
                match obs.poll(tl).await {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        if failures >= POLL_FAILURES {
                            return Ending::Broken(format!("the watchdog's API stopped answering: {e}"));
                        }
                    }
                }
                for news in story.update(obs, tl) {
                    tl.say("story", news);
                }
                if story.over() && !told {
                    told = true;
                    if !forever {
                        return Ending::Told;
                    }
                    tl.flush_all();
                    tl.banner(&summary::closing(story, obs, places_text, true));
                    tl.banner("--forever: the cluster keeps running; Ctrl-C stops it");
                }
                if tl.quiet_for() > PROGRESS_AFTER && !told {
                    tl.say("demo", story.waiting(obs, tl));
                }
                tl.flush_due();
            }
        }
    }
}
