//! The audit trail of placement: one structured line (tracing, info, target
//! `hyperwatch::audit`) when a plan is made, one per move as it ends, and
//! one when the plan ends, each naming the plan, so an operator can follow
//! (or a log shipper index) what was moved, why and with what result.

use super::history::{MoveRecord, PlanRecord};

/// The tracing target of audit lines.
pub const TARGET: &str = "hyperwatch::audit";

/// A plan was made (and recorded).
pub fn plan_made(r: &PlanRecord) {
    tracing::info!(
        target: TARGET,
        event = "plan-made",
        plan = %r.id,
        kind = r.kind.as_str(),
        trigger = ?r.trigger,
        target = r.target.as_deref().unwrap_or("cluster"),
        moves = r.moves.len(),
        unplaced = r.unplaced.len(),
        dry_run = r.dry_run,
        spread_before = r.spread_before,
        spread_after = r.spread_after,
        plan_seconds = r.plan_seconds,
        "{} plan {} ({}): {} move(s){}",
        r.kind.as_str(),
        r.id,
        r.reason,
        r.moves.len(),
        if r.dry_run { ", dry run" } else { "" }
    );
    for line in &r.explanation {
        tracing::info!(target: TARGET, event = "plan-line", plan = %r.id, "  {line}");
    }
}

/// A move of plan `plan` ended.
pub fn move_ended(plan: &str, m: &MoveRecord) {
    tracing::info!(
        target: TARGET,
        event = "move-ended",
        plan,
        item = %m.item,
        from = %m.from,
        to = %m.to,
        how = %m.how,
        outcome = m.state.as_str(),
        bytes = m.bytes,
        elapsed_ms = m.elapsed_ms.unwrap_or(0),
        error = m.error.as_deref().unwrap_or(""),
        "move of {} from {} to {}: {}",
        m.item,
        m.from,
        m.to,
        m.state.as_str()
    );
}

/// A plan reached its final state.
pub fn plan_ended(r: &PlanRecord) {
    tracing::info!(
        target: TARGET,
        event = "plan-ended",
        plan = %r.id,
        kind = r.kind.as_str(),
        state = ?r.state,
        bytes_moved = r.bytes_moved,
        "{}",
        r.summary
    );
}
