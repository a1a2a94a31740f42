//! Runs one policy test in virtual time: a real [`Engine`], a simulated
//! world that answers steps as the test says, and the timeline it produces.

use std::collections::BTreeMap;

use super::format::{Answer, Case, Given, GivenKind};
use crate::decision::{Decision, DecisionKind};
use crate::engine::Engine;
use crate::input::{Input, InputKind, RunId};
use crate::planner::{NotAvailable, PlanKind, PlanRequest, Planner};
use crate::policy::PolicySet;
use crate::target::TargetInfo;
use crate::time::Timestamp;

/// The planner of a test: it takes the kinds of work the test lists.
struct TestPlanner(Vec<PlanKind>);

impl Planner for TestPlanner {
    fn check(&self, request: &PlanRequest) -> Result<(), NotAvailable> {
        if self.0.contains(&request.kind) {
            Ok(())
        } else {
            Err(NotAvailable(format!(
                "no planner for {} in this test",
                request.kind
            )))
        }
    }
}

/// Something the test did that the engine or the world refused: the test
/// fails with it.
pub(super) struct RunError {
    pub line: usize,
    pub at: Timestamp,
    pub message: String,
}

/// What is queued to happen: a given line, or a simulated answer.
enum Queued {
    Given(usize),
    Answer(RunId, crate::input::StepResult),
}

/// Runs a test and returns every decision up to `until`.
pub(super) fn run(
    policies: PolicySet,
    targets: &[TargetInfo],
    case: &Case,
) -> Result<Vec<Decision>, RunError> {
    let mut engine = Engine::new(policies).with_planner(TestPlanner(case.planner.clone()));
    let mut timeline = Vec::new();
    let mut world = World {
        case,
        queue: BTreeMap::new(),
        seq: 0,
        runs: BTreeMap::new(),
        asked: BTreeMap::new(),
    };
    for (i, g) in case.given.iter().enumerate() {
        world.push(g.at, Queued::Given(i));
    }
    for t in targets {
        let input = Input {
            at: Timestamp(0),
            kind: InputKind::Target(t.clone()),
        };
        let d = engine.handle(input).map_err(|e| RunError {
            line: case.line,
            at: Timestamp(0),
            message: e.to_string(),
        })?;
        world.observe(&d);
        timeline.extend(d);
    }
    loop {
        let next_input = world.queue.keys().next().map(|(t, _)| *t);
        let next_timer = engine.next_wakeup();
        let next = match (next_input, next_timer) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => break,
            },
        };
        if next > case.until {
            break;
        }
        let decisions = if next_input == Some(next) {
            let (_, queued) = world.queue.pop_first().expect("peeked above");
            let (input, line) = world.input(queued, next)?;
            engine.handle(input).map_err(|e| RunError {
                line,
                at: next,
                message: e.to_string(),
            })?
        } else {
            engine.advance(next)
        };
        world.observe(&decisions);
        timeline.extend(decisions);
    }
    timeline.extend(engine.advance(case.until));
    Ok(timeline)
}

/// The simulated world: queued inputs and the steps in flight.
struct World<'a> {
    case: &'a Case,
    queue: BTreeMap<(Timestamp, u64), Queued>,
    seq: u64,
    /// Steps asked for and not finished: run to action label.
    runs: BTreeMap<RunId, String>,
    /// How many times each action was asked for, for answer sequences.
    asked: BTreeMap<String, usize>,
}

impl World<'_> {
    fn push(&mut self, at: Timestamp, q: Queued) {
        self.queue.insert((at, self.seq), q);
        self.seq += 1;
    }

    /// Follows steps asked for and finished; queues the answers.
    fn observe(&mut self, decisions: &[Decision]) {
        for d in decisions {
            match &d.kind {
                DecisionKind::RunStep(r) => {
                    let label = r.action.label().to_owned();
                    self.runs.insert(r.run.clone(), label.clone());
                    let n = self.asked.entry(label.clone()).or_default();
                    let answer = self
                        .case
                        .answers
                        .get(&label)
                        .and_then(|a| a.get(*n).or(a.last()))
                        .cloned();
                    *n += 1;
                    if let Some(Answer::Reply { after, result }) = answer {
                        self.push(d.at.plus(after), Queued::Answer(r.run.clone(), result));
                    }
                }
                DecisionKind::StepFinished { run, .. } | DecisionKind::CancelStep { run, .. } => {
                    self.runs.remove(run);
                }
                _ => {}
            }
        }
    }

    /// The engine input for a queued item, with the test line it came from.
    fn input(&self, q: Queued, at: Timestamp) -> Result<(Input, usize), RunError> {
        let (g, line): (&Given, usize) = match q {
            Queued::Answer(run, result) => {
                return Ok((
                    Input {
                        at,
                        kind: InputKind::StepResult { run, result },
                    },
                    self.case.line,
                ));
            }
            Queued::Given(i) => (&self.case.given[i], self.case.given[i].line),
        };
        let kind = match &g.what {
            GivenKind::Input(k) => k.clone(),
            GivenKind::Result {
                action,
                target,
                result,
            } => {
                let running: Vec<&RunId> = self
                    .runs
                    .iter()
                    .filter(|(run, label)| {
                        *label == action && target.as_ref().is_none_or(|t| *t == run.target)
                    })
                    .map(|(run, _)| run)
                    .collect();
                let run = match running.as_slice() {
                    [one] => (*one).clone(),
                    [] => {
                        let what = target
                            .as_ref()
                            .map_or_else(String::new, |t| format!(" on {t}"));
                        return Err(RunError {
                            line,
                            at,
                            message: format!("no `{action}` step{what} is running at {at}"),
                        });
                    }
                    many => {
                        let list: Vec<String> = many.iter().map(|r| r.target.to_string()).collect();
                        return Err(RunError {
                            line,
                            at,
                            message: format!(
                                "`{action}` runs on {} at {at}: say which with `on TARGET`",
                                list.join(", ")
                            ),
                        });
                    }
                };
                InputKind::StepResult {
                    run,
                    result: result.clone(),
                }
            }
        };
        Ok((Input { at, kind }, line))
    }
}
