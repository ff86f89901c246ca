//! An in-process harness: the real server on 127.0.0.1:0 with a clock the test moves, spoken
//! to over HTTP.

#![allow(dead_code)] // each test file uses its own part of the harness

use std::sync::Arc;
use std::time::Duration;

use liveroom_domain::ManualClock;
use liveroom_server::{AppConfig, SecretKey, ServerConfig};
use liveroom_store::Store;
use serde_json::Value;
use tokio::sync::oneshot;

pub const APP: u32 = 1_400_000_000;
pub const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
pub const ADMIN: &str = "administrator";
/// A fixed "now" (Unix seconds) at which every test starts.
pub const START: u64 = 1_700_000_000;

pub fn app() -> AppConfig {
    AppConfig::new(
        APP,
        SecretKey::new(KEY.into()),
        vec![ADMIN.into(), "admin2".into()],
    )
}

pub fn config() -> ServerConfig {
    ServerConfig {
        apps: vec![app()],
        ..Default::default()
    }
}

pub struct TestServer {
    pub base: String,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start<S: Store>(store: S, config: ServerConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let clock = ManualClock::at(Duration::from_secs(START));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(liveroom_server::serve(
            listener,
            store,
            config,
            Arc::new(clock.clone()),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            base,
            clock,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The server on the store the suite runs on: in memory, or (`TEST_STORE`) on a
    /// PostgreSQL schema of its own, `postgres` with NOTIFY, `postgres-poll` without.
    pub async fn new() -> Self {
        Self::on_test_store(config()).await
    }

    /// As [`TestServer::new`], with `config`.
    pub async fn on_test_store(config: ServerConfig) -> Self {
        let store = std::env::var("TEST_STORE").unwrap_or_default();
        match store.as_str() {
            "" | "memory" => Self::start(liveroom_store::MemoryStore::new(), config).await,
            "postgres" | "postgres-poll" => {
                let node = postgres::node(&postgres::fresh_schema(), store == "postgres").await;
                Self::start(node, config).await
            }
            other => panic!("TEST_STORE={other:?}: memory, postgres or postgres-poll"),
        }
    }

    /// `nodes` servers sharing one PostgreSQL schema: a cluster (docs/cluster.md).
    pub async fn cluster(nodes: usize, config: ServerConfig, notify: bool) -> Vec<Self> {
        let schema = postgres::fresh_schema();
        let mut servers = Vec::with_capacity(nodes);
        for _ in 0..nodes {
            servers.push(Self::start(postgres::node(&schema, notify).await, config.clone()).await);
        }
        servers
    }

    /// Asks the server to stop the way SIGTERM does, without waiting for it.
    pub fn request_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Whether `serve` has returned.
    pub fn has_exited(&self) -> bool {
        self.task.as_ref().is_none_or(|task| task.is_finished())
    }

    /// Stops the server the way SIGTERM does, and waits until the store is closed.
    pub async fn stop(mut self) {
        self.request_stop();
        self.task.take().unwrap().await.unwrap().unwrap();
    }

    /// The address the server listens on, for raw TCP.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base.trim_start_matches("http://").parse().unwrap()
    }

    /// The real-time endpoint's URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/realtime", self.addr())
    }

    /// Real-time credentials of `user` of the test app.
    pub fn credentials(&self, user: &str) -> liveroom_client::Credentials {
        liveroom_client::Credentials {
            sdkappid: APP,
            userid: user.into(),
            usersig: self.sig(user),
        }
    }

    /// A real-time client of `user`, past its hello.
    pub async fn connect(&self, user: &str) -> liveroom_client::Client {
        liveroom_client::Client::connect(&self.ws_url(), &self.credentials(user))
            .await
            .unwrap()
    }

    pub fn sig(&self, identifier: &str) -> String {
        liveroom_usersig::generate(APP, KEY, identifier, START, 86_400)
    }

    /// The URL of `command` called as the App administrator.
    pub fn url(&self, command: &str) -> String {
        self.url_with(
            command,
            &format!(
                "sdkappid={APP}&identifier={ADMIN}&usersig={}&random=99999999&contenttype=json",
                self.sig(ADMIN)
            ),
        )
    }

    /// `command` is a command of `live_engine_http_srv`, or `<service>/<command>` of another
    /// service (`profile/portrait_get`).
    pub fn url_with(&self, command: &str, query: &str) -> String {
        let path = if command.contains('/') {
            command.to_owned()
        } else {
            format!("live_engine_http_srv/{command}")
        };
        format!("{}/v4/{path}?{query}", self.base)
    }

    pub async fn post_raw(&self, url: &str, body: impl Into<reqwest::Body>) -> Value {
        let response = self
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        response.json().await.unwrap()
    }

    /// Sends `body` to `url` with `method` and returns the answer's exact bytes, after checking
    /// the status (always 200) and the content type.
    pub async fn bytes_with(
        &self,
        method: reqwest::Method,
        url: &str,
        body: impl Into<reqwest::Body>,
    ) -> Vec<u8> {
        let response = self
            .http
            .request(method, url)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        response.bytes().await.unwrap().to_vec()
    }

    /// The exact answer to `command` called as the App administrator with `body` as is,
    /// with its `RequestId` checked and replaced by `<ID>` (see [`with_placeholder_id`]).
    pub async fn answer(&self, command: &str, body: &str) -> String {
        with_placeholder_id(
            &self
                .bytes_with(reqwest::Method::POST, &self.url(command), body.to_owned())
                .await,
        )
    }

    /// Calls `command` as the App administrator.
    pub async fn call(&self, command: &str, body: Value) -> Value {
        self.post_raw(&self.url(command), body.to_string()).await
    }

    /// Calls `command` and asserts success; returns `Response` (or null).
    pub async fn ok(&self, command: &str, body: Value) -> Value {
        let answer = self.call(command, body).await;
        assert_eq!(answer["ErrorCode"], 0, "{command}: {answer}");
        assert_eq!(answer["ActionStatus"], "OK");
        answer.get("Response").cloned().unwrap_or(Value::Null)
    }

    /// Calls `command` and returns its `ErrorCode`.
    pub async fn code(&self, command: &str, body: Value) -> u64 {
        code_of(&self.call(command, body).await)
    }
}

pub fn code_of(answer: &Value) -> u64 {
    let code = answer["ErrorCode"].as_u64().unwrap();
    assert_eq!(
        answer["ActionStatus"],
        if code == 0 { "OK" } else { "FAIL" },
        "{answer}"
    );
    if code != 0 {
        assert!(
            !answer["ErrorInfo"].as_str().unwrap().is_empty(),
            "{answer}"
        );
    }
    code
}

/// Checks that `answer` holds exactly one `"RequestId":"…"` of Tencent's shape,
/// `Id-<32 lowercase hex>-O-Seq-<decimal>`, and returns the answer as text with that value
/// replaced by `<ID>`, so that the rest can be compared byte for byte.
pub fn with_placeholder_id(answer: &[u8]) -> String {
    let text = std::str::from_utf8(answer).expect("the answer is UTF-8");
    const FIELD: &str = "\"RequestId\":\"";
    assert_eq!(text.matches(FIELD).count(), 1, "one RequestId: {text}");
    let start = text.find(FIELD).unwrap() + FIELD.len();
    let len = text[start..].find('"').expect("RequestId is closed");
    let id = &text[start..start + len];
    assert!(
        is_request_id(id),
        "RequestId {id:?} is not of Tencent's shape"
    );
    format!("{}<ID>{}", &text[..start], &text[start + len..])
}

/// `Id-<32 lowercase hex>-O-Seq-<decimal>`.
pub fn is_request_id(id: &str) -> bool {
    let Some((hex, seq)) = id
        .strip_prefix("Id-")
        .and_then(|rest| rest.split_once("-O-Seq-"))
    else {
        return false;
    };
    hex.len() == 32
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && !seq.is_empty()
        && seq.bytes().all(|b| b.is_ascii_digit())
}

// Real-time test helpers, shared by the files that speak the protocol.

/// Every wait in these tests has this deadline; none sleeps.
pub async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("in time")
}

pub fn server_code(error: liveroom_client::Error) -> u64 {
    match error {
        liveroom_client::Error::Server { code, .. } => code,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

pub fn close_code(error: liveroom_client::Error) -> u16 {
    match error {
        liveroom_client::Error::Closed { code, .. } => code,
        other => panic!("expected a close, got {other:?}"),
    }
}

/// A room owned by `owner`, created over REST.
pub async fn create_room(server: &TestServer, room: &str, owner: &str) {
    server
        .ok(
            "create_room",
            serde_json::json!({"RoomInfo": {"RoomId": room, "Owner_Account": owner}}),
        )
        .await;
}

pub async fn rest_set(server: &TestServer, room: &str, key: &str, value: &str) {
    server
        .ok(
            "set_room_metadata",
            serde_json::json!({"RoomId": room, "Metadata": [{"Key": key, "Value": value}]}),
        )
        .await;
}

/// The next room event or control event of `client`; live events (presence, messages) are
/// skipped.
pub async fn next_room_event(client: &mut liveroom_client::Client) -> liveroom_client::Event {
    loop {
        let event = within(client.next_event()).await.unwrap();
        if event.position.is_some() || event.ev.starts_with("sub.") {
            return event;
        }
    }
}

/// The PostgreSQL server of the tests: the one `TEST_POSTGRES` names (`scripts/test`
/// starts a throwaway one).
pub mod postgres {
    use std::time::Duration;

    use liveroom_store::{PostgresOptions, PostgresStore};

    pub use liveroom_store::conformance::postgres::{fresh_schema, url};

    /// A node on `schema`; without `notify`, other nodes' changes come only with the poll.
    pub async fn node(schema: &str, notify: bool) -> PostgresStore {
        let mut options = PostgresOptions::new(url());
        options.schema = Some(schema.to_owned());
        options.pool_size = 8;
        options.notify = notify;
        options.poll = POLL;
        PostgresStore::open(options).await.unwrap()
    }

    /// How often the test nodes read the feed whatever the notifications say.
    pub const POLL: Duration = Duration::from_millis(200);

    /// The one number `sql` answers, run on the test server outside any node.
    pub async fn number(sql: &str) -> i64 {
        let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        let number = client.query_one(sql, &[]).await.unwrap().get(0);
        drop(client);
        let _ = driver.await;
        number
    }
}
