//! What an app's webhook and before-send hook are configured with (docs/webhooks.md §2, §7),
//! each value checked where it is made, so that start-up can name a bad one.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use liveroom_domain::Hooks;
use url::Url;

/// Where requests go: an absolute `http` or `https` URL without credentials or fragment.
#[derive(Clone, PartialEq, Eq)]
pub struct Target(Url);

impl Target {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http or https URL".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must name a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials (sign requests with `secret`)".into());
        }
        if url.fragment().is_some() {
            return Err("must not have a #fragment".into());
        }
        Ok(Self(url))
    }

    /// The URL of one callback request: Tencent's parameters after the URL's own query
    /// (docs/webhooks.md §3, §7). liveroom records no client address: `ClientIP` is empty.
    pub(crate) fn callback_url(&self, sdkappid: u32, command: &str, platform: &str) -> Url {
        let mut url = self.0.clone();
        url.query_pairs_mut()
            .append_pair("SdkAppid", &sdkappid.to_string())
            .append_pair("CallbackCommand", command)
            .append_pair("contenttype", "json")
            .append_pair("ClientIP", "")
            .append_pair("OptPlatform", platform);
        url
    }
}

/// Never the URL itself: its query string may hold a receiver's token.
impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.0.scheme(),
            self.0.host_str().unwrap_or_default(),
            self.0.path()
        )
    }
}

/// A Standard Webhooks signing secret: `whsec_` and the base64 of 24 to 64 bytes. Not
/// `Debug`-printable with its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn parse(secret: &str) -> Result<Self, String> {
        let encoded = secret
            .strip_prefix("whsec_")
            .ok_or("must start with \"whsec_\" (a Standard Webhooks secret)")?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| "must be \"whsec_\" followed by standard base64")?;
        if !(24..=64).contains(&key.len()) {
            return Err(format!(
                "must hold 24 to 64 bytes once decoded, not {}",
                key.len()
            ));
        }
        Ok(Self(key))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(…)")
    }
}

/// An app's webhook (docs/webhooks.md §2).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: Target,
    /// The callbacks sent.
    pub hooks: Hooks,
    pub secret: Option<SigningKey>,
    /// Per attempt.
    pub timeout: Duration,
    /// How long after its commit an entry is retried before it is parked.
    pub retry_for: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Rooms delivered to at once.
    pub max_in_flight: usize,
}

impl WebhookConfig {
    pub const TIMEOUT: Duration = Duration::from_secs(5);
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
    pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
    pub const RETRY_MIN: Duration = Duration::from_secs(1);
    pub const RETRY_MAX: Duration = Duration::from_secs(600);
    pub const MAX_IN_FLIGHT: usize = 64;
    pub const MAX_IN_FLIGHT_LIMIT: usize = 1024;

    /// A webhook to `url` with the defaults of docs/webhooks.md §2.
    pub fn new(url: Target) -> Self {
        Self {
            url,
            hooks: Hooks::tencent(),
            secret: None,
            timeout: Self::TIMEOUT,
            retry_for: Self::RETRY_FOR,
            retry_min: Self::RETRY_MIN,
            retry_max: Self::RETRY_MAX,
            max_in_flight: Self::MAX_IN_FLIGHT,
        }
    }
}

/// What the before-send hook decides when it cannot ask (timeout, error, too many questions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    Allow,
    Block,
}

/// An app's before-send moderation hook (docs/webhooks.md §7).
#[derive(Debug, Clone)]
pub struct BeforeSendConfig {
    pub url: Target,
    pub timeout: Duration,
    pub on_failure: OnFailure,
    /// Questions at once; beyond that, `on_failure` decides without asking.
    pub max_in_flight: usize,
    /// Signs the questions when set (the app's webhook secret).
    pub secret: Option<SigningKey>,
}

impl BeforeSendConfig {
    /// Tencent's fixed limit for before-callbacks.
    pub const TIMEOUT: Duration = Duration::from_secs(2);
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(10);
    pub const MAX_IN_FLIGHT: usize = 256;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_http_urls_without_secrets_in_sight() {
        assert!(Target::parse("https://b.example/cb?token=x").is_ok());
        for bad in [
            "ftp://x/",
            "x",
            "http://u:p@h/",
            "http://h/#f",
            "file:///etc",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        let target = Target::parse("https://b.example/cb?token=secret").unwrap();
        assert_eq!(format!("{target:?}"), "https://b.example/cb");
        let url = target.callback_url(1, "Live.X", "RESTAPI");
        assert_eq!(
            url.query(),
            Some(
                "token=secret&SdkAppid=1&CallbackCommand=Live.X&contenttype=json&ClientIP=&OptPlatform=RESTAPI"
            )
        );
    }

    #[test]
    fn secrets_are_standard_webhooks_secrets() {
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(key.bytes().len(), 24);
        assert_eq!(format!("{key:?}"), "SigningKey(…)");
        for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!", "whsec_AAAA"] {
            assert!(SigningKey::parse(bad).is_err(), "{bad}");
        }
    }
}
