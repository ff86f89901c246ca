//! The configuration: embedded defaults, then the TOML file, then `LIVEROOM_*` environment
//! variables, then command-line flags (docs/behaviour.md §4). Anything invalid stops start-up with
//! a message naming the file, the setting and the problem.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use liveroom_domain::limits::ACCOUNT_MAX_BYTES;
use liveroom_domain::{Hook, Hooks};
use liveroom_protocol::Command;
use liveroom_protocol::webhook::parse_callback_command;
use liveroom_server::{
    AppConfig, ConnectionLimits, RealtimeConfig, SecretKey, ServerConfig, ThrottleConfig,
    TlsConfig, TrustedProxies,
};
use liveroom_store::{PostgresOptions, PostgresTls, Retention, SqliteOptions};
use liveroom_webhooks::{BeforeSendConfig, OnFailure, SigningKey, Target, WebhookConfig};
use serde::{Deserialize, Serialize};

/// The file's shape. Unknown settings are refused so that a typo cannot go unnoticed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    /// This node's name in logs, metrics and webhook leases; empty: `<host name>-<process id>`.
    #[serde(default)]
    pub node_id: String,
    pub auth_failure_throttle: ThrottleSettings,
    pub connections: ConnectionSettings,
    pub storage: StorageSettings,
    pub realtime: RealtimeSettings,
    /// Serve HTTPS with these PEM files instead of plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
    #[serde(default)]
    pub apps: Vec<AppSettings>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleSettings {
    pub max_failures: u32,
    pub window_secs: u64,
    pub block_secs: u64,
    /// Proxies whose `X-Forwarded-For` names the client: IP addresses or CIDR ranges.
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionSettings {
    pub max_connections: usize,
    pub header_timeout_secs: u64,
    pub body_timeout_secs: u64,
}

/// The real-time gateway's bounds and timers (docs/protocol.md).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RealtimeSettings {
    pub max_connections: usize,
    pub hello_timeout_secs: u64,
    pub ping_interval_secs: u64,
    pub pong_timeout_secs: u64,
    pub max_rooms: usize,
    pub commands_per_sec: u32,
    pub outbound_queue: usize,
    /// 0: a lost member is gone at once.
    pub presence_grace_secs: u64,
    /// 0: no room announces each entry and departure.
    pub presence_events_max_members: usize,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// `sqlite` (one node, the default) or `postgres` (a cluster, docs/cluster.md).
    pub backend: Backend,
    pub postgres: PostgresSettings,
    /// Memory kept for rooms, so that reads skip the database; 0 turns it off.
    pub metadata_cache_mb: u64,
    /// Events kept in each room's log (docs/events.md).
    pub events_per_room: u64,
    /// How long a destroyed room's events stay readable.
    pub destroyed_room_secs: u64,
    /// How long an app's change feed keeps an entry no webhook waits for (docs/webhooks.md).
    pub feed_retention_secs: u64,
    /// How long a parked webhook entry waits for a replay.
    pub parked_retention_secs: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Sqlite,
    Postgres,
}

/// `[storage.postgres]` (docs/cluster.md §2).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSettings {
    /// A libpq connection string or `postgres://` URL; empty: the `DATABASE_URL` variable.
    pub url: String,
    /// The schema of liveroom's tables; empty: the connection's default.
    pub schema: String,
    pub pool_size: usize,
    pub connect_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    /// Commits wake the other nodes with NOTIFY; off behind a transaction-mode pooler.
    pub notify: bool,
    /// How often each node reads the feed for other nodes' commits, notified or not.
    pub poll_ms: u64,
    /// How long a node that stopped renewing its lease keeps its members in the rooms.
    pub presence_lease_ms: u64,
    /// Connect over TLS only, verifying the server's certificate.
    pub tls: bool,
    /// PEM certificates of authorities trusted beside Mozilla's, for `tls`.
    pub tls_ca_file: PathBuf,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        let defaults = PostgresOptions::new("");
        Self {
            url: String::new(),
            schema: String::new(),
            pool_size: defaults.pool_size,
            connect_timeout_ms: defaults.connect_timeout.as_millis() as u64,
            statement_timeout_ms: defaults.statement_timeout.as_millis() as u64,
            notify: defaults.notify,
            poll_ms: defaults.poll.as_millis() as u64,
            presence_lease_ms: defaults.presence_lease.as_millis() as u64,
            tls: false,
            tls_ca_file: PathBuf::new(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    pub sdkappid: u32,
    pub secret_key: String,
    pub admins: Vec<String>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    #[serde(default)]
    pub disabled_commands: Vec<String>,
    /// Requests per second by command name; `"*"` sets every command not named.
    #[serde(default)]
    pub rate_limits: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_send: Option<BeforeSendSettings>,
}

/// An app's webhook (docs/webhooks.md §2).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    /// Callback names; `"*"` is every one. Default: Tencent's seven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default = "webhook_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "webhook_retry_for_secs")]
    pub retry_for_secs: u64,
    #[serde(default = "webhook_retry_min_ms")]
    pub retry_min_ms: u64,
    #[serde(default = "webhook_retry_max_ms")]
    pub retry_max_ms: u64,
    #[serde(default = "webhook_max_in_flight")]
    pub max_in_flight: usize,
}

fn webhook_timeout_ms() -> u64 {
    WebhookConfig::TIMEOUT.as_millis() as u64
}
fn webhook_retry_for_secs() -> u64 {
    WebhookConfig::RETRY_FOR.as_secs()
}
fn webhook_retry_min_ms() -> u64 {
    WebhookConfig::RETRY_MIN.as_millis() as u64
}
fn webhook_retry_max_ms() -> u64 {
    WebhookConfig::RETRY_MAX.as_millis() as u64
}
fn webhook_max_in_flight() -> usize {
    WebhookConfig::MAX_IN_FLIGHT
}

/// An app's before-send moderation hook (docs/webhooks.md §7).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeforeSendSettings {
    pub url: String,
    #[serde(default = "before_send_timeout_ms")]
    pub timeout_ms: u64,
    /// `"allow"` or `"block"`.
    #[serde(default = "before_send_on_failure")]
    pub on_failure: String,
    #[serde(default = "before_send_max_in_flight")]
    pub max_in_flight: usize,
}

fn before_send_timeout_ms() -> u64 {
    BeforeSendConfig::TIMEOUT.as_millis() as u64
}
fn before_send_on_failure() -> String {
    "allow".into()
}
fn before_send_max_in_flight() -> usize {
    BeforeSendConfig::MAX_IN_FLIGHT
}

impl WebhookSettings {
    pub fn to_config(&self) -> anyhow::Result<WebhookConfig> {
        let url = Target::parse(&self.url).map_err(|e| anyhow::anyhow!("webhook.url: {e}"))?;
        let mut config = WebhookConfig::new(url);
        if let Some(events) = &self.events {
            ensure!(
                !events.is_empty(),
                "webhook.events: name at least one callback, or \"*\""
            );
            config.hooks = if events.iter().any(|e| e == "*") {
                Hook::ALL.into_iter().collect()
            } else {
                events
                    .iter()
                    .map(|name| {
                        parse_callback_command(name).with_context(|| {
                            format!("webhook.events: {name:?} is not a callback liveroom sends")
                        })
                    })
                    .collect::<anyhow::Result<Hooks>>()?
            };
        }
        config.secret = self
            .secret
            .as_deref()
            .map(SigningKey::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("webhook.secret: {e}"))?;
        let max_timeout = WebhookConfig::MAX_TIMEOUT.as_millis() as u64;
        ensure!(
            (1..=max_timeout).contains(&self.timeout_ms),
            "webhook.timeout_ms: must be 1 to {max_timeout}"
        );
        ensure!(
            self.retry_for_secs >= 1,
            "webhook.retry_for_secs: must be at least 1"
        );
        ensure!(
            self.retry_min_ms >= 1,
            "webhook.retry_min_ms: must be at least 1"
        );
        ensure!(
            self.retry_max_ms >= self.retry_min_ms,
            "webhook.retry_max_ms: must be at least retry_min_ms"
        );
        let limit = WebhookConfig::MAX_IN_FLIGHT_LIMIT;
        ensure!(
            (1..=limit).contains(&self.max_in_flight),
            "webhook.max_in_flight: must be 1 to {limit}"
        );
        config.timeout = Duration::from_millis(self.timeout_ms);
        config.retry_for = Duration::from_secs(self.retry_for_secs);
        config.retry_min = Duration::from_millis(self.retry_min_ms);
        config.retry_max = Duration::from_millis(self.retry_max_ms);
        config.max_in_flight = self.max_in_flight;
        Ok(config)
    }
}

impl BeforeSendSettings {
    /// Signed with `secret` (the app's webhook secret) when there is one.
    pub fn to_config(&self, secret: Option<SigningKey>) -> anyhow::Result<BeforeSendConfig> {
        let url = Target::parse(&self.url).map_err(|e| anyhow::anyhow!("before_send.url: {e}"))?;
        let max_timeout = BeforeSendConfig::MAX_TIMEOUT.as_millis() as u64;
        ensure!(
            (1..=max_timeout).contains(&self.timeout_ms),
            "before_send.timeout_ms: must be 1 to {max_timeout}"
        );
        let on_failure = match self.on_failure.as_str() {
            "allow" => OnFailure::Allow,
            "block" => OnFailure::Block,
            other => bail!("before_send.on_failure: {other:?} must be \"allow\" or \"block\""),
        };
        ensure!(
            self.max_in_flight >= 1,
            "before_send.max_in_flight: must be at least 1"
        );
        Ok(BeforeSendConfig {
            url,
            timeout: Duration::from_millis(self.timeout_ms),
            on_failure,
            max_in_flight: self.max_in_flight,
            secret,
        })
    }
}

fn enabled_by_default() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            data_dir: PathBuf::from("liveroom-data"),
            node_id: String::new(),
            auth_failure_throttle: ThrottleSettings::default(),
            connections: ConnectionSettings::default(),
            storage: StorageSettings::default(),
            realtime: RealtimeSettings::default(),
            tls: None,
            apps: Vec::new(),
        }
    }
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        let d = ThrottleConfig::default();
        Self {
            max_failures: d.max_failures,
            window_secs: d.window.as_secs(),
            block_secs: d.block.as_secs(),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        let d = ConnectionLimits::default();
        Self {
            max_connections: d.max_connections,
            header_timeout_secs: d.header_timeout.as_secs(),
            body_timeout_secs: d.body_timeout.as_secs(),
        }
    }
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        let d = RealtimeConfig::default();
        Self {
            max_connections: d.max_connections,
            hello_timeout_secs: d.hello_timeout.as_secs(),
            ping_interval_secs: d.ping_interval.as_secs(),
            pong_timeout_secs: d.pong_timeout.as_secs(),
            max_rooms: d.max_rooms,
            commands_per_sec: d.commands_per_sec,
            outbound_queue: d.outbound_queue,
            presence_grace_secs: d.presence_grace.as_secs(),
            presence_events_max_members: d.presence_events_max_members,
        }
    }
}

impl RealtimeSettings {
    fn to_config(&self) -> RealtimeConfig {
        RealtimeConfig {
            max_connections: self.max_connections,
            hello_timeout: Duration::from_secs(self.hello_timeout_secs),
            ping_interval: Duration::from_secs(self.ping_interval_secs),
            pong_timeout: Duration::from_secs(self.pong_timeout_secs),
            max_rooms: self.max_rooms,
            commands_per_sec: self.commands_per_sec,
            outbound_queue: self.outbound_queue,
            presence_grace: Duration::from_secs(self.presence_grace_secs),
            presence_events_max_members: self.presence_events_max_members,
        }
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        let retention = Retention::default();
        Self {
            backend: Backend::default(),
            postgres: PostgresSettings::default(),
            metadata_cache_mb: SqliteOptions::DEFAULT_METADATA_CACHE_BYTES >> 20,
            events_per_room: retention.events_per_room,
            destroyed_room_secs: retention.destroyed_room.as_secs(),
            feed_retention_secs: retention.feed.as_secs(),
            parked_retention_secs: retention.parked.as_secs(),
        }
    }
}

impl StorageSettings {
    pub fn sqlite_options(&self, path: PathBuf) -> SqliteOptions {
        let mut options = SqliteOptions::new(path);
        options.metadata_cache_bytes = self.metadata_cache_mb.saturating_mul(1 << 20);
        options.retention = self.retention();
        options
    }

    /// The PostgreSQL store's options for the node `node`; `database_url` is the
    /// `DATABASE_URL` variable, used when `url` is empty.
    pub fn postgres_options(
        &self,
        node: &str,
        database_url: Option<String>,
    ) -> anyhow::Result<PostgresOptions> {
        let pg = &self.postgres;
        let url = match (pg.url.is_empty(), database_url) {
            (false, _) => pg.url.clone(),
            (true, Some(url)) if !url.is_empty() => url,
            _ => bail!(
                "storage.postgres.url: backend = \"postgres\" needs a connection URL (or DATABASE_URL)"
            ),
        };
        let mut options = PostgresOptions::new(url);
        options.schema = (!pg.schema.is_empty()).then(|| pg.schema.clone());
        options.pool_size = pg.pool_size;
        options.connect_timeout = Duration::from_millis(pg.connect_timeout_ms);
        options.statement_timeout = Duration::from_millis(pg.statement_timeout_ms);
        options.notify = pg.notify;
        options.poll = Duration::from_millis(pg.poll_ms);
        options.presence_lease = Duration::from_millis(pg.presence_lease_ms);
        options.tls = match (pg.tls, pg.tls_ca_file.as_os_str().is_empty()) {
            (false, true) => None,
            (false, false) => bail!("storage.postgres.tls_ca_file: set only with tls = true"),
            (true, true) => Some(PostgresTls::default()),
            (true, false) => {
                let file = &pg.tls_ca_file;
                let pem = std::fs::read(file).with_context(|| {
                    format!(
                        "storage.postgres.tls_ca_file: cannot read {}",
                        file.display()
                    )
                })?;
                let tls = PostgresTls::with_pem_authorities(&pem).map_err(|problem| {
                    anyhow::anyhow!("storage.postgres.tls_ca_file: {} {problem}", file.display())
                })?;
                Some(tls)
            }
        };
        options.node = node.to_owned();
        options.retention = self.retention();
        Ok(options)
    }

    fn retention(&self) -> Retention {
        Retention {
            events_per_room: self.events_per_room,
            destroyed_room: Duration::from_secs(self.destroyed_room_secs),
            feed: Duration::from_secs(self.feed_retention_secs),
            parked: Duration::from_secs(self.parked_retention_secs),
        }
    }
}

/// What the command line says of the configuration.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

impl Settings {
    /// Layers defaults, `file` (if any), the environment and `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            // Figment treats a missing file as empty; a named file that is not there is an error.
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("config file {}: cannot be read", file.display()))?;
            // Parsed here first so that a syntax error is reported without figment quoting
            // the line, which may hold a secret key.
            toml::from_str::<toml::Table>(&text)
                .map_err(|error| toml_error(&source_name(Some(file)), &text, &error))?;
            warn_if_readable_by_others(file);
            figment = figment.merge(Toml::file_exact(file));
        }
        let settings: Settings = figment
            .merge(
                Env::prefixed("LIVEROOM_")
                    .split("__")
                    .ignore(&["config", "log", "log_format"]),
            )
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|error| anyhow::anyhow!("invalid configuration: {error}"))?;
        let source = source_name(file);
        settings
            .listen_addr()
            .with_context(|| format!("{source}: listen"))?;
        settings.refuse_zeros(&source)?;
        settings
            .auth_failure_throttle
            .to_config()
            .with_context(|| format!("{source}: auth_failure_throttle"))?;
        for (i, app) in settings.apps.iter().enumerate() {
            app.to_config()
                .with_context(|| format!("{source}: apps[{i}] (sdkappid {})", app.sdkappid))?;
        }
        let mut seen = HashSet::new();
        for app in &settings.apps {
            ensure!(
                seen.insert(app.sdkappid),
                "{source}: apps: sdkappid {} is configured twice",
                app.sdkappid
            );
        }
        Ok(settings)
    }

    /// 0 turns none of these off: it would break serving (no connection accepted, every
    /// request timed out, a throttle that never blocks, a log that cannot resume), so it is
    /// refused.
    fn refuse_zeros(&self, source: &str) -> anyhow::Result<()> {
        let (c, t) = (&self.connections, &self.auth_failure_throttle);
        let (st, rt) = (&self.storage, &self.realtime);
        let off = " (max_failures = 0 turns the throttle off)";
        for (setting, value, hint) in [
            ("connections.max_connections", c.max_connections as u64, ""),
            ("connections.header_timeout_secs", c.header_timeout_secs, ""),
            ("connections.body_timeout_secs", c.body_timeout_secs, ""),
            ("auth_failure_throttle.window_secs", t.window_secs, off),
            ("auth_failure_throttle.block_secs", t.block_secs, off),
            ("storage.events_per_room", st.events_per_room, ""),
            (
                "storage.postgres.pool_size",
                st.postgres.pool_size as u64,
                "",
            ),
            (
                "storage.postgres.connect_timeout_ms",
                st.postgres.connect_timeout_ms,
                "",
            ),
            (
                "storage.postgres.statement_timeout_ms",
                st.postgres.statement_timeout_ms,
                "",
            ),
            ("storage.postgres.poll_ms", st.postgres.poll_ms, ""),
            (
                "storage.postgres.presence_lease_ms",
                st.postgres.presence_lease_ms,
                "",
            ),
            ("realtime.max_connections", rt.max_connections as u64, ""),
            ("realtime.hello_timeout_secs", rt.hello_timeout_secs, ""),
            ("realtime.ping_interval_secs", rt.ping_interval_secs, ""),
            ("realtime.pong_timeout_secs", rt.pong_timeout_secs, ""),
            ("realtime.max_rooms", rt.max_rooms as u64, ""),
            (
                "realtime.commands_per_sec",
                u64::from(rt.commands_per_sec),
                "",
            ),
            ("realtime.outbound_queue", rt.outbound_queue as u64, ""),
        ] {
            ensure!(value > 0, "{source}: {setting}: must be at least 1{hint}");
        }
        Ok(())
    }

    /// `node_id`, or `<host name>-<process id>`: unique among nodes sharing a database.
    pub fn node(&self) -> String {
        if !self.node_id.is_empty() {
            return self.node_id.clone();
        }
        let mut name = [0u8; 256];
        // SAFETY: gethostname writes at most `name.len()` bytes into the buffer it is given.
        let named = unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } == 0;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        let host = match std::str::from_utf8(&name[..end]) {
            Ok(host) if named && !host.is_empty() => host,
            _ => "liveroom",
        };
        format!("{host}-{}", std::process::id())
    }

    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen
            .parse()
            .with_context(|| format!("{:?} is not an address like 127.0.0.1:8080", self.listen))
    }

    /// The certificate and key named by `[tls]`, read once at start.
    pub fn tls(&self) -> anyhow::Result<Option<TlsConfig>> {
        self.tls
            .as_ref()
            .map(|tls| {
                TlsConfig::load(&tls.cert_file, &tls.key_file)
                    .map_err(|e| anyhow::anyhow!("tls: {e}"))
            })
            .transpose()
    }

    /// The server's configuration for `apps`.
    pub fn server_config(
        &self,
        apps: Vec<AppConfig>,
        tls: Option<TlsConfig>,
    ) -> anyhow::Result<ServerConfig> {
        let c = &self.connections;
        Ok(ServerConfig {
            node: self.node(),
            tls,
            apps,
            auth_failure_throttle: self.auth_failure_throttle.to_config()?,
            connections: ConnectionLimits {
                max_connections: c.max_connections,
                header_timeout: Duration::from_secs(c.header_timeout_secs),
                body_timeout: Duration::from_secs(c.body_timeout_secs),
            },
            realtime: self.realtime.to_config(),
        })
    }
}

impl ThrottleSettings {
    /// The throttle's configuration; the error names a bad `trusted_proxies` entry.
    pub fn to_config(&self) -> anyhow::Result<ThrottleConfig> {
        let trusted_proxies =
            TrustedProxies::parse(self.trusted_proxies.iter().map(String::as_str))
                .map_err(|e| anyhow::anyhow!("trusted_proxies: {e}"))?;
        Ok(ThrottleConfig {
            max_failures: self.max_failures,
            window: Duration::from_secs(self.window_secs),
            block: Duration::from_secs(self.block_secs),
            trusted_proxies,
        })
    }
}

impl AppSettings {
    pub fn to_config(&self) -> anyhow::Result<AppConfig> {
        ensure!(!self.secret_key.is_empty(), "secret_key: must not be empty");
        ensure!(
            !self.admins.is_empty(),
            "admins: name at least one administrator"
        );
        for admin in &self.admins {
            ensure!(
                !admin.is_empty() && admin.len() <= ACCOUNT_MAX_BYTES,
                "admins: {admin:?} must be 1 to {ACCOUNT_MAX_BYTES} bytes"
            );
        }
        let command = |name: &str, setting: &str| {
            Command::from_name(name)
                .with_context(|| format!("{setting}: {name:?} is not a command liveroom serves"))
        };
        let disabled_commands = self
            .disabled_commands
            .iter()
            .map(|name| command(name, "disabled_commands"))
            .collect::<anyhow::Result<HashSet<_>>>()?;
        let mut rate_limits = HashMap::new();
        for (name, &per_second) in &self.rate_limits {
            if per_second == 0 {
                bail!("rate_limits.{name}: must be at least 1 request per second");
            }
            if name == "*" {
                continue;
            }
            rate_limits.insert(command(name, "rate_limits")?, per_second);
        }
        if let Some(&every_other) = self.rate_limits.get("*") {
            for c in Command::ALL {
                rate_limits.entry(c).or_insert(every_other);
            }
        }
        let webhook = self
            .webhook
            .as_ref()
            .map(WebhookSettings::to_config)
            .transpose()?;
        let secret = webhook.as_ref().and_then(|w| w.secret.clone());
        let before_send = self
            .before_send
            .as_ref()
            .map(|b| b.to_config(secret))
            .transpose()?;
        Ok(AppConfig {
            sdkappid: self.sdkappid,
            secret_key: SecretKey::new(self.secret_key.clone()),
            admins: self.admins.clone(),
            enabled: self.enabled,
            disabled_commands,
            rate_limits,
            webhook,
            before_send,
        })
    }
}

/// How errors name where the configuration came from.
pub fn source_name(file: Option<&Path>) -> String {
    file.map_or_else(
        || "the configuration".to_owned(),
        |f| format!("config file {}", f.display()),
    )
}

/// A TOML error in `text`, the contents of `what`, without the excerpt of `text` that toml
/// quotes: that line may hold a secret key.
pub fn toml_error(what: &str, text: &str, error: &toml::de::Error) -> anyhow::Error {
    let line = error
        .span()
        .and_then(|span| text.get(..span.start))
        .map(|before| before.matches('\n').count() + 1);
    match line {
        Some(line) => anyhow::anyhow!("{what}: line {line}: {}", error.message()),
        None => anyhow::anyhow!("{what}: {}", error.message()),
    }
}

/// A secret key in a file others can read is a leak waiting to happen: say so at start.
fn warn_if_readable_by_others(file: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(file)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                file = %file.display(),
                "config file is readable by other users and may hold secret keys; consider chmod 600"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_toml(text: &str) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("liveroom.toml");
        std::fs::write(&path, text).unwrap();
        Settings::load(Some(&path), &Overrides::default()).map_err(|e| anyhow::anyhow!("{e:#}"))
    }

    #[test]
    fn documented_shape_loads() {
        let settings = load_toml(
            r#"
listen   = "127.0.0.1:9000"
data_dir = "data"
[auth_failure_throttle]
max_failures = 5
window_secs  = 10
block_secs   = 60
trusted_proxies = ["10.0.0.0/8", "127.0.0.1", "fd00::/8"]
[storage]
metadata_cache_mb = 64
events_per_room = 100
destroyed_room_secs = 30
[realtime]
max_connections = 50
hello_timeout_secs = 3
ping_interval_secs = 20
pong_timeout_secs = 5
max_rooms = 4
commands_per_sec = 10
outbound_queue = 64
presence_grace_secs = 7
presence_events_max_members = 100
[[apps]]
sdkappid   = 1400000000
secret_key = "k"
admins     = ["administrator"]
enabled    = true
disabled_commands = ["set_room_metadata"]
[apps.rate_limits]
"*" = 5000
get_room_list = 10
"#,
        )
        .unwrap();
        assert_eq!(settings.listen, "127.0.0.1:9000");
        let options = settings.storage.sqlite_options("db".into());
        assert_eq!(options.metadata_cache_bytes, 64 << 20);
        assert_eq!(options.retention.events_per_room, 100);
        assert_eq!(options.retention.destroyed_room, Duration::from_secs(30));
        let app = settings.apps[0].to_config().unwrap();
        assert_eq!(app.rate_limit(Command::GetRoomList), 10);
        assert_eq!(app.rate_limit(Command::SetRoomMetadata), 5000);
        assert!(app.disabled_commands.contains(&Command::SetRoomMetadata));
        let throttle = settings
            .server_config(vec![], None)
            .unwrap()
            .auth_failure_throttle;
        assert_eq!(throttle.max_failures, 5);
        let trusts = |ip: &str| throttle.trusted_proxies.contains(ip.parse().unwrap());
        assert!(trusts("10.1.2.3") && trusts("fd00::1") && !trusts("127.0.0.2"));
        let realtime = settings.server_config(vec![], None).unwrap().realtime;
        assert_eq!(
            realtime,
            RealtimeConfig {
                max_connections: 50,
                hello_timeout: Duration::from_secs(3),
                ping_interval: Duration::from_secs(20),
                pong_timeout: Duration::from_secs(5),
                max_rooms: 4,
                commands_per_sec: 10,
                outbound_queue: 64,
                presence_grace: Duration::from_secs(7),
                presence_events_max_members: 100,
            }
        );
        // None by default: the connection's peer is the client.
        let defaults = load_toml("").unwrap().server_config(vec![], None).unwrap();
        assert!(defaults.auth_failure_throttle.trusted_proxies.is_empty());
        assert_eq!(defaults.realtime, RealtimeConfig::default());
    }

    #[test]
    fn errors_name_file_setting_and_problem() {
        for (text, expected) in [
            ("listen = 5", "listen"),
            ("listen = \"nowhere\"", "listen"),
            ("lisen = \"127.0.0.1:1\"", "lisen"),
            (
                "[[apps]]\nsdkappid = 1\nsecret_key = \"\"\nadmins = [\"a\"]",
                "secret_key",
            ),
            (
                "[[apps]]\nsdkappid = 1\nsecret_key = \"k\"\nadmins = []",
                "admins",
            ),
            (
                "[[apps]]\nsdkappid = 1\nsecret_key = \"k\"\nadmins = [\"a\"]\ndisabled_commands = [\"nope\"]",
                "disabled_commands",
            ),
            (
                "[[apps]]\nsdkappid = 1\nsecret_key = \"k\"\nadmins = [\"a\"]\n[apps.rate_limits]\nnope = 1",
                "rate_limits",
            ),
            (
                "[[apps]]\nsdkappid = 1\nsecret_key = \"k\"\nadmins = [\"a\"]\n[apps.rate_limits]\nget_room_info = 0",
                "rate_limits.get_room_info",
            ),
            (
                "[[apps]]\nsdkappid = -1\nsecret_key = \"k\"\nadmins = [\"a\"]",
                "sdkappid",
            ),
            (
                "[[apps]]\nsdkappid = 1\nsecret_key = \"k\"\nadmins = [\"a\"]\n[[apps]]\nsdkappid = 1\nsecret_key = \"k\"\nadmins = [\"a\"]",
                "configured twice",
            ),
            ("[storage]\nmetadata_cache_mb = -1", "metadata_cache_mb"),
            ("[storage]\nevents_per_room = 0", "storage.events_per_room"),
            (
                "[realtime]\nping_interval_secs = 0",
                "realtime.ping_interval_secs",
            ),
            ("[realtime]\noutbound_queue = 0", "realtime.outbound_queue"),
            ("[realtime]\nmax_room = 3", "max_room"),
            (
                "[connections]\nbody_timeout_secs = 0",
                "connections.body_timeout_secs: must be at least 1",
            ),
            (
                "[connections]\nheader_timeout_secs = 0",
                "connections.header_timeout_secs",
            ),
            (
                "[connections]\nmax_connections = 0",
                "connections.max_connections",
            ),
            (
                "[auth_failure_throttle]\nwindow_secs = 0",
                "auth_failure_throttle.window_secs",
            ),
            (
                "[auth_failure_throttle]\nblock_secs = 0",
                "max_failures = 0 turns the throttle off",
            ),
            (
                "[auth_failure_throttle]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\"]",
                "auth_failure_throttle: trusted_proxies: \"10.0.0.0/33\"",
            ),
            (
                "[auth_failure_throttle]\ntrusted_proxies = \"10.0.0.0/8\"",
                "trusted_proxies",
            ),
            ("not toml at all [", "liveroom.toml"),
        ] {
            let error = load_toml(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(
                error.contains("liveroom.toml"),
                "{text:?} names no file: {error}"
            );
        }
    }

    #[test]
    fn syntax_errors_do_not_quote_the_secret_key() {
        let error = load_toml("[[apps]]\nsdkappid = 1\nsecret_key = \"s3cr3t\nadmins = [\"a\"]")
            .unwrap_err()
            .to_string();
        assert!(error.contains("liveroom.toml: line 3"), "{error}");
        assert!(!error.contains("s3cr3t"), "{error}");
    }

    #[test]
    fn missing_file_is_an_error() {
        let error = Settings::load(
            Some(Path::new("/nonexistent/liveroom.toml")),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(format!("{error:#}").contains("/nonexistent/liveroom.toml"));
    }

    /// `tls_ca_file` is read at start: a missing or non-PEM file, or one without `tls`, stops
    /// start-up naming the setting.
    #[test]
    fn postgres_tls_settings_are_checked() {
        let options = |extra: &str| {
            let text = format!("[storage.postgres]\nurl = \"host=db\"\n{extra}");
            load_toml(&text)
                .unwrap()
                .storage
                .postgres_options("n", None)
                .map_err(|e| format!("{e:#}"))
        };
        assert!(options("").unwrap().tls.is_none());
        assert!(options("tls = true").unwrap().tls.is_some());
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        let file = format!("tls_ca_file = {not_pem:?}");
        let alone = options(&file).unwrap_err();
        assert!(
            alone.contains("storage.postgres.tls_ca_file: set only with tls = true"),
            "{alone}"
        );
        let bad = options(&format!("tls = true\n{file}")).unwrap_err();
        assert!(
            bad.contains("storage.postgres.tls_ca_file") && bad.contains("no certificate"),
            "{bad}"
        );
        let missing = options("tls = true\ntls_ca_file = \"/nonexistent/ca.pem\"").unwrap_err();
        assert!(
            missing.contains("cannot read /nonexistent/ca.pem"),
            "{missing}"
        );
    }
}
