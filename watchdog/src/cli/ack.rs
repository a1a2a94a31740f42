//! `hyperwatch ack INCIDENT [--for 1h]`: acknowledges an incident through
//! the watchdog's API, holding back the ladder levels that say
//! `unless = "acked"` until the acknowledgement expires or the incident
//! resolves; `--remove` withdraws it. Exit status as in [`super::api_client`].

use std::process::ExitCode;

use serde_json::json;

use super::api_client::{self, DEFAULT_API, Failure};

/// Flags of `hyperwatch ack`.
#[derive(clap::Args, Debug)]
pub struct AckArgs {
    /// The incident, as the notifications name it (inc-12).
    pub incident: String,
    /// How long the acknowledgement lasts ("30m", "1h"); without it, until
    /// the incident resolves.
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: Option<String>,
    /// Who acknowledges; default: $USER.
    #[arg(long)]
    pub by: Option<String>,
    /// Withdraw the acknowledgement instead.
    #[arg(long, conflicts_with_all = ["duration", "by"])]
    pub remove: bool,
    /// The watchdog's HTTP API.
    #[arg(long, value_name = "URL", default_value = DEFAULT_API)]
    pub api: String,
}

pub fn run(args: AckArgs) -> ExitCode {
    api_client::run(ack(args))
}

async fn ack(args: AckArgs) -> Result<(), Failure> {
    let path = format!("/api/v1/incidents/{}/ack", args.incident);
    if args.remove {
        let answer = api_client::call(&args.api, reqwest::Method::DELETE, &path, None).await?;
        println!("{}: acknowledgement withdrawn", args.incident);
        api_client::print_decisions(&answer);
        return Ok(());
    }
    let by = args.by.unwrap_or_else(api_client::operator);
    let body = json!({ "for": args.duration, "by": by });
    let answer = api_client::call(&args.api, reqwest::Method::POST, &path, Some(body)).await?;
    let until = answer["until"]
        .as_str()
        .map_or_else(|| "until it resolves".to_owned(), |u| format!("until {u}"));
    println!("{} acknowledged by {by}, {until}", args.incident);
    api_client::print_decisions(&answer);
    Ok(())
}
