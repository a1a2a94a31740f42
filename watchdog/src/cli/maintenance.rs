//! `hyperwatch maintenance HOST on|off [--for 2h]`: host maintenance through
//! the watchdog's API. While a host is in maintenance, recovery and
//! notifications of everything on it are held. Exit status as in
//! [`super::api_client`].

use std::process::ExitCode;

use serde_json::json;

use super::api_client::{self, DEFAULT_API, Failure};

/// Maintenance on or off.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// Start maintenance.
    On,
    /// End it.
    Off,
}

/// Flags of `hyperwatch maintenance`.
#[derive(clap::Args, Debug)]
pub struct MaintenanceArgs {
    /// The host (its agent's host id).
    pub host: String,
    /// on or off.
    #[arg(value_enum)]
    pub switch: Switch,
    /// How long it lasts ("2h"); without it, until `off`.
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: Option<String>,
    /// The watchdog's HTTP API.
    #[arg(long, value_name = "URL", default_value = DEFAULT_API)]
    pub api: String,
}

pub fn run(args: MaintenanceArgs) -> ExitCode {
    api_client::run(maintenance(args))
}

async fn maintenance(args: MaintenanceArgs) -> Result<(), Failure> {
    let path = format!("/api/v1/hosts/{}/maintenance", args.host);
    let answer = match args.switch {
        Switch::On => {
            let body = json!({ "for": args.duration });
            let a = api_client::call(&args.api, reqwest::Method::POST, &path, Some(body)).await?;
            let until = a["until"]
                .as_str()
                .map_or_else(|| "until ended".to_owned(), |u| format!("until {u}"));
            println!("host {} in maintenance, {until}", args.host);
            a
        }
        Switch::Off => {
            let a = api_client::call(&args.api, reqwest::Method::DELETE, &path, None).await?;
            println!("host {} out of maintenance", args.host);
            a
        }
    };
    api_client::print_decisions(&answer);
    Ok(())
}
