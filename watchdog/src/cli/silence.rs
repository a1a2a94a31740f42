//! `hyperwatch silence add|list|remove`: silences by label matchers with an
//! expiry, through the watchdog's API. A new silence that matches no open
//! incident and no known target is reported (it is kept: the target may
//! come later). Exit status as in [`super::api_client`].

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::api_client::{self, DEFAULT_API, Failure};

/// `hyperwatch silence ...`.
#[derive(Subcommand, Debug)]
pub enum SilenceCommand {
    /// Silence incidents whose labels match every MATCHER until it expires.
    Add {
        /// `label=glob` or `label!=glob` (labels: policy, severity, kind,
        /// id, target, name, host, and the targets' own: cluster, rack, ...).
        #[arg(required = true, value_name = "MATCHER")]
        matchers: Vec<String>,
        /// How long it lasts ("2h"); silences always expire.
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// Who silences; default: $USER.
        #[arg(long)]
        by: Option<String>,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
        /// Its id; default: the next `sN`. An existing id is replaced.
        #[arg(long)]
        id: Option<String>,
        /// The watchdog's HTTP API.
        #[arg(long, value_name = "URL", default_value = DEFAULT_API)]
        api: String,
    },
    /// List the active silences.
    List {
        /// The watchdog's HTTP API.
        #[arg(long, value_name = "URL", default_value = DEFAULT_API)]
        api: String,
    },
    /// Remove a silence before it expires.
    Remove {
        /// Its id.
        id: String,
        /// The watchdog's HTTP API.
        #[arg(long, value_name = "URL", default_value = DEFAULT_API)]
        api: String,
    },
}

pub fn run(command: SilenceCommand) -> ExitCode {
    api_client::run(silence(command))
}

async fn silence(command: SilenceCommand) -> Result<(), Failure> {
    match command {
        SilenceCommand::Add {
            matchers,
            duration,
            by,
            comment,
            id,
            api,
        } => {
            let body = json!({
                "id": id,
                "matchers": matchers,
                "for": duration,
                "by": by.unwrap_or_else(api_client::operator),
                "comment": comment,
            });
            let answer =
                api_client::call(&api, reqwest::Method::POST, "/api/v1/silences", Some(body))
                    .await?;
            let s = &answer["silence"];
            println!(
                "silence {} added: {} until {}",
                s["id"].as_str().unwrap_or("?"),
                matchers.join(" "),
                s["until"].as_str().unwrap_or("?")
            );
            if answer["matches_nothing"] == true {
                eprintln!(
                    "warning: silence {} matches nothing: no open incident and no known target has these labels (check the matchers)",
                    s["id"].as_str().unwrap_or("?")
                );
            }
        }
        SilenceCommand::List { api } => {
            let answer =
                api_client::call(&api, reqwest::Method::GET, "/api/v1/silences", None).await?;
            let all = answer.as_array().cloned().unwrap_or_default();
            if all.is_empty() {
                println!("no active silences");
            }
            for s in all {
                let matchers: Vec<&str> = s["matchers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.as_str())
                    .collect();
                println!(
                    "{}\t{}\tuntil {}\tby {}\t{}",
                    s["id"].as_str().unwrap_or("?"),
                    matchers.join(" "),
                    s["until"].as_str().unwrap_or("?"),
                    s["by"].as_str().unwrap_or("?"),
                    s["comment"].as_str().unwrap_or("")
                );
            }
        }
        SilenceCommand::Remove { id, api } => {
            let answer = api_client::call(
                &api,
                reqwest::Method::DELETE,
                &format!("/api/v1/silences/{id}"),
                None,
            )
            .await?;
            println!("silence {id} removed");
            api_client::print_decisions(&answer);
        }
    }
    Ok(())
}
