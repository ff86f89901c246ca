//! The scenarios of issue 3 as workloads: which requests each connection sends, and the
//! target each one is held to.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use hyper::Uri;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::children::{ADMIN, SDKAPPID, VALUE_BYTES, room_id};
use crate::load::{Pace, Script, Step, Workload};

/// The request URIs, each carrying a real UserSig valid for the whole run.
pub struct Api {
    get: Uri,
    set: Uri,
    del: Uri,
    create: Uri,
    destroy: Uri,
    /// What every set writes: a value of the preloaded size, so a set replaces like with like.
    value: String,
}

impl Api {
    pub fn new(usersig: &str) -> anyhow::Result<Arc<Self>> {
        let uri = |command: &str| -> anyhow::Result<Uri> {
            Ok(format!(
                "/v4/live_engine_http_srv/{command}?sdkappid={SDKAPPID}&identifier={ADMIN}\
                 &usersig={usersig}&random=12345678&contenttype=json"
            )
            .parse()?)
        };
        Ok(Arc::new(Self {
            get: uri("get_room_metadata")?,
            set: uri("set_room_metadata")?,
            del: uri("del_room_metadata")?,
            create: uri("create_room")?,
            destroy: uri("destroy_room")?,
            value: "v".repeat(VALUE_BYTES),
        }))
    }

    pub fn get(&self, room: u64) -> Step {
        step(
            &self.get,
            format!(r#"{{"RoomId":"{}","Keys":[]}}"#, room_id(room)),
        )
    }

    fn set(&self, room: u64, key: &str) -> Step {
        self.set_value(room, key, &self.value)
    }

    /// `set_room_metadata` of one key to `value` (which must need no JSON escaping).
    pub fn set_value(&self, room: u64, key: &str, value: &str) -> Step {
        step(
            &self.set,
            format!(
                r#"{{"RoomId":"{}","Metadata":[{{"Key":"{key}","Value":"{value}"}}]}}"#,
                room_id(room),
            ),
        )
    }
}

fn step(uri: &Uri, body: String) -> Step {
    Step {
        uri: uri.clone(),
        body: Bytes::from(body),
        measured: true,
    }
}

/// What a scenario is held to (issue 3's targets table).
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// Throughput at least this fraction of the baseline's.
    Ratio(f64),
    /// p99 latency at most this many milliseconds, with the offered rate achieved.
    P99Ms(f64),
}

pub struct Scenario {
    pub name: &'static str,
    pub pace: Pace,
    pub workload: Workload,
    pub target: Option<Target>,
}

/// Every scenario run against the main server, whose data dir holds `rooms` preloaded rooms.
pub fn all(api: &Arc<Api>, rooms: u64, open_rate: f64) -> Vec<Scenario> {
    let open = Pace::Open { rate: open_rate };
    vec![
        Scenario {
            name: "get_room_metadata",
            pace: Pace::Closed,
            workload: random_get(api, rooms),
            // With request logging on, as in production.
            target: Some(Target::Ratio(0.75)),
        },
        Scenario {
            name: "set_room_metadata, many rooms",
            pace: Pace::Closed,
            workload: random_set(api, rooms),
            target: Some(Target::Ratio(0.50)),
        },
        Scenario {
            name: "set_room_metadata, one hot room",
            pace: Pace::Closed,
            workload: hot_set(api),
            target: Some(Target::Ratio(0.30)),
        },
        Scenario {
            name: "del_room_metadata (after a set)",
            pace: Pace::Closed,
            workload: set_then_delete(api, rooms),
            target: None,
        },
        Scenario {
            name: "create_room + destroy_room",
            pace: Pace::Closed,
            workload: create_destroy(api),
            target: None,
        },
        Scenario {
            name: "mixed 90% get / 10% set",
            pace: Pace::Closed,
            workload: mix(api, rooms),
            target: Some(Target::Ratio(0.60)),
        },
        Scenario {
            name: "open loop: get_room_metadata",
            pace: open,
            workload: random_get(api, rooms),
            target: Some(Target::P99Ms(2.0)),
        },
        Scenario {
            name: "open loop: set_room_metadata",
            pace: open,
            workload: random_set(api, rooms),
            target: Some(Target::P99Ms(5.0)),
        },
    ]
}

fn rng(connection: usize) -> SmallRng {
    SmallRng::seed_from_u64(0x5EED ^ connection as u64)
}

/// `get_room_metadata` (all keys) of a random room.
pub fn random_get(api: &Arc<Api>, rooms: u64) -> Workload {
    let api = Arc::clone(api);
    Arc::new(move |connection, _| {
        let api = Arc::clone(&api);
        let mut rng = rng(connection);
        Box::new(move || Some(api.get(rng.random_range(0..rooms)))) as Script
    })
}

/// `set_room_metadata` of one key of a random room.
pub fn random_set(api: &Arc<Api>, rooms: u64) -> Workload {
    let api = Arc::clone(api);
    Arc::new(move |connection, _| {
        let api = Arc::clone(&api);
        let mut rng = rng(connection);
        Box::new(move || Some(api.set(rng.random_range(0..rooms), "k1"))) as Script
    })
}

/// Every connection writes the same key of `room-0`.
fn hot_set(api: &Arc<Api>) -> Workload {
    let api = Arc::clone(api);
    Arc::new(move |_, _| {
        let api = Arc::clone(&api);
        Box::new(move || Some(api.set(0, "k1"))) as Script
    })
}

/// Sets key `d` of a random room, then deletes it; only the delete is measured. Connection
/// `i` uses only rooms `i`, `i + n`, `i + 2n`, … so that no room ever holds two pending
/// `d`s (which is why the main data set needs at least as many rooms as connections).
fn set_then_delete(api: &Arc<Api>, rooms: u64) -> Workload {
    let api = Arc::clone(api);
    Arc::new(move |connection, connections| {
        let api = Arc::clone(&api);
        let mut rng = rng(connection);
        let (first, stride) = (connection as u64, connections as u64);
        let mine = rooms.saturating_sub(first).div_ceil(stride).max(1);
        let mut pending = None;
        Box::new(move || {
            Some(match pending.take() {
                None => {
                    let room = first + stride * rng.random_range(0..mine);
                    pending = Some(room);
                    Step {
                        measured: false,
                        ..api.set(room, "d")
                    }
                }
                Some(room) => step(
                    &api.del,
                    format!(r#"{{"RoomId":"{}","Keys":["d"]}}"#, room_id(room)),
                ),
            })
        }) as Script
    })
}

/// Creates a room with a RoomId never used before (the same RoomId may be created only once
/// a second), then destroys it. Both requests are measured.
fn create_destroy(api: &Arc<Api>) -> Workload {
    let api = Arc::clone(api);
    let next_id = Arc::new(AtomicU64::new(0));
    Arc::new(move |_, _| {
        let api = Arc::clone(&api);
        let next_id = Arc::clone(&next_id);
        let mut pending: Option<u64> = None;
        Box::new(move || {
            Some(match pending.take() {
                None => {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    pending = Some(id);
                    step(
                        &api.create,
                        format!(r#"{{"RoomInfo":{{"RoomId":"cycle-{id}"}}}}"#),
                    )
                }
                Some(id) => step(&api.destroy, format!(r#"{{"RoomId":"cycle-{id}"}}"#)),
            })
        }) as Script
    })
}

/// 90 % `get_room_metadata`, 10 % `set_room_metadata`, random rooms.
fn mix(api: &Arc<Api>, rooms: u64) -> Workload {
    let api = Arc::clone(api);
    Arc::new(move |connection, _| {
        let api = Arc::clone(&api);
        let mut rng = rng(connection);
        Box::new(move || {
            let room = rng.random_range(0..rooms);
            Some(if rng.random_ratio(9, 10) {
                api.get(room)
            } else {
                api.set(room, "k1")
            })
        }) as Script
    })
}

/// Reads every room once (connection `i` reads rooms `i`, `i + n`, …), then stops.
pub fn read_every_room(api: &Arc<Api>, rooms: u64) -> Workload {
    let api = Arc::clone(api);
    Arc::new(move |connection, connections| {
        let api = Arc::clone(&api);
        let mut rooms_left = (connection as u64..rooms).step_by(connections);
        Box::new(move || rooms_left.next().map(|room| api.get(room))) as Script
    })
}
