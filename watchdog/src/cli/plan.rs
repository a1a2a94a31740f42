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

use serde_json::{Value, json};

/// The watchdog's API on its own host (config.rs: DEFAULT_HTTP_PORT).
pub const DEFAULT_API: &str = "http://127.0.0.1:9479";
/// Bound on one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
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
    #[arg(long, value_name = "URL", default_value = DEFAULT_API)]
    pub api: String,
    /// Bound on following an execution ("30m", "2h").
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Print the plan's record as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A failed command: the exit status and what to print.
struct Failure(u8, String);

pub fn run(command: PlanCommand) -> ExitCode {
    let (kind, args) = match command {
        PlanCommand::Rebalance(a) => ("rebalance", a),
        PlanCommand::Failover(a) => ("failover", a),
        PlanCommand::MoveLuns(a) => ("move-luns", a),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hyperwatch: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(plan(kind, &args)) {
        Ok(code) => ExitCode::from(code),
        Err(Failure(code, message)) => {
            eprintln!("hyperwatch: {message}");
            ExitCode::from(code)
        }
    }
}

async fn plan(kind: &str, args: &PlanArgs) -> Result<u8, Failure> {
    // reqwest is built without a default crypto provider (an https API
    // behind a proxy needs one); a second install is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| Failure(3, format!("cannot make an HTTP client: {e}")))?;
    let api = args.api.trim_end_matches('/');
    let body = json!({ "kind": kind, "target": args.target, "execute": args.execute });
    let made = call(client.post(format!("{api}/api/v1/plans")).json(&body), api).await?;
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
            return Err(Failure(
                3,
                format!(
                    "plan {id} still running after {}; follow it with GET {api}/api/v1/plans/{id}",
                    humantime::format_duration(args.wait)
                ),
            ));
        }
        tokio::time::sleep(POLL).await;
        record = call(client.get(format!("{api}/api/v1/plans/{id}")), api).await?;
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
    Ok(match record["state"].as_str() {
        Some("failed") => 2,
        _ => 0,
    })
}

/// Sends `request`; the JSON answer of a 2xx, else the failure it means.
async fn call(request: reqwest::RequestBuilder, api: &str) -> Result<Value, Failure> {
    let unreachable =
        |e: reqwest::Error| Failure(3, format!("cannot reach the watchdog at {api}: {e}"));
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let text = response.text().await.map_err(unreachable)?;
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        return Ok(json);
    }
    let message = json["error"]
        .as_str()
        .map_or_else(|| json.to_string(), str::to_owned);
    let code = if status.is_client_error() { 1 } else { 3 };
    Err(Failure(
        code,
        format!("the watchdog answered {status}: {message}"),
    ))
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
