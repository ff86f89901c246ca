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
use liveroom_store::SqliteStore;

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
            // A file-size limit (e.g. systemd's LimitFSIZE=) must surface as a failed write
            // (EFBIG, answered 100001 and logged), not kill the process without a word.
            #[cfg(unix)]
            // SAFETY: setting a signal's disposition to "ignore" at start, before any thread exists.
            unsafe {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            }
            let _flush_logs_at_exit = liveroom_server::init_logging();
            let settings = Settings::load(config.as_deref(), &Overrides { listen, data_dir })?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(serve(settings))
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // First: a SIGTERM that comes once the server says it is listening must stop it gracefully.
    let shutdown = shutdown_signal()?;
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
    let store = SqliteStore::open(settings.storage.sqlite_options(database.clone()))
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
        shutdown,
    )
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed by this call, not when the future
/// is first polled: until then the signals' default action would kill the process.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send> {
    #[cfg(unix)]
    let received = {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
        }
    };
    #[cfg(not(unix))]
    let received = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    Ok(async move {
        received.await;
        tracing::info!("shutting down: finishing in-flight requests");
    })
}
