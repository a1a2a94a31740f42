//! Lower bounds on the migrations any plan needs to bring the spread of a
//! generated cluster to a target, to read the planner's and the baselines'
//! counts against. Both hold for every plan, whatever its order, since the
//! final placement alone must meet the budget: hosts x target squared for
//! the sum of squared deviations from the mean (which migrations between
//! the benchmark's equal hosts do not move).
//!
//! * Touched hosts: a host no migration touches keeps its deviation, so the
//!   hosts beyond the most that fit in the budget (least deviating first)
//!   change, and a migration changes two.
//! * VM sizes: a host above the mean that `k` migrations leave ends at least
//!   `r(k)` above it, its deviation less its `k` largest movable VMs (or 0).
//!   So the sum of `r(k_h)^2` fits in the budget and the migrations are at
//!   least the sum of `k_h`. For any `λ >= 0` the sum over hosts of
//!   `min_k (k + λ r(k)^2)`, less `λ` times the budget, is then at most the
//!   fewest migrations (a Lagrangian bound); the best `λ` of a scan counts.
//!
//! They ignore capacity and constraints on the receiving side, so real
//! plans need more.

use std::collections::{BTreeMap, BTreeSet};

use hyperwatch::planner::{ClusterSnapshot, HostState, PlannerSettings, percentile};

/// Values of `λ` scanned, log-spaced: any `λ` gives a valid bound, more of
/// them only a tighter one.
const LAMBDAS: usize = 400;

/// A healthy host as the planner reads it: utilization and its movable
/// VMs' shares of it, largest first.
struct HostShares {
    utilization: f64,
    movable: Vec<f64>,
}

/// The larger of the two bounds for bringing `snapshot` to `target`.
pub fn migrations_needed(
    snapshot: &ClusterSnapshot,
    settings: &PlannerSettings,
    target: f64,
) -> usize {
    let hosts = shares(snapshot, settings);
    let n = hosts.len() as f64;
    let mean = hosts.iter().map(|h| h.utilization).sum::<f64>() / n;
    let budget = n * target * target;
    touched_hosts(&hosts, mean, budget).max(vm_sizes(&hosts, mean, budget))
}

fn shares(snapshot: &ClusterSnapshot, settings: &PlannerSettings) -> Vec<HostShares> {
    let p = settings.percentile;
    let c = &snapshot.constraints;
    let fixed: BTreeSet<&str> = c
        .pinned
        .keys()
        .chain(c.unmovable.keys())
        .map(String::as_str)
        .collect();
    let mut total: BTreeMap<&str, f64> = BTreeMap::new();
    let mut movable: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for v in &snapshot.vms {
        let cpu = percentile(&v.cpu_samples, p).unwrap_or(f64::from(v.vcpus));
        *total.entry(v.host.as_str()).or_default() += cpu;
        if !fixed.contains(v.id.as_str()) {
            movable.entry(v.host.as_str()).or_default().push(cpu);
        }
    }
    snapshot
        .hosts
        .iter()
        .filter(|h| h.state == HostState::Healthy)
        .map(|h| {
            let cores = f64::from(h.cores);
            // The planner's reading: its VMs' percentiles, or the host's own
            // when higher (the hypervisor's share, which stays).
            let vms = total.get(h.id.as_str()).copied().unwrap_or(0.0);
            let own = percentile(&h.cpu_samples, p).unwrap_or(0.0);
            let mut shares: Vec<f64> = movable
                .remove(h.id.as_str())
                .unwrap_or_default()
                .into_iter()
                .map(|cpu| cpu / cores)
                .collect();
            shares.sort_by(|a, b| b.total_cmp(a));
            HostShares {
                utilization: vms.max(own) / cores,
                movable: shares,
            }
        })
        .collect()
}

fn touched_hosts(hosts: &[HostShares], mean: f64, budget: f64) -> usize {
    let mut squares: Vec<f64> = hosts
        .iter()
        .map(|h| (h.utilization - mean).powi(2))
        .collect();
    squares.sort_by(f64::total_cmp);
    let mut used = 0.0;
    let untouched = squares
        .iter()
        .take_while(|&&s| {
            used += s;
            used <= budget
        })
        .count();
    (squares.len() - untouched).div_ceil(2)
}

fn vm_sizes(hosts: &[HostShares], mean: f64, budget: f64) -> usize {
    // Per host above the mean: r(k)^2 for k = 0, 1, ... migrations leaving.
    let residuals: Vec<Vec<f64>> = hosts
        .iter()
        .filter(|h| h.utilization > mean)
        .map(|h| {
            let mut r = h.utilization - mean;
            let mut out = vec![r * r];
            for share in &h.movable {
                if r <= 0.0 {
                    break;
                }
                r = (r - share).max(0.0);
                out.push(r * r);
            }
            out
        })
        .collect();
    let mut best = 0.0f64;
    for step in 0..LAMBDAS {
        let lambda = 10f64.powf(-1.0 + 9.0 * step as f64 / LAMBDAS as f64);
        let dual: f64 = residuals
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(k, r2)| k as f64 + lambda * r2)
                    .fold(f64::INFINITY, f64::min)
            })
            .sum::<f64>()
            - lambda * budget;
        best = best.max(dual);
    }
    // Migrations are whole: the bound rounds up (past float dust).
    (best - 1e-6).ceil().max(0.0) as usize
}
