//! SMS (Twilio-style and templated gateways), webhook and Jira against
//! local HTTP servers that check fields and authentication and answer 429
//! or 500 on demand; plus the outbox's rate-limit digests and fallback
//! escalation, which these receivers make easy to observe.

use std::time::Duration;

use hyperwatch::{channels::Status, outbox::store::State};
use serde_json::Value;

use super::{
    gateways::{self, serde_urlencoded_pairs},
    support::{Harness, notification, wait_for},
};

/// Bound on waiting for a delivery in these tests (backoff is 100-500 ms).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// Fast retries for tests.
const FAST: &str = r#"
initial_backoff = "100ms"
max_backoff = "500ms"
attempt_timeout = "5s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_sms_retries_429_and_500_and_texts_each_number_once() {
    let (addr, log) = gateways::twilio("AC123", "secret-token").await;
    log.lock().unwrap().script.extend([429, 500]);
    let h = Harness::start(&format!(
        r#"
        [channels.pager]
        type = "sms"
        to = ["+15550001", "+15550002"]
        [channels.pager.twilio]
        account_sid = "AC123"
        auth_token = "secret-token"
        from = "+15559999"
        base_url = "http://{addr}"
        [channels.pager.delivery]
        {FAST}
        "#
    ));
    let n = notification("inc-sms", Status::Problem);
    assert_eq!(
        h.enqueue(&n, &["pager"]).await,
        2,
        "one delivery per number"
    );

    let accepted = wait_for("both numbers texted", DELIVERY_TIMEOUT, async || {
        let log = log.lock().unwrap();
        let ok: Vec<_> = log
            .requests
            .iter()
            .filter(|r| r.status == 201)
            .cloned()
            .collect();
        (ok.len() >= 2).then_some(ok)
    })
    .await;
    // Let a wrong extra retry show up before counting.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let requests = log.lock().unwrap().requests.clone();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        2,
        "no number texted twice: {statuses:?}"
    );
    // The two numbers are texted concurrently: either may get either failure.
    let mut first_two = statuses[..2].to_vec();
    first_two.sort();
    assert_eq!(first_two, [429, 500], "{statuses:?}");
    let mut numbers: Vec<String> = accepted
        .iter()
        .map(|r| {
            let form = serde_urlencoded_pairs(r.body.as_bytes());
            assert_eq!(form["From"], "+15559999");
            assert!(
                form["Body"].contains("PROBLEM critical host hv-12"),
                "{form:?}"
            );
            assert!(form["Body"].contains("(inc-sms)"), "{form:?}");
            assert_eq!(r.headers["idempotency-key"], "inc-sms:L1:problem");
            form["To"].clone()
        })
        .collect();
    numbers.sort();
    assert_eq!(numbers, ["+15550001", "+15550002"]);
    // The 429 asked for Retry-After: 1; the retry waited for it.
    let (at, first) = requests
        .iter()
        .enumerate()
        .find(|(_, r)| r.status == 429)
        .unwrap();
    let retry_of_first = requests[at + 1..]
        .iter()
        .find(|r| {
            serde_urlencoded_pairs(r.body.as_bytes())["To"]
                == serde_urlencoded_pairs(first.body.as_bytes())["To"]
        })
        .unwrap();
    assert!(
        retry_of_first.at.duration_since(first.at) >= Duration::from_millis(950),
        "retried {:?} after a 429 with Retry-After: 1",
        retry_of_first.at.duration_since(first.at)
    );
    let metrics = h.metrics_text();
    assert!(
        metrics.contains("hyperwatch_notifications_sent_total{channel=\"pager\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hyperwatch_notifications_retried_total{channel=\"pager\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hyperwatch_notifications_pending{channel=\"pager\"} 0"),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_escalate_at_once_to_the_console() {
    let (addr, log) = gateways::twilio("AC123", "right-token").await;
    let dir = tempfile::tempdir().unwrap();
    let console_file = dir.path().join("console");
    std::fs::write(&console_file, "").unwrap();
    let h = Harness::start(&format!(
        r#"
        [channels.console]
        type = "console"
        tty = "{}"
        syslog = false
        [channels.pager]
        type = "sms"
        to = ["+15550001"]
        [channels.pager.twilio]
        account_sid = "AC123"
        auth_token = "wrong-token"
        from = "+15559999"
        base_url = "http://{addr}"
        [channels.pager.delivery]
        {FAST}
        "#,
        console_file.display()
    ));
    h.enqueue(&notification("inc-auth", Status::Problem), &["pager"])
        .await;
    let text = wait_for(
        "the failure notice on the console",
        DELIVERY_TIMEOUT,
        async || {
            let text = std::fs::read_to_string(&console_file).unwrap();
            text.contains("NOT DELIVERED").then_some(text)
        },
    )
    .await;
    assert!(
        text.contains("NOT DELIVERED via pager to +15550001 (1 attempt(s)"),
        "{text}"
    );
    assert!(text.contains("401"), "{text}");
    let d = h
        .outbox
        .find("inc-auth:L1:problem", "pager", "+15550001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.state, d.attempts),
        (State::Failed, 1),
        "a 401 is not retried"
    );
    assert_eq!(log.lock().unwrap().requests.len(), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_sms_is_cut_to_its_segment_limit() {
    let (addr, log) = gateways::twilio("AC1", "t").await;
    let h = Harness::start(&format!(
        r#"
        [channels.pager]
        type = "sms"
        to = ["+15550001"]
        max_segments = 1
        [channels.pager.twilio]
        account_sid = "AC1"
        auth_token = "t"
        from = "+1"
        base_url = "http://{addr}"
        "#
    ));
    let mut n = notification("inc-long", Status::Problem);
    n.summary = "disk latency above threshold on every LUN ".repeat(20);
    h.enqueue(&n, &["pager"]).await;
    let body = wait_for("the text", DELIVERY_TIMEOUT, async || {
        let log = log.lock().unwrap();
        log.requests
            .first()
            .map(|r| serde_urlencoded_pairs(r.body.as_bytes())["Body"].clone())
    })
    .await;
    assert_eq!(body.chars().count(), 160, "{body}");
    assert!(body.ends_with("..."), "{body}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templated_sms_gateway_gets_its_json() {
    let (addr, log) = gateways::json_receiver("/send", "gw-token").await;
    let h = Harness::start(&format!(
        r#"
        [channels.gw]
        type = "sms"
        to = ["+4915550001"]
        [channels.gw.http]
        url = "http://{addr}/send"
        headers = {{ X-Ref = "{{{{ key }}}}" }}
        body = '{{"to": {{{{ recipient|tojson }}}}, "text": {{{{ text|tojson }}}}}}'
        auth = {{ bearer_token = "gw-token" }}
        "#
    ));
    h.enqueue(&notification("inc-gw", Status::Recovery), &["gw"])
        .await;
    let seen = wait_for("the gateway request", DELIVERY_TIMEOUT, async || {
        log.lock().unwrap().requests.first().cloned()
    })
    .await;
    assert_eq!(seen.status, 200);
    let body: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(body["to"], "+4915550001");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("RECOVERY critical host hv-12"),
        "{body}"
    );
    assert_eq!(seen.headers["x-ref"], "inc-gw:L1:recovery");
    assert_eq!(seen.headers["idempotency-key"], "inc-gw:L1:recovery");
    assert_eq!(seen.headers["content-type"], "application/json");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_posts_the_documented_body_once_despite_500s_and_replays() {
    let (addr, log) = gateways::json_receiver("/tickets", "hook-token").await;
    log.lock().unwrap().script.extend([500, 500]);
    let h = Harness::start(&format!(
        r#"
        [channels.tickets]
        type = "webhook"
        url = "http://{addr}/tickets"
        auth = {{ bearer_token = "hook-token" }}
        [channels.tickets.delivery]
        {FAST}
        "#
    ));
    let n = notification("inc-hook", Status::Problem);
    assert_eq!(h.enqueue(&n, &["tickets"]).await, 1);
    assert_eq!(
        h.enqueue(&n, &["tickets"]).await,
        0,
        "a replayed decision is not recorded twice"
    );
    let accepted = wait_for("the accepted POST", DELIVERY_TIMEOUT, async || {
        log.lock()
            .unwrap()
            .requests
            .iter()
            .find(|r| r.status == 200)
            .cloned()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        log.lock().unwrap().requests.len(),
        3,
        "two 500s, then one accepted POST"
    );
    assert_eq!(accepted.headers["idempotency-key"], "inc-hook:L1:problem");
    let body: Value = serde_json::from_str(&accepted.body).unwrap();
    for (field, value) in [
        ("idempotency_key", "inc-hook:L1:problem"),
        ("incident_id", "inc-hook"),
        ("status", "problem"),
        ("severity", "critical"),
        ("target", "host hv-12"),
        ("summary", "heartbeats stopped 45 s ago"),
    ] {
        assert_eq!(body[field], value, "{field} in {body}");
    }
    assert_eq!(body["level"], 1);
    assert_eq!(body["labels"]["rack"], "r7");
    assert!(
        body["subject"].as_str().unwrap().starts_with("[PROBLEM]"),
        "{body}"
    );
    let d = h
        .outbox
        .find("inc-hook:L1:problem", "tickets", "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.state, d.attempts), (State::Delivered, 3));
    let audit = h.outbox.attempts(d.id).await.unwrap();
    assert!(audit[0].detail.contains("500"), "{audit:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_rate_limit_becomes_one_digest() {
    let (addr, log) = gateways::json_receiver("/hook", "t").await;
    let h = Harness::start(&format!(
        r#"
        [channels.hook]
        type = "webhook"
        url = "http://{addr}/hook"
        auth = {{ bearer_token = "t" }}
        [channels.hook.delivery]
        rate_limit = {{ messages = 3, per = "1h" }}
        "#
    ));
    let batch: Vec<_> = (1..=40)
        .map(|i| {
            (
                notification(&format!("rack-{i:02}"), Status::Problem),
                vec!["hook".to_owned()],
            )
        })
        .collect();
    h.notifier.enqueue_many(&batch).await.unwrap();
    wait_for("three messages", DELIVERY_TIMEOUT, async || {
        (log.lock().unwrap().requests.len() >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requests = log.lock().unwrap().requests.clone();
    assert_eq!(requests.len(), 3, "the limit is 3 messages");
    let bodies: Vec<Value> = requests
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    let digest = bodies
        .iter()
        .find(|b| b["more_incidents"] == 37)
        .expect("a digest of 38 incidents");
    assert!(
        digest["subject"]
            .as_str()
            .unwrap()
            .ends_with("(and 37 more incidents)"),
        "{digest}"
    );
    assert_eq!(digest["others"].as_array().unwrap().len(), 37);
    let pending = h.outbox.pending_counts().await.unwrap();
    assert!(pending.is_empty(), "all 40 delivered: {pending:?}");
    assert!(
        h.metrics_text()
            .contains("hyperwatch_notifications_digested_total{channel=\"hook\"} 38")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_retry_bound_the_failure_goes_to_the_fallback_and_the_console() {
    let (down, down_log) = gateways::json_receiver("/a", "t").await;
    down_log.lock().unwrap().script.extend([500; 100]);
    let (up, up_log) = gateways::json_receiver("/b", "t").await;
    let dir = tempfile::tempdir().unwrap();
    let console_file = dir.path().join("console");
    std::fs::write(&console_file, "").unwrap();
    let h = Harness::start(&format!(
        r#"
        [channels.console]
        type = "console"
        tty = "{}"
        syslog = false
        [channels.primary]
        type = "webhook"
        url = "http://{down}/a"
        auth = {{ bearer_token = "t" }}
        [channels.primary.delivery]
        {FAST}
        give_up_after = "2s"
        fallback = ["primary", "secondary"]
        [channels.secondary]
        type = "webhook"
        url = "http://{up}/b"
        auth = {{ bearer_token = "t" }}
        "#,
        console_file.display()
    ));
    h.enqueue(&notification("inc-fb", Status::Escalation), &["primary"])
        .await;
    let seen = wait_for("the fallback delivery", DELIVERY_TIMEOUT, async || {
        up_log.lock().unwrap().requests.first().cloned()
    })
    .await;
    let body: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(body["idempotency_key"], "inc-fb:L1:escalation");
    assert!(
        body["note"]
            .as_str()
            .unwrap()
            .starts_with("Fallback: channel primary could not deliver this"),
        "{body}"
    );
    let console = wait_for("the console notice", DELIVERY_TIMEOUT, async || {
        let t = std::fs::read_to_string(&console_file).unwrap();
        t.contains("NOT DELIVERED").then_some(t)
    })
    .await;
    assert!(console.contains("NOT DELIVERED via primary"), "{console}");
    let tries = down_log.lock().unwrap().requests.len();
    assert!(tries >= 3, "retried within the bound: {tries}");
    let failed = h
        .outbox
        .find("inc-fb:L1:escalation", "primary", "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.state, State::Failed);
    let waited = failed.attempts;
    assert_eq!(waited as usize, tries);
    assert!(
        h.metrics_text()
            .contains("hyperwatch_notifications_failed_total{channel=\"primary\"} 1")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_creates_comments_resolves_and_never_duplicates() {
    let (addr, jira) = gateways::jira("bot@example.net", "api-token").await;
    // The first create and one comment succeed on the server but their
    // answers are lost: the retries must find them, not repeat them.
    jira.lock()
        .unwrap()
        .lose_answer_of
        .extend(["create", "comment"]);
    let h = Harness::start(&format!(
        r#"
        [channels.jira]
        type = "jira"
        url = "http://{addr}"
        project = "OPS"
        auth = {{ username = "bot@example.net", password = "api-token" }}
        [channels.jira.delivery]
        {FAST}
        "#
    ));
    let problem = notification("inc-77", Status::Problem);
    let mut repeat = problem.clone();
    repeat.repeat = 1;
    let mut escalation = problem.clone();
    escalation.status = Status::Escalation;
    escalation.level = 2;
    let recovery = notification("inc-77", Status::Recovery);

    for (n, expect) in [
        (&problem, 0usize),
        (&repeat, 1),
        (&escalation, 2),
        (&recovery, 3),
    ] {
        h.enqueue(n, &["jira"]).await;
        let key = n.idempotency_key();
        wait_for(&format!("{key} delivered"), DELIVERY_TIMEOUT, async || {
            let d = h.outbox.find(&key, "jira", "").await.unwrap()?;
            (d.state == State::Delivered).then_some(())
        })
        .await;
        let jira = jira.lock().unwrap();
        assert_eq!(
            jira.issues.len(),
            1,
            "one issue per incident: {:?}",
            jira.issues
        );
        assert_eq!(
            jira.issues[0].comments.len(),
            expect,
            "after {key}: {:?}",
            jira.issues[0].comments
        );
    }
    let jira = jira.lock().unwrap();
    let issue = &jira.issues[0];
    assert_eq!(issue.labels, ["hyperwatch-inc-77", "hyperwatch"]);
    assert!(
        issue.summary.starts_with("[PROBLEM] critical host hv-12"),
        "{}",
        issue.summary
    );
    assert!(issue.description.contains("inc-77:L1:problem"));
    assert!(issue.comments[0].contains("inc-77:L1:problem:r1"));
    assert!(issue.comments[1].contains("ESCALATION"));
    assert!(issue.comments[2].contains("RECOVERY"));
    assert_eq!(issue.status, "Done", "the recovery resolved the issue");
}
