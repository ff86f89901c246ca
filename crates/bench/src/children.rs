//! What the benchmark's child processes run: the real liveroom server, the baseline server,
//! and the preload. They are this same executable started with a hidden subcommand, so the
//! parent can read their CPU time and RSS from `/proc` and pin them apart from the load.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::serve::ListenerExt;
use liveroom_domain::{Metadata, NewRoom, Room, RoomChanges, SystemClock};
use liveroom_server::{AppConfig, RealtimeConfig, SecretKey, ServerConfig, ThrottleConfig};
use liveroom_store::{SqliteOptions, SqliteStore};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// The one app every benchmark server serves.
pub const SDKAPPID: u32 = 1_400_000_000;
pub const SECRET_KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
pub const ADMIN: &str = "administrator";

/// High enough that the limiter never answers 60007: the benchmark measures the server.
pub const RATE_LIMIT: u32 = 10_000_000;

/// `[realtime] max_connections` of the benchmark's server: above any number of connections
/// the real-time scenarios open, which the open-file limit bounds first (docs/protocol.md,
/// "Limits": the default, 10,000, would answer 503 beyond it).
pub const REALTIME_MAX_CONNECTIONS: usize = 1_000_000;

/// Metadata of every preloaded room: three keys with 100-byte values.
pub const PRELOAD_KEYS: [&str; 3] = ["k0", "k1", "k2"];
pub const VALUE_BYTES: usize = 100;

pub fn room_id(index: u64) -> String {
    format!("room-{index}")
}

/// A 100-byte value that differs per room and key, so pages do not compress into each other.
pub fn value(index: u64, key: usize) -> String {
    format!("{:0>width$}", index * 10 + key as u64, width = VALUE_BYTES)
}

pub fn runtime(workers: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn bind_and_announce() -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening {}", listener.local_addr()?)?;
    out.flush()?;
    Ok(listener)
}

/// The real server over a real SQLite store in `data_dir`, with the store's production
/// defaults (WAL, `synchronous=FULL`, group commit). Runs until the parent kills it. With
/// `request_log`, production's log subscriber writes one line per request to stderr, which
/// the parent points at a file; without it no subscriber is installed and logging is free.
pub fn serve_liveroom(data_dir: &Path, workers: usize, request_log: bool) -> anyhow::Result<()> {
    // Held until the process ends, as the liveroom binary holds it. Installed after pinning,
    // so the background writer thread shares the server's CPU, as it would in production.
    let _log_guard = request_log.then(liveroom_server::init_logging);
    let mut app = AppConfig::new(
        SDKAPPID,
        SecretKey::new(SECRET_KEY.into()),
        vec![ADMIN.into()],
    );
    app.limit_every_command(RATE_LIMIT);
    let config = ServerConfig {
        apps: vec![app],
        auth_failure_throttle: ThrottleConfig::off(),
        realtime: RealtimeConfig {
            max_connections: REALTIME_MAX_CONNECTIONS,
            ..Default::default()
        },
        ..Default::default()
    };
    runtime(workers)?.block_on(async {
        let store = SqliteStore::open(SqliteOptions::new(data_dir.join("liveroom.db")))?;
        let listener = bind_and_announce().await?;
        liveroom_server::serve(
            listener,
            store,
            config,
            Arc::new(SystemClock),
            std::future::pending(),
        )
        .await?;
        Ok(())
    })
}

/// What the baseline parses: the fields the benchmark's bodies carry.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BaselineBody {
    room_id: Option<String>,
    room_info: Option<BaselineRoomInfo>,
    metadata: Option<Vec<BaselinePair>>,
    keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BaselineRoomInfo {
    room_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BaselinePair {
    key: String,
    value: String,
}

impl BaselineBody {
    /// A check as small as liveroom's cheapest one, so that every parsed field is used.
    fn is_valid(&self) -> bool {
        let room = self
            .room_id
            .as_deref()
            .or(self.room_info.as_ref().map(|r| r.room_id.as_str()));
        let pairs_ok = self
            .metadata
            .iter()
            .flatten()
            .all(|p| !p.key.is_empty() && p.value.len() <= 2048);
        let keys_ok = self.keys.as_ref().is_none_or(|k| k.len() <= 10);
        room.is_some_and(|r| !r.is_empty()) && pairs_ok && keys_ok
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BaselineEnvelope<'a> {
    action_status: &'static str,
    error_info: &'static str,
    error_code: u32,
    request_id: &'a str,
}

/// The ceiling of the HTTP stack: axum on one route, the body parsed with serde_json into a
/// struct, a Tencent envelope back. No auth, no limits, no storage, no logging.
pub fn serve_baseline(workers: usize) -> anyhow::Result<()> {
    let seq = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/v4/live_engine_http_srv/{command}",
        axum::routing::post(move |body: Bytes| {
            let seq = seq.fetch_add(1, Ordering::Relaxed);
            async move {
                let valid =
                    serde_json::from_slice::<BaselineBody>(&body).is_ok_and(|b| b.is_valid());
                // Same shape and length as liveroom's RequestIds, without the random part's cost.
                let request_id = format!(
                    "Id-{:032x}-O-Seq-{seq}",
                    u128::from(seq).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C834)
                );
                let envelope = BaselineEnvelope {
                    action_status: if valid { "OK" } else { "FAIL" },
                    error_info: if valid { "" } else { "bad body" },
                    error_code: if valid { 0 } else { 100_002 },
                    request_id: &request_id,
                };
                let body = serde_json::to_vec(&envelope).unwrap_or_default();
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    Bytes::from(body),
                )
                    .into_response()
            }
        }),
    );
    runtime(workers)?.block_on(async {
        let listener = bind_and_announce().await?.tap_io(|tcp| {
            // liveroom's listener sets it too.
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// The preloaded rooms (`room-0` …), each with three 100-byte values, created now.
pub fn preloaded_rooms(rooms: u64) -> impl Iterator<Item = (Room, Metadata)> {
    let now = liveroom_domain::Clock::unix_secs(&SystemClock);
    (0..rooms).map(move |i| {
        let room = NewRoom::validate(room_id(i), None, None, ADMIN, RoomChanges::default())
            .expect("benchmark room ids are valid")
            .into_room(now);
        let metadata: Metadata = PRELOAD_KEYS
            .iter()
            .enumerate()
            .map(|(k, key)| ((*key).to_owned(), value(i, k)))
            .collect();
        (room, metadata)
    })
}

/// Writes the [`preloaded_rooms`] straight through the store's bulk import, and closes the
/// store (everything durable) before exiting.
pub fn preload(data_dir: &Path, rooms: u64) -> anyhow::Result<()> {
    let rooms_iter = preloaded_rooms(rooms);
    tokio::runtime::Builder::new_current_thread()
        .build()?
        .block_on(async {
            let store = SqliteStore::open(SqliteOptions::new(data_dir.join("liveroom.db")))?;
            let imported = store.import_rooms(SDKAPPID, rooms_iter).await?;
            liveroom_store::Store::close(&store).await;
            anyhow::ensure!(
                imported as u64 == rooms,
                "imported {imported} of {rooms} rooms"
            );
            Ok(())
        })
}
