//! The `liveroom` binary: command line, configuration, logging, and wiring of the store and
//! the server.

mod config;
mod default_app;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use liveroom_domain::{Clock, SystemClock};
use liveroom_store::{SqliteOptions, SqliteStore};
use tracing_subscriber::EnvFilter;

use crate::config::{Overrides, Settings};

/// A self-hosted server for Tencent Cloud's live-room REST API (/v4/live_engine_http_srv/*).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the server. With no configuration it creates a data directory and one app, and
    /// prints how to call it.
    Serve {
        /// TOML configuration file.
        #[arg(long, env = "LIVEROOM_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
        #[arg(long)]
        listen: Option<String>,
        /// Directory for the database and the generated default app.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print a UserSig, as Tencent's libraries make them.
    Usersig {
        #[arg(long)]
        sdkappid: u32,
        /// The app's secret key.
        #[arg(long)]
        key: String,
        /// The user (for REST calls: an App administrator).
        #[arg(long)]
        identifier: String,
        /// Validity in seconds.
        #[arg(long, default_value_t = liveroom_usersig::DEFAULT_EXPIRE_SECS)]
        expire: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Commands::Usersig {
            sdkappid,
            key,
            identifier,
            expire,
        } => {
            let sig = liveroom_usersig::generate(
                sdkappid,
                &key,
                &identifier,
                SystemClock.unix_secs(),
                expire,
            );
            println!("{sig}");
            Ok(())
        }
        Commands::Serve {
            config,
            listen,
            data_dir,
        } => {
            init_logging();
            let settings = Settings::load(config.as_deref(), &Overrides { listen, data_dir })?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(serve(settings))
        }
    }
}

/// Logs go to stderr (`LIVEROOM_LOG` filters, e.g. `info` or `liveroom_server=debug`;
/// `LIVEROOM_LOG_FORMAT=json` for JSON lines); stdout carries only what the user must read.
fn init_logging() {
    let filter = EnvFilter::try_from_env("LIVEROOM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("LIVEROOM_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut apps = settings
        .apps
        .iter()
        .map(|app| app.to_config())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let default_app = if apps.is_empty() {
        let (app, path) = default_app::load_or_create(&settings.data_dir)?;
        apps.push(app.to_config()?);
        Some((app, path))
    } else {
        None
    };

    let database = settings.data_dir.join("liveroom.db");
    let store = SqliteStore::open(SqliteOptions::new(database.clone()))
        .with_context(|| format!("cannot open the database {}", database.display()))?;
    let tls = settings.tls()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listen = settings.listen_addr()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "liveroom listening on {scheme}://{local} (data in {})",
        settings.data_dir.display()
    )?;
    if let Some((app, path)) = &default_app {
        default_app::print_credentials(&mut out, app, path, scheme, local, clock.unix_secs())?;
    }
    out.flush()?;
    drop(out);

    tracing::info!(%local, apps = settings.apps.len().max(1), "serving");
    liveroom_server::serve(
        listener,
        store,
        settings.server_config(apps, tls),
        clock,
        shutdown_signal(),
    )
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler cannot fail on unix");
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing in-flight requests");
}
