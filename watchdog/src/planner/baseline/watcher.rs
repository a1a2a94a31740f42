//! OpenStack Watcher's `workload_stabilization` strategy, as its code
//! (`watcher/decision_engine/strategy/strategies/workload_stabilization.py`)
//! does it, for the benchmark to compare [`rebalance`](crate::planner::rebalance)
//! with:
//!
//! 1. `check_threshold`: if the standard deviation of host utilization is
//!    at or below the threshold, nothing to do.
//! 2. `simulate_migrations`: for every VM of every available host, try the
//!    destinations in host order and record the move each time it gives a
//!    lower standard deviation than the best so far for that VM (starting
//!    from the current one), all against the cluster as it is at the start
//!    of the audit. Sort every recorded move by the deviation it gives.
//! 3. `do_execute`: walk that list; skip a move whose destination cannot
//!    take the VM; recompute its deviation on the cluster with the moves
//!    accepted so far and accept it if that is lower than the last accepted
//!    one; stop as soon as a computed deviation is under the threshold.
//!
//! Watcher runs again at its next audit (continuous audits), on the
//! cluster the last plan left; so does this, until balanced, until an
//! audit accepts nothing, or at `max_audits`.
//!
//! Configured as favourably to Watcher as its parameters allow:
//! `host_choice = fullsearch` (every destination; the default, `retry`,
//! tries one random host per VM), `metrics = [instance_cpu_usage]` (the
//! spread the planner is judged on; the default adds RAM usage with equal
//! weight), `thresholds` at the planner's spread target. Where Watcher
//! leaves checks to Nova at execution time (capacity, anti-affinity), this
//! uses the planner's feasibility check when accepting a move, so its plans
//! are valid; pinned and unmovable VMs are out of scope, as Watcher's
//! `watcher_exclude` does; a VM moves at most once per plan.
//!
//! Speed, not behaviour: the moves recorded for one VM are the running
//! minima of the deviation over the destinations in order. Among hosts with
//! equal cores the deviation after taking a VM only grows with the host's
//! utilization, so only hosts cooler than every earlier host of their core
//! count can appear; the search looks at those alone (all hosts when the
//! VM's own host is one of them, as leaving it out changes the sequence).
//! The test below checks this against the plain search over every host.

use super::{
    super::{
        PlannerError, PlannerSettings,
        cluster::{Cluster, HostIx, VmIx},
        plan::{MoveReason, PlanMode},
        sequence::{Sequence, figures},
        snapshot::ClusterSnapshot,
    },
    BaselineRun,
};

/// A move recorded by the simulation, with the deviation it would give.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate {
    deviation: f64,
    vm: VmIx,
    from: HostIx,
    to: HostIx,
}

/// Sum and sum of squares of the available hosts' utilizations: the
/// standard deviation before and after any one move in constant time.
#[derive(Debug, Clone, Copy)]
struct Deviation {
    sum: f64,
    squares: f64,
    hosts: f64,
}

impl Deviation {
    fn of(sequence: &Sequence<'_>, hosts: &[HostIx]) -> Self {
        let (sum, squares) = hosts.iter().fold((0.0, 0.0), |(s, q), &h| {
            let u = sequence.utilization(h);
            (s + u, q + u * u)
        });
        Deviation {
            sum,
            squares,
            hosts: hosts.len() as f64,
        }
    }

    fn now(&self) -> f64 {
        Self::deviation(self.sum, self.squares, self.hosts)
    }

    /// After a VM leaves a host at `from` for one at `to`, changing them by
    /// `-shed` and `+took`. Written so that it only grows with `to` (each
    /// rounded step is monotone), which the pruned search relies on.
    fn after(&self, from: f64, shed: f64, to: f64, took: f64) -> f64 {
        let sum = self.sum - shed + took;
        let squares = (self.squares + (shed - 2.0 * from) * shed) + (2.0 * to + took) * took;
        Self::deviation(sum, squares, self.hosts)
    }

    fn deviation(sum: f64, squares: f64, n: f64) -> f64 {
        if n == 0.0 {
            return 0.0;
        }
        let mean = sum / n;
        (squares / n - mean * mean).max(0.0).sqrt()
    }
}

/// Runs the strategy on `snapshot`, audit after audit.
pub fn watcher_rebalance(
    snapshot: &ClusterSnapshot,
    settings: &PlannerSettings,
    max_audits: usize,
) -> Result<BaselineRun, PlannerError> {
    let cluster = Cluster::new(snapshot, settings)?;
    let before = figures(&cluster, &cluster.initial);
    let mut sequence = Sequence::new(&cluster, true);
    let hosts: Vec<HostIx> = cluster.active_hosts().collect();
    let mut on_host: Vec<Vec<VmIx>> = vec![Vec::new(); cluster.hosts.len()];
    for (vm, v) in cluster.vms.iter().enumerate() {
        if sequence.location[vm] == Some(v.host) && v.unmovable.is_none() && v.pin.is_none() {
            on_host[v.host].push(vm);
        }
    }
    let threshold = settings.spread_target;
    let mut audits = 0;
    while Deviation::of(&sequence, &hosts).now() > threshold && audits < max_audits {
        audits += 1;
        let candidates = simulate(&sequence, &hosts, &on_host, true);
        if execute(&mut sequence, &hosts, &candidates, threshold) == 0 {
            break;
        }
        for vms in &mut on_host {
            vms.retain(|&vm| !sequence.moved[vm]);
        }
    }
    let capped = audits >= max_audits && Deviation::of(&sequence, &hosts).now() > threshold;
    Ok(BaselineRun {
        plan: sequence.finish(PlanMode::Rebalance, Vec::new(), before),
        rounds: audits,
        capped,
    })
}

/// `simulate_migrations`: every recorded move, sorted by the deviation it
/// gives (a stable sort, as Python's `sorted`). `pruned` off searches every
/// destination, for the test that the pruning changes nothing.
fn simulate(
    sequence: &Sequence<'_>,
    hosts: &[HostIx],
    on_host: &[Vec<VmIx>],
    pruned: bool,
) -> Vec<Candidate> {
    let cluster = sequence.cluster;
    let deviation = Deviation::of(sequence, hosts);
    let current = deviation.now();
    // Per core count, the hosts cooler than every earlier one of that count.
    let mut coolest: Vec<(f64, f64)> = Vec::new(); // (cores, utilization so far)
    let mut records: Vec<HostIx> = Vec::new();
    let mut is_record = vec![!pruned; cluster.hosts.len()];
    for &h in hosts {
        let (cores, u) = (cluster.hosts[h].cores, sequence.utilization(h));
        let class = match coolest.iter().position(|&(c, _)| c == cores) {
            Some(class) => class,
            None => {
                coolest.push((cores, f64::INFINITY));
                coolest.len() - 1
            }
        };
        if u < coolest[class].1 {
            coolest[class].1 = u;
            records.push(h);
            is_record[h] = true;
        }
    }
    let mut candidates = Vec::new();
    for &from in hosts {
        let destinations = if is_record[from] { hosts } else { &records };
        let uf = sequence.utilization(from);
        for &vm in &on_host[from] {
            let cpu = cluster.vms[vm].cpu;
            let shed = cpu / cluster.hosts[from].cores;
            let mut best = current;
            for &to in destinations.iter().filter(|&&to| to != from) {
                let took = cpu / cluster.hosts[to].cores;
                let after = deviation.after(uf, shed, sequence.utilization(to), took);
                if after < best {
                    best = after;
                    candidates.push(Candidate {
                        deviation: after,
                        vm,
                        from,
                        to,
                    });
                }
            }
        }
    }
    candidates.sort_by(|a, b| a.deviation.total_cmp(&b.deviation));
    candidates
}

/// `do_execute`: accepts candidates in order while each lowers the
/// deviation; returns how many moves it made.
fn execute(
    sequence: &mut Sequence<'_>,
    hosts: &[HostIx],
    candidates: &[Candidate],
    threshold: f64,
) -> usize {
    let cluster = sequence.cluster;
    let mut deviation = Deviation::of(sequence, hosts);
    // Watcher starts from 1, above any deviation of utilizations; the first
    // candidate is then accepted, as it is with the current deviation.
    let mut lowest = deviation.now();
    let mut moves = 0;
    for c in candidates {
        if sequence.moved[c.vm] || sequence.check(c.vm, c.to).is_err() {
            continue;
        }
        let cpu = cluster.vms[c.vm].cpu;
        let (uf, ut) = (sequence.utilization(c.from), sequence.utilization(c.to));
        let (shed, took) = (
            cpu / cluster.hosts[c.from].cores,
            cpu / cluster.hosts[c.to].cores,
        );
        let after = deviation.after(uf, shed, ut, took);
        if after < lowest {
            lowest = after;
            let gain = uf * uf + ut * ut - (uf - shed).powi(2) - (ut + took).powi(2);
            sequence.push(
                c.vm,
                c.to,
                MoveReason::Spread {
                    gain,
                    target: threshold,
                },
            );
            moves += 1;
            deviation = Deviation::of(sequence, hosts);
        }
        if after < threshold {
            break;
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::snapshot::{Host, HostState, Vm};

    /// A cluster of hosts with two core counts and uneven load, seeded.
    fn cluster(seed: u64) -> ClusterSnapshot {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 1000) as f64 / 1000.0
        };
        let mut snapshot = ClusterSnapshot::default();
        for h in 0..24 {
            let cores = if next() < 0.5 { 16 } else { 32 };
            snapshot.hosts.push(Host {
                id: format!("h{h:02}"),
                cores,
                memory_bytes: 1 << 40,
                cpu_samples: Vec::new(),
                memory_samples: Vec::new(),
                state: HostState::Healthy,
                cpu_threshold: None,
                headroom: None,
            });
            let busy = if h % 5 == 0 { 0.9 } else { 0.3 };
            for n in 0..6 {
                snapshot.vms.push(Vm {
                    id: format!("v{h:02}-{n}"),
                    host: format!("h{h:02}"),
                    vcpus: 4,
                    memory_bytes: 1 << 30,
                    cpu_samples: vec![f64::from(cores) / 6.0 * busy * (0.5 + next())],
                    memory_samples: Vec::new(),
                    tenant: "t".into(),
                    labels: Default::default(),
                    priority: 0,
                });
            }
        }
        snapshot
    }

    #[test]
    fn the_pruned_search_records_exactly_the_moves_of_the_full_one() {
        for seed in 1..40 {
            let snapshot = cluster(seed);
            let settings = PlannerSettings::default();
            let cluster = Cluster::new(&snapshot, &settings).unwrap();
            let sequence = Sequence::new(&cluster, false);
            let hosts: Vec<HostIx> = cluster.active_hosts().collect();
            let mut on_host = vec![Vec::new(); cluster.hosts.len()];
            for (vm, v) in cluster.vms.iter().enumerate() {
                on_host[v.host].push(vm);
            }
            let pruned = simulate(&sequence, &hosts, &on_host, true);
            assert!(!pruned.is_empty(), "seed {seed}: nothing to move");
            assert_eq!(pruned, simulate(&sequence, &hosts, &on_host, false));
        }
    }

    #[test]
    fn every_accepted_move_lowers_the_spread_and_holds() {
        for seed in 1..10 {
            let snapshot = cluster(seed);
            let settings = PlannerSettings::default();
            let run = watcher_rebalance(&snapshot, &settings, 100).unwrap();
            let plan = &run.plan;
            assert!(!plan.migrations.is_empty() && !run.capped, "seed {seed}");
            // Replay: the deviation falls with every move (with unequal
            // cores that is not the same as the sum of squares falling).
            let cluster = Cluster::new(&snapshot, &settings).unwrap();
            let mut replay = Sequence::new(&cluster, false);
            let hosts: Vec<HostIx> = cluster.active_hosts().collect();
            let index = |id: &str| cluster.hosts.iter().position(|h| h.id == id).unwrap();
            for m in &plan.migrations {
                let before = Deviation::of(&replay, &hosts).now();
                let vm = cluster.vms.iter().position(|v| v.id == m.vm).unwrap();
                assert_eq!(cluster.vms[vm].host, index(&m.source));
                replay.push(vm, index(&m.destination), m.reason.clone());
                assert!(Deviation::of(&replay, &hosts).now() < before, "{m}");
            }
            assert!(plan.after.spread < plan.before.spread, "seed {seed}");
            let verified = crate::planner::verify::verify(&snapshot, &settings, plan);
            assert_eq!(verified, Ok(()), "seed {seed}");
        }
    }
}
