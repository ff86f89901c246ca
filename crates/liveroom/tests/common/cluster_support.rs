//! Nodes of a cluster as production starts them: `liveroom serve` with a configuration file on
//! the PostgreSQL server of the tests (`TEST_POSTGRES`, started by `scripts/test`),
//! each cluster on a schema of its own.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{ADMIN, APP, KEY};

pub fn postgres_url() -> String {
    std::env::var("TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "TEST_POSTGRES is not set: run the tests with scripts/test, which starts \
             a throwaway PostgreSQL"
        )
    })
}

/// A schema no other test uses.
pub fn fresh_schema() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "b{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Node `node`'s configuration file in `dir`: the test app (no rate limits in the way), on
/// `schema`, with `extra` appended (an `[apps.webhook]` section, say).
pub fn node_config(dir: &Path, node: usize, schema: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("node-{node}.toml"));
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\nnode_id = \"node-{node}\"\n\
         [auth_failure_throttle]\nmax_failures = 0\n\
         [storage]\nbackend = \"postgres\"\n\
         [storage.postgres]\nurl = {url:?}\nschema = \"{schema}\"\npoll_ms = 200\n\
         [[apps]]\nsdkappid = {APP}\nsecret_key = \"{KEY}\"\nadmins = [\"{ADMIN}\"]\n\
         [apps.rate_limits]\n\"*\" = 1000000\n{extra}",
        data = dir.join(format!("data-{node}")),
        url = postgres_url(),
    );
    std::fs::write(&path, text).unwrap();
    path
}
