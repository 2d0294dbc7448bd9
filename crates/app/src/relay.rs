//! E-mail's way out: the SMTP transport the configuration describes and the relay that
//! drains the outbox into it.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::Context;
use canopy_kernel::Clock;
use canopy_mail::{Security, Smtp, SmtpSettings};
use canopy_tenancy::MailRelay;
use canopy_tenancy::mail::RelaySettings;
use chrono::Duration;

use crate::config::SmtpConfig;
use crate::state::AppState;
use crate::worker::JobRunner;

/// The SMTP transport `config` describes; `None` when no host is set (e-mail then waits in
/// the outbox for `canopy admin outbox`).
pub fn smtp_transport(config: &SmtpConfig) -> anyhow::Result<Option<Smtp>> {
    let Some(host) = config.host.clone().filter(|h| !h.trim().is_empty()) else {
        return Ok(None);
    };
    let security = match config.security.as_str() {
        "starttls" => Security::Starttls,
        "tls" => Security::Tls,
        "none" => Security::None,
        other => anyhow::bail!("smtp.security is {other:?}: use starttls, tls or none"),
    };
    let settings = SmtpSettings {
        host,
        port: config.port,
        security,
        username: config.username.clone(),
        password: config.password.clone(),
        from: config.from.clone(),
        timeout: StdDuration::from_secs(config.timeout_secs.max(1)),
    };
    Ok(Some(Smtp::new(&settings).context("smtp")?))
}

/// The relay that drains the outbox into the configured mail server, or `None` without one.
/// Its lease outlasts a whole delivery, so no second relay sends a message the first still may.
pub fn mail_relay(
    config: &SmtpConfig,
    state: &AppState,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Option<MailRelay>> {
    let Some(smtp) = smtp_transport(config)? else {
        return Ok(None);
    };
    let timeout = i64::try_from(config.timeout_secs.max(1)).unwrap_or(3_600);
    Ok(Some(MailRelay::new(
        Arc::new(state.store.outbox()),
        Arc::new(smtp),
        clock,
        RelaySettings {
            lease: Duration::seconds(timeout * 2 + 60),
            ..RelaySettings::default()
        },
        JobRunner::process_name(),
    )))
}
