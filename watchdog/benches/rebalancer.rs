//! `cargo xtask bench rebalancer`: the rebalancer on seeded, skewed storage
//! clusters (100 devices / 10,000 LUNs and 1,000 devices / 100,000 LUNs),
//! beside a baseline measured in the same run: a smallest-LUN-first mover
//! off every device over a threshold, the way OpenStack Watcher's
//! storage_capacity_balance strategy works. Prints plan time (median),
//! capacity and IO spread before and after, LUNs and bytes moved, for the
//! rebalancer's defaults and for settings that trade bytes for evenness.

use std::time::{Duration, Instant};

use hyperwatch::rebalancer::{Device, DeviceGroup, DeviceState, Lun, Snapshot, Thresholds, plan};

const GIB: u64 = 1 << 30;
/// Devices per group: one storage tier of a rack row.
const GROUP_SIZE: usize = 100;
/// Seed of every cluster, so runs compare.
const SEED: u64 = 0x5eed_1ab5;
/// Share of devices that attract extra LUNs (the skew).
const HOT_DEVICE_SHARE: f64 = 0.15;
/// How much more those devices attract.
const HOT_DEVICE_WEIGHT: f64 = 2.2;
/// Mean fill of the cluster: room to fix every device.
const MEAN_FILL: f64 = 0.55;
/// Latency model of the generated devices: a base and a slope per IOPS
/// (a device at 4,000 IOPS shows 10.5 ms).
const BASE_LATENCY: f64 = 0.0005;
const LATENCY_PER_IOPS: f64 = 0.0000025;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; a size may follow for a quick look.
    let sizes: Vec<(usize, usize)> = match args.iter().find_map(|a| a.parse::<usize>().ok()) {
        Some(devices) => vec![(devices, devices * 100)],
        None => vec![(100, 10_000), (1_000, 100_000)],
    };
    for (devices, luns) in sizes {
        run(devices, luns);
    }
}

fn run(devices: usize, luns: usize) {
    let snapshot = cluster(devices, luns);
    println!("\n== {devices} devices, {luns} LUNs (seed {SEED:#x}) ==");
    let runs = if luns >= 100_000 { 7 } else { 21 };

    let (base_time, base) = median_time(runs, || watcher_baseline(&snapshot));
    let before = Quality::of(&snapshot, &[]);
    let after_base = Quality::of(&snapshot, &base);
    println!(
        "{:<30} {:>8} {:>8} {:>8} {:>9} {:>7} {:>5} {:>7} {:>10}",
        "", "plan ms", "cap max", "cap sd", "io max/µ", "io cv", "over", "LUNs", "GiB moved"
    );
    let row = |name: &str, t: Option<Duration>, q: &Quality, moves: &[(String, String, u64)]| {
        let gib: u64 = moves.iter().map(|m| m.2).sum::<u64>() / GIB;
        println!(
            "{name:<30} {:>8} {:>7.1}% {:>7.2}% {:>9.2} {:>7.3} {:>5} {:>7} {:>10}",
            t.map_or("-".into(), |t| format!("{:.1}", t.as_secs_f64() * 1e3)),
            q.capacity_max * 100.0,
            q.capacity_stddev * 100.0,
            q.iops_max_over_mean,
            q.iops_cv,
            q.over,
            moves.len(),
            gib
        );
    };
    row("before", None, &before, &[]);
    row(
        "baseline (smallest first)",
        Some(base_time),
        &after_base,
        &base,
    );
    // The rebalancer with its defaults (thresholds, IO band 25 %, capacity
    // moved only for thresholds), then with capacity bands, which buy
    // capacity evenness byte for byte, and with no balancing at all.
    let mut results = Vec::new();
    for (name, capacity_band, iops_band) in [
        ("rebalancer (defaults)", None, 0.25),
        ("  + capacity band 20%", Some(0.20), 0.25),
        ("  + capacity band 10%", Some(0.10), 0.25),
        ("rebalancer (thresholds only)", None, f64::INFINITY),
    ] {
        let mut s = snapshot.clone();
        for g in &mut s.groups {
            g.thresholds.capacity_band = capacity_band;
            g.thresholds.iops_band = iops_band;
        }
        let (time, moves) = median_time(runs, || {
            let p = plan(&s).expect("generated snapshot is valid");
            p.moves
                .iter()
                .map(|m| (m.lun.clone(), m.to.clone(), m.bytes))
                .collect::<Vec<_>>()
        });
        let q = Quality::of(&snapshot, &moves);
        row(name, Some(time), &q, &moves);
        results.push((name, time, q, moves));
    }
    let bytes = |m: &[(String, String, u64)]| m.iter().map(|m| m.2).sum::<u64>() as f64;
    for (name, time, q, moves) in &results {
        println!(
            "{name} / baseline: bytes moved {:.2}, LUNs moved {:.2}, capacity sd {:.2}, io cv {:.2}, devices over {} vs {}, plan time {:.2}",
            bytes(moves) / bytes(&base).max(1.0),
            moves.len() as f64 / base.len().max(1) as f64,
            q.capacity_stddev / after_base.capacity_stddev.max(1e-12),
            q.iops_cv / after_base.iops_cv.max(1e-12),
            q.over,
            after_base.over,
            time.as_secs_f64() / base_time.as_secs_f64().max(1e-12),
        );
    }
}

/// Median wall time of `runs` calls of `f`, and its last result.
fn median_time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(runs);
    let mut out = None;
    for _ in 0..runs {
        let start = Instant::now();
        out = Some(std::hint::black_box(f()));
        times.push(start.elapsed());
    }
    times.sort();
    (times[runs / 2], out.expect("at least one run"))
}

/// splitmix64: a seeded generator with no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Thresholds of every generated group.
fn thresholds() -> Thresholds {
    Thresholds {
        max_capacity_used: 0.80,
        max_latency_seconds: Some(0.010),
        // Three times a device's fair share.
        max_iops_share: Some(3.0 / GROUP_SIZE as f64),
        ..Thresholds::default()
    }
}

/// A skewed cluster: LUN sizes log-uniform 1-256 GiB, IOPS heavy-tailed
/// and independent of size, hot devices attracting 2.2 times the LUNs.
fn cluster(devices: usize, luns: usize) -> Snapshot {
    let mut rng = Rng(SEED ^ devices as u64);
    let sizes: Vec<u64> = (0..luns)
        .map(|_| (2f64.powf(rng.unit() * 8.0) * GIB as f64) as u64)
        .collect();
    let iops: Vec<f64> = (0..luns).map(|_| 150.0 * rng.unit().powi(6)).collect();
    let total: u64 = sizes.iter().sum();
    let capacity = (total as f64 / MEAN_FILL / devices as f64) as u64;
    let weights: Vec<f64> = (0..devices)
        .map(|_| {
            let w = 0.6 + 0.8 * rng.unit();
            if rng.unit() < HOT_DEVICE_SHARE {
                w * HOT_DEVICE_WEIGHT
            } else {
                w
            }
        })
        .collect();
    let weight_sum: f64 = weights.iter().sum();
    let groups = devices.div_ceil(GROUP_SIZE);
    let mut devs: Vec<Device> = (0..devices)
        .map(|i| Device {
            id: format!("pv{i:04}"),
            group: format!("tier{:02}", i / GROUP_SIZE),
            capacity_bytes: capacity,
            used_bytes: 0,
            iops: 0.0,
            latency_seconds: None,
            state: DeviceState::Active,
        })
        .collect();
    let mut out = Vec::with_capacity(luns);
    for (i, (size, iops)) in sizes.into_iter().zip(iops).enumerate() {
        // Weighted pick; a device already 98% full passes the LUN on.
        let mut target = rng.unit() * weight_sum;
        let mut d = 0;
        while d + 1 < devices && target > weights[d] {
            target -= weights[d];
            d += 1;
        }
        while devs[d].used_bytes + size > capacity * 98 / 100 {
            d = (d + 1) % devices;
        }
        devs[d].used_bytes += size;
        devs[d].iops += iops;
        out.push(Lun {
            id: format!("lun{i:06}"),
            device: devs[d].id.clone(),
            size_bytes: size,
            iops,
            pinned: rng.unit() < 0.02,
        });
    }
    for d in &mut devs {
        d.latency_seconds = Some(BASE_LATENCY + LATENCY_PER_IOPS * d.iops);
    }
    Snapshot {
        groups: (0..groups)
            .map(|g| DeviceGroup {
                name: format!("tier{g:02}"),
                thresholds: thresholds(),
            })
            .collect(),
        devices: devs,
        luns: out,
    }
}

/// Each device's capacity and IOPS limits, as the rebalancer computes them
/// (capacity threshold; the lower of the IOPS-share limit and the IOPS at
/// which the linear latency model reaches the latency threshold).
fn limits(s: &Snapshot) -> Vec<(u64, f64)> {
    let t = thresholds();
    let mut group_iops = std::collections::BTreeMap::new();
    for d in &s.devices {
        *group_iops.entry(d.group.as_str()).or_insert(0.0) += d.iops;
    }
    s.devices
        .iter()
        .map(|d| {
            let share = t.max_iops_share.unwrap() * group_iops[d.group.as_str()];
            let lat = d.latency_seconds.unwrap();
            let latency = d.iops * t.max_latency_seconds.unwrap() / lat;
            (
                (d.capacity_bytes as f64 * t.max_capacity_used).floor() as u64,
                share.min(latency),
            )
        })
        .collect()
}

/// OpenStack Watcher's storage_capacity_balance, generalised to every
/// threshold: for each device over one, move its smallest LUNs first, each
/// to the device of its group with the lowest used fraction that has room
/// under the capacity threshold, until it is under all thresholds.
fn watcher_baseline(s: &Snapshot) -> Vec<(String, String, u64)> {
    let limit = limits(s);
    let mut used: Vec<u64> = s.devices.iter().map(|d| d.used_bytes).collect();
    let mut iops: Vec<f64> = s.devices.iter().map(|d| d.iops).collect();
    let index: std::collections::BTreeMap<&str, usize> = s
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    let mut on: Vec<Vec<&Lun>> = vec![Vec::new(); s.devices.len()];
    for l in &s.luns {
        on[index[l.device.as_str()]].push(l);
    }
    let mut moves = Vec::new();
    for d in 0..s.devices.len() {
        let over = |used: &[u64], iops: &[f64]| used[d] > limit[d].0 || iops[d] > limit[d].1;
        if !over(&used, &iops) {
            continue;
        }
        let mut mine: Vec<&Lun> = on[d].iter().copied().filter(|l| !l.pinned).collect();
        mine.sort_by_key(|l| (l.size_bytes, l.id.clone()));
        for l in mine {
            if !over(&used, &iops) {
                break;
            }
            let group = &s.devices[d].group;
            let dest = (0..s.devices.len())
                .filter(|&t| t != d && &s.devices[t].group == group)
                .filter(|&t| used[t] + l.size_bytes <= limit[t].0)
                .min_by(|&a, &b| {
                    let fa = used[a] as f64 / s.devices[a].capacity_bytes as f64;
                    let fb = used[b] as f64 / s.devices[b].capacity_bytes as f64;
                    fa.total_cmp(&fb)
                });
            let Some(t) = dest else { continue };
            used[d] -= l.size_bytes;
            used[t] += l.size_bytes;
            iops[d] -= l.iops;
            iops[t] += l.iops;
            moves.push((l.id.clone(), s.devices[t].id.clone(), l.size_bytes));
        }
    }
    moves
}

/// How even a placement is, averaged over groups, and how many devices end
/// over a threshold.
struct Quality {
    capacity_max: f64,
    capacity_stddev: f64,
    iops_max_over_mean: f64,
    iops_cv: f64,
    over: usize,
}

impl Quality {
    fn of(s: &Snapshot, moves: &[(String, String, u64)]) -> Self {
        let index: std::collections::BTreeMap<&str, usize> = s
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.as_str(), i))
            .collect();
        let lun: std::collections::BTreeMap<&str, &Lun> =
            s.luns.iter().map(|l| (l.id.as_str(), l)).collect();
        let mut used: Vec<f64> = s.devices.iter().map(|d| d.used_bytes as f64).collect();
        let mut iops: Vec<f64> = s.devices.iter().map(|d| d.iops).collect();
        for (id, to, bytes) in moves {
            let l = lun[id.as_str()];
            let (from, to) = (index[l.device.as_str()], index[to.as_str()]);
            used[from] -= *bytes as f64;
            used[to] += *bytes as f64;
            iops[from] -= l.iops;
            iops[to] += l.iops;
        }
        let limit = limits(s);
        let over = (0..s.devices.len())
            .filter(|&d| used[d] > limit[d].0 as f64 || iops[d] > limit[d].1 * 1.000_001)
            .count();
        let groups = s.devices.len().div_ceil(GROUP_SIZE);
        let (mut cmax, mut csd, mut imax, mut icv) = (0.0f64, 0.0, 0.0, 0.0);
        for g in 0..groups {
            let range = g * GROUP_SIZE..((g + 1) * GROUP_SIZE).min(s.devices.len());
            let fill: Vec<f64> = range
                .clone()
                .map(|d| used[d] / s.devices[d].capacity_bytes as f64)
                .collect();
            let io: Vec<f64> = range.map(|d| iops[d]).collect();
            let (fm, fs) = mean_sd(&fill);
            let (im, is) = mean_sd(&io);
            let _ = fm;
            cmax = cmax.max(fill.iter().copied().fold(0.0, f64::max));
            csd += fs;
            imax += io.iter().copied().fold(0.0, f64::max) / im;
            icv += is / im;
        }
        let n = groups as f64;
        Self {
            capacity_max: cmax,
            capacity_stddev: csd / n,
            iops_max_over_mean: imax / n,
            iops_cv: icv / n,
            over,
        }
    }
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}
