//! The executor with the simulated mover: dry run, limits, dependencies,
//! failures, timeouts and restart recovery.

use std::time::Instant;

use super::*;
use crate::{
    lun_mover::simulated::SimulatedMover,
    rebalancer::{Move, Reason},
};

fn mv(lun: &str, from: &str, to: &str, bytes: u64, after: &[usize]) -> Move {
    Move {
        lun: lun.into(),
        from: from.into(),
        to: to.into(),
        bytes,
        iops: 0.0,
        after: after.to_vec(),
        reason: Reason::Draining,
        to_used_fraction: 0.5,
        to_iops: 0.0,
    }
}

fn plan(moves: Vec<Move>) -> Plan {
    Plan {
        moves,
        ..Plan::default()
    }
}

/// A mover copying 1,000 bytes per 10 ms and the LUNs `l0..` on `d0..`.
fn sim(luns: usize) -> SimulatedMover {
    SimulatedMover::new(
        (0..luns).map(|i| (format!("l{i}"), format!("d{i}"))),
        100_000.0,
    )
}

fn config(dir: &Path) -> ExecutorConfig {
    ExecutorConfig {
        state_dir: dir.to_owned(),
        dry_run: false,
        ..ExecutorConfig::default()
    }
}

#[tokio::test]
async fn a_dry_run_is_the_default_and_moves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mover = Arc::new(sim(1));
    let cfg = ExecutorConfig {
        state_dir: dir.path().to_owned(),
        ..ExecutorConfig::default()
    };
    assert!(cfg.dry_run);
    let out = Executor::new(cfg, mover.clone())
        .execute(&plan(vec![mv("l0", "d0", "x", 1000, &[])]))
        .await
        .unwrap();
    assert!(
        matches!(&out[0], MoveOutcome::WouldRun { description } if description.contains("simulate copying 1000 bytes of l0")),
        "{out:?}"
    );
    assert_eq!(mover.location("l0").unwrap(), "d0");
}

#[tokio::test]
async fn moves_run_side_by_side_within_the_per_device_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mover = Arc::new(sim(4));
    // Four moves of 100 ms: l0 and l1 both land on x (one at a time),
    // l2 and l3 on their own devices run beside them.
    let p = plan(vec![
        mv("l0", "d0", "x", 10_000, &[]),
        mv("l1", "d1", "x", 10_000, &[]),
        mv("l2", "d2", "y", 10_000, &[]),
        mv("l3", "d3", "z", 10_000, &[]),
    ]);
    let start = Instant::now();
    let out = Executor::new(config(dir.path()), mover.clone())
        .execute(&p)
        .await
        .unwrap();
    let took = start.elapsed();
    assert!(out.iter().all(|o| *o == MoveOutcome::Done), "{out:?}");
    assert_eq!(mover.location("l1").unwrap(), "x");
    assert_eq!(mover.peak_per_device()["x"], 1);
    assert!(
        // A lower bound only: an upper one would fail on a loaded machine.
        took >= Duration::from_millis(200),
        "x ran two at once: {took:?}"
    );
    assert!(Journal::pending(dir.path()).unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_move_is_rolled_back_and_its_dependents_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mover = Arc::new(sim(2).failing("l0"));
    let p = plan(vec![
        mv("l0", "d0", "x", 1_000, &[]),
        mv("l1", "d1", "d0", 1_000, &[0]),
    ]);
    let out = Executor::new(config(dir.path()), mover.clone())
        .execute(&p)
        .await
        .unwrap();
    assert!(
        matches!(&out[0], MoveOutcome::Failed { error, rolled_back: true } if error.contains("simulated copy failure")),
        "{out:?}"
    );
    assert_eq!(out[1], MoveOutcome::Skipped { waiting_for: 0 });
    assert_eq!(mover.location("l0").unwrap(), "d0");
    assert_eq!(mover.location("l1").unwrap(), "d1");
    assert!(Journal::pending(dir.path()).unwrap().is_empty());
}

#[tokio::test]
async fn a_move_past_its_timeout_is_cancelled_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let mover = Arc::new(sim(1));
    let cfg = ExecutorConfig {
        move_timeout_seconds: 1,
        ..config(dir.path())
    };
    // 10 s of copying against a 1 s timeout.
    let p = plan(vec![mv("l0", "d0", "x", 1_000_000, &[])]);
    let start = Instant::now();
    let out = Executor::new(cfg, mover.clone()).execute(&p).await.unwrap();
    assert_eq!(out, vec![MoveOutcome::TimedOut { rolled_back: true }]);
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(mover.location("l0").unwrap(), "d0");
}

#[tokio::test]
async fn an_unsettled_move_blocks_new_plans_until_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let mover = Arc::new(sim(1));
    let order = MoveOrder {
        lun: "l0".into(),
        from: "d0".into(),
        to: "x".into(),
        bytes: 1,
    };
    Journal::create(dir.path(), "simulated", &order).unwrap();
    let ex = Executor::new(config(dir.path()), mover.clone());
    let p = plan(vec![mv("l0", "d0", "x", 1_000, &[])]);
    let err = ex.execute(&p).await.unwrap_err().to_string();
    assert!(err.contains("run recovery"), "{err}");
    let settled = ex.recover().await.unwrap();
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0].result.as_ref().unwrap(), &Recovered::RolledBack);
    assert_eq!(ex.execute(&p).await.unwrap(), vec![MoveOutcome::Done]);
}
