//! What `secnet key ...` shows.

use secnet_api::LocalResponse;

use super::{json_line, table, unexpected};
use crate::cli::{ListFormat, Render};
use crate::error::CliError;

/// The text shown for the answer to a `secnet key` command.
pub(super) fn render(how: &Render, response: LocalResponse) -> Result<String, CliError> {
    match (how, response) {
        (Render::Keys { format }, LocalResponse::Keys(keys)) => match format {
            ListFormat::Table => Ok(table(
                &["EPOCH", "STATE", "CREATED", "PROMOTED", "INSTALLED ON"],
                &keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.epoch.to_string(),
                            k.state.clone(),
                            k.created.clone(),
                            k.promoted.clone().unwrap_or_else(|| "-".into()),
                            format!("{}/{} nodes", k.installed_on, k.nodes),
                        ]
                    })
                    .collect::<Vec<_>>(),
            )),
            ListFormat::Json => json_line(&keys),
        },
        (how, other) => Err(unexpected(how, &other)),
    }
}
