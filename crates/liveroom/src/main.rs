//! The `liveroom` binary: command line, configuration, logging, and wiring of the store and
//! the server.

mod config;
mod default_app;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use clap::{Args, Parser, Subcommand};
use liveroom_domain::{Clock, SystemClock};
use liveroom_server::{AppConfig, SecretKey};
use liveroom_store::{PostgresStore, SqliteStore, Store};

use crate::config::{AppSettings, Backend, Overrides, Settings};

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
    /// Write every app's rooms and accounts, as the configured store holds them, to a backup
    /// (docs/cluster.md §9). On SQLite the server must be stopped.
    Export {
        /// TOML configuration file, as `serve` reads it.
        #[arg(long, env = "LIVEROOM_CONFIG")]
        config: Option<PathBuf>,
        /// The data directory (SQLite), as `serve --data-dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The backup file; standard output when left out.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Load a backup into the configured store, which must hold none of its rooms and
    /// accounts (docs/cluster.md §9).
    Import {
        #[arg(long, env = "LIVEROOM_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The backup file; standard input when left out.
        #[arg(long)]
        input: Option<PathBuf>,
    },
    /// Print a UserSig, as Tencent's libraries make them.
    Usersig {
        /// The app; may be left out for the default app (--data-dir, or a --config with no
        /// apps).
        #[arg(long, required_unless_present_any = ["config", "data_dir"])]
        sdkappid: Option<u32>,
        #[command(flatten)]
        key: KeySource,
        /// The user (for REST calls: an App administrator).
        #[arg(long)]
        identifier: String,
        /// Validity in seconds.
        #[arg(long, default_value_t = liveroom_usersig::DEFAULT_EXPIRE_SECS)]
        expire: u64,
    },
}

/// Where `usersig` takes the app's secret key from: --key, --key-file, or the configuration
/// (--config and/or --data-dir, read as `serve` reads them). Not `Debug`: it may hold the key.
#[derive(Args)]
#[group(required = true, multiple = true)]
struct KeySource {
    /// The secret key itself. Other users can see it in the process list, and the shell keeps
    /// it in its history: prefer --key-file, --config or --data-dir.
    #[arg(long, conflicts_with_all = ["key_file", "config", "data_dir"])]
    key: Option<String>,
    /// A file holding the secret key (a trailing newline is ignored); `-` reads it from
    /// standard input.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["config", "data_dir"])]
    key_file: Option<PathBuf>,
    /// The key of app --sdkappid in this configuration file, as `serve --config` reads it
    /// (LIVEROOM_* variables included); with no apps in it, the default app's.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The key of the default app that a zero-configuration `serve` keeps in this data
    /// directory.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl KeySource {
    /// The app's sdkappid and secret key; `sdkappid` is the one given, if any.
    fn read(self, sdkappid: Option<u32>) -> anyhow::Result<(u32, SecretKey)> {
        let key = match (self.key, self.key_file) {
            (Some(key), _) => key,
            (None, Some(path)) => read_key_file(&path)?,
            (None, None) => {
                return configured_key(self.config.as_deref(), self.data_dir, sdkappid);
            }
        };
        ensure!(!key.is_empty(), "the secret key is empty");
        // clap asks for it unless --config or --data-dir is given.
        let sdkappid = sdkappid.context("--sdkappid is required with --key and --key-file")?;
        Ok((sdkappid, SecretKey::new(key)))
    }
}

/// The secret key in `path` (`-`: standard input), without the newline that editors and
/// `echo` leave at the end.
fn read_key_file(path: &Path) -> anyhow::Result<String> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .context("--key-file -: cannot read standard input")?
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("--key-file {}: cannot be read", path.display()))?
    };
    let key = text.strip_suffix('\n').map_or(text.as_str(), |line| {
        line.strip_suffix('\r').unwrap_or(line)
    });
    Ok(key.to_owned())
}

/// The secret key of app `sdkappid` in the configuration `serve` would load; when that lists
/// no apps, the data directory's default app, whose sdkappid `sdkappid` may leave out.
fn configured_key(
    config: Option<&Path>,
    data_dir: Option<PathBuf>,
    sdkappid: Option<u32>,
) -> anyhow::Result<(u32, SecretKey)> {
    let overrides = Overrides {
        listen: None,
        data_dir,
    };
    let settings = Settings::load(config, &overrides)?;
    if settings.apps.is_empty() {
        // What `serve` would do, without creating an app nobody has started yet.
        let (app, path) = default_app::load(&settings.data_dir)?;
        if let Some(wanted) = sdkappid {
            ensure!(
                wanted == app.sdkappid,
                "{}: the default app is sdkappid {}, not {wanted}",
                path.display(),
                app.sdkappid
            );
        }
        return Ok((app.sdkappid, SecretKey::new(app.secret_key)));
    }
    let source = config::source_name(config);
    let sdkappid =
        sdkappid.with_context(|| format!("--sdkappid: {source} lists apps; name one"))?;
    let app = settings
        .apps
        .into_iter()
        .find(|app| app.sdkappid == sdkappid)
        .with_context(|| format!("{source}: apps: no app with sdkappid {sdkappid}"))?;
    Ok((sdkappid, SecretKey::new(app.secret_key)))
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
            let _flush_logs_at_exit = liveroom_server::init_logging();
            let (sdkappid, key) = key.read(sdkappid)?;
            let sig = liveroom_usersig::generate(
                sdkappid,
                key.expose(),
                &identifier,
                SystemClock.unix_secs(),
                expire,
            );
            println!("{sig}");
            Ok(())
        }
        Commands::Export {
            config,
            data_dir,
            output,
        } => move_backup(config, data_dir, Direction::Export(output)),
        Commands::Import {
            config,
            data_dir,
            input,
        } => move_backup(config, data_dir, Direction::Import(input)),
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

fn move_backup(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    direction: Direction,
) -> anyhow::Result<()> {
    let _flush_logs_at_exit = liveroom_server::init_logging();
    let overrides = Overrides {
        listen: None,
        data_dir,
    };
    let settings = Settings::load(config.as_deref(), &overrides)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(backup(settings, direction))
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
        ensure!(
            settings.storage.backend == Backend::Sqlite,
            "backend = \"postgres\" needs its apps configured ([[apps]]): every node of a \
             cluster must serve the same ones"
        );
        let (app, path) = default_app::load_or_create(&settings.data_dir)?;
        apps.push(app.to_config()?);
        Some((app, path))
    } else {
        None
    };

    let node = settings.node();
    let outboxes = liveroom_webhooks::outboxes(&liveroom_server::webhooks(&apps));
    // A node keeps a webhook entry to itself twice as long as its slowest attempt may take:
    // after that, another node may send it (docs/cluster.md §5).
    let lease = 2 * apps
        .iter()
        .filter_map(|app| app.webhook.as_ref().map(|w| w.timeout))
        .max()
        .unwrap_or_default()
        + WEBHOOK_LEASE_MARGIN;
    match open_store(&settings, &node, outboxes, lease).await? {
        Opened::Sqlite(store) => {
            let place = format!("data in {}", settings.data_dir.display());
            let config = (settings, apps, default_app);
            run(config, store, &place, &node, clock, shutdown).await
        }
        Opened::Postgres(store) => {
            let config = (settings, apps, default_app);
            run(config, store, "data in PostgreSQL", &node, clock, shutdown).await
        }
    }
}

/// The store `[storage]` names, open.
enum Opened {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

async fn open_store(
    settings: &Settings,
    node: &str,
    outboxes: liveroom_store::Outboxes,
    lease: Duration,
) -> anyhow::Result<Opened> {
    match settings.storage.backend {
        Backend::Sqlite => {
            let database = settings.data_dir.join("liveroom.db");
            let mut options = settings.storage.sqlite_options(database.clone());
            options.outboxes = outboxes;
            let store = SqliteStore::open(options)
                .with_context(|| format!("cannot open the database {}", database.display()))?;
            Ok(Opened::Sqlite(store))
        }
        Backend::Postgres => {
            let mut options = settings
                .storage
                .postgres_options(node, std::env::var("DATABASE_URL").ok())?;
            options.outboxes = outboxes;
            options.lease = lease;
            let store = PostgresStore::open(options)
                .await
                .context("cannot open the PostgreSQL database")?;
            Ok(Opened::Postgres(store))
        }
    }
}

/// `export` and `import`: the store `settings` name, with no webhook queued (docs/cluster.md
/// §9).
async fn backup(settings: Settings, direction: Direction) -> anyhow::Result<()> {
    let node = settings.node();
    let opened = open_store(&settings, &node, Default::default(), Duration::ZERO).await?;
    match opened {
        Opened::Sqlite(store) => move_data(store, direction).await,
        Opened::Postgres(store) => move_data(store, direction).await,
    }
}

enum Direction {
    /// To this file, or standard output.
    Export(Option<PathBuf>),
    /// From this file, or standard input.
    Import(Option<PathBuf>),
}

async fn move_data<S: Store>(store: S, direction: Direction) -> anyhow::Result<()> {
    let moved = match direction {
        Direction::Export(path) => {
            let mut out: Box<dyn std::io::Write + Send> = match &path {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            liveroom_store::backup::export(&store, &mut out).await
        }
        Direction::Import(path) => {
            let input: Box<dyn std::io::BufRead + Send> = match &path {
                Some(path) => Box::new(std::io::BufReader::new(
                    std::fs::File::open(path)
                        .with_context(|| format!("cannot open {}", path.display()))?,
                )),
                None => Box::new(std::io::BufReader::new(std::io::stdin())),
            };
            liveroom_store::backup::import(&store, input).await
        }
    };
    store.close().await;
    let counts = moved?;
    eprintln!("{} rooms, {} accounts", counts.rooms, counts.accounts);
    Ok(())
}

/// Added to a node's lease on a webhook entry, beyond twice the slowest attempt.
const WEBHOOK_LEASE_MARGIN: Duration = Duration::from_secs(1);

/// Listens, says where, and serves `store` until `shutdown`.
async fn run<S: Store>(
    (settings, apps, default_app): (Settings, Vec<AppConfig>, Option<(AppSettings, PathBuf)>),
    store: S,
    place: &str,
    node: &str,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let tls = settings.tls()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listen = settings.listen_addr()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "liveroom listening on {scheme}://{local} ({place})")?;
    if let Some((app, path)) = &default_app {
        default_app::print_credentials(&mut out, app, path, scheme, local, clock.unix_secs())?;
    }
    out.flush()?;
    drop(out);

    tracing::info!(%local, node, apps = apps.len(), "serving");
    liveroom_server::serve(
        listener,
        store,
        settings.server_config(apps, tls)?,
        clock,
        shutdown,
    )
    .await?;
    tracing::info!(node, "stopped");
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
