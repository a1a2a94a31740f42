//! `hyperwatch notify test CHANNEL --config FILE`: a clearly marked test
//! message through the real channel, the receiver's answer on stdout, and
//! the documented exit statuses.

use std::path::Path;

use serde_json::Value;

use super::gateways;

async fn notify_test(channel: &str, config: &Path) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hyperwatch"))
        .args(["notify", "test", channel, "--config"])
        .arg(config)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_message_reports_the_receivers_answer() {
    let (addr, log) = gateways::json_receiver("/hook", "t").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("watchdog.toml");
    std::fs::write(
        &config,
        format!(
            r#"
            # Tables of other parts of the watchdog are not the channels' business.
            [cluster]
            name = "c1"

            [channels.hook]
            type = "webhook"
            url = "http://{addr}/hook"
            auth = {{ bearer_token = "t" }}
            "#
        ),
    )
    .unwrap();

    let (code, stdout, stderr) = notify_test("hook", &config).await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.trim(), "hook: accepted: HTTP 200 OK: {\"ok\":true}");
    let body: Value = serde_json::from_str(&log.lock().unwrap().requests[0].body).unwrap();
    assert_eq!(body["test"], true);
    assert!(
        body["subject"].as_str().unwrap().starts_with("[TEST] "),
        "{body}"
    );
    assert!(
        body["body"]
            .as_str()
            .unwrap()
            .contains("THIS IS A TEST MESSAGE"),
        "{body}"
    );

    log.lock().unwrap().script.push_back(500);
    let (code, stdout, _) = notify_test("hook", &config).await;
    assert_eq!(code, 3, "a receiver that does not accept: {stdout}");
    assert!(
        stdout.contains("hook: NOT accepted: temporary failure"),
        "{stdout}"
    );
    assert!(stdout.contains("HTTP 500"), "{stdout}");

    let (code, _, stderr) = notify_test("pager", &config).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no channel named \"pager\" (configured: console, hook)"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("watchdog.toml");
    std::fs::write(
        &config,
        "[channels.mail]\ntype = \"email\"\nfrom = \"a@b\"\nto = [\"c@d\"]\nrelay = []\n",
    )
    .unwrap();
    let (code, _, stderr) = notify_test("mail", &config).await;
    assert_eq!(code, 1);
    assert!(stderr.contains(&config.display().to_string()), "{stderr}");
    // serde reports an unknown field inside a tagged table at the table.
    assert!(stderr.contains("line 1, column 1"), "{stderr}");
    assert!(
        stderr.contains("unknown field `relay`, expected one of"),
        "{stderr}"
    );
}

#[test]
fn the_example_configuration_builds() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/channels.toml"
    ));
    let channels = hyperwatch::channels::config::load(path).expect("the example parses");
    let kinds: Vec<&str> = channels.values().map(|c| c.kind()).collect();
    for kind in [
        "console", "batch", "email", "sms", "snmp", "webhook", "jira",
    ] {
        assert!(
            kinds.contains(&kind),
            "the example shows a {kind} channel: {kinds:?}"
        );
    }
    // The example reads its secrets from the environment; build it with
    // them inlined instead of changing this process's environment.
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace(r#"{ env = "HYPERWATCH_SMTP_PASSWORD" }"#, r#""x""#)
        .replace(r#"{ env = "HYPERWATCH_TWILIO_TOKEN" }"#, r#""x""#)
        .replace(r#"{ env = "HYPERWATCH_JIRA_TOKEN" }"#, r#""x""#);
    let section: hyperwatch::channels::config::ChannelsSection = toml::from_str(&text).unwrap();
    let set = hyperwatch::channels::ChannelSet::build(&section.channels)
        .expect("the example's channels build");
    assert!(set.get("console").is_some());
}
