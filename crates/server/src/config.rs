use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use liveroom_protocol::Command;

/// An app's secret key. Its `Debug` never shows the key, so it cannot leak through a log or
/// a panic message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    pub fn new(key: String) -> Self {
        Self(key)
    }

    /// The key itself, for signing and verifying only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// One app (`SDKAppID`) served by this server.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub sdkappid: u32,
    pub secret_key: SecretKey,
    /// The App administrators: the only identifiers the REST API accepts.
    pub admins: Vec<String>,
    pub enabled: bool,
    pub disabled_commands: HashSet<Command>,
    /// Requests per second per command; commands not named use their documented default.
    pub rate_limits: HashMap<Command, u32>,
}

impl AppConfig {
    /// An enabled app with the documented default limits.
    pub fn new(sdkappid: u32, secret_key: SecretKey, admins: Vec<String>) -> Self {
        Self {
            sdkappid,
            secret_key,
            admins,
            enabled: true,
            disabled_commands: HashSet::new(),
            rate_limits: HashMap::new(),
        }
    }

    /// The same limit for every command.
    pub fn limit_every_command(&mut self, per_second: u32) {
        self.rate_limits = Command::ALL.into_iter().map(|c| (c, per_second)).collect();
    }

    pub fn rate_limit(&self, command: Command) -> u32 {
        self.rate_limits
            .get(&command)
            .copied()
            .unwrap_or(command.default_rate_limit())
    }
}

/// More than `max_failures` failed authentications from one client address within `window`
/// block that address (70050) for `block`. `max_failures == 0` turns the throttle off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub max_failures: u32,
    pub window: Duration,
    pub block: Duration,
}

impl ThrottleConfig {
    /// No throttle at all.
    pub fn off() -> Self {
        Self {
            max_failures: 0,
            ..Self::default()
        }
    }
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            max_failures: 20,
            window: Duration::from_secs(10),
            block: Duration::from_secs(60),
        }
    }
}

/// Bounds on what clients may hold open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's headers; also how long an idle keep-alive
    /// connection is kept.
    pub header_timeout: Duration,
    /// Time a client has to send a request's body.
    pub body_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// Serve HTTPS instead of plain HTTP, for clients that insist on `https://`.
#[derive(Clone)]
pub struct TlsConfig(pub(crate) Arc<rustls::ServerConfig>);

impl TlsConfig {
    /// Loads a PEM certificate chain and its PEM private key. The error names the file and
    /// the problem, never the key's contents.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, String> {
        let certs = CertificateDer::pem_file_iter(cert_file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                format!(
                    "{}: cannot read a PEM certificate chain: {e}",
                    cert_file.display()
                )
            })?;
        if certs.is_empty() {
            return Err(format!("{}: holds no certificate", cert_file.display()));
        }
        let key = PrivateKeyDer::from_pem_file(key_file)
            .map_err(|e| format!("{}: cannot read a PEM private key: {e}", key_file.display()))?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| format!("{} and {}: {e}", cert_file.display(), key_file.display()))?;
        Ok(Self(Arc::new(config)))
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsConfig")
    }
}

#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    pub apps: Vec<AppConfig>,
    pub auth_failure_throttle: ThrottleConfig,
    pub connections: ConnectionLimits,
    /// `None`: plain HTTP.
    pub tls: Option<TlsConfig>,
}
