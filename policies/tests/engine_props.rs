//! Property tests of the engine over random histories: the same inputs give
//! the same decisions (replay), whatever order a hash map hands samples in;
//! a snapshot taken anywhere and restored (kill -9) goes on exactly like the
//! engine that never stopped; no step run and no notification is ever
//! decided twice.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use proptest::prelude::*;

use hyperwatch_policies::decision::DecisionKind;
use hyperwatch_policies::input::{Sample, Silence, StepResult};
use hyperwatch_policies::planner::{NotAvailable, PlanRequest, Planner};
use hyperwatch_policies::policy::PolicySet;
use hyperwatch_policies::target::{HostState, TargetInfo, TargetRef};
use hyperwatch_policies::time::Timestamp;
use hyperwatch_policies::{CheckOptions, Decision, Engine, EngineState, Input, InputKind};

/// Policies covering every condition kind, grouping, flapping and the ladder.
const POLICIES: [(&str, &str); 5] = [
    (
        "svc",
        "[target]\nkind = \"service\"\n[when]\nstate = \"service\"\nis = \"exited\"\n[recovery]\nmax_runs = 2\nwindow = \"30m\"\n[[step]]\nkind = \"agent-action\"\naction = \"restart\"\ntimeout = \"20s\"\nattempts = 2\n[[step]]\nkind = \"wait\"\nduration = \"1m\"\n[[escalate]]\nif = \"recovery-failed\"\nnotify = [\"console\"]\n[[escalate]]\nafter = \"5m\"\nunless = \"acked\"\nnotify = [\"email\"]\nrepeat = \"10m\"\n",
    ),
    (
        "hb",
        "[target]\nkind = \"host\"\n[when]\nstate = \"host\"\nis = \"failed\"\n[group]\nby = [\"rack\"]\nwait = \"20s\"\n[[step]]\nkind = \"failover\"\nverify = \"step-result\"\n[[escalate]]\nnotify = [\"console\"]\non_resolve = false\n[[escalate]]\nafter = \"3m\"\nif = \"recovery-failed\"\nunless = \"acked\"\nnotify = [\"sms\"]\n",
    ),
    (
        "cpu",
        "[target]\nkind = \"host\"\n[when]\nmetric = \"cpu\"\nabove = 0.9\nfor = \"2m\"\n[clear]\nbelow = 0.7\nfor = \"1m\"\n[[step]]\nkind = \"rebalance\"\nverify_within = \"5m\"\n[[escalate]]\nafter = \"1m\"\nnotify = [\"console\"]\n[flapping]\nthreshold = 2\nwindow = \"20m\"\n",
    ),
    (
        "oom",
        "[target]\nkind = \"service\"\n[when]\nevent = \"oom\"\nat_least = 2\nwithin = \"5m\"\n[[escalate]]\nnotify = [\"email\"]\n",
    ),
    (
        "quiet",
        "[target]\nkind = \"host\"\n[when]\nabsent = \"load\"\nfor = \"4m\"\n[clear]\nmetric = \"load\"\nbelow = 100\n[[escalate]]\nnotify = [\"console\"]\nrepeat = \"7m\"\n",
    ),
];

fn policies() -> PolicySet {
    PolicySet::new(POLICIES.iter().map(|(name, body)| {
        let text = format!("version = 1\nname = \"{name}\"\n{body}");
        hyperwatch_policies::checker::parse_policy(
            &text,
            Path::new("p.toml"),
            &CheckOptions::default(),
        )
        .unwrap()
    }))
}

/// Takes rebalances, refuses failovers of hv3: deterministic.
struct SomePlanner;

impl Planner for SomePlanner {
    fn check(&self, r: &PlanRequest) -> Result<(), NotAvailable> {
        if r.target.id == "hv3" {
            Err(NotAvailable("no room".into()))
        } else {
            Ok(())
        }
    }
}

const HOSTS: [&str; 4] = ["hv1", "hv2", "hv3", "hv4"];
const SERVICES: [&str; 3] = ["hv1/nginx", "hv2/nginx", "hv3/db"];

/// One step of a random history; turned into an input from the engine's
/// state, so that engines in the same state get the same input.
#[derive(Clone, Debug)]
enum Op {
    Pass(u64),
    Service(usize, bool),
    Host(usize, u8),
    Cpu(Vec<(usize, u8)>),
    Load(usize),
    Oom(usize),
    Answer(usize, u8),
    Ack(usize, Option<u64>),
    Silence(usize, u64),
    Maintenance(usize, Option<u64>),
    Reload(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..400).prop_map(Op::Pass),
        3 => (0..SERVICES.len(), any::<bool>()).prop_map(|(s, e)| Op::Service(s, e)),
        2 => (0..HOSTS.len(), 0u8..4).prop_map(|(h, s)| Op::Host(h, s)),
        3 => proptest::collection::vec((0..HOSTS.len(), 0u8..100), 1..4).prop_map(Op::Cpu),
        1 => (0..HOSTS.len()).prop_map(Op::Load),
        1 => (0..SERVICES.len()).prop_map(Op::Oom),
        3 => (0usize..4, 0u8..3).prop_map(|(k, r)| Op::Answer(k, r)),
        1 => (0usize..4, proptest::option::of(1u64..900)).prop_map(|(k, d)| Op::Ack(k, d)),
        1 => (0..HOSTS.len(), 1u64..900).prop_map(|(h, d)| Op::Silence(h, d)),
        1 => (0..HOSTS.len(), proptest::option::of(1u64..900)).prop_map(|(h, d)| Op::Maintenance(h, d)),
        1 => any::<bool>().prop_map(Op::Reload),
    ]
}

/// A harness driving one engine through ops, recording every decision.
struct Run {
    engine: Engine,
    clock: u64,
    decisions: Vec<Decision>,
    /// Build sample batches through a HashMap (random iteration order).
    hashed: bool,
}

impl Run {
    fn new(hashed: bool) -> Run {
        let mut r = Run {
            engine: Engine::new(policies()).with_planner(SomePlanner),
            clock: 0,
            decisions: Vec::new(),
            hashed,
        };
        for (i, h) in HOSTS.iter().enumerate() {
            let rack = if i < 2 { "r1" } else { "r2" };
            let info = TargetInfo {
                labels: [("rack".to_owned(), rack.to_owned())].into(),
                ..TargetInfo::bare(TargetRef::host(h))
            };
            r.input(InputKind::Target(info));
        }
        r
    }

    /// A run resuming from a snapshot, with the policies in force then.
    fn restored(set: PolicySet, state: EngineState, clock: u64, hashed: bool) -> Run {
        let (engine, d) = Engine::restore(set, state).unwrap();
        assert!(
            d.is_empty(),
            "restore with unchanged policies decided {d:?}"
        );
        Run {
            engine: engine.with_planner(SomePlanner),
            clock,
            decisions: Vec::new(),
            hashed,
        }
    }

    fn input(&mut self, kind: InputKind) {
        let input = Input {
            at: Timestamp(self.clock * 1_000),
            kind,
        };
        // Refusals (ack of an incident that just resolved) are fine; they
        // must simply be the same in every run.
        match self.engine.handle(input) {
            Ok(d) => self.decisions.extend(d),
            Err(e) => self.decisions.push(Decision {
                at: Timestamp(0),
                kind: DecisionKind::SilenceExpired {
                    silence: format!("refused: {e}"),
                },
            }),
        }
    }

    fn apply(&mut self, op: &Op) {
        let svc = |i: usize| -> TargetRef { format!("service:{}", SERVICES[i]).parse().unwrap() };
        match op {
            Op::Pass(s) => {
                self.clock += s;
                let d = self.engine.advance(Timestamp(self.clock * 1_000));
                self.decisions.extend(d);
            }
            Op::Service(i, exited) => {
                let value = if *exited { "exited" } else { "running" };
                self.input(InputKind::State {
                    target: svc(*i),
                    name: "service".into(),
                    value: value.into(),
                })
            }
            Op::Host(i, s) => self.input(InputKind::HostState {
                host: HOSTS[*i].into(),
                state: HostState::ALL[*s as usize],
            }),
            Op::Cpu(values) => {
                let by_host: HashMap<usize, u8> = values.iter().copied().collect();
                let mut samples: Vec<Sample> = by_host
                    .iter()
                    .map(|(h, v)| Sample {
                        target: TargetRef::host(HOSTS[*h]),
                        metric: "cpu".into(),
                        value: f64::from(*v) / 100.0,
                    })
                    .collect();
                if !self.hashed {
                    samples.sort_by(|a, b| a.target.cmp(&b.target));
                }
                self.input(InputKind::Samples(samples))
            }
            Op::Load(h) => self.input(InputKind::Samples(vec![Sample {
                target: TargetRef::host(HOSTS[*h]),
                metric: "load".into(),
                value: 1.0,
            }])),
            Op::Oom(i) => self.input(InputKind::Event {
                target: svc(*i),
                name: "oom".into(),
            }),
            Op::Answer(k, r) => {
                let awaited = self.engine.awaited_steps();
                if let Some(run) = awaited.get(k % awaited.len().max(1)).cloned() {
                    let result = match r {
                        0 => StepResult::Succeeded,
                        1 => StepResult::Failed("no".into()),
                        _ => StepResult::NotAvailable("gone".into()),
                    };
                    self.input(InputKind::StepResult { run, result })
                }
            }
            Op::Ack(k, d) => {
                let ids: Vec<_> = self.engine.incidents().map(|i| i.id).collect();
                if let Some(id) = ids.get(k % ids.len().max(1)).copied() {
                    let until = d.map(|d| Timestamp((self.clock + d) * 1_000));
                    self.input(InputKind::Ack {
                        incident: id,
                        until,
                        by: "op".into(),
                    })
                }
            }
            Op::Silence(h, d) => self.input(InputKind::Silence(Silence {
                id: format!("s-{h}"),
                matchers: vec![format!("host={}", HOSTS[*h]).parse().unwrap()],
                until: Timestamp((self.clock + d) * 1_000),
                by: "op".into(),
                comment: String::new(),
            })),
            Op::Maintenance(h, d) => self.input(InputKind::Maintenance {
                host: HOSTS[*h].into(),
                until: d.map(|d| Timestamp((self.clock + d) * 1_000)),
            }),
            Op::Reload(all) => {
                let set = if *all {
                    policies()
                } else {
                    PolicySet::new(
                        policies()
                            .iter()
                            .filter(|p| p.name != "oom")
                            .map(|p| (**p).clone()),
                    )
                };
                let d = self.engine.set_policies(set);
                self.decisions.extend(d);
            }
        }
    }
}

/// Nothing decided twice: each step run once, each notification once.
fn assert_nothing_twice(decisions: &[Decision]) {
    let mut runs = BTreeSet::new();
    let mut notes = BTreeSet::new();
    for d in decisions {
        match &d.kind {
            DecisionKind::RunStep(r) => {
                assert!(runs.insert(r.run.clone()), "step {} decided twice", r.run)
            }
            DecisionKind::Notify(n) => {
                assert!(
                    notes.insert((n.key.clone(), n.channel.clone())),
                    "notification {} to {} decided twice",
                    n.key,
                    n.channel
                )
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn replay_decides_the_same_whatever_the_hash_order(ops in proptest::collection::vec(op(), 1..80)) {
        let mut a = Run::new(false);
        let mut b = Run::new(true);
        for op in &ops {
            a.apply(op);
            b.apply(op);
        }
        prop_assert_eq!(&a.decisions, &b.decisions);
        prop_assert_eq!(a.engine.snapshot(), b.engine.snapshot());
        assert_nothing_twice(&a.decisions);
    }

    #[test]
    fn a_restored_snapshot_goes_on_like_the_engine_that_never_stopped(
        ops in proptest::collection::vec(op(), 1..80),
        cut in any::<proptest::sample::Index>(),
    ) {
        let cut = cut.index(ops.len());
        let mut a = Run::new(false);
        for op in &ops[..cut] {
            a.apply(op);
        }
        let json = serde_json::to_string(&a.engine.snapshot()).unwrap();
        let mut b = Run::restored(a.engine.policies().clone(), serde_json::from_str(&json).unwrap(), a.clock, false);
        let before = a.decisions.len();
        for op in &ops[cut..] {
            a.apply(op);
            b.apply(op);
        }
        prop_assert_eq!(&a.decisions[before..], &b.decisions[..]);
        prop_assert_eq!(a.engine.snapshot(), b.engine.snapshot());
        assert_nothing_twice(&a.decisions);
    }
}
