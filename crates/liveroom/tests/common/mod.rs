//! Runs the real `liveroom` binary as a child process on loopback.

#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const APP: u32 = 1_400_000_000;
pub const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
pub const ADMIN: &str = "administrator";

/// The longest any single step may take before the test fails instead of hanging.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// POSTs `body` to `url`; the answer's JSON.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> reqwest::Result<serde_json::Value> {
    http.post(url)
        .body(body.to_string())
        .send()
        .await?
        .json()
        .await
}

/// Waits for `child` to exit, killing it (and failing) after `DEADLINE`.
pub fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {DEADLINE:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn liveroom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_liveroom"))
}

/// A config file for one known app with limits high enough for load, in `dir`.
pub fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("liveroom.toml");
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[auth_failure_throttle]\nmax_failures = 0\n\
         [[apps]]\nsdkappid = {APP}\nsecret_key = \"{KEY}\"\nadmins = [\"{ADMIN}\"]\n[apps.rate_limits]\n\"*\" = 1000000\n",
        dir.join("data")
    );
    std::fs::write(&path, text).unwrap();
    path
}

pub struct Running {
    pub child: Child,
    pub base: String,
    /// The rest of stdout, after the "listening" line.
    pub stdout: BufReader<ChildStdout>,
}

/// Starts `command` and waits for its "liveroom listening on http://…" line.
pub fn start(mut command: Command) -> Running {
    command.stderr(Stdio::null()).env("LIVEROOM_LOG", "warn");
    start_with_logs(command)
}

/// Like [`start`], with stderr and the log level as `command` sets them.
pub fn start_with_logs(mut command: Command) -> Running {
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .strip_prefix("liveroom listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    Running {
        child,
        base,
        stdout,
    }
}

impl Running {
    pub fn url(&self, command: &str, usersig: &str) -> String {
        format!(
            "{}/v4/live_engine_http_srv/{command}?sdkappid={APP}&identifier={ADMIN}&usersig={usersig}&random=1&contenttype=json",
            self.base
        )
    }
}

pub fn admin_sig() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    liveroom_usersig::generate(APP, KEY, ADMIN, now, 86_400)
}
