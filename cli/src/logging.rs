//! Log output of the server.
//!
//! Logs go to stderr, as text for people or one JSON object per line for
//! collectors. `--log-level` sets the level; `RUST_LOG`, when set, wins so a
//! developer can raise one module's level (`RUST_LOG=lockd_net=debug`)
//! without touching the deployment's config.

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;

use crate::error::CliError;
use crate::resolve::LogFormat;

/// Installs the global subscriber.
pub(crate) fn init(level: LevelFilter, format: LogFormat) -> Result<(), CliError> {
    let mut rejected = None;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            rejected = Some((spec, e.to_string()));
            EnvFilter::new(level.to_string())
        }),
        _ => EnvFilter::new(level.to_string()),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| CliError::Startup(format!("cannot set up logging: {e}")))?;
    if let Some((spec, why)) = rejected {
        tracing::warn!("ignoring RUST_LOG={spec:?} ({why}); logging at --log-level {level}");
    }
    Ok(())
}
