//! The email channel against aiosmtpd (tests/smtp_sink.py): STARTTLS with
//! AUTH, implicit TLS behind a dead first relay, a plain local relay, and a
//! relay that is down for 20 s and then comes up: delivered exactly once.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use hyperwatch::{channels::Status, outbox::store::State};
use serde_json::Value;

use super::support::{
    Harness, PYTHON, Receiver, free_tcp_port, notification, self_signed, wait_for,
};

/// How long the relay is down in the outage test: the issue's figure.
const OUTAGE: Duration = Duration::from_secs(20);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running aiosmtpd and the directory it writes messages to.
struct Sink {
    _process: Receiver,
    dir: PathBuf,
}

/// One received message as the sink parsed it.
#[derive(Debug)]
struct Mail {
    meta: Value,
}

impl Sink {
    fn start(
        mode: &str,
        port: u16,
        cert: &Path,
        key: &Path,
        auth: Option<(&str, &str)>,
        dir: &Path,
    ) -> Self {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--mode", mode])
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--dir")
            .arg(dir);
        if let Some((user, password)) = auth {
            cmd.args(["--user", user, "--password", password]);
        }
        Self {
            _process: Receiver::spawn(cmd, "READY"),
            dir: dir.to_owned(),
        }
    }

    fn mails(&self) -> Vec<Mail> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap();
                let first = text.lines().next().unwrap();
                Mail {
                    meta: serde_json::from_str(first).unwrap(),
                }
            })
            .collect()
    }
}

fn email_config(relays: &str, cert: &Path) -> String {
    format!(
        r#"
        [channels.mail]
        type = "email"
        from = "hyperwatch <hyperwatch@example.net>"
        to = ["oncall@example.net", "backup@example.net"]
        relays = [{relays}]
        [channels.mail.delivery]
        initial_backoff = "500ms"
        max_backoff = "2s"
        attempt_timeout = "10s"
        "#
    )
    .replace("CA", &cert.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_auth_delivers_headers_and_both_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let port = free_tcp_port();
    let sink = Sink::start(
        "starttls",
        port,
        &cert,
        &key,
        Some(("hyperwatch", "s3cret")),
        dir.path(),
    );
    let h = Harness::start(&email_config(
        &format!(
            r#"{{ host = "127.0.0.1", port = {port}, tls = "starttls", ca_file = "CA", username = "hyperwatch", password = "s3cret" }}"#
        ),
        &cert,
    ));
    h.enqueue(&notification("inc-mail", Status::Problem), &["mail"])
        .await;
    let mail = wait_for("the message at the relay", DELIVERY_TIMEOUT, async || {
        sink.mails().pop()
    })
    .await;
    let m = &mail.meta;
    assert_eq!(m["tls"], true, "STARTTLS was used: {m}");
    assert_eq!(m["login"], "hyperwatch", "authenticated: {m}");
    assert_eq!(m["mail_from"], "hyperwatch@example.net");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["oncall@example.net", "backup@example.net"])
    );
    let p = &m["parsed"];
    assert_eq!(
        p["subject"],
        "[PROBLEM] critical host hv-12: heartbeats stopped 45 s ago"
    );
    assert_eq!(p["message_id"], "<inc-mail.L1.problem@example.net>");
    assert_eq!(p["idempotency_key"], "inc-mail:L1:problem");
    assert_eq!(p["incident"], "inc-mail");
    assert_eq!(p["content_type"], "multipart/alternative");
    let text = p["text"].as_str().unwrap();
    assert!(text.contains("Incident:  inc-mail"), "{text}");
    assert!(text.contains("rack: r7"), "{text}");
    let html = p["html"].as_str().unwrap();
    assert!(
        html.contains("<h2>PROBLEM (critical): host hv-12</h2>"),
        "{html}"
    );
    let d = h
        .outbox
        .find("inc-mail:L1:problem", "mail", "")
        .await
        .unwrap()
        .unwrap();
    assert!(
        d.outcome
            .unwrap()
            .contains("250 2.0.0 Ok: queued as sink-1")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_relay_falls_through_to_implicit_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let dead = free_tcp_port();
    let port = free_tcp_port();
    let sink = Sink::start("implicit", port, &cert, &key, None, dir.path());
    let h = Harness::start(&email_config(
        &format!(
            r#"{{ host = "127.0.0.1", port = {dead}, tls = "starttls", ca_file = "CA" }},
               {{ host = "127.0.0.1", port = {port}, tls = "implicit", ca_file = "CA" }}"#
        ),
        &cert,
    ));
    h.enqueue(&notification("inc-relay", Status::Recovery), &["mail"])
        .await;
    let mail = wait_for(
        "the message at the second relay",
        DELIVERY_TIMEOUT,
        async || sink.mails().pop(),
    )
    .await;
    assert_eq!(mail.meta["tls"], true);
    assert_eq!(
        mail.meta["parsed"]["subject"],
        "[RECOVERY] critical host hv-12: heartbeats stopped 45 s ago"
    );
    let d = h
        .outbox
        .find("inc-relay:L1:recovery", "mail", "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        d.attempts, 1,
        "the second relay took it in the same attempt"
    );
    assert!(
        d.outcome
            .unwrap()
            .starts_with(&format!("127.0.0.1:{port}: 250"))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_smtp_to_a_local_relay() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let port = free_tcp_port();
    let sink = Sink::start("plain", port, &cert, &key, None, dir.path());
    let h = Harness::start(&email_config(
        &format!(r#"{{ host = "127.0.0.1", port = {port}, tls = "none" }}"#),
        &cert,
    ));
    h.enqueue(&notification("inc-plain", Status::Problem), &["mail"])
        .await;
    let mail = wait_for("the message", DELIVERY_TIMEOUT, async || sink.mails().pop()).await;
    assert_eq!(mail.meta["tls"], false);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_down_for_twenty_seconds_then_up_delivers_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let port = free_tcp_port();
    let h = Harness::start(&email_config(
        &format!(r#"{{ host = "127.0.0.1", port = {port}, tls = "starttls", ca_file = "CA" }}"#),
        &cert,
    ));
    h.enqueue(&notification("inc-outage", Status::Problem), &["mail"])
        .await;
    tokio::time::sleep(OUTAGE).await;
    let d = h
        .outbox
        .find("inc-outage:L1:problem", "mail", "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        d.state,
        State::Pending,
        "still pending while the relay is down"
    );
    assert!(
        d.attempts >= 3,
        "retried during the outage: {} attempts",
        d.attempts
    );
    assert!(
        d.outcome.as_deref().unwrap().contains("onnection refused"),
        "{:?}",
        d.outcome
    );

    let sink = Sink::start("starttls", port, &cert, &key, None, dir.path());
    wait_for("delivery after the outage", DELIVERY_TIMEOUT, async || {
        sink.mails().pop()
    })
    .await;
    // Any duplicate would arrive within a retry interval or two.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "delivered once: {mails:?}");
    assert_eq!(
        mails[0].meta["parsed"]["idempotency_key"],
        "inc-outage:L1:problem"
    );
    let d = h
        .outbox
        .find("inc-outage:L1:problem", "mail", "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.state, State::Delivered);
    h.stop().await;
}
