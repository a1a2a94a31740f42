//! Kill -9 the watchdog with notifications pending: after a restart they
//! are delivered. The real `hyperwatch` binary runs a delivery drill
//! (`hyperwatch notify drill`, hidden) against a webhook receiver; it is
//! SIGKILLed once while the receiver is failing (nothing delivered yet) and
//! once in the middle of delivering, then restarted until done.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use hyperwatch::outbox::{Durability, Outbox};
use nix::{sys::signal, unistd::Pid};

use super::{gateways, support::wait_for};

/// How many notifications the drill records.
const COUNT: usize = 20;
/// Bound on each phase of the test.
const PHASE_TIMEOUT: Duration = Duration::from_secs(30);

struct Drill {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drill {
    fn start(config: &Path, store: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hyperwatch"))
            .args([
                "notify",
                "drill",
                "--channel",
                "hook",
                "--count",
                &COUNT.to_string(),
            ])
            .arg("--config")
            .arg(config)
            .arg("--store")
            .arg(store)
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting hyperwatch notify drill");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The first line starting with `prefix`.
    fn line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + PHASE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(e) => panic!("no line starting with {prefix:?} from the drill: {e}"),
            }
        }
    }

    fn kill_9(mut self) {
        signal::kill(
            Pid::from_raw(self.child.id() as i32),
            signal::Signal::SIGKILL,
        )
        .unwrap();
        let status = self.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
    }
}

impl Drop for Drill {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Accepted deliveries per idempotency key.
fn accepted(log: &gateways::Shared) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in log
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|r| r.status == 200)
    {
        let key = r.headers["idempotency-key"].to_str().unwrap().to_owned();
        *counts.entry(key).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_watchdog_delivers_pending_notifications_after_restart() {
    let (addr, log) = gateways::json_receiver("/hook", "t").await;
    log.lock().unwrap().script.extend([500; 1000]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("watchdog.toml");
    let store = dir.path().join("store.db");
    std::fs::write(
        &config,
        format!(
            r#"
            [channels.hook]
            type = "webhook"
            url = "http://{addr}/hook"
            auth = {{ bearer_token = "t" }}
            [channels.hook.delivery]
            initial_backoff = "100ms"
            max_backoff = "300ms"
            concurrency = 1
            "#
        ),
    )
    .unwrap();

    // Phase 1: the receiver fails everything; kill -9 with all pending.
    let drill = Drill::start(&config, &store);
    assert_eq!(drill.line("enqueued"), format!("enqueued {COUNT} new"));
    wait_for("failed attempts", PHASE_TIMEOUT, async || {
        (log.lock().unwrap().requests.len() >= 3).then_some(())
    })
    .await;
    drill.kill_9();
    assert!(accepted(&log).is_empty());
    {
        let outbox = Outbox::open(&store, Durability::Full).unwrap();
        let pending = outbox.pending_counts().await.unwrap();
        assert_eq!(
            pending,
            [("hook".to_owned(), COUNT as i64)],
            "all recorded, none lost"
        );
    }

    // Phase 2: the receiver accepts, slowly; kill -9 in the middle.
    {
        let mut l = log.lock().unwrap();
        l.script.clear();
        l.delay = Duration::from_millis(150);
    }
    let drill = Drill::start(&config, &store);
    assert_eq!(
        drill.line("enqueued"),
        "enqueued 0 new",
        "a restart records nothing twice"
    );
    wait_for("some deliveries", PHASE_TIMEOUT, async || {
        (accepted(&log).len() >= 5).then_some(())
    })
    .await;
    drill.kill_9();
    let midway = accepted(&log).len();
    assert!(
        midway < COUNT,
        "killed mid-way ({midway} of {COUNT} accepted)"
    );

    // Phase 3: restart and let it finish.
    let drill = Drill::start(&config, &store);
    assert_eq!(drill.line("enqueued"), "enqueued 0 new");
    assert_eq!(drill.line("done"), "done");
    let counts = accepted(&log);
    for i in 1..=COUNT {
        assert!(
            counts.contains_key(&format!("drill-{i}:L0:problem")),
            "drill-{i} lost: {counts:?}"
        );
    }
    assert_eq!(counts.len(), COUNT);
    // At least once: only a message in flight at the kill may repeat, and it
    // carries the same idempotency key.
    let repeated: usize = counts.values().map(|n| n - 1).sum();
    assert!(
        repeated <= 1,
        "at most the one in-flight message repeats: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_deliveries_to_a_removed_channel_go_to_the_console() {
    use hyperwatch::outbox::{DeliveryMetrics, Notifier, store::State};

    use super::support::{channels, notification};

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.db");
    let console_file = dir.path().join("console");
    std::fs::write(&console_file, "").unwrap();
    let console = format!(
        "[channels.console]\ntype = \"console\"\ntty = \"{}\"\nsyslog = false\n",
        console_file.display()
    );
    // Recorded for a channel that exists, never delivered (no worker runs).
    let before = Notifier::new(
        Outbox::open(&store, Durability::Full).unwrap(),
        channels(&format!(
            "{console}[channels.old]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n"
        )),
        DeliveryMetrics::default(),
    );
    let n = notification("inc-orphan", hyperwatch::channels::Status::Problem);
    before.enqueue(&n, &["old".to_owned()]).await.unwrap();
    drop(before);

    // Restarted without that channel.
    let outbox = Outbox::open(&store, Durability::Full).unwrap();
    let after = Notifier::new(
        outbox.clone(),
        channels(&console),
        DeliveryMetrics::default(),
    );
    let running = after.start();
    let text = wait_for("the console notice", PHASE_TIMEOUT, async || {
        let t = std::fs::read_to_string(&console_file).unwrap();
        t.contains("NOT DELIVERED").then_some(t)
    })
    .await;
    assert!(
        text.contains("channel \"old\" is no longer configured"),
        "{text}"
    );
    let d = outbox
        .find("inc-orphan:L1:problem", "old", "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.state, State::Failed);
    running.stop().await;
}
