//! The `canopy` binary: `serve`, `migrate`, `openapi`.

use std::path::PathBuf;

use anyhow::Context;
use canopy_app::bootstrap::{bootstrap, open_store, redact};
use canopy_app::config::{Config, LogFormat};
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
    },
    /// Applies pending database migrations and exits.
    Migrate {
        /// Database URL.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Prints the OpenAPI document generated from the handlers.
    Openapi {
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

fn init_tracing(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    canopy_app::bootstrap::install_tls_provider();
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    match cli.command {
        Command::Openapi { output } => {
            let spec = canopy_app::openapi_json();
            match output {
                Some(path) => std::fs::write(&path, spec + "\n")
                    .with_context(|| format!("writing {}", path.display()))?,
                None => println!("{spec}"),
            }
        }
        Command::Migrate { database_url } => {
            init_tracing(config.log_format);
            if let Some(url) = database_url {
                config.database_url = url;
            }
            open_store(&config).await?;
            tracing::info!(database = %redact(&config.database_url), "migrations applied");
        }
        Command::Serve { bind, database_url } => {
            init_tracing(config.log_format);
            if let Some(bind) = bind {
                config.bind = bind;
            }
            if let Some(url) = database_url {
                config.database_url = url;
            }
            let state = bootstrap(&config).await?;
            let server = canopy_app::start(&config, state).await?;
            tracing::info!(
                address = %server.addr,
                database = %redact(&config.database_url),
                "canopy listening; API docs at {}/docs",
                server.url()
            );
            tokio::select! {
                result = server.task => { result.context("server task")?.context("server")?; }
                _ = tokio::signal::ctrl_c() => { tracing::info!("shutting down"); }
            }
        }
    }
    Ok(())
}
