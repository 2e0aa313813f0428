//! `service create` and `service update` without `--detach`: wait until the service runs all
//! its tasks from its current spec, showing
//! `overall progress: N out of M tasks` on stderr as it changes, as `docker service create`
//! does. A service that does not converge in time fails with what its tasks wait for.

use std::path::Path;
use std::time::{Duration, Instant};

use secnet_api::{ApiError, LocalRequest, LocalResponse};

use crate::cli::SHORT_TIMEOUT;
use crate::client;
use crate::error::CliError;
use crate::output::service::progress_line;

/// How long `service create` waits for its tasks to run.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(500);

pub async fn converge(socket: &Path, service: &str) -> Result<(), CliError> {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    let mut shown = String::new();
    loop {
        let request = LocalRequest::ServiceInspect {
            services: vec![service.to_string()],
        };
        let LocalResponse::Services(found) = client::call(socket, &request, SHORT_TIMEOUT).await?
        else {
            return Err(CliError::Api(ApiError::internal(
                "no service in the answer",
            )));
        };
        let Some(info) = found.first() else {
            return Err(CliError::Api(ApiError::internal(
                "no service in the answer",
            )));
        };
        let line = progress_line(info);
        if line != shown {
            eprintln!("{line}");
            shown = line;
        }
        if info.running >= info.desired && info.up_to_date >= info.desired {
            eprintln!("verify: service {service} converged");
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(not_converged(socket, service, info.running, info.desired).await);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The error of a service that did not converge, naming what its tasks wait for.
async fn not_converged(socket: &Path, service: &str, running: u32, desired: u32) -> CliError {
    let request = LocalRequest::ServicePs {
        service: service.to_string(),
    };
    let waiting = match client::call(socket, &request, SHORT_TIMEOUT).await {
        Ok(LocalResponse::Tasks(tasks)) => tasks
            .iter()
            .filter(|t| t.desired == "running" && t.state != "running")
            .map(|t| {
                format!(
                    "{} {}{}",
                    t.name,
                    t.state,
                    if t.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", t.message)
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::new(),
    };
    CliError::Api(ApiError::unavailable(format!(
        "service {service} did not converge within {} s ({running} of {desired} tasks running){}{waiting}; it stays created: see `secnet service ps {service}`",
        CONVERGE_TIMEOUT.as_secs(),
        if waiting.is_empty() { "" } else { ": " },
    )))
}
