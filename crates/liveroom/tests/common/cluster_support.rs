//! Nodes of a cluster as production starts them: `liveroom serve` with a configuration file on
//! the PostgreSQL server of the tests (`TEST_POSTGRES`, started by `scripts/test`),
//! each cluster on a schema of its own.

use std::path::{Path, PathBuf};

use crate::common::{ADMIN, APP, KEY};

pub use liveroom_store::conformance::postgres::{fresh_schema, url as postgres_url};

/// Node `node`'s configuration file in `dir`: the test app (no rate limits in the way), on
/// `schema`, a presence lease of two seconds, with `extra` appended (an `[apps.webhook]` section, say).
pub fn node_config(dir: &Path, node: usize, schema: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("node-{node}.toml"));
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\nnode_id = \"node-{node}\"\n\
         [auth_failure_throttle]\nmax_failures = 0\n\
         [storage]\nbackend = \"postgres\"\n\
         [storage.postgres]\nurl = {url:?}\nschema = \"{schema}\"\npoll_ms = 200\npresence_lease_ms = 2000\n\
         [[apps]]\nsdkappid = {APP}\nsecret_key = \"{KEY}\"\nadmins = [\"{ADMIN}\"]\n\
         [apps.rate_limits]\n\"*\" = 1000000\n{extra}",
        data = dir.join(format!("data-{node}")),
        url = postgres_url(),
    );
    std::fs::write(&path, text).unwrap();
    path
}
