//! Starting the demo's children and waiting for them: their stdout lines
//! into one channel, bounded waits for each to announce itself (a child
//! that exits ends its wait at once, with the end of its log), the
//! watchdog's addresses, free ports.

use std::{
    net::{SocketAddr, TcpListener},
    path::Path,
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::ChildStdout,
    sync::mpsc,
};

use super::{DemoError, files::DemoDir, observe::Observer, timeline::Timeline};

/// Bound on a process announcing itself (the real agent loads its kernel
/// programs first, which takes seconds on a busy machine).
const START_WITHIN: Duration = Duration::from_secs(60);
/// How often the watchdog is asked whether a host connected.
const CONNECT_POLL: Duration = Duration::from_millis(200);
/// Lines of a log shown when its process failed.
const LOG_TAIL: usize = 15;

/// Lines from the children's stdout: (process name, line), and None
/// when its stdout closed (it exited).
pub type Lines = mpsc::UnboundedReceiver<(String, Option<String>)>;

/// A child's stdout line onto the timeline: the simulated hosts' own
/// timeline lines (`sim HOST +12.0s: text`); other chatter is left out.
pub fn show_line(tl: &mut Timeline, name: &str, line: &str) {
    if let Some(rest) = line.strip_prefix("sim ")
        && let Some((_, text)) = rest.split_once(": ")
    {
        tl.say(name, text.to_owned());
    }
}

/// Sends `out`'s lines, tagged with `name`, into the demo's channel, and
/// None when it closes.
pub fn forward(out: ChildStdout, name: &str, tx: &mpsc::UnboundedSender<(String, Option<String>)>) {
    let (name, tx) = (name.to_owned(), tx.clone());
    tokio::spawn(async move {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send((name.clone(), Some(line))).is_err() {
                return;
            }
        }
        let _ = tx.send((name, None));
    });
}

/// Waits (bounded) for a line of `name` that `matches`; others' lines go
/// to the timeline meanwhile. Its exit ends the wait at once; the error
/// carries the end of its log.
pub async fn wait_line(
    rx: &mut Lines,
    tl: &mut Timeline,
    name: &str,
    matches: impl Fn(&str) -> bool,
    dir: &DemoDir,
) -> Result<String, DemoError> {
    let waited = tokio::time::timeout(START_WITHIN, async {
        while let Some((from, line)) = rx.recv().await {
            match line {
                Some(line) if from == name && matches(&line) => return Ok(line),
                Some(line) => show_line(tl, &from, &line),
                None if from == name => return Err("exited"),
                None => {}
            }
        }
        Err("exited")
    })
    .await;
    let why = match waited {
        Ok(Ok(line)) => return Ok(line),
        Ok(Err(why)) => why.to_owned(),
        Err(_) => format!("did not start within {START_WITHIN:?}"),
    };
    Err(DemoError::start(
        name,
        format!(
            "{why}; the end of {}:\n{}",
            dir.log(name).display(),
            log_tail(&dir.log(name))
        ),
    ))
}

/// Waits (bounded) until the watchdog lists `host` connected.
pub async fn connected(obs: &Observer, host: &str, dir: &DemoDir) -> Result<(), DemoError> {
    let deadline = tokio::time::Instant::now() + START_WITHIN;
    loop {
        if let Ok(Some(h)) = obs.get(&format!("/api/v1/hosts/{host}")).await
            && h["connected"] == true
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::start(
                format!("{host}'s agent"),
                format!(
                    "did not connect to the watchdog within {START_WITHIN:?}; the end of its log:\n{}",
                    log_tail(&dir.log(host))
                ),
            ));
        }
        tokio::time::sleep(CONNECT_POLL).await;
    }
}

/// `stream at ADDR api at http://ADDR/` of the watchdog's first line.
pub fn addresses(line: &str) -> Result<(SocketAddr, SocketAddr), DemoError> {
    let after = |key: &str| -> Option<SocketAddr> {
        line.split(key)
            .nth(1)?
            .split_whitespace()
            .next()?
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .ok()
    };
    after("stream at ").zip(after("api at ")).ok_or_else(|| {
        DemoError::start(
            "the watchdog",
            format!("announced {line:?}, not its addresses"),
        )
    })
}

/// `wanted`, or a free loopback port when it is taken.
pub fn http_address(wanted: SocketAddr, tl: &mut Timeline) -> SocketAddr {
    match TcpListener::bind(wanted) {
        Ok(_) => wanted,
        Err(e) => {
            tl.say(
                "demo",
                format!("{wanted} is not free ({e}); the status page takes another port"),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        }
    }
}

/// A loopback port free a moment ago.
pub fn free_port() -> Result<u16, DemoError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| DemoError::start("a free port", e.to_string()))
}

pub fn path_str(p: &Path) -> Result<&str, DemoError> {
    p.to_str()
        .ok_or_else(|| DemoError::start("a path", format!("{} is not UTF-8", p.display())))
}

/// The last lines of a log.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
}
