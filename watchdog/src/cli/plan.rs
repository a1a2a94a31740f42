//! `hyperwatch plan rebalance|failover|move-luns [TARGET] [--execute]`: asks
//! the watchdog's API for a plan and prints it with its explanation; with
//! `--execute` the watchdog carries it out and this follows each move to
//! the plan's end.
//!
//! Exit status: 0 a dry run recorded, or the plan done (or nothing to do);
//! 1 the watchdog refused (no such target, not available, another plan
//! running); 2 the plan ran and failed; 3 the watchdog cannot be reached,
//! failed, or the plan did not end within --wait.

use std::{collections::BTreeMap, process::ExitCode, time::Duration};

use reqwest::Method;
use serde_json::{Value, json};

use super::api_client::{self, Failure, call};

/// How often a running plan is looked at: moves take seconds at least.
const POLL: Duration = Duration::from_millis(500);

/// The plan kinds.
#[derive(clap::Subcommand, Debug)]
pub enum PlanCommand {
    /// Live-migrate VMs off an overloaded host (no TARGET: even out the
    /// whole cluster).
    Rebalance(PlanArgs),
    /// Restart a failed host's VMs on hosts with room (no TARGET: every
    /// failed host's).
    Failover(PlanArgs),
    /// Move LUNs off a full or busy storage device, named HOST/DEVICE (no
    /// TARGET: across every device).
    MoveLuns(PlanArgs),
}

/// What every kind takes.
#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    /// The host, or HOST/DEVICE for move-luns.
    pub target: Option<String>,
    /// Carry the plan out and follow it to its end; without it the
    /// watchdog only records what the plan would do.
    #[arg(long)]
    pub execute: bool,
    /// The watchdog's API.
    #[arg(long, value_name = "URL", default_value = api_client::DEFAULT_API)]
    pub api: String,
    /// Bound on following an execution ("30m", "2h").
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Print the plan's record as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: PlanCommand) -> ExitCode {
    let (kind, args) = match command {
        PlanCommand::Rebalance(a) => ("rebalance", a),
        PlanCommand::Failover(a) => ("failover", a),
        PlanCommand::MoveLuns(a) => ("move-luns", a),
    };
    api_client::run(async move { plan(kind, &args).await })
}

async fn plan(kind: &str, args: &PlanArgs) -> Result<(), Failure> {
    let api = args.api.as_str();
    let body = json!({ "kind": kind, "target": args.target, "execute": args.execute });
    let made = call(api, Method::POST, "/api/v1/plans", Some(body)).await?;
    let id = made["id"].as_str().unwrap_or_default().to_owned();
    if !args.json {
        print_plan(&made);
    }
    let mut record = made;
    let mut shown: BTreeMap<usize, String> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + args.wait;
    while record["state"] == "running" {
        if !args.json {
            print_progress(&record, &mut shown);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Failure {
                code: 3,
                message: format!(
                    "plan {id} still running after {}; follow it with GET {}/api/v1/plans/{id}",
                    humantime::format_duration(args.wait),
                    api.trim_end_matches('/')
                ),
            });
        }
        tokio::time::sleep(POLL).await;
        record = call(api, Method::GET, &format!("/api/v1/plans/{id}"), None).await?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&record).unwrap_or_default()
        );
    } else {
        print_progress(&record, &mut shown);
        println!("{}", record["summary"].as_str().unwrap_or_default());
    }
    if record["state"] == "failed" {
        return Err(Failure {
            code: 2,
            message: format!("plan {id} failed"),
        });
    }
    Ok(())
}

/// The plan as made: what, why, each move and problem, the spread.
fn print_plan(r: &Value) {
    let target = r["target"].as_str().unwrap_or("the cluster");
    let mode = if r["dry_run"] == true {
        ", dry run"
    } else {
        ""
    };
    println!(
        "plan {} ({} of {target}{mode}): {}",
        r["id"].as_str().unwrap_or_default(),
        r["kind"].as_str().unwrap_or_default(),
        r["reason"].as_str().unwrap_or_default()
    );
    for line in r["explanation"].as_array().into_iter().flatten() {
        println!("  {}", line.as_str().unwrap_or_default());
    }
    for note in r["notes"].as_array().into_iter().flatten() {
        println!("  note: {}", note.as_str().unwrap_or_default());
    }
    if r["moves"].as_array().is_some_and(|m| !m.is_empty()) {
        println!(
            "spread {:.3} before, {:.3} after",
            r["spread_before"].as_f64().unwrap_or_default(),
            r["spread_after"].as_f64().unwrap_or_default()
        );
    }
}

/// Each move whose state changed since last shown.
fn print_progress(r: &Value, shown: &mut BTreeMap<usize, String>) {
    for (i, m) in r["moves"].as_array().into_iter().flatten().enumerate() {
        let state = m["state"].as_str().unwrap_or_default().to_owned();
        if state == "pending" || shown.get(&i) == Some(&state) {
            continue;
        }
        let error = m["error"]
            .as_str()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        println!(
            "  #{i} {} {} -> {}: {state}{error}",
            m["item"].as_str().unwrap_or_default(),
            m["from"].as_str().unwrap_or_default(),
            m["to"].as_str().unwrap_or_default()
        );
        shown.insert(i, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_prints_each_change_once() {
        let mut shown = BTreeMap::new();
        let mut r = json!({"moves": [
            {"item": "web-1", "from": "hv-a", "to": "hv-b", "state": "running", "error": null},
            {"item": "web-2", "from": "hv-a", "to": "hv-b", "state": "pending", "error": null},
        ]});
        print_progress(&r, &mut shown);
        assert_eq!(shown.len(), 1);
        r["moves"][0]["state"] = json!("done");
        print_progress(&r, &mut shown);
        assert_eq!(shown[&0], "done");
        assert!(!shown.contains_key(&1), "pending moves are not shown");
    }
}
