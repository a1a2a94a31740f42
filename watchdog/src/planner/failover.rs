//! Failover mode: every VM of every failed host is placed at once, highest
//! priority first, on healthy hosts with room, honouring every constraint;
//! the ones that fit nowhere are reported with the reasons.
//!
//! The placement is a depth-first search over the stranded VMs in claim
//! order (priority, then size), each tried on its best few hosts and then
//! left out. Its first leaf is the greedy placement; the rest of the search
//! looks for one that places more VMs, counted priority by priority (more
//! of the highest priority first, then of the next), which greedy packing
//! misses when a large VM takes the room two others needed. The search is
//! bounded; on small failures it is exhaustive.

use super::{
    PlannerError, PlannerSettings,
    cluster::{Cluster, HostIx, HostLoad, VmIx},
    placement::{claim_order, preferred_hosts, why_unplaced},
    plan::{MigrationPlan, MoveReason, PlanMode, Unplaced},
    sequence::Sequence,
    snapshot::{ClusterSnapshot, HostState},
};

/// Hosts tried per VM in the search, best first.
const HOSTS_PER_VM: usize = 4;
/// Feasibility checks the search may spend: about a tenth of a second, and
/// far more than an exhaustive search over a dozen VMs and four hosts needs.
const SEARCH_CHECKS: usize = 2_000_000;

/// Plans the restart of the failed hosts' VMs.
pub fn failover(
    snapshot: &ClusterSnapshot,
    settings: &PlannerSettings,
) -> Result<MigrationPlan, PlannerError> {
    let cluster = Cluster::new(snapshot, settings)?;
    let stranded: Vec<VmIx> = (0..cluster.vms.len())
        .filter(|&vm| cluster.hosts[cluster.vms[vm].host].state == HostState::Failed)
        .collect();
    let order = claim_order(&cluster, stranded);
    let mut search = Search::new(&cluster, &order);
    search.run();
    let mut sequence = Sequence::new(&cluster, true);
    let before = sequence.figures();
    for (&vm, host) in order.iter().zip(&search.best) {
        if let Some(host) = *host {
            sequence.push(vm, host, MoveReason::Failover);
        }
    }
    // A VM the search left out may still fit once the others are placed
    // (when the search stopped at its bound): try once more, in order.
    for (&vm, host) in order.iter().zip(&search.best) {
        if host.is_none()
            && let Some(&to) = preferred_hosts(&cluster, &sequence.loads, vm, None, 1).first()
        {
            sequence.push(vm, to, MoveReason::Failover);
        }
    }
    let unplaced = order
        .iter()
        .filter(|&&vm| !sequence.moved[vm])
        .map(|&vm| {
            let v = &cluster.vms[vm];
            Unplaced {
                vm: v.id.clone(),
                host: cluster.hosts[v.host].id.clone(),
                priority: v.priority,
                reason: why_unplaced(&cluster, &sequence.loads, vm),
            }
        })
        .collect();
    Ok(sequence.finish(PlanMode::Failover, unplaced, before))
}

/// The depth-first search for the placement that places the most VMs,
/// priority class by priority class.
struct Search<'a> {
    cluster: &'a Cluster,
    order: &'a [VmIx],
    /// Priority class (0 = highest) of each VM in `order`.
    class: Vec<usize>,
    /// `remaining[i][c]`: VMs of class `c` in `order[i..]`.
    remaining: Vec<Vec<usize>>,
    loads: Vec<HostLoad>,
    current: Vec<Option<HostIx>>,
    score: Vec<usize>,
    best: Vec<Option<HostIx>>,
    best_score: Option<Vec<usize>>,
    checks_left: usize,
}

impl<'a> Search<'a> {
    fn new(cluster: &'a Cluster, order: &'a [VmIx]) -> Self {
        // `order` is sorted by priority, highest first.
        let mut class = Vec::with_capacity(order.len());
        for (i, &vm) in order.iter().enumerate() {
            let same = i > 0 && cluster.vms[order[i - 1]].priority == cluster.vms[vm].priority;
            class.push(if i == 0 {
                0
            } else if same {
                class[i - 1]
            } else {
                class[i - 1] + 1
            });
        }
        let classes = class.last().map_or(0, |c| c + 1);
        let mut remaining = vec![vec![0; classes]; order.len() + 1];
        for i in (0..order.len()).rev() {
            remaining[i] = remaining[i + 1].clone();
            remaining[i][class[i]] += 1;
        }
        Search {
            cluster,
            order,
            class,
            remaining,
            loads: cluster.initial.clone(),
            current: vec![None; order.len()],
            score: vec![0; classes],
            best: vec![None; order.len()],
            best_score: None,
            checks_left: SEARCH_CHECKS,
        }
    }

    /// Whether placing everything from `i` on could still beat the best.
    fn promising(&self, i: usize) -> bool {
        let Some(best) = &self.best_score else {
            return true;
        };
        let bound: Vec<usize> = self
            .score
            .iter()
            .zip(&self.remaining[i])
            .map(|(s, r)| s + r)
            .collect();
        bound > *best
    }

    /// Depth-first over `order`, iteratively (a rack failure strands
    /// thousands of VMs; recursion that deep would overflow a thread's stack).
    fn run(&mut self) {
        let n = self.order.len();
        // Per depth: the hosts to try and how many alternatives are used up
        // (the hosts, then leaving the VM out).
        let mut stack: Vec<(Vec<HostIx>, usize)> = Vec::new();
        loop {
            let i = stack.len();
            if i == n {
                if self.best_score.as_ref().is_none_or(|b| self.score > *b) {
                    self.best_score = Some(self.score.clone());
                    self.best.clone_from(&self.current);
                }
            } else if self.promising(i) && (self.best_score.is_none() || self.checks_left > 0) {
                self.checks_left = self.checks_left.saturating_sub(self.cluster.hosts.len());
                stack.push((
                    preferred_hosts(self.cluster, &self.loads, self.order[i], None, HOSTS_PER_VM),
                    0,
                ));
            }
            // Take the next alternative of the deepest level that has one.
            loop {
                let Some(depth) = stack.len().checked_sub(1) else {
                    return;
                };
                let vm = self.order[depth];
                if let Some(host) = self.current[depth].take() {
                    self.cluster.remove(vm, &mut self.loads[host], host);
                    self.score[self.class[depth]] -= 1;
                }
                let (hosts, tried) = &mut stack[depth];
                if *tried < hosts.len() {
                    let host = hosts[*tried];
                    *tried += 1;
                    self.cluster.add(vm, &mut self.loads[host], host);
                    self.current[depth] = Some(host);
                    self.score[self.class[depth]] += 1;
                    break;
                }
                if *tried == hosts.len() {
                    *tried += 1; // leave the VM out
                    break;
                }
                stack.pop();
            }
        }
    }
}
