//! Support for `faults.rs`: a server whose log is kept, calls with deadlines, a model of what
//! was acknowledged, and the fault injectors (file-size limit, tmpfs, immutable files, a lock
//! held by another process). Every injector undoes itself on drop, so a failing test leaves no
//! immutable file or mount behind.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{ADMIN, APP, DEADLINE, admin_sig, liveroom, post_json, wait_exit};

/// `liveroom serve --config <config>`, logging at `warn` so that storage errors show.
pub fn serve_command(config: &Path) -> Command {
    let mut command = liveroom();
    command
        .args(["serve", "--config"])
        .arg(config)
        .env("LIVEROOM_LOG", "warn")
        // Start-up errors as a user sees them, without a backtrace.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    command
}

/// Makes the server get EFBIG instead of being killed by SIGXFSZ when it passes a file-size
/// limit, as a service manager that sets a limit should also arrange.
pub fn ignore_sigxfsz(command: &mut Command) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
}

/// A running server. Its stderr (the log) is collected by a thread through a pipe rather than
/// into a file, so a file-size limit on the server cannot stop its log lines.
pub struct Server {
    pub child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    sig: String,
    /// How much of the log `wait_for_log` skips: what came before the last `mark`.
    marked: std::cell::Cell<usize>,
}

/// What a start-up that must fail printed.
pub struct Failed {
    pub status: ExitStatus,
    pub stderr: String,
}

fn collect(
    reader: impl std::io::Read + Send + 'static,
    log: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            let mut log = log.lock().unwrap();
            log.push_str(&strip_colours(&line));
            log.push('\n');
        }
    })
}

/// The log without its ANSI colour sequences (`ESC [ … m`), which it has even into a pipe.
fn strip_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            plain.push(c);
        }
    }
    plain
}

impl Server {
    /// Starts `command` and waits (bounded) for its "listening" line.
    pub fn start(command: Command) -> Server {
        match Self::try_start(command) {
            Ok(server) => server,
            Err(failed) => panic!(
                "server did not start ({}):\n{}",
                failed.status, failed.stderr
            ),
        }
    }

    /// Starts `command`; if it exits before listening, returns its status and stderr.
    pub fn try_start(mut command: Command) -> Result<Server, Failed> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = collect(child.stderr.take().unwrap(), log.clone());
        let (first, first_line) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = first.send(lines.next().and_then(Result::ok));
            // Keep draining so the server never blocks on a full pipe.
            lines.for_each(drop);
        });
        let line = match first_line.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("server printed nothing within {DEADLINE:?}");
            }
        };
        let Some(base) = line
            .as_deref()
            .and_then(|l| l.strip_prefix("liveroom listening on "))
        else {
            let status = wait_exit(&mut child);
            // The pipe's EOF comes with the exit, so this join does not wait long.
            stderr.join().unwrap();
            let stderr = log.lock().unwrap().clone();
            return Err(Failed { status, stderr });
        };
        let base = base.split_whitespace().next().unwrap().to_owned();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let http = reqwest::Client::builder()
            .timeout(DEADLINE)
            .build()
            .unwrap();
        Ok(Server {
            child,
            base,
            log,
            runtime,
            http,
            sig: admin_sig(),
            marked: Default::default(),
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// From now on, `wait_for_log` looks only at lines logged after this call.
    pub fn mark(&self) {
        self.marked.set(self.log.lock().unwrap().len());
    }

    /// Waits (bounded) for a log line since the last `mark` holding every one of `parts`, and
    /// returns it.
    pub fn wait_for_log(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            let recent = &log[self.marked.get()..];
            if let Some(line) = recent.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {parts:?} in:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn assert_no_panic(&self) {
        let log = self.log();
        assert!(!log.contains("panicked"), "server panicked; log:\n{log}");
    }

    /// The process has neither exited nor panicked.
    pub fn assert_alive(&mut self) {
        let status = self.child.try_wait().unwrap();
        assert!(
            status.is_none(),
            "server exited ({status:?}); log:\n{}",
            self.log()
        );
        self.assert_no_panic();
    }

    /// `command` of `live_engine_http_srv`, or `<service>/<command>` of another service.
    fn url(&self, command: &str) -> String {
        let path = if command.contains('/') {
            command.to_owned()
        } else {
            format!("live_engine_http_srv/{command}")
        };
        format!(
            "{}/v4/{path}?sdkappid={APP}&identifier={ADMIN}&usersig={}&random=1&contenttype=json",
            self.base, self.sig
        )
    }

    /// Sends all `requests` at once (so that the server may commit them together); their
    /// `ErrorCode`s in order.
    pub fn codes(&self, requests: &[(&str, Value)]) -> Vec<u64> {
        let calls: Vec<_> = requests
            .iter()
            .map(|(command, body)| {
                let (http, url, body) = (self.http.clone(), self.url(command), body.clone());
                self.runtime.spawn(async move {
                    let answer = post_json(&http, &url, &body).await.unwrap();
                    answer["ErrorCode"].as_u64().unwrap()
                })
            })
            .collect();
        self.runtime.block_on(async {
            let mut codes = Vec::new();
            for call in calls {
                codes.push(call.await.unwrap());
            }
            codes
        })
    }

    /// One request; the whole answer.
    pub fn call(&self, command: &str, body: Value) -> Value {
        let url = self.url(command);
        self.runtime.block_on(async {
            post_json(&self.http, &url, &body)
                .await
                .unwrap_or_else(|e| panic!("{command}: {e}; log:\n{}", self.log()))
        })
    }

    /// One request; its `ErrorCode`.
    pub fn code(&self, command: &str, body: Value) -> u64 {
        let answer = self.call(command, body);
        answer["ErrorCode"]
            .as_u64()
            .unwrap_or_else(|| panic!("{command}: no ErrorCode in {answer}"))
    }

    /// SIGKILL: a crash.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        wait_exit(&mut self.child);
    }

    /// SIGTERM, then waits (bounded) for a clean exit; returns the log.
    pub fn stop(mut self) -> String {
        // SAFETY: a signal to our own child, by its PID.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let status = wait_exit(&mut self.child);
        assert!(
            status.success(),
            "server exited with {status}; log:\n{}",
            self.log()
        );
        self.assert_no_panic();
        self.log()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A test that failed half-way must not leave a server behind.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The acknowledged state: every room a write created and its metadata, as the server last
/// confirmed it. Writes answered 100001 must have changed nothing, so they are not recorded.
#[derive(Default)]
pub struct Model {
    rooms: BTreeMap<String, BTreeMap<String, String>>,
    /// Rooms whose creation was refused: they must not exist.
    refused: Vec<String>,
}

impl Model {
    /// Creates `room`, expecting `expect`; records it when acknowledged.
    pub fn create(&mut self, server: &Server, room: &str, expect: u64) {
        let code = server.code(
            "create_room",
            json!({"RoomInfo": {"RoomId": room, "RoomName": room}}),
        );
        assert_eq!(code, expect, "create_room {room}; log:\n{}", server.log());
        if code == 0 {
            self.rooms.insert(room.to_owned(), BTreeMap::new());
            self.refused.retain(|r| r != room);
        } else if !self.rooms.contains_key(room) {
            self.refused.push(room.to_owned());
        }
    }

    /// Sets `pairs` on `room`, expecting `expect`; records them when acknowledged.
    pub fn set(&mut self, server: &Server, room: &str, pairs: &[(&str, &str)], expect: u64) {
        let metadata: Vec<Value> = pairs
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect();
        let code = server.code(
            "set_room_metadata",
            json!({"RoomId": room, "Metadata": metadata}),
        );
        assert_eq!(
            code,
            expect,
            "set_room_metadata {room}; log:\n{}",
            server.log()
        );
        if code == 0 {
            self.record(room, pairs);
        }
    }

    /// Records `pairs` as acknowledged on `room`.
    pub fn record(&mut self, room: &str, pairs: &[(&str, &str)]) {
        let stored = self
            .rooms
            .get_mut(room)
            .expect("metadata of a room the model knows");
        stored.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
    }

    /// Every acknowledged room reads back exactly as acknowledged; no refused room exists.
    pub fn verify(&self, server: &Server) {
        self.verify_except(server, &[]);
    }

    /// As `verify`, skipping the rooms in `skip` (unreadable on purpose).
    pub fn verify_except(&self, server: &Server, skip: &[&str]) {
        for (room, metadata) in &self.rooms {
            if skip.contains(&room.as_str()) {
                continue;
            }
            let info = server.call("get_room_info", json!({"RoomId": room}));
            assert_eq!(
                info["ErrorCode"],
                0,
                "get_room_info {room}: {info}; log:\n{}",
                server.log()
            );
            assert_eq!(
                info["Response"]["RoomInfo"]["RoomName"],
                room.as_str(),
                "{info}"
            );
            assert_eq!(&read_metadata(server, room), metadata, "metadata of {room}");
        }
        for room in &self.refused {
            let code = server.code("get_room_info", json!({"RoomId": room}));
            assert_eq!(
                code, 100_004,
                "{room} was refused, yet it exists (or the read failed)"
            );
        }
    }
}

pub fn read_metadata(server: &Server, room: &str) -> BTreeMap<String, String> {
    let answer = server.call("get_room_metadata", json!({"RoomId": room, "Keys": []}));
    assert_eq!(
        answer["ErrorCode"],
        0,
        "get_room_metadata {room}: {answer}; log:\n{}",
        server.log()
    );
    answer["Response"]["Metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["Key"].as_str().unwrap().to_owned(),
                p["Value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Sets the soft `RLIMIT_FSIZE` of process `pid` (`None`: unlimited), keeping the hard limit,
/// so that no privilege is needed to lift it again.
pub fn set_file_size_limit(pid: i32, limit: Option<u64>) {
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `current` is a valid out-pointer; a null new limit only reads.
    let read = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, std::ptr::null(), &mut current) };
    assert_eq!(read, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: limit.unwrap_or(libc::RLIM_INFINITY).min(current.rlim_max),
        rlim_max: current.rlim_max,
    };
    // SAFETY: `new` is a valid limit; a null old-limit pointer is allowed.
    let set = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &new, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// A tmpfs mounted for the test's lifetime; lazily unmounted on drop.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` at `path` (created if missing), or says why it cannot.
    pub fn mount(path: &Path, bytes: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).unwrap();
        let c = |s: &str| std::ffi::CString::new(s).unwrap();
        let target = c(path.to_str().unwrap());
        let options = c(&format!("size={bytes},mode=0755"));
        // SAFETY: valid NUL-terminated strings that outlive the call.
        let mounted = unsafe {
            libc::mount(
                c("tmpfs").as_ptr(),
                target.as_ptr(),
                c("tmpfs").as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if mounted != 0 {
            return Err(format!(
                "mounting a tmpfs failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Tmpfs {
            path: path.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = std::ffi::CString::new(self.path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Writes `path` until the filesystem is full; returns the bytes written.
pub fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5a_u8; 64 * 1024];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Flush so the blocks are really taken, not just promised.
    file.sync_all().unwrap();
    written
}

/// Files made immutable (`chattr +i`), which even root cannot write, until dropped.
#[derive(Default)]
pub struct Immutable {
    paths: Vec<PathBuf>,
}

fn chattr(flag: &str, path: &Path) -> Result<(), String> {
    let output = Command::new("chattr")
        .arg(flag)
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run chattr: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "chattr {flag} {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Immutable {
    /// Whether `chattr +i` works in `dir` and stops root from writing; if not, why.
    pub fn check_supported(dir: &Path) -> Result<(), String> {
        let probe = dir.join("immutable-probe");
        std::fs::write(&probe, b"x").unwrap();
        let mut guard = Immutable::default();
        let outcome = guard.add(&probe).and_then(|()| {
            let opened = std::fs::OpenOptions::new().append(true).open(&probe);
            match opened {
                Err(_) => Ok(()),
                Ok(_) => Err("an immutable file stayed writable".to_owned()),
            }
        });
        drop(guard);
        std::fs::remove_file(&probe).unwrap();
        outcome.map_err(|why| format!("`chattr +i` cannot make files read-only here ({why})"))
    }

    pub fn add(&mut self, path: &Path) -> Result<(), String> {
        chattr("+i", path)?;
        self.paths.push(path.to_owned());
        Ok(())
    }

    /// Makes everything writable again.
    pub fn clear(&mut self) {
        for path in self.paths.drain(..).rev() {
            if let Err(e) = chattr("-i", &path) {
                eprintln!("{e}");
            }
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Another process holding a lock on the database, released on drop: the `sqlite3` shell, or
/// (for machines without the shell) a child process taking SQLite's lock itself.
pub struct Holder {
    child: Child,
    /// The holder's input: it ends its transaction, or exits, when this closes, so not even a
    /// killed test leaves it behind.
    stdin: Option<ChildStdin>,
}

impl Holder {
    /// The `sqlite3` shell inside `BEGIN EXCLUSIVE`, or why there is none. With
    /// `locking_mode` it takes the database file for itself (no reader can open it), else only
    /// the write lock, as any writer in WAL mode does.
    pub fn shell(db: &Path, exclusive_locking_mode: bool) -> Result<Holder, String> {
        // -bail: a failed BEGIN ends the shell instead of reporting a lock it does not hold.
        let mut child = Command::new("sqlite3")
            .arg("-bail")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("the sqlite3 shell cannot run: {e}"))?;
        let mut stdin = child.stdin.take().unwrap();
        if exclusive_locking_mode {
            stdin
                .write_all(b"PRAGMA locking_mode = EXCLUSIVE;\n")
                .unwrap();
        }
        // The shell's busy timeout rides out a commit of the server in progress.
        stdin
            .write_all(b".timeout 10000\nBEGIN EXCLUSIVE;\nSELECT 'LOCK-HELD';\n")
            .unwrap();
        stdin.flush().unwrap();
        wait_for_line(child.stdout.take().unwrap(), "LOCK-HELD");
        Ok(Holder {
            child,
            stdin: Some(stdin),
        })
    }

    /// What a writer holds in WAL mode: a POSIX write lock on byte 120 of `<db>-shm`.
    pub fn raw_write_lock(db: &Path) -> Holder {
        Self::raw(&beside(db, "-shm"), 120, 1)
    }

    /// What `locking_mode = EXCLUSIVE` holds: a POSIX write lock on the database file's
    /// pending, reserved and shared bytes (from offset 2^30), so nobody can even read.
    pub fn raw_exclusive_lock(db: &Path) -> Holder {
        Self::raw(db, 1 << 30, 512)
    }

    /// POSIX locks belong to a process, so the test binary re-runs itself as a child that
    /// takes the lock (see `raw_lock_child`).
    fn raw(path: &Path, start: u64, len: u64) -> Holder {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(RAW_LOCK_ENV, format!("{start}:{len}:{}", path.display()))
            .args([
                "--exact",
                "raw_lock_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_line(child.stdout.take().unwrap(), "LOCK-HELD");
        let stdin = child.stdin.take();
        Holder { child, stdin }
    }

    /// Ends the transaction (or the lock) and waits for the holder to exit.
    pub fn release(mut self) {
        let mut stdin = self.stdin.take().unwrap();
        // The shell commits and quits; the raw holder ignores this and exits at EOF.
        let _ = stdin.write_all(b"COMMIT;\n.quit\n");
        drop(stdin);
        let status = wait_exit(&mut self.child);
        assert!(status.success(), "lock holder: {status}");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `<db><suffix>`, e.g. the WAL beside the database.
pub fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// Waits (bounded) for `reader` to print `expected` as a line, then keeps draining it.
fn wait_for_line(reader: impl std::io::Read + Send + 'static, expected: &str) {
    let (seen, seen_line) = mpsc::channel();
    let expected = expected.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if line.contains(&expected) {
                let _ = seen.send(());
            }
        }
    });
    seen_line
        .recv_timeout(DEADLINE)
        .expect("the lock holder did not report the lock");
}

pub const RAW_LOCK_ENV: &str = "LIVEROOM_FAULTS_RAW_LOCK";

/// The child side of `Holder::raw`: takes the POSIX write lock that `RAW_LOCK_ENV` describes
/// (`start:len:path`), prints "LOCK-HELD" and holds it until its input closes.
pub fn raw_lock_child() {
    let Ok(spec) = std::env::var(RAW_LOCK_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, ':');
    let mut number = || parts.next().unwrap().parse::<i64>().unwrap();
    let (start, len) = (number(), number());
    let path = parts.next().unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let lock = libc::flock {
        l_type: libc::F_WRLCK as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: start,
        l_len: len,
        l_pid: 0,
    };
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor and lock description; F_SETLKW waits for the lock.
    let locked = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLKW, &lock) };
    assert_eq!(locked, 0, "fcntl: {}", std::io::Error::last_os_error());
    println!("LOCK-HELD");
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).unwrap();
}
