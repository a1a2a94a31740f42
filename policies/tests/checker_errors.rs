//! `hyperwatch policy check` and test-file errors: each names the exact
//! file, line and column and says what was expected.

use std::path::Path;

use hyperwatch_policies::diag::Diagnostic;
use hyperwatch_policies::{CheckOptions, check_dir, test_file};

/// A minimal valid policy to break in one place.
const GOOD: &str = r#"version = 1

[target]
kind = "service"

[when]
state = "service"
is = "exited"

[[step]]
kind = "agent-action"
action = "restart-service"

[[escalate]]
if = "recovery-failed"
notify = ["console"]
"#;

fn opts() -> CheckOptions {
    CheckOptions {
        channels: Some(["console", "email"].map(String::from).into()),
        actions: Some(["restart-service"].map(String::from).into()),
    }
}

/// Checks one file `p.toml` holding `text`; returns its diagnostics.
fn check(text: &str) -> Vec<Diagnostic> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    check_dir(dir.path(), &opts()).errors
}

/// The one diagnostic for `text`, as (line, column, message, help).
fn only(text: &str) -> (usize, usize, String, Option<String>) {
    let errors = check(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let d = &errors[0];
    assert!(d.file.ends_with("p.toml"));
    (d.line, d.column, d.message.clone(), d.help.clone())
}

#[test]
fn the_base_policy_checks() {
    assert_eq!(check(GOOD), Vec::new());
}

#[test]
fn unknown_field_names_the_closest_valid_one() {
    let text = GOOD.replace(
        "action = \"restart-service\"",
        "action = \"restart-service\"\ntiemout = \"30s\"",
    );
    let (line, col, msg, help) = only(&text);
    assert_eq!((line, col), (13, 1));
    assert!(
        msg.starts_with("unknown field `tiemout`, expected one of"),
        "{msg}"
    );
    assert_eq!(help.as_deref(), Some("did you mean `timeout`?"));
}

#[test]
fn unknown_channel_is_pointed_at_with_the_configured_ones() {
    let text = GOOD.replace("notify = [\"console\"]", "notify = [\"email\", \"consle\"]");
    let (line, col, msg, help) = only(&text);
    assert_eq!((line, col), (16, 20));
    assert_eq!(msg, "unknown channel `consle`");
    assert_eq!(
        help.as_deref(),
        Some(
            "did you mean `console`? (the channels configured in the watchdog: `console`, `email`)"
        )
    );
}

#[test]
fn unparsable_duration_says_how_to_write_one() {
    let text = GOOD.replace("is = \"exited\"", "is = \"exited\"\nfor = \"5 min\"");
    let (line, col, msg, _) = only(&text);
    assert_eq!((line, col), (9, 7));
    assert!(
        msg.starts_with("invalid duration `5 min`: it contains a space"),
        "{msg}"
    );
    assert!(msg.contains("\"1h30m\""), "{msg}");
}

#[test]
fn a_step_asking_for_an_undefined_action() {
    let text = GOOD.replace(
        "action = \"restart-service\"",
        "action = \"restart-servce\"",
    );
    let (line, col, msg, help) = only(&text);
    assert_eq!((line, col), (12, 10));
    assert_eq!(msg, "unknown action `restart-servce`");
    assert!(help.unwrap().starts_with("did you mean `restart-service`?"));
}

#[test]
fn a_level_waiting_for_a_recovery_that_cannot_fail_is_unreachable() {
    let text = GOOD.replace(
        "[[step]]\nkind = \"agent-action\"\naction = \"restart-service\"\n",
        "",
    );
    let (line, col, msg, _) = only(&text);
    assert_eq!((line, col), (12, 6));
    assert!(msg.starts_with("level 1 is unreachable: `if = \"recovery-failed\"` but the policy has no recovery steps"), "{msg}");
}

#[test]
fn ladder_levels_out_of_order() {
    let text = format!(
        "{GOOD}\n[[escalate]]\nafter = \"10m\"\nnotify = [\"email\"]\n\n[[escalate]]\nafter = \"5m\"\nnotify = [\"email\"]\n"
    );
    let (line, col, msg, _) = only(&text);
    assert_eq!((line, col), (23, 9));
    assert_eq!(
        msg,
        "level 3 (after 5m) comes before level 2 (after 10m): order the levels by `after`"
    );
}

#[test]
fn a_host_state_typo_lists_the_states() {
    let text = GOOD
        .replace("kind = \"service\"", "kind = \"host\"")
        .replace(
            "state = \"service\"\nis = \"exited\"",
            "state = \"host\"\nis = \"faild\"",
        );
    let errors = check(&text);
    let d = errors
        .iter()
        .find(|d| d.message.contains("faild"))
        .expect("the state typo");
    assert_eq!((d.line, d.column), (8, 6));
    assert_eq!(d.help.as_deref(), Some("did you mean `failed`?"));
}

#[test]
fn missing_version_says_what_to_add() {
    let (line, col, msg, help) = only(&GOOD.replace("version = 1\n", ""));
    assert_eq!((line, col), (1, 1));
    assert_eq!(msg, "missing field `version`");
    assert_eq!(help.as_deref(), Some("start the file with `version = 1`"));
    let (line, col, msg, _) = only(&GOOD.replace("version = 1", "version = 2"));
    assert_eq!(
        (line, col, msg.as_str()),
        (1, 11, "policy language version 2 is not supported")
    );
}

#[test]
fn a_condition_watches_one_input() {
    let text = GOOD.replace("is = \"exited\"", "is = \"exited\"\nmetric = \"cpu\"");
    let (line, col, msg, _) = only(&text);
    assert_eq!((line, col), (9, 10));
    assert_eq!(
        msg,
        "`metric` cannot be combined with `state`: a condition watches one input"
    );
}

#[test]
fn a_step_that_can_never_be_verified() {
    let text = GOOD.replace(
        "[[step]]",
        "[clear]\nis_not = \"exited\"\nfor = \"5m\"\n\n[[step]]",
    );
    let (line, col, msg, help) = only(&text);
    assert_eq!((line, col), (14, 1));
    assert!(
        msg.starts_with("step 1 can never be verified: it allows 1m for the condition to clear"),
        "{msg}"
    );
    assert_eq!(
        help.as_deref(),
        Some("set `verify_within` to at least \"5m\"")
    );
}

#[test]
fn a_key_of_another_step_kind() {
    let text = GOOD.replace(
        "action = \"restart-service\"",
        "action = \"restart-service\"\nduration = \"1m\"",
    );
    let (line, col, msg, _) = only(&text);
    assert_eq!((line, col), (13, 12));
    assert_eq!(
        msg,
        "`duration` belongs to wait steps, and step 1 is not one"
    );
}

#[test]
fn an_unknown_summary_placeholder_is_pointed_at_inside_the_string() {
    let text = GOOD.replace(
        "version = 1\n",
        "version = 1\nsummary = \"{name} on {hots}\"\n",
    );
    let (line, col, msg, help) = only(&text);
    assert_eq!((line, col), (2, 22));
    assert_eq!(msg, "unknown placeholder `{hots}`");
    assert_eq!(help.as_deref(), Some("did you mean `{host}`?"));
}

#[test]
fn step_parameters_take_the_summary_placeholders_and_no_others() {
    let good = GOOD.replace(
        "action = \"restart-service\"",
        "action = \"restart-service\"\nparams = { service = \"{name}\", on = \"{host}\" }",
    );
    assert_eq!(check(&good), Vec::new());
    let text = GOOD.replace(
        "action = \"restart-service\"",
        "action = \"restart-service\"\nparams = { service = \"{nmae}\" }",
    );
    let (line, col, msg, help) = only(&text);
    assert_eq!((line, col), (13, 10), "at the params table");
    assert_eq!(msg, "unknown placeholder `{nmae}`");
    assert_eq!(help.as_deref(), Some("did you mean `{name}`?"));
}

#[test]
fn the_rendered_error_shows_the_line_and_a_caret() {
    let text = GOOD.replace("notify = [\"console\"]", "notify = [\"pager\"]");
    let errors = check(&text);
    let shown = errors[0].to_string();
    let place = format!("{}:16:11", errors[0].file.display());
    assert!(
        shown.starts_with(&format!("{place}: error: unknown channel `pager`")),
        "{shown}"
    );
    assert!(
        shown.contains("16 | notify = [\"pager\"]\n   |           ^^^^^^^"),
        "{shown}"
    );
}

#[test]
fn duplicate_names_across_files_point_at_the_second() {
    let dir = tempfile::tempdir().unwrap();
    let named = GOOD.replace("version = 1\n", "version = 1\nname = \"svc\"\n");
    std::fs::write(dir.path().join("a.toml"), &named).unwrap();
    std::fs::write(dir.path().join("b.toml"), &named).unwrap();
    let report = check_dir(dir.path(), &opts());
    assert_eq!(report.errors.len(), 1, "{report}");
    let d = &report.errors[0];
    assert!(
        d.file.ends_with("b.toml") && (d.line, d.column) == (2, 1),
        "{d}"
    );
    assert!(
        d.message
            .starts_with("policy name `svc` is already used by"),
        "{d}"
    );
    assert!(
        report.to_string().ends_with("1 error in 1 of 2 files"),
        "{report}"
    );
}

#[test]
fn a_missing_directory_is_an_error_not_an_empty_set() {
    let report = check_dir(Path::new("/nonexistent/policies"), &opts());
    assert!(!report.is_ok());
    assert!(
        report.errors[0]
            .message
            .starts_with("cannot read policy directory"),
        "{report}"
    );
}

#[test]
fn without_name_lists_channels_and_actions_are_not_checked_and_the_report_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        GOOD.replace("console", "anything"),
    )
    .unwrap();
    let report = check_dir(dir.path(), &CheckOptions::default());
    assert!(report.is_ok(), "{report}");
    let shown = report.to_string();
    assert!(shown.contains("ok: 1 policy in 1 file"), "{shown}");
    assert!(
        shown.contains("note: channel names not checked (no list given)"),
        "{shown}"
    );
}

/// A test file beside the base policy; returns the report's diagnostics.
fn test_errors(test_text: &str) -> Vec<Diagnostic> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), GOOD).unwrap();
    let path = dir.path().join("p.test.toml");
    std::fs::write(&path, test_text).unwrap();
    test_file(&path).errors
}

const TEST_HEAD: &str = "version = 1\npolicies = [\"p.toml\"]\ntargets = [\"service:hv1/nginx\"]\n\n[[test]]\nname = \"t\"\nuntil = \"1h\"\n";

#[test]
fn a_misspelt_verb_in_a_test_is_pointed_at_inside_its_string() {
    let errors = test_errors(&format!(
        "{TEST_HEAD}given = [\n  \"0s  stat service:hv1/nginx service=exited\",\n]\n"
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let d = &errors[0];
    assert_eq!((d.line, d.column, d.width), (9, 8, 4));
    assert_eq!(
        d.message,
        "`stat` is not something that can happen in a test"
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `state`?"));
}

#[test]
fn a_bad_time_and_a_bad_target_in_test_lines() {
    let text = format!(
        "{TEST_HEAD}given = [\"5 state service:hv1/nginx service=exited\"]\nexpect = [\"1x inc-1 firing\"]\nseries = [\"svc:x m every 1m = 1\"]\n"
    );
    let errors = test_errors(&text);
    let places: Vec<(usize, usize)> = errors.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(places, [(8, 11), (10, 12), (9, 12)], "{errors:#?}");
    assert!(
        errors[0]
            .message
            .starts_with("invalid duration `5`: the unit is missing")
    );
    assert!(errors[1].message.starts_with("invalid target `svc:x`"));
}

#[test]
fn an_answer_for_a_step_no_policy_has() {
    let errors = test_errors(
        "version = 1\npolicies = [\"p.toml\"]\n\n[answers]\nrestart-servce = \"succeeds\"\n\n[[test]]\nname = \"t\"\nuntil = \"1h\"\n",
    );
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let d = &errors[0];
    assert_eq!((d.line, d.column), (5, 18));
    assert_eq!(
        d.message,
        "answer for `restart-servce`, which no step of the policies asks for"
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `restart-service`?"));
}

#[test]
fn a_clear_threshold_on_the_failing_side_is_refused() {
    let text = GOOD.replace(
        "state = \"service\"\nis = \"exited\"",
        "metric = \"cpu\"\nabove = 0.9\n\n[clear]\nbelow = 0.95",
    );
    let (line, col, msg, _) = only(&text);
    assert_eq!((line, col), (10, 1));
    assert_eq!(
        msg,
        "the [clear] threshold overlaps the [when] threshold of `cpu`: a value between them would be failing and fixed at once"
    );
}

#[test]
fn a_key_of_another_condition_kind_is_named_with_what_this_kind_takes() {
    // `within` belongs to event conditions, not to a state condition.
    let text = GOOD.replace("is = \"exited\"", "is = \"exited\"\nwithin = \"5m\"");
    let (line, column, message, help) = only(&text);
    assert_eq!((line, column), (9, 10), "at the value");
    assert_eq!(message, "`within` does not belong in a state condition");
    assert_eq!(
        help.as_deref(),
        Some("a state condition takes `is`, `is_not`, `for`")
    );
    // And `for` does not belong to an event condition.
    let text = GOOD.replace(
        "state = \"service\"\nis = \"exited\"",
        "event = \"oom-kill\"\nwithin = \"10m\"\nfor = \"1m\"",
    );
    let (_, _, message, help) = only(&text);
    assert_eq!(message, "`for` does not belong in an event condition");
    assert_eq!(
        help.as_deref(),
        Some("an event condition takes `at_least`, `within`")
    );
}
