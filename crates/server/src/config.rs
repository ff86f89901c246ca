use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
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
    /// Where the app's feed entries are delivered (docs/webhooks.md §2).
    pub webhook: Option<liveroom_webhooks::WebhookConfig>,
    /// Who is asked about each room message first (docs/webhooks.md §7).
    pub before_send: Option<liveroom_webhooks::BeforeSendConfig>,
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
            webhook: None,
            before_send: None,
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
    /// Whose `X-Forwarded-For` names the client address; empty: the connection's peer is it.
    pub trusted_proxies: TrustedProxies,
}

/// Proxies (load balancers) in front of the server: IP addresses and CIDR ranges, IPv4 or
/// IPv6. Behind one, every client arrives from the proxy's address, so the client's own
/// address has to be read from the header the proxy adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// Parses entries like `10.0.0.0/8`, `127.0.0.1`, `fd00::/8` or `::1`; the error names the
    /// first bad entry.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        entries
            .into_iter()
            .map(|entry| {
                let range = entry.parse::<ipnet::IpNet>();
                let address = || entry.parse::<IpAddr>().map(ipnet::IpNet::from);
                range.or_else(|_| address()).map_err(|_| {
                    format!("{entry:?} is not an IP address or a CIDR range like 10.0.0.0/8")
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `address` is one of them; an IPv4-mapped IPv6 address counts as its IPv4 one.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|range| range.contains(&address))
    }
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
            trusted_proxies: TrustedProxies::default(),
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

/// Bounds and timers of the real-time gateway (docs/protocol.md, "Limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealtimeConfig {
    /// Real-time connections open at once; an upgrade beyond it is answered 503.
    pub max_connections: usize,
    /// Time a new connection has to send its `hello`.
    pub hello_timeout: Duration,
    /// How often the server sends `ping`.
    pub ping_interval: Duration,
    /// How long the server waits for the `pong` to a `ping`.
    pub pong_timeout: Duration,
    /// Rooms one connection may be in at once.
    pub max_rooms: usize,
    /// Commands one connection may send per second (and at once).
    pub commands_per_sec: u32,
    /// Frames waiting to be sent to one connection; a client that lets more pile up is closed
    /// as slow (4008).
    pub outbound_queue: usize,
    /// How long a member whose connection died is remembered, so that coming back within it
    /// is a `HeartbeatRecover` rather than a new entry.
    pub presence_grace: Duration,
    /// Rooms with at most this many members announce each `member.enter` and
    /// `member.leave`; bigger rooms send `room.count` once a second instead.
    pub presence_events_max_members: usize,
}

impl RealtimeConfig {
    /// The largest client frame, in bytes.
    pub const MAX_FRAME_BYTES: usize = 64 * 1024;
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            hello_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(10),
            max_rooms: 16,
            commands_per_sec: 20,
            outbound_queue: 1024,
            presence_grace: Duration::from_secs(30),
            presence_events_max_members: 500,
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
    /// This node's name, as `liveroom_node_info{node=…}` in the metrics; empty: none.
    pub node: String,
    pub apps: Vec<AppConfig>,
    pub auth_failure_throttle: ThrottleConfig,
    pub connections: ConnectionLimits,
    pub realtime: RealtimeConfig,
    /// `None`: plain HTTP.
    pub tls: Option<TlsConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        let proxies =
            TrustedProxies::parse(["10.0.0.0/8", "127.0.0.1", "fd00::/8", "::1"]).unwrap();
        for inside in [
            "10.255.0.1",
            "127.0.0.1",
            "fd12::1",
            "::1",
            "::ffff:10.1.2.3",
        ] {
            assert!(proxies.contains(inside.parse().unwrap()), "{inside}");
        }
        for outside in ["11.0.0.1", "127.0.0.2", "fe80::1", "::2"] {
            assert!(!proxies.contains(outside.parse().unwrap()), "{outside}");
        }
        assert!(TrustedProxies::parse([]).unwrap().is_empty());
        for bad in [
            "",
            "localhost",
            "10.0.0.0/33",
            "10.0.0.1:80",
            " 10.0.0.1",
            "::1/129",
        ] {
            let error = TrustedProxies::parse(["127.0.0.1", bad]).unwrap_err();
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
    }
}
