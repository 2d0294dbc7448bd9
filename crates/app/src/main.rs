//! The `canopy` binary: `serve`, `worker`, `migrate`, `openapi`, `connect`, `admin`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use canopy_app::bootstrap::{
    billing_service, bootstrap, local_sts, open_existing_store, open_store, redact,
};
use canopy_app::config::{Config, Flags, LogFormat};
use canopy_kernel::SystemClock;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "canopy",
    version,
    about = "Multi-tenant control plane for cloud estates"
)]
struct Cli {
    /// TOML configuration file (default: ./canopy.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the API server (SQLite ./canopy.db unless configured otherwise).
    Serve {
        /// Address to listen on.
        #[arg(long)]
        bind: Option<String>,
        /// Database URL (sqlite://... or postgres://...).
        #[arg(long)]
        database_url: Option<String>,
        /// Serve synthetic metrics from the demo cloud and seed a demo organization.
        #[arg(long)]
        demo: bool,
    },
    /// Runs background job workers only (discovery, sync, scans), no API: for deployments
    /// that keep long work off the API replicas (`jobs.workers = 0` there).
    Worker {
        /// Database URL (the one the API replicas use).
        #[arg(long)]
        database_url: Option<String>,
        /// Concurrent jobs in this process (default: `jobs.workers`).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Applies pending database migrations and exits.
    Migrate {
        /// Database URL.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Connects the AWS account of the local credentials with a connect token from the console.
    Connect {
        /// The connect token (from "Connect AWS account" in the console).
        #[arg(long, env = "CANOPY_CONNECT_TOKEN")]
        token: String,
        /// Canopy API base URL.
        #[arg(long, env = "CANOPY_API_URL", default_value = "http://localhost:8080")]
        api_url: String,
        /// AWS account id; detected with STS GetCallerIdentity when omitted.
        #[arg(long)]
        account_id: Option<String>,
        /// Name (or ARN) of the role Canopy assumes.
        #[arg(long, default_value = "CanopyAccess")]
        role: String,
        /// Primary region.
        #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
        region: String,
        /// Friendly name.
        #[arg(long)]
        alias: Option<String>,
        /// production, staging or development.
        #[arg(long)]
        environment: Option<String>,
        /// Infrastructure stack name.
        #[arg(long)]
        stack_name: Option<String>,
        /// A verified SES domain (repeatable).
        #[arg(long = "ses-domain")]
        ses_domains: Vec<String>,
        /// A tag as key=value (repeatable).
        #[arg(long = "tag", value_parser = canopy_app::connect_cli::parse_tag)]
        tags: Vec<(String, String)>,
    },
    /// Operator commands on the database (no HTTP, no sign-in).
    Admin {
        /// Database URL.
        #[arg(long, global = true)]
        database_url: Option<String>,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Prints the OpenAPI document generated from the handlers.
    Openapi {
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Sets an organization's tier; the only way to Enterprise.
    SetTier {
        /// Organization id or slug.
        #[arg(long)]
        org: String,
        /// free, individual, pro or enterprise.
        #[arg(long)]
        tier: String,
    },
    /// Moves subscriptions on the legacy tiers (free_scan, subscriber) to the current tiers.
    MigrateLegacyTiers {
        /// Print what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Deletes history older than each organization's plan retention now (`serve` also
    /// does this periodically).
    PurgeHistory,
    /// Re-seals every stored customer secret with the current secret key, after a rotation
    /// (the retired key can be dropped once this reports nothing failed).
    ResealSecrets,
    /// Marks an account's address verified without its link (support: a user whose mail
    /// never arrives).
    VerifyEmail {
        /// The account's address.
        email: String,
    },
    /// Prints the unsent e-mail (invitations, verification and reset links), or with
    /// `--failed` the messages the mail server refused for good, with its reply.
    Outbox {
        /// Only messages to this address.
        #[arg(long)]
        to: Option<String>,
        /// Only messages that failed for good.
        #[arg(long)]
        failed: bool,
        /// At most this many, oldest first.
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
}

impl Command {
    /// The flags that override configuration, whichever command carries them.
    fn flags(&self) -> Flags {
        match self {
            Command::Serve {
                bind,
                database_url,
                demo,
            } => Flags {
                bind: bind.clone(),
                database_url: database_url.clone(),
                demo: *demo,
            },
            Command::Migrate { database_url }
            | Command::Admin { database_url, .. }
            | Command::Worker { database_url, .. } => Flags {
                database_url: database_url.clone(),
                ..Flags::default()
            },
            Command::Connect { .. } | Command::Openapi { .. } => Flags::default(),
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // yup-oauth2 logs whole token responses, access tokens included, at debug: whatever
    // RUST_LOG asks for, it never gets below info.
    let filter = filter.add_directive(
        "yup_oauth2=info"
            .parse()
            .unwrap_or_else(|_| unreachable!("a constant directive")),
    );
    // Colour codes only where a person reads them: a file or a pipe gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Starts the outbox relay when a mail server is configured, and says where e-mail goes.
fn spawn_mail_relay(config: &Config, state: &canopy_app::state::AppState) -> anyhow::Result<()> {
    match canopy_app::bootstrap::mail_relay(&config.smtp, state, Arc::new(SystemClock))? {
        Some(relay) => {
            tracing::info!(
                host = config.smtp.host.as_deref().unwrap_or_default(),
                "e-mail goes out through SMTP"
            );
            canopy_app::admin::spawn_mail_relay(
                relay,
                std::time::Duration::from_millis(config.smtp.poll_ms.max(50)),
            );
        }
        None => tracing::info!(
            "no SMTP server configured (CANOPY_SMTP_HOST): e-mail waits in the outbox, read it \
             with `canopy admin outbox`"
        ),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    canopy_app::bootstrap::install_tls_provider();
    let cli = Cli::parse();
    let flags = cli.command.flags();
    let config = Config::load(cli.config.as_deref(), &flags).context("loading configuration")?;
    match cli.command {
        Command::Openapi { output } => {
            let spec = canopy_app::openapi_json();
            match output {
                Some(path) => std::fs::write(&path, spec + "\n")
                    .with_context(|| format!("writing {}", path.display()))?,
                None => println!("{spec}"),
            }
        }
        Command::Connect {
            token,
            api_url,
            account_id,
            role,
            region,
            alias,
            environment,
            stack_name,
            ses_domains,
            tags,
        } => {
            let args = canopy_app::connect_cli::ConnectArgs {
                api_url,
                token,
                account_id,
                role,
                region,
                alias,
                environment,
                stack_name,
                ses_domains,
                tags: tags.into_iter().collect(),
            };
            let sts = local_sts().await;
            let account = canopy_app::connect_cli::connect(&args, Some(&sts)).await?;
            println!(
                "Connected AWS account {} ({}) to the organization. Status: {}: {}",
                account.account_id, account.display_name, account.status, account.status_detail,
            );
        }
        Command::Admin { command, .. } => {
            init_tracing(config.server.log_format);
            eprintln!("database: {}", redact(&config.database.url));
            let store = open_existing_store(&config.database).await?;
            let billing = billing_service(&store, Arc::new(SystemClock));
            let report = match command {
                AdminCommand::SetTier { org, tier } => {
                    canopy_app::admin::set_tier(&billing, &org, &tier).await?
                }
                AdminCommand::MigrateLegacyTiers { dry_run } => {
                    canopy_app::admin::migrate_legacy_tiers(&billing, dry_run).await?
                }
                AdminCommand::PurgeHistory => canopy_app::admin::purge_history(&billing).await?,
                AdminCommand::Outbox { to, limit, failed } => {
                    canopy_app::admin::outbox(&store.outbox(), to.as_deref(), limit, failed).await?
                }
                AdminCommand::VerifyEmail { email } => {
                    let state = canopy_app::bootstrap::build_state(
                        &config,
                        store.clone(),
                        Arc::new(SystemClock),
                    )
                    .await?;
                    if state.tenancy.verify_email_as_operator(&email).await? {
                        format!("{email} is verified")
                    } else {
                        anyhow::bail!("no account has the address {email}")
                    }
                }
                AdminCommand::ResealSecrets => {
                    let state = canopy_app::bootstrap::build_state(
                        &config,
                        store.clone(),
                        Arc::new(SystemClock),
                    )
                    .await?;
                    canopy_app::admin::reseal_secrets(&state.cloud_orgs).await?
                }
            };
            println!("{}", report.trim_end());
        }
        Command::Migrate { .. } => {
            init_tracing(config.server.log_format);
            eprintln!("database: {}", redact(&config.database.url));
            open_store(&config.database).await?;
            tracing::info!(database = %redact(&config.database.url), "migrations applied");
        }
        Command::Serve { .. } => {
            init_tracing(config.server.log_format);
            // Bind first: a busy port must fail before a database is created or migrated.
            let bound = canopy_app::server::bind(&config).await?;
            tracing::info!(database = %redact(&config.database.url), "opening the database");
            let state = bootstrap(&config).await?;
            canopy_app::bootstrap::warn_about_setup(&config).await;
            if config.demo {
                let seeded = canopy_app::demo::seed(&state).await?;
                tracing::info!(
                    ?seeded,
                    "demo cloud: log in as {} / \"{}\" and open organization '{}'",
                    canopy_app::demo::EMAIL,
                    canopy_app::demo::PASSWORD,
                    canopy_app::demo::SLUG
                );
            }
            if config.retention.sweep_minutes > 0 {
                canopy_app::admin::spawn_retention_sweep(
                    state.billing.clone(),
                    std::time::Duration::from_secs(
                        config.retention.sweep_minutes.saturating_mul(60),
                    ),
                );
            }
            if config.jobs.resync_minutes > 0 {
                canopy_app::admin::spawn_resync_schedule(
                    state.cloud_orgs.clone(),
                    chrono::Duration::minutes(
                        i64::try_from(config.jobs.resync_minutes).unwrap_or(i64::MAX / 60_000),
                    ),
                );
            }
            if config.jobs.scan_minutes > 0 {
                canopy_app::admin::spawn_scan_schedule(
                    state.detections.clone(),
                    chrono::Duration::minutes(
                        i64::try_from(config.jobs.scan_minutes).unwrap_or(i64::MAX / 60_000),
                    ),
                );
            }
            let workers =
                canopy_app::bootstrap::job_runner(&config.jobs, &state, Arc::new(SystemClock))
                    .spawn();
            // API-only replicas (no job workers) leave e-mail to the worker processes too.
            if config.jobs.workers > 0 {
                spawn_mail_relay(&config, &state)?;
            }
            if config.demo {
                // The demo cloud organizations need the workers: their discovery, connect and
                // scan jobs run while the server already answers.
                let state = state.clone();
                tokio::spawn(async move {
                    match canopy_app::demo::complete(&state).await {
                        Ok(done) => tracing::info!(
                            queued = done.queued,
                            "demo cloud organizations discovered, connected and scanned"
                        ),
                        Err(e) => tracing::error!(
                            error = format!("{e:#}"),
                            "the demo cloud organizations could not be completed"
                        ),
                    }
                });
            }
            let server = bound.serve(&config, state);
            tracing::info!(
                address = %server.addr,
                database = %redact(&config.database.url),
                "canopy listening; API docs at {}/docs",
                server.url()
            );
            tokio::select! {
                result = server.task => { result.context("server task")?.context("server")?; }
                _ = tokio::signal::ctrl_c() => { tracing::info!("shutting down"); }
            }
            workers.stop().await;
        }
        Command::Worker { workers, .. } => {
            let mut jobs = config.jobs.clone();
            if let Some(n) = workers {
                jobs.workers = n;
            }
            if jobs.workers == 0 {
                // Refused before anything opens: a process that claims nothing would look healthy
                // while every job waits (the API replicas' CANOPY_JOB_WORKERS=0 is easy to copy).
                anyhow::bail!(
                    "canopy worker would run no jobs: jobs.workers is 0 (CANOPY_JOB_WORKERS=0, or \
                     --workers 0). Give this process its own count with --workers N or \
                     CANOPY_JOB_WORKERS=N (N >= 1); 0 is for API replicas that leave jobs to \
                     workers."
                );
            }
            init_tracing(config.server.log_format);
            eprintln!("database: {}", redact(&config.database.url));
            let state = bootstrap(&config).await?;
            let running =
                canopy_app::bootstrap::job_runner(&jobs, &state, Arc::new(SystemClock)).spawn();
            spawn_mail_relay(&config, &state)?;
            tracing::info!(workers = jobs.workers, "canopy worker running");
            tokio::signal::ctrl_c()
                .await
                .context("waiting for ctrl-c")?;
            tracing::info!("stopping after the jobs in hand");
            running.stop().await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{AdminCommand, Cli, Command};

    #[test]
    fn operator_commands_parse_as_documented() {
        let cli = Cli::try_parse_from([
            "canopy",
            "admin",
            "set-tier",
            "--org",
            "acme",
            "--tier",
            "enterprise",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Admin {
                command: AdminCommand::SetTier { ref org, ref tier },
                ..
            } if org == "acme" && tier == "enterprise"
        ));
        let cli = Cli::try_parse_from([
            "canopy",
            "admin",
            "migrate-legacy-tiers",
            "--dry-run",
            "--database-url",
            "sqlite::memory:",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Admin {
                command: AdminCommand::MigrateLegacyTiers { dry_run: true },
                database_url: Some(_),
            }
        ));
        let cli = Cli::try_parse_from(["canopy", "serve", "--demo"]).unwrap();
        assert!(matches!(cli.command, Command::Serve { demo: true, .. }));
        assert!(Cli::try_parse_from(["canopy", "admin", "set-tier", "--org", "acme"]).is_err());
    }
}
