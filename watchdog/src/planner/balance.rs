//! The balance step of rebalance mode: move, one after the other, the VM
//! whose migration narrows the spread most, until the spread meets its
//! target and no host is over its threshold.
//!
//! "Narrows most" is the drop in the sum of squared host utilizations (the
//! spread is made of it). Searching every VM against every host for each
//! move is what makes such balancers slow on large clusters; here each
//! source host sits in a heap keyed by an upper bound of what its best move
//! can gain. Receivers only get warmer as the plan fills them, so bounds
//! only shrink: a popped source whose exact best gain still tops the heap is
//! the best source (lazy greedy), and most hosts are never looked at twice.
//! A source's best move takes each of its VMs to the coolest receiver that
//! accepts it; among VMs within [`BYTES_SLACK`] of the best gain, the one
//! with the least resident memory goes, since that is what a live migration
//! copies.
//!
//! A host either sends or receives within a plan, never both, so balance
//! moves never wait for each other; receivers never go above their own
//! threshold.

use std::{
    cmp::Reverse,
    collections::{BTreeSet, BinaryHeap},
};

use super::{
    cluster::{GAIN_EPSILON, HostIx, Utilization, VmIx},
    plan::MoveReason,
    sequence::Sequence,
};

/// A VM whose gain is within this fraction of its host's best may be chosen
/// for copying fewer bytes. On the benchmark clusters 10 % copies a tenth
/// fewer bytes for a few percent more migrations.
const BYTES_SLACK: f64 = 0.1;

/// The best move of one source host.
struct Candidate {
    gain: f64,
    /// The best gain of any VM of the host, at least `gain`.
    bound: f64,
    vm: VmIx,
    to: HostIx,
}

/// Who may still send or receive, and the hosts ordered for the search.
struct Pool {
    sent: Vec<bool>,
    received: Vec<bool>,
    /// Hosts that have not sent, by utilization: the receivers.
    receivers: BTreeSet<(Utilization, HostIx)>,
    /// Per host, the VMs that may still leave it.
    movable: Vec<Vec<VmIx>>,
}

/// Moves VMs until the spread is at most `target` and no healthy host is
/// above its threshold, or no move helps, or `budget` migrations exist.
pub fn balance(sequence: &mut Sequence<'_>, target: f64, budget: usize) {
    let cluster = sequence.cluster;
    let mut pool = Pool::new(sequence);
    let over = |s: &Sequence<'_>, h: HostIx| s.utilization(h) > cluster.hosts[h].threshold;
    let mut over_count = cluster
        .active_hosts()
        .filter(|&h| over(sequence, h))
        .count();
    let Some(&(Utilization(coolest), _)) = pool.receivers.first() else {
        return;
    };
    let mut sources: BinaryHeap<(Utilization, Reverse<HostIx>)> = cluster
        .active_hosts()
        .filter(|&h| !pool.received[h] && !pool.movable[h].is_empty())
        .map(|h| (sequence.utilization(h) - coolest, h))
        .filter(|&(gap, _)| gap > 0.0)
        .map(|(gap, h)| (Utilization(gap * gap / 2.0), Reverse(h)))
        .collect();
    while let Some((_, Reverse(from))) = sources.pop() {
        let spread_met = sequence.spread() <= target;
        if (spread_met && over_count == 0) || sequence.len() >= budget {
            break;
        }
        // Once the spread is met, only hosts over their threshold move (a
        // move that gains only narrows the spread further).
        if pool.received[from] || (spread_met && !over(sequence, from)) {
            continue;
        }
        // No move now means none later: receivers only fill up.
        let Some(best) = best_move(sequence, &pool, from) else {
            continue;
        };
        if sources
            .peek()
            .is_some_and(|&(Utilization(next), _)| next > best.bound)
        {
            sources.push((Utilization(best.bound), Reverse(from)));
            continue;
        }
        let source_over = over(sequence, from);
        let reason = if source_over {
            MoveReason::OverThreshold {
                threshold: cluster.hosts[from].threshold,
            }
        } else {
            MoveReason::Spread {
                gain: best.gain,
                target,
            }
        };
        pool.receivers
            .remove(&(Utilization(sequence.utilization(from)), from));
        pool.receivers
            .remove(&(Utilization(sequence.utilization(best.to)), best.to));
        sequence.push(best.vm, best.to, reason);
        pool.receivers
            .insert((Utilization(sequence.utilization(best.to)), best.to));
        pool.sent[from] = true;
        pool.received[best.to] = true;
        pool.movable[from].retain(|&v| v != best.vm);
        if source_over && !over(sequence, from) {
            over_count -= 1;
        }
        // Its next move gains at most this one's bound.
        if !pool.movable[from].is_empty() {
            sources.push((Utilization(best.bound), Reverse(from)));
        }
    }
}

impl Pool {
    fn new(sequence: &Sequence<'_>) -> Self {
        let cluster = sequence.cluster;
        let hosts = cluster.hosts.len();
        let mut pool = Pool {
            sent: vec![false; hosts],
            received: vec![false; hosts],
            receivers: BTreeSet::new(),
            movable: vec![Vec::new(); hosts],
        };
        // Moves already in the plan (maintenance, pins) set roles too.
        for (vm, v) in cluster.vms.iter().enumerate() {
            if sequence.moved[vm] {
                pool.sent[v.host] = true;
                if let Some(to) = sequence.location[vm] {
                    pool.received[to] = true;
                }
            } else if sequence.location[vm] == Some(v.host)
                && v.unmovable.is_none()
                && v.pin.is_none()
                && v.cpu > 0.0
            {
                pool.movable[v.host].push(vm);
            }
        }
        pool.receivers = cluster
            .active_hosts()
            .filter(|&h| !pool.sent[h])
            .map(|h| (Utilization(sequence.utilization(h)), h))
            .collect();
        pool
    }
}

/// The best move off `from`: each VM to the coolest receiver that accepts
/// it and stays under its threshold; the VM gaining most, or within
/// [`BYTES_SLACK`] of it the one copying the fewest bytes. `None` when no
/// move lowers the sum of squared utilizations.
fn best_move(sequence: &Sequence<'_>, pool: &Pool, from: HostIx) -> Option<Candidate> {
    let cluster = sequence.cluster;
    let source = &cluster.hosts[from];
    let uf = sequence.utilization(from);
    let mut waiting: Vec<VmIx> = pool.movable[from].clone();
    let mut found: Vec<Candidate> = Vec::new();
    let smallest_memory = waiting.iter().map(|&vm| cluster.vms[vm].memory).min()?;
    for &(Utilization(ut), to) in &pool.receivers {
        if waiting.is_empty() {
            break;
        }
        // Warmer receivers gain less for every VM: stop once even the ideal
        // VM could not beat what is found.
        let best_gain = found.iter().map(|c| c.gain).fold(0.0, f64::max);
        if uf <= ut || (uf - ut) * (uf - ut) / 2.0 <= best_gain {
            break;
        }
        let receiver = &cluster.hosts[to];
        let load = &sequence.loads[to];
        if to == from || load.memory + smallest_memory > receiver.memory_capacity {
            continue;
        }
        waiting.retain(|&vm| {
            let cpu = cluster.vms[vm].cpu;
            let (after_from, after_to) = (uf - cpu / source.cores, ut + cpu / receiver.cores);
            let gain = uf * uf - after_from * after_from + ut * ut - after_to * after_to;
            if gain <= GAIN_EPSILON {
                return false; // a warmer receiver gains even less
            }
            if after_to > receiver.threshold || sequence.check(vm, to).is_err() {
                return true; // try the next receiver
            }
            found.push(Candidate {
                gain,
                bound: 0.0,
                vm,
                to,
            });
            false
        });
    }
    let best_gain = found.iter().map(|c| c.gain).fold(0.0, f64::max);
    let chosen = found
        .into_iter()
        .filter(|c| c.gain >= (1.0 - BYTES_SLACK) * best_gain)
        .min_by(|a, b| {
            let (ra, rb) = (cluster.vms[a.vm].resident, cluster.vms[b.vm].resident);
            ra.cmp(&rb)
                .then(b.gain.total_cmp(&a.gain))
                .then(a.vm.cmp(&b.vm))
        })?;
    Some(Candidate {
        bound: best_gain,
        ..chosen
    })
}
