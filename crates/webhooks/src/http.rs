//! The one HTTP client of webhooks and hooks: HTTPS verified against Mozilla's root
//! certificates (ring, rustls), plain HTTP, HTTP/1.1, kept-alive connections, no redirects
//! followed (docs/webhooks.md §2), no proxy from the environment.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Uri, header};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Most bytes of a receiver's answer that are read (to look at its `ErrorCode`).
const ANSWER_MAX_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub(crate) struct HttpClient(Client<HttpsConnector<HttpConnector>, Full<Bytes>>);

/// Why a request got no answer.
#[derive(Debug)]
pub(crate) enum HttpError {
    Timeout,
    Connect(String),
    Other(String),
}

impl HttpError {
    /// How `liveroom_webhook_failures_total` labels it (docs/webhooks.md §6).
    pub fn label(&self) -> &'static str {
        match self {
            HttpError::Timeout => "timeout",
            HttpError::Connect(_) => "connect",
            HttpError::Other(_) => "other",
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Timeout => f.write_str("timed out"),
            HttpError::Connect(why) => write!(f, "cannot connect: {why}"),
            HttpError::Other(why) => f.write_str(why),
        }
    }
}

/// A receiver's answer: its status, and the `ErrorCode` of its body when that is JSON with
/// one (at most [`ANSWER_MAX_BYTES`] are read).
pub(crate) struct Answer {
    pub status: u16,
    pub error_code: Option<i64>,
}

impl HttpClient {
    pub fn new() -> Self {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        // rustls's one compiled-in provider (ring), with its default protocol versions.
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let connector = builder.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self(client)
    }

    /// POSTs `body` as JSON to `url` with `headers`; the whole exchange within `timeout`.
    pub async fn post_json(
        &self,
        url: &url::Url,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Answer, HttpError> {
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|_| HttpError::Other("the URL is not a valid request target".into()))?;
        let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HttpError::Other(e.to_string()))?;
        let exchange = async {
            let response = self.0.request(request).await.map_err(|error| {
                let why = causes(&error);
                if error.is_connect() {
                    HttpError::Connect(why)
                } else {
                    HttpError::Other(why)
                }
            })?;
            let status = response.status().as_u16();
            let answer = Limited::new(response.into_body(), ANSWER_MAX_BYTES)
                .collect()
                .await
                .ok()
                .map(|collected| collected.to_bytes());
            let error_code = answer
                .and_then(|bytes| serde_json::from_slice::<Envelope>(&bytes).ok())
                .and_then(|envelope| envelope.error_code);
            Ok(Answer { status, error_code })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(HttpError::Timeout))
    }
}

/// The one field of a receiver's answer that is read; the others are skipped unparsed.
#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(rename = "ErrorCode")]
    error_code: Option<i64>,
}

/// An error and its causes, in one line.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
