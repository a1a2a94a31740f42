//! The engine's API as the watchdog uses it: snapshot and restore mid-step
//! (kill -9), refused inputs that change nothing, hot reload, idempotency
//! keys, the planner interface, and wake-up times.

use std::path::Path;

use hyperwatch_policies::decision::{DecisionKind, NotifyKind};
use hyperwatch_policies::input::{Sample, Silence, StepResult};
use hyperwatch_policies::planner::{NotAvailable, PlanRequest, Planner};
use hyperwatch_policies::policy::{Policy, PolicySet, StepAction};
use hyperwatch_policies::target::{HostState, TargetInfo, TargetRef};
use hyperwatch_policies::time::{Duration, Timestamp};
use hyperwatch_policies::{
    CheckOptions, Decision, Engine, EngineError, EngineState, IncidentId, Input, InputKind,
};

fn policy(name: &str, text: &str) -> Policy {
    let text = format!("version = 1\nname = \"{name}\"\n{text}");
    hyperwatch_policies::checker::parse_policy(&text, Path::new("t.toml"), &CheckOptions::default())
        .unwrap_or_else(|e| panic!("{e:#?}"))
}

const RESTART: &str = r#"
[target]
kind = "service"
[when]
state = "service"
is = "exited"
[[step]]
kind = "agent-action"
action = "restart-service"
attempts = 2
timeout = "30s"
[[escalate]]
if = "recovery-failed"
notify = ["console"]
[[escalate]]
after = "10m"
unless = "acked"
notify = ["email"]
repeat = "30m"
"#;

const FAILOVER: &str = r#"
[target]
kind = "host"
[when]
state = "host"
is = "failed"
[group]
by = ["rack"]
[[step]]
kind = "failover"
verify = "step-result"
[[escalate]]
notify = ["console"]
"#;

fn secs(s: u64) -> Timestamp {
    Timestamp(s * 1_000)
}

fn input(at: u64, kind: InputKind) -> Input {
    Input { at: secs(at), kind }
}

fn svc() -> TargetRef {
    "service:hv1/nginx".parse().unwrap()
}

fn exited(at: u64) -> Input {
    input(
        at,
        InputKind::State {
            target: svc(),
            name: "service".into(),
            value: "exited".into(),
        },
    )
}

fn lines(ds: &[Decision]) -> Vec<String> {
    ds.iter().map(|d| d.to_string().trim().to_owned()).collect()
}

fn engine() -> Engine {
    Engine::new(PolicySet::new([policy("svc", RESTART)]))
}

#[test]
fn a_restored_engine_resumes_mid_step_without_repeating_it() {
    let mut e = engine();
    let first = e.handle(exited(0)).unwrap();
    let run = first
        .iter()
        .find_map(|d| match &d.kind {
            DecisionKind::RunStep(r) => Some(r.run.clone()),
            _ => None,
        })
        .expect("a restart was asked for");
    // kill -9: all that survives is the persisted JSON.
    let json = serde_json::to_string(&e.snapshot()).unwrap();
    let state: EngineState = serde_json::from_str(&json).unwrap();
    let (mut restored, on_restore) =
        Engine::restore(PolicySet::new([policy("svc", RESTART)]), state).unwrap();
    assert_eq!(
        on_restore,
        Vec::new(),
        "restoring with the same policies decides nothing"
    );
    assert_eq!(
        restored.awaited_steps(),
        vec![run.clone()],
        "the runtime can re-send the step in flight"
    );
    // Both go on identically: the step times out once, the second attempt runs.
    let a = e.advance(secs(31));
    let b = restored.advance(secs(31));
    assert_eq!(a, b);
    assert_eq!(
        lines(&a),
        [
            "30s  inc-1 restart-service on service:hv1/nginx timed out after 30s",
            "30s  inc-1 run restart-service on service:hv1/nginx (step 1, attempt 2 of 2)",
        ]
    );
    let result = input(
        32,
        InputKind::StepResult {
            run,
            result: StepResult::Succeeded,
        },
    );
    assert_eq!(
        e.handle(result.clone()).unwrap(),
        restored.handle(result).unwrap()
    );
    assert_eq!(e.snapshot(), restored.snapshot());
}

#[test]
fn a_result_for_a_step_no_longer_running_is_ignored_and_said() {
    let mut e = engine();
    let run = e
        .handle(exited(0))
        .unwrap()
        .iter()
        .find_map(|d| match &d.kind {
            DecisionKind::RunStep(r) => Some(r.run.clone()),
            _ => None,
        });
    e.advance(secs(31));
    let late = e.handle(input(
        40,
        InputKind::StepResult {
            run: run.unwrap(),
            result: StepResult::Succeeded,
        },
    ));
    assert_eq!(
        lines(&late.unwrap()),
        [
            "40s  result for inc-1/service:hv1/nginx/run1/step1/try1 ignored: the step is no longer running"
        ]
    );
}

#[test]
fn refused_inputs_change_nothing() {
    let mut e = engine();
    e.handle(exited(0)).unwrap();
    let before = e.snapshot();
    let bad = [
        (
            InputKind::Ack {
                incident: IncidentId(9),
                until: None,
                by: "a".into(),
            },
            "inc-9 is not open: it resolved, or never existed",
        ),
        (
            InputKind::Unsilence { id: "nope".into() },
            "there is no silence `nope`",
        ),
        (
            InputKind::Samples(vec![Sample {
                target: svc(),
                metric: "m".into(),
                value: f64::NAN,
            }]),
            "sample `m` of service:hv1/nginx is not a finite number: NaN",
        ),
        (
            InputKind::Silence(Silence {
                id: "s".into(),
                matchers: vec![],
                until: secs(99),
                by: "a".into(),
                comment: String::new(),
            }),
            "silence `s` has no matchers: it would silence everything",
        ),
        (
            InputKind::Silence(Silence {
                id: "s".into(),
                matchers: vec!["rack=r1".parse().unwrap()],
                until: secs(1),
                by: "a".into(),
                comment: String::new(),
            }),
            "silence `s` expires before it starts",
        ),
    ];
    for (kind, message) in bad {
        let err = e.handle(input(5, kind)).unwrap_err();
        assert_eq!(err.to_string(), message);
        assert_eq!(e.snapshot(), before, "{message}");
    }
}

#[test]
fn a_snapshot_from_another_format_is_refused() {
    let mut json: serde_json::Value = serde_json::to_value(engine().snapshot()).unwrap();
    json["format"] = 99.into();
    let state: EngineState = serde_json::from_value(json).unwrap();
    let err = Engine::restore(PolicySet::default(), state).unwrap_err();
    assert_eq!(err, EngineError::SnapshotFormat { found: 99 });
}

#[test]
fn time_never_runs_backwards() {
    let mut e = engine();
    e.advance(secs(100));
    let d = e.handle(exited(5)).unwrap();
    assert!(d.iter().all(|d| d.at == secs(100)), "{d:?}");
    assert_eq!(e.now(), secs(100));
}

#[test]
fn idempotency_keys_name_incident_level_and_repeat() {
    let mut e = engine();
    e.handle(exited(0)).unwrap();
    let mut notes = Vec::new();
    let mut t = 0;
    while let Some(next) = e.next_wakeup().filter(|w| *w <= secs(3_000)) {
        t = next.0;
        notes.extend(e.advance(next));
    }
    assert!(t > 0);
    notes.extend(
        e.handle(input(
            3_000,
            InputKind::State {
                target: svc(),
                name: "service".into(),
                value: "running".into(),
            },
        ))
        .unwrap(),
    );
    let keys: Vec<(String, String, NotifyKind)> = notes
        .iter()
        .filter_map(|d| match &d.kind {
            DecisionKind::Notify(n) => Some((n.key.clone(), n.channel.clone(), n.kind)),
            _ => None,
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("inc-1/L1".into(), "console".into(), NotifyKind::Problem),
            ("inc-1/L2".into(), "email".into(), NotifyKind::Problem),
            (
                "inc-1/L2/repeat1".into(),
                "email".into(),
                NotifyKind::Repeat(1)
            ),
            (
                "inc-1/resolved".into(),
                "console".into(),
                NotifyKind::Resolved
            ),
            (
                "inc-1/resolved".into(),
                "email".into(),
                NotifyKind::Resolved
            ),
        ]
    );
}

#[test]
fn an_ack_notifies_the_channels_paged_with_who_and_until_under_its_own_key() {
    let mut e = engine();
    e.handle(exited(0)).unwrap();
    // The restart is never answered: two attempts time out, the console
    // is paged, then the email level after 10 minutes.
    e.advance(secs(700));
    let acked = |e: &mut Engine, at, by: &str| {
        let until = Some(secs(at + 3_600));
        e.handle(input(
            at,
            InputKind::Ack {
                incident: IncidentId(1),
                until,
                by: by.into(),
            },
        ))
        .unwrap()
        .into_iter()
        .filter_map(|d| match d.kind {
            DecisionKind::Notify(n) => Some(n),
            _ => None,
        })
        .collect::<Vec<_>>()
    };
    let first = acked(&mut e, 800, "alice");
    let told: Vec<_> = first
        .iter()
        .map(|n| (n.key.as_str(), n.channel.as_str(), n.kind, n.level))
        .collect();
    assert_eq!(
        told,
        [
            ("inc-1/acked", "console", NotifyKind::Acked(1), 1),
            ("inc-1/acked", "email", NotifyKind::Acked(1), 2),
        ]
    );
    let ack = first[0].ack.as_ref().expect("the ack rides along");
    assert_eq!((ack.by.as_str(), ack.until), ("alice", Some(secs(4_400))));
    // The same person acking again later changes `until`: told anew.
    let again = acked(&mut e, 900, "alice");
    assert_eq!(again.len(), 2);
    assert_eq!(again[0].key, "inc-1/acked2");
    assert_eq!(again[0].kind, NotifyKind::Acked(2));
}

#[test]
fn a_snapshot_from_before_ack_counting_restores_with_none_counted() {
    let mut e = engine();
    e.handle(exited(0)).unwrap();
    e.advance(secs(700));
    let mut json: serde_json::Value = serde_json::to_value(e.snapshot()).unwrap();
    let inc = &mut json["incidents"]["inc-1"];
    assert!(inc.get("acks").is_none(), "no acks: not written");
    // What the previous build wrote: the same, without the field.
    let old: EngineState = serde_json::from_value(json).unwrap();
    let (mut e, decided) = Engine::restore(PolicySet::new([policy("svc", RESTART)]), old).unwrap();
    assert!(decided.is_empty(), "{decided:?}");
    let d = e
        .handle(input(
            800,
            InputKind::Ack {
                incident: IncidentId(1),
                until: None,
                by: "bob".into(),
            },
        ))
        .unwrap();
    assert!(
        d.iter()
            .any(|d| matches!(&d.kind, DecisionKind::Notify(n) if n.key == "inc-1/acked")),
        "{d:?}"
    );
}

#[test]
fn hot_reload_resolves_incidents_of_removed_policies_and_same_set_is_silent() {
    let mut e = Engine::new(PolicySet::new([
        policy("svc", RESTART),
        policy("hb", FAILOVER),
    ]));
    e.handle(exited(0)).unwrap();
    assert!(
        e.set_policies(PolicySet::new([
            policy("svc", RESTART),
            policy("hb", FAILOVER)
        ]))
        .is_empty()
    );
    let d = e.set_policies(PolicySet::new([policy("hb", FAILOVER)]));
    assert_eq!(
        lines(&d),
        [
            "0s  inc-1 cancel restart-service on service:hv1/nginx: the incident closed",
            "0s  inc-1 resolved (policy removed)",
        ]
    );
    assert_eq!(e.incidents().count(), 0);
}

#[test]
fn a_changed_condition_starts_watching_over() {
    let mut e = engine();
    e.handle(exited(0)).unwrap();
    let stricter = RESTART.replace("is = \"exited\"", "is = \"exited\"\nfor = \"1m\"");
    e.set_policies(PolicySet::new([policy("svc", &stricter)]));
    assert_eq!(e.incidents().count(), 1, "the open incident stays");
}

/// A planner that takes failovers of hosts whose id starts with `ok`.
struct PickyPlanner;

impl Planner for PickyPlanner {
    fn check(&self, r: &PlanRequest) -> Result<(), NotAvailable> {
        if r.target.id.starts_with("ok") {
            Ok(())
        } else {
            Err(NotAvailable("no room".into()))
        }
    }
}

#[test]
fn planner_steps_go_through_the_planner_interface() {
    let mut e = Engine::new(PolicySet::new([policy("hb", FAILOVER)])).with_planner(PickyPlanner);
    let failed = |h: &str| {
        input(
            0,
            InputKind::HostState {
                host: h.into(),
                state: HostState::Failed,
            },
        )
    };
    let ok = e.handle(failed("ok1")).unwrap();
    let run = ok.iter().find_map(|d| match &d.kind {
        DecisionKind::RunStep(r) => Some(r),
        _ => None,
    });
    let run = run.expect("the planner took the failover");
    assert_eq!(
        (run.action.clone(), run.host.as_deref()),
        (StepAction::Failover, Some("ok1"))
    );
    let refused = e.handle(failed("bad1")).unwrap();
    assert!(
        lines(&refused)
            .contains(&"0s  inc-1 failover on host:bad1 not available: no room".to_owned()),
        "{refused:#?}"
    );
}

#[test]
fn next_wakeup_is_when_a_held_breach_will_fire() {
    let cpu = r#"
[target]
kind = "host"
[when]
metric = "cpu"
above = 0.9
for = "5m"
[[escalate]]
notify = ["console"]
"#;
    let mut e = Engine::new(PolicySet::new([policy("cpu", cpu)]));
    let sample = |at, v| {
        input(
            at,
            InputKind::Samples(vec![Sample {
                target: TargetRef::host("hv1"),
                metric: "cpu".into(),
                value: v,
            }]),
        )
    };
    e.handle(sample(10, 0.95)).unwrap();
    assert_eq!(e.next_wakeup(), Some(secs(310)));
    let d = e.advance(secs(400));
    assert_eq!(
        lines(&d),
        ["5m10s  inc-1 firing", "5m10s  inc-1 notify console level 1"]
    );
    assert_eq!(
        d[0].at,
        secs(310),
        "decided at the timer's instant, not the caller's"
    );
}

#[test]
fn grouped_notifications_carry_every_target() {
    let mut e = Engine::new(PolicySet::new([policy("hb", FAILOVER)]));
    for h in ["hv1", "hv2", "hv3"] {
        let info = TargetInfo {
            labels: [("rack".to_owned(), "r1".to_owned())].into(),
            ..TargetInfo::bare(TargetRef::host(h))
        };
        e.handle(input(0, InputKind::Target(info))).unwrap();
        e.handle(input(
            1,
            InputKind::HostState {
                host: h.into(),
                state: HostState::Failed,
            },
        ))
        .unwrap();
    }
    let d = e.advance(secs(60));
    let n = d
        .iter()
        .find_map(|d| match &d.kind {
            DecisionKind::Notify(n) => Some(n),
            _ => None,
        })
        .expect("one page");
    assert_eq!(n.targets.len(), 3);
    assert_eq!(n.summary, "hb on host:hv1 (and 2 more)");
    assert_eq!(
        d.iter()
            .filter(|d| matches!(d.kind, DecisionKind::Notify(_)))
            .count(),
        1
    );
    assert_eq!(
        Duration(31_000),
        d[0].at.since(Timestamp(0)),
        "30s group wait after the first failure"
    );
}

#[test]
fn maintenance_covers_a_host_registered_without_naming_itself() {
    let mut e = Engine::new(PolicySet::new([policy("hb", FAILOVER)]));
    let info = TargetInfo {
        host: None,
        ..TargetInfo::bare(TargetRef::host("hv1"))
    };
    e.handle(input(0, InputKind::Target(info))).unwrap();
    e.handle(input(
        0,
        InputKind::Maintenance {
            host: "hv1".into(),
            until: None,
        },
    ))
    .unwrap();
    let d = e
        .handle(input(
            1,
            InputKind::HostState {
                host: "hv1".into(),
                state: HostState::Failed,
            },
        ))
        .unwrap();
    let shown = lines(&d);
    assert_eq!(
        shown[1], "1s  inc-1 recovery of host:hv1 held: host hv1 in maintenance",
        "{shown:#?}"
    );
    assert!(
        e.advance(secs(600))
            .iter()
            .all(|d| !matches!(d.kind, DecisionKind::Notify(_)))
    );
}
