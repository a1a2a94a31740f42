//! The planning passes. First every device goes back under its thresholds;
//! then each group is evened out: devices above the group's balance band
//! shed LUNs, devices below it take LUNs from the busiest ones. Every pick
//! takes the LUN that does the job with the fewest bytes, and every
//! destination stays under its limits at every step.

use super::{
    plan::{Reason, Unresolved},
    snapshot::DeviceState,
    state::State,
};

/// IOPS differences below this are rounding noise from summing thousands of
/// LUNs' IOPS as floats.
const IOPS_EPSILON: f64 = 1e-6;

/// Donors a filling device looks at per pick: the few most loaded devices
/// hold the LUNs worth pulling, and looking at every device would make a
/// pick cost as much as the whole snapshot.
const FILL_DONORS: usize = 4;

/// One move decided by a pass, in plan order.
#[derive(Clone, Debug)]
pub(super) struct Step {
    pub lun: usize,
    pub from: usize,
    pub to: usize,
    pub reason: Reason,
}

/// The group's balance band: mean used fraction and IOPS per device, and
/// how far from them a device may be.
#[derive(Clone, Copy, Debug)]
struct Band {
    mean_fraction: f64,
    capacity_band: f64,
    mean_iops: f64,
    iops_band: f64,
}

impl Band {
    fn of(state: &State, g: usize) -> Self {
        let (mean_fraction, mean_iops) = state.means(g);
        let group = &state.groups[g];
        Self {
            mean_fraction,
            capacity_band: group.capacity_band,
            mean_iops,
            iops_band: group.iops_band,
        }
    }
    fn upper_fraction(&self) -> f64 {
        self.mean_fraction + self.capacity_band
    }
    fn upper_iops(&self) -> f64 {
        self.mean_iops * (1.0 + self.iops_band)
    }
    fn lower_fraction(&self) -> f64 {
        self.mean_fraction - self.capacity_band
    }
    fn lower_iops(&self) -> f64 {
        self.mean_iops * (1.0 - self.iops_band)
    }
}

/// Which pass sheds LUNs: it decides the reasons and the destinations'
/// limits.
#[derive(Clone, Copy, Debug)]
enum Pass {
    /// Back under the thresholds; destinations may fill to their thresholds.
    Thresholds,
    /// Down into the band; destinations may fill to the band's top.
    Balance,
}

/// Runs every pass on `state` and returns the moves in plan order and the
/// devices left over a threshold.
pub(super) fn make(state: &mut State) -> (Vec<Step>, Vec<Unresolved>) {
    let mut steps = Vec::new();
    let mut unresolved = Vec::new();
    fix_thresholds(state, &mut steps, &mut unresolved);
    for g in 0..state.groups.len() {
        balance(state, g, &mut steps);
    }
    (steps, unresolved)
}

/// How far over its limits a device is (0 when within them), as the larger
/// of the two ratios.
fn overload(state: &State, d: usize) -> f64 {
    let dev = &state.devs[d];
    let cap = if dev.used > dev.cap_limit {
        dev.used as f64 / dev.cap_limit.max(1) as f64
    } else {
        0.0
    };
    let iops = if dev.iops > dev.iops_limit + IOPS_EPSILON {
        dev.iops / dev.iops_limit.max(IOPS_EPSILON)
    } else {
        0.0
    };
    cap.max(iops)
}

fn fix_thresholds(state: &mut State, steps: &mut Vec<Step>, unresolved: &mut Vec<Unresolved>) {
    let bands: Vec<Band> = (0..state.groups.len())
        .map(|g| Band::of(state, g))
        .collect();
    let mut over: Vec<(f64, usize)> = Vec::new();
    for d in 0..state.devs.len() {
        let severity = overload(state, d);
        if severity == 0.0 {
            continue;
        }
        if state.devs[d].state == DeviceState::Maintenance {
            unresolved.push(Unresolved {
                device: state.devs[d].id.clone(),
                problem: format!(
                    "{}; it is in maintenance, so nothing moves off it",
                    describe_overload(state, d)
                ),
            });
        } else {
            over.push((severity, d));
        }
    }
    over.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, d) in over {
        let band = bands[state.devs[d].group];
        let (cap_target, iops_target) = (state.devs[d].cap_limit, state.devs[d].iops_limit);
        if let Err(problem) = shed(
            state,
            d,
            cap_target,
            iops_target,
            Pass::Thresholds,
            band,
            steps,
        ) {
            unresolved.push(Unresolved {
                device: state.devs[d].id.clone(),
                problem,
            });
        }
    }
}

fn describe_overload(state: &State, d: usize) -> String {
    let dev = &state.devs[d];
    let mut parts = Vec::new();
    if dev.used > dev.cap_limit {
        parts.push(format!(
            "{} bytes used, over its limit of {}",
            dev.used, dev.cap_limit
        ));
    }
    if dev.iops > dev.iops_limit + IOPS_EPSILON {
        parts.push(format!(
            "{:.0} IOPS, over its limit of {:.0}",
            dev.iops, dev.iops_limit
        ));
    }
    format!("{}: {}", dev.id, parts.join(" and "))
}

fn balance(state: &mut State, g: usize, steps: &mut Vec<Step>) {
    let band = Band::of(state, g);
    if band.mean_fraction <= 0.0 && band.mean_iops <= 0.0 {
        return;
    }
    let mut above: Vec<(f64, usize)> = state
        .active(g)
        .filter_map(|d| {
            let dev = &state.devs[d];
            let cap = dev.used as f64 / dev.capacity as f64 - band.upper_fraction();
            let iops = if band.mean_iops > 0.0 {
                (dev.iops - band.upper_iops()) / band.mean_iops
            } else {
                0.0
            };
            let severity = cap.max(iops);
            (severity > 0.0).then_some((severity, d))
        })
        .collect();
    above.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, d) in above {
        let dev = &state.devs[d];
        let cap_target = (band.upper_fraction() * dev.capacity as f64).floor() as u64;
        let iops_target = band.upper_iops();
        // Balance is best effort: a device that finds no room stays as it is.
        let _ = shed(
            state,
            d,
            cap_target,
            iops_target,
            Pass::Balance,
            band,
            steps,
        );
    }

    let mut below: Vec<(f64, usize)> = state
        .active(g)
        .filter_map(|d| {
            let dev = &state.devs[d];
            let cap = band.lower_fraction() - dev.used as f64 / dev.capacity as f64;
            let iops = if band.mean_iops > 0.0 {
                (band.lower_iops() - dev.iops) / band.mean_iops
            } else {
                0.0
            };
            let severity = cap.max(iops);
            (severity > 0.0).then_some((severity, d))
        })
        .collect();
    below.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, r) in below {
        fill(state, g, r, band, steps);
    }
}

/// Moves LUNs off `d` until it holds at most `cap_target` bytes and
/// `iops_target` IOPS. Errs with the reason when it cannot.
fn shed(
    state: &mut State,
    d: usize,
    cap_target: u64,
    iops_target: f64,
    pass: Pass,
    band: Band,
    steps: &mut Vec<Step>,
) -> Result<(), String> {
    let mut skipped = vec![false; state.devs[d].luns.len()];
    let mut no_room = 0usize;
    loop {
        let dev = &state.devs[d];
        let over_bytes = dev.used.saturating_sub(cap_target);
        let over_iops = dev.iops - iops_target;
        let for_iops = over_iops > IOPS_EPSILON;
        if over_bytes == 0 && !for_iops {
            return Ok(());
        }
        let Some(pos) = pick_to_shed(state, d, &skipped, over_bytes, over_iops, for_iops) else {
            let pinned = dev.luns.iter().filter(|&&l| state.luns[l].pinned).count();
            return Err(format!(
                "{}; {pinned} pinned LUNs must stay and {no_room} LUNs fit on no other \
                 active device of group {}",
                describe_overload(state, d),
                state.groups[dev.group].name
            ));
        };
        let l = dev.luns[pos];
        let soft = match pass {
            Pass::Thresholds => None,
            Pass::Balance => Some((band.upper_fraction(), band.upper_iops())),
        };
        let Some(to) = destination(state, l, soft, band, for_iops) else {
            skipped[pos] = true;
            no_room += 1;
            continue;
        };
        let dev = &state.devs[d];
        let reason = match (pass, dev.state, for_iops) {
            (_, DeviceState::Draining, _) => Reason::Draining,
            (Pass::Thresholds, _, true) => Reason::IopsOver {
                iops: dev.iops,
                limit: dev.iops_limit,
                cause: dev.iops_cause,
            },
            (Pass::Thresholds, _, false) => Reason::CapacityOver {
                used_fraction: dev.used as f64 / dev.capacity as f64,
                max_fraction: dev.cap_limit as f64 / dev.capacity as f64,
            },
            (Pass::Balance, _, true) => Reason::IopsAboveBand {
                iops: dev.iops,
                mean: band.mean_iops,
                band: band.iops_band,
            },
            (Pass::Balance, _, false) => Reason::CapacityAboveBand {
                used_fraction: dev.used as f64 / dev.capacity as f64,
                mean: band.mean_fraction,
                band: band.capacity_band,
            },
        };
        state.apply(l, to);
        steps.push(Step {
            lun: l,
            from: d,
            to,
            reason,
        });
    }
}

/// The position (in `d`'s LUN list) of the LUN to move off `d` next.
///
/// For IOPS: the densest LUN (IOPS per byte), unless one LUN covers the
/// whole excess for no more bytes than that. For bytes: the largest LUN
/// below the excess, unless one LUN covers it overshooting by no more than
/// the smallest candidate (which is what filling up piecewise risks).
fn pick_to_shed(
    state: &State,
    d: usize,
    skipped: &[bool],
    over_bytes: u64,
    over_iops: f64,
    for_iops: bool,
) -> Option<usize> {
    let candidates = state.devs[d]
        .luns
        .iter()
        .enumerate()
        .filter(|&(pos, &l)| !skipped[pos] && state.luns[l].device == d && state.movable(l))
        .map(|(pos, &l)| (pos, state.luns[l].size, state.luns[l].iops));
    if for_iops {
        choose_for_iops(candidates.filter(|c| c.2 > 0.0), over_iops)
    } else {
        choose_for_bytes(candidates.filter(|c| c.1 > 0), over_bytes)
    }
}

/// Among `(key, size, iops)` candidates, the one that best covers `need`
/// IOPS per byte moved (see [`pick_to_shed`]).
fn choose_for_iops<K: Copy>(
    candidates: impl Iterator<Item = (K, u64, f64)>,
    need: f64,
) -> Option<K> {
    let mut cover: Option<(K, u64)> = None;
    let mut densest: Option<(K, u64, f64)> = None;
    for (k, size, iops) in candidates {
        if iops >= need && cover.is_none_or(|c| size < c.1) {
            cover = Some((k, size));
        }
        // a denser than b: a.iops / a.size > b.iops / b.size, without dividing.
        if densest.is_none_or(|b| iops * b.1 as f64 > b.2 * size as f64) {
            densest = Some((k, size, iops));
        }
    }
    match (cover, densest) {
        (Some(c), Some(d)) if c.1 <= d.1 => Some(c.0),
        (_, Some(d)) => Some(d.0),
        (c, None) => c.map(|c| c.0),
    }
}

/// Among `(key, size, iops)` candidates, the one that best covers `need`
/// bytes with the fewest bytes (see [`pick_to_shed`]).
fn choose_for_bytes<K: Copy>(
    candidates: impl Iterator<Item = (K, u64, f64)>,
    need: u64,
) -> Option<K> {
    let mut cover: Option<(K, u64)> = None;
    let mut largest_below: Option<(K, u64)> = None;
    let mut smallest = u64::MAX;
    for (k, size, _) in candidates {
        smallest = smallest.min(size);
        if size >= need {
            if cover.is_none_or(|c| size < c.1) {
                cover = Some((k, size));
            }
        } else if largest_below.is_none_or(|b| size > b.1) {
            largest_below = Some((k, size));
        }
    }
    match (cover, largest_below) {
        (Some(c), Some(_)) if c.1 - need <= smallest => Some(c.0),
        (_, Some(b)) => Some(b.0),
        (c, None) => c.map(|c| c.0),
    }
}

/// The active device of `l`'s group that takes it and ends up least loaded
/// in the dimension the move is for (IOPS when `for_iops`, else the used
/// fraction), the other dimension breaking ties; `soft` caps both further.
/// A move for IOPS goes to the emptiest device (by used fraction) among
/// those it leaves at or below the group's mean IOPS: the bytes it copies
/// then even out capacity too, at no extra cost. Remaining ties go to the
/// first by name.
fn destination(
    state: &State,
    l: usize,
    soft: Option<(f64, f64)>,
    band: Band,
    for_iops: bool,
) -> Option<usize> {
    let lun = &state.luns[l];
    let g = state.devs[lun.device].group;
    let relative = |x: f64, mean: f64| if mean > 0.0 { x / mean } else { x };
    let mut best: Option<((f64, f64, f64), usize)> = None;
    for d in state.active(g) {
        if !state.fits(l, d) {
            continue;
        }
        let dev = &state.devs[d];
        let fraction = (dev.used + lun.size) as f64 / dev.capacity as f64;
        let iops = dev.iops + lun.iops;
        if soft.is_some_and(|(f, i)| fraction > f || iops > i) {
            continue;
        }
        let (c, i) = (
            relative(fraction, band.mean_fraction),
            relative(iops, band.mean_iops),
        );
        let score = match (for_iops, i <= 1.0) {
            (true, true) => (0.0, c, i),
            (true, false) => (1.0, i, c),
            (false, _) => (0.0, c, i),
        };
        if best.is_none_or(|b| score < b.0) {
            best = Some((score, d));
        }
    }
    best.map(|b| b.1)
}

/// Pulls LUNs onto `r`, below the band, from the most loaded devices of its
/// group until it is inside the band or nothing fits.
fn fill(state: &mut State, g: usize, r: usize, band: Band, steps: &mut Vec<Step>) {
    while let Some((l, reason)) = pick_to_fill(state, g, r, band) {
        let from = state.luns[l].device;
        state.apply(l, r);
        steps.push(Step {
            lun: l,
            from,
            to: r,
            reason,
        });
    }
}

/// The LUN to pull onto `r` next, from the [`FILL_DONORS`] most loaded
/// devices, taking none that would leave its donor below the band or `r`
/// above it.
fn pick_to_fill(state: &State, g: usize, r: usize, band: Band) -> Option<(usize, Reason)> {
    let dev = &state.devs[r];
    let capacity = dev.capacity as f64;
    let need_bytes = (band.lower_fraction() * capacity - dev.used as f64).max(0.0) as u64;
    let need_iops = band.lower_iops() - dev.iops;
    let for_iops = need_bytes == 0;
    if for_iops && need_iops <= IOPS_EPSILON {
        return None;
    }
    let room_bytes = dev
        .cap_limit
        .min((band.upper_fraction() * capacity).floor() as u64)
        .saturating_sub(dev.used);
    let room_iops = dev.iops_limit.min(band.upper_iops()) - dev.iops;

    let load = |d: usize| {
        let donor = &state.devs[d];
        if for_iops {
            donor.iops / band.mean_iops.max(IOPS_EPSILON)
        } else {
            donor.used as f64 / donor.capacity as f64
        }
    };
    let mean = if for_iops { 1.0 } else { band.mean_fraction };
    let mut donors: Vec<usize> = state
        .active(g)
        .filter(|&d| d != r && load(d) > mean)
        .collect();
    donors.sort_by(|&a, &b| load(b).total_cmp(&load(a)).then(a.cmp(&b)));
    donors.truncate(FILL_DONORS);

    let candidates = donors.iter().flat_map(|&d| {
        let donor = &state.devs[d];
        let keep_bytes = (band.lower_fraction() * donor.capacity as f64).max(0.0);
        let keep_iops = band.lower_iops().max(0.0);
        donor
            .luns
            .iter()
            .filter(move |&&l| {
                let lun = &state.luns[l];
                lun.device == d
                    && state.movable(l)
                    && lun.size <= room_bytes
                    && lun.iops <= room_iops
                    && (donor.used - lun.size) as f64 >= keep_bytes
                    && donor.iops - lun.iops >= keep_iops
                    && state.fits(l, r)
            })
            .map(|&l| (l, state.luns[l].size, state.luns[l].iops))
    });
    let l = if for_iops {
        choose_for_iops(candidates.filter(|c| c.2 > 0.0), need_iops)
    } else {
        choose_for_bytes(candidates.filter(|c| c.1 > 0), need_bytes)
    }?;
    let reason = if for_iops {
        Reason::IopsBelowBand {
            iops: dev.iops,
            mean: band.mean_iops,
            band: band.iops_band,
        }
    } else {
        Reason::CapacityBelowBand {
            used_fraction: dev.used as f64 / capacity,
            mean: band.mean_fraction,
            band: band.capacity_band,
        }
    };
    Some((l, reason))
}
