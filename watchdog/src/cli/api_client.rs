//! The operator commands' client for the watchdog's HTTP API (ack,
//! silence, maintenance): JSON requests with a bound, answers printed, and
//! one exit-status rule for all of them.
//!
//! Exit status: 0 done; 1 the watchdog refused (no such incident, a bad
//! duration or matcher); 3 the watchdog cannot be reached or failed.

use std::{process::ExitCode, time::Duration};

use serde_json::Value;

/// The watchdog's API on its own host (config.rs: DEFAULT_HTTP_PORT).
pub const DEFAULT_API: &str = "http://127.0.0.1:9479";
/// Bound on one request; changes answer once committed to disk.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A failed request, with the exit status it means.
pub struct Failure {
    /// 1: refused; 3: unreachable or failed.
    pub code: u8,
    /// What to print.
    pub message: String,
}

/// Sends one request to `api` and returns the JSON answer of a 2xx.
pub async fn call(
    api: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, Failure> {
    // reqwest is built without a default crypto provider (https APIs behind
    // a proxy need one); a second install is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let unreachable = |e: String| Failure {
        code: 3,
        message: format!("cannot reach the watchdog at {api}: {e}"),
    };
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let url = format!("{}{path}", api.trim_end_matches('/'));
    let mut request = client.request(method, &url);
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request
        .send()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        return Ok(json);
    }
    let message = json["error"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| json.to_string());
    Err(Failure {
        code: if status.is_client_error() { 1 } else { 3 },
        message: format!("the watchdog answered {status}: {message}"),
    })
}

/// Runs an operator command on a small runtime and maps its outcome to the
/// exit status.
pub fn run(command: impl std::future::Future<Output = Result<(), Failure>>) -> ExitCode {
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
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("hyperwatch: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Who runs the command: $USER, else "cli".
pub fn operator() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "cli".to_owned())
}

/// The decision lines of an answer, printed indented.
pub fn print_decisions(answer: &Value) {
    for line in answer["decisions"].as_array().into_iter().flatten() {
        if let Some(l) = line.as_str() {
            println!("  {l}");
        }
    }
}
