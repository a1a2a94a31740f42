//! A lower bound on the migrations any plan needs to bring the spread of a
//! generated cluster to a target, to read the planner's and the baselines'
//! counts against.
//!
//! A migration changes the utilization of two hosts. Hosts no migration
//! touches keep their deviation from the mean, and those deviations alone
//! must fit in the spread's budget (hosts x target squared), even if every
//! touched host ended exactly at the mean. So at least the hosts beyond the
//! most that fit in the budget (the least deviating first) change, and at
//! least half that many migrations are needed. The bound ignores VM sizes,
//! capacity and constraints, so real plans need more; it assumes the mean
//! does not move, which holds for the benchmark's equal hosts.

use hyperwatch::planner::{ClusterSnapshot, HostState, PlannerSettings, percentile};

/// Fewest migrations that could bring the spread of `snapshot` to `target`.
pub fn migrations_needed(
    snapshot: &ClusterSnapshot,
    settings: &PlannerSettings,
    target: f64,
) -> usize {
    let p = settings.percentile;
    let healthy: Vec<&str> = snapshot
        .hosts
        .iter()
        .filter(|h| h.state == HostState::Healthy)
        .map(|h| h.id.as_str())
        .collect();
    // The planner's reading of a host's load: its VMs' percentiles, or the
    // host's own percentile when that is higher (the hypervisor's share).
    let mut vm_cpu: std::collections::BTreeMap<&str, f64> = std::collections::BTreeMap::new();
    for v in &snapshot.vms {
        let cpu = percentile(&v.cpu_samples, p).unwrap_or(f64::from(v.vcpus));
        *vm_cpu.entry(v.host.as_str()).or_default() += cpu;
    }
    let utilization: Vec<f64> = snapshot
        .hosts
        .iter()
        .filter(|h| healthy.contains(&h.id.as_str()))
        .map(|h| {
            let vms = vm_cpu.get(h.id.as_str()).copied().unwrap_or(0.0);
            let own = percentile(&h.cpu_samples, p).unwrap_or(0.0);
            vms.max(own) / f64::from(h.cores)
        })
        .collect();
    let n = utilization.len() as f64;
    let mean = utilization.iter().sum::<f64>() / n;
    let mut squares: Vec<f64> = utilization.iter().map(|u| (u - mean).powi(2)).collect();
    squares.sort_by(f64::total_cmp);
    let budget = n * target * target;
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
