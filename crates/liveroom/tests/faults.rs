//! Disk trouble (issue 4): a full disk, a read-only data directory, the database locked by
//! another process, a corrupted database. Each fault must give a clear log line and 100001
//! answers (or a clear start-up error), never a panic or a lost acknowledged write, and service
//! must resume once the fault clears.
//!
//! Faults that need a privilege (a tmpfs mount, `chattr +i`) are tried first; where the machine
//! does not allow them the test prints "skipped because …" and passes.

mod common;
#[path = "common/faults_support.rs"]
mod faults_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faults_support::*;
use serde_json::json;

/// Storage failed; nothing was applied.
const INTERNAL: u64 = 100_001;

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
    db: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(dir.path());
    let data = dir.path().join("data");
    let db = data.join("liveroom.db");
    Setup {
        _dir: dir,
        config,
        data,
        db,
    }
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A server with one room, `before`, holding one key.
fn start_with_a_room(command: std::process::Command) -> (Server, Model) {
    let server = Server::start(command);
    let mut model = Model::default();
    model.create(&server, "before", 0);
    model.set(&server, "before", &[("k", "v1")], 0);
    (server, model)
}

/// While a write fault lasts: writes answer 100001 and change nothing, the store and the server
/// each log a line holding `cause` (returned), reads are served, the process lives on.
fn writes_fail_reads_work(server: &mut Server, model: &mut Model, cause: &str) -> String {
    model.create(server, "during", INTERNAL);
    model.set(server, "before", &[("k", "v2")], INTERNAL);
    let line = server.wait_for_log(&["sqlite store", cause]);
    server.wait_for_log(&["storage failed; request not applied", cause]);
    server.assert_alive();
    model.verify(server);
    line
}

/// Once the fault cleared: the writes that failed succeed now, at once.
fn writes_work_again(server: &mut Server, model: &mut Model) {
    model.create(server, "during", 0);
    model.set(server, "before", &[("k", "v3")], 0);
    model.create(server, "after", 0);
    server.assert_alive();
    model.verify(server);
}

/// Stops `server`, starts a fresh one on the same data and checks every acknowledged write.
fn restart_and_verify(server: Server, setup: &Setup, model: &Model) {
    server.stop();
    start_and_verify(setup, model);
}

/// Starts the server on `setup`'s data, checks every acknowledged write, and stops it.
fn start_and_verify(setup: &Setup, model: &Model) {
    let server = Server::start(serve_command(&setup.config));
    model.verify(&server);
    server.stop();
}

/// A start-up that must fail, and its error on stderr, which must hold every one of `parts`.
fn start_up_fails(setup: &Setup, parts: &[&str]) -> String {
    let failed = Server::try_start(serve_command(&setup.config))
        .err()
        .expect("start-up must fail");
    assert!(!failed.status.success());
    for part in parts {
        assert!(
            failed.stderr.contains(part),
            "no {part:?} in:\n{}",
            failed.stderr
        );
    }
    assert!(!failed.stderr.contains("panicked"), "{}", failed.stderr);
    failed.stderr
}

/// The error itself, without the log lines before it.
fn error_lines(stderr: &str) -> String {
    let start = stderr.find("Error:").unwrap_or(0);
    stderr[start..].trim().replace("\n\n", "\n")
}

#[test]
fn disk_full_by_file_size_limit_answers_100001_and_resumes() {
    let s = setup();
    let mut command = serve_command(&s.config);
    ignore_sigxfsz(&mut command);
    let (mut server, mut model) = start_with_a_room(command);

    // No file may grow past its size now. Every commit appends to the WAL (it is rewound only
    // after a checkpoint, which takes 1000 pages), so every commit needs it to grow; reads
    // write nothing.
    let limit = len(&s.db).max(len(&beside(&s.db, "-wal")));
    server.mark();
    set_file_size_limit(server.pid(), Some(limit));
    let line = writes_fail_reads_work(&mut server, &mut model, "File too large");
    println!("file-size limit: store's log line: {line}");

    set_file_size_limit(server.pid(), None);
    writes_work_again(&mut server, &mut model);

    // A crash while the fault lasts (the WAL may end in a torn frame) loses nothing either.
    set_file_size_limit(server.pid(), Some(len(&beside(&s.db, "-wal"))));
    model.create(&server, "crash", INTERNAL);
    server.kill();
    start_and_verify(&s, &model);
}

#[test]
fn disk_full_on_a_small_tmpfs_answers_100001_and_resumes() {
    let s = setup();
    let tmpfs = match Tmpfs::mount(&s.data, 4 << 20) {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            println!("skipped because {why}");
            return;
        }
    };
    // Written now, while there is room: a second server's config, for a new data directory.
    let fresh = s.data.join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let fresh_config = common::write_config(&fresh);
    let filler = s.data.join("filler");
    let (mut server, mut model) = start_with_a_room(serve_command(&s.config));

    server.mark();
    fill(&filler);
    let line = writes_fail_reads_work(&mut server, &mut model, "database or disk is full");
    println!("full tmpfs: store's log line: {line}");

    std::fs::remove_file(&filler).unwrap();
    writes_work_again(&mut server, &mut model);
    // Stopping while the disk is full: a clean exit; what the final checkpoint could not copy
    // stays in the WAL.
    model.set(&server, "before", &[("k", "v4")], 0);
    fill(&filler);
    let log = server.stop();
    let checkpoint = log.lines().filter(|l| l.contains("checkpoint"));
    println!(
        "stopped on a full disk: {:?}",
        checkpoint.collect::<Vec<_>>()
    );
    std::fs::remove_file(&filler).unwrap();
    start_and_verify(&s, &model);

    // A full disk at start-up. With a database there, the server starts (it needs no new
    // space to read), answers writes 100001, and resumes when space is freed.
    fill(&filler);
    let mut server = Server::start(serve_command(&s.config));
    model.verify(&server);
    model.create(&server, "at-start", INTERNAL);
    server.wait_for_log(&["sqlite store", "database or disk is full"]);
    std::fs::remove_file(&filler).unwrap();
    model.create(&server, "at-start", 0);
    server.assert_alive();
    // Creating a database takes space: a new data directory on the full disk is a start-up
    // error that names the file.
    fill(&filler);
    let fresh_db = fresh.join("data").join("liveroom.db");
    let failed = Server::try_start(serve_command(&fresh_config))
        .err()
        .expect("start-up on a full disk must fail");
    assert!(!failed.status.success());
    assert!(
        failed.stderr.contains(fresh_db.to_str().unwrap()),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains("full"), "{}", failed.stderr);
    assert!(!failed.stderr.contains("panicked"), "{}", failed.stderr);
    println!(
        "new database on a full tmpfs: {}",
        error_lines(&failed.stderr)
    );
    std::fs::remove_file(&filler).unwrap();
    restart_and_verify(server, &s, &model);
    drop(tmpfs);
}

#[test]
fn read_only_data_directory_answers_100001_and_resumes() {
    let s = setup();
    std::fs::create_dir_all(&s.data).unwrap();
    if let Err(why) = Immutable::check_supported(&s.data) {
        println!("skipped because {why}");
        return;
    }
    let (mut server, mut model) = start_with_a_room(serve_command(&s.config));

    // While running: the database, its WAL and the directory become immutable (nothing can be
    // written or created, root included). Not `-shm`: SQLite writes it through a shared
    // mapping, where a refused write is a SIGBUS, not an error; an emergency read-only remount
    // of the whole file system is not something a test can do.
    let mut read_only = Immutable::default();
    server.mark();
    for path in [s.db.clone(), beside(&s.db, "-wal"), s.data.clone()] {
        read_only.add(&path).unwrap();
    }
    let line = writes_fail_reads_work(&mut server, &mut model, "Operation not permitted");
    println!("read-only data directory: store's log line: {line}");

    read_only.clear();
    writes_work_again(&mut server, &mut model);
    server.stop();

    // At start-up. The database file alone (SQLite would quietly open it read-only):
    read_only.add(&s.db).unwrap();
    let stderr = start_up_fails(&s, &[s.db.to_str().unwrap(), "for writing"]);
    println!("read-only database file: {}", error_lines(&stderr));
    read_only.clear();
    // The directory alone, when SQLite must create its `-wal` and `-shm` files (a clean stop
    // leaves them, empty; removing them then is safe):
    for suffix in ["-wal", "-shm"] {
        std::fs::remove_file(beside(&s.db, suffix)).unwrap();
    }
    read_only.add(&s.data).unwrap();
    let stderr = start_up_fails(&s, &[s.db.to_str().unwrap(), "directory must be writable"]);
    println!(
        "read-only directory, writable files: {}",
        error_lines(&stderr)
    );
    read_only.clear();
    // Everything:
    for entry in std::fs::read_dir(&s.data).unwrap() {
        read_only.add(&entry.unwrap().path()).unwrap();
    }
    read_only.add(&s.data).unwrap();
    let stderr = start_up_fails(&s, &[s.data.to_str().unwrap(), "Operation not permitted"]);
    println!(
        "read-only data directory and files: {}",
        error_lines(&stderr)
    );
    read_only.clear();

    start_and_verify(&s, &model);
}

#[test]
fn database_locked_by_another_process_answers_100001_and_resumes() {
    let s = setup();
    let (mut server, mut model) = start_with_a_room(serve_command(&s.config));

    for (round, kind) in ["raw WAL write lock", "sqlite3 shell"]
        .into_iter()
        .enumerate()
    {
        server.mark();
        let holder = if round == 0 {
            Holder::raw_write_lock(&s.db)
        } else {
            match Holder::shell(&s.db, false) {
                Ok(shell) => shell,
                Err(why) => {
                    println!("sqlite3 shell part skipped because {why}");
                    break;
                }
            }
        };
        let room = format!("during-{round}");
        let started = Instant::now();
        model.create(&server, &room, INTERNAL);
        // The store waits out its busy timeout (5 s), no longer.
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(20), "{kind}: {waited:?}");
        let line = server.wait_for_log(&["sqlite store", "database is locked"]);
        println!("{kind}: answered after {waited:?}; store's log line: {line}");
        server.assert_alive();
        // Reads do not need the write lock.
        model.verify(&server);

        holder.release();
        model.create(&server, &room, 0);
        model.set(&server, "before", &[("k", &room)], 0);
        server.assert_alive();
        model.verify(&server);
    }
    server.stop();

    // At start-up, a process holding the whole file (`locking_mode = EXCLUSIVE`): a start-up
    // error, after the same busy timeout.
    let holder = Holder::shell(&s.db, true).unwrap_or_else(|why| {
        println!("{why}: holding the file's lock directly");
        Holder::raw_exclusive_lock(&s.db)
    });
    let stderr = start_up_fails(&s, &[s.db.to_str().unwrap(), "database is locked"]);
    println!("locked at start-up: {}", error_lines(&stderr));
    holder.release();
    start_and_verify(&s, &model);
}

/// The child process of `Holder::raw_*`; does nothing when run as a test.
#[test]
fn raw_lock_child() {
    faults_support::raw_lock_child();
}

#[test]
fn corrupted_database_header_stops_start_up_with_the_file_named() {
    let s = setup();
    let (server, model) = start_with_a_room(serve_command(&s.config));
    let original = stop_and_read_database(server, &s);
    let mut corrupted = original.clone();
    corrupted[..100].fill(b'#');
    std::fs::write(&s.db, &corrupted).unwrap();
    let stderr = start_up_fails(&s, &[s.db.to_str().unwrap(), "not a database"]);
    println!("corrupted header: {}", error_lines(&stderr));

    // Restored (from a backup, say): everything is back.
    std::fs::write(&s.db, &original).unwrap();
    start_and_verify(&s, &model);
}

/// Stops `server` cleanly and returns the database file, which then holds everything.
fn stop_and_read_database(server: Server, s: &Setup) -> Vec<u8> {
    server.stop();
    let wal = len(&beside(&s.db, "-wal"));
    assert_eq!(
        wal, 0,
        "a clean stop leaves everything in the database file"
    );
    std::fs::read(&s.db).unwrap()
}

/// Pages of the database file (numbered from 0) that are b-tree leaves of the `rooms` table
/// and hold `needle`.
fn leaf_pages_holding(file: &[u8], page_size: usize, needle: &[u8]) -> Vec<usize> {
    let holds = |page: &[u8], needle: &[u8]| page.windows(needle.len()).any(|w| w == needle);
    file.chunks(page_size)
        .enumerate()
        // 0x0a: "leaf index b-tree page", where a WITHOUT ROWID table's rows live. The event
        // log's leaves hold the same values, inside `{"set":…}` changes.
        .filter(|(_, page)| page[0] == 0x0a && holds(page, needle) && !holds(page, b"{\"set\":"))
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn corrupted_data_page_answers_100001_for_what_it_holds_and_serves_the_rest() {
    let s = setup();
    let server = Server::start(serve_command(&s.config));
    let mut model = Model::default();
    // About a page of metadata per room, so that the victim's page holds few other rooms.
    let rooms: Vec<String> = ["aaa".to_owned()]
        .into_iter()
        .chain((0..30).map(|i| format!("m-{i:03}")))
        .chain(["victim".to_owned()])
        .chain((0..30).map(|i| format!("w-{i:03}")))
        .chain(["zzz".to_owned()])
        .collect();
    let marker = |room: &str, key: usize| -> String {
        format!("<{room}/{key}>")
            .repeat(60)
            .chars()
            .take(800)
            .collect()
    };
    for room in &rooms {
        model.create(&server, room, 0);
        let values: Vec<(String, String)> =
            (0..4).map(|k| (format!("k{k}"), marker(room, k))).collect();
        let pairs: Vec<(&str, &str)> = values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        model.set(&server, room, &pairs, 0);
    }
    let original = stop_and_read_database(server, &s);
    let page_size = match u16::from_be_bytes([original[16], original[17]]) {
        1 => 65_536,
        n => usize::from(n),
    };
    // With free pages, a stale copy of the victim's rows could be picked instead of the live one.
    assert_eq!(
        &original[36..40],
        &[0, 0, 0, 0],
        "the database has free pages"
    );
    // A room's row keeps the start of its metadata on its leaf page; the rest of the row
    // spills onto overflow pages. So a value's first bytes tell on which leaf its room lives.
    let start = |room: &str, key: usize| marker(room, key).as_bytes()[..40].to_vec();
    let victim_pages = leaf_pages_holding(&original, page_size, &start("victim", 0));
    assert_eq!(
        victim_pages.len(),
        1,
        "the victim's first value is on one leaf page"
    );
    let page = victim_pages[0];
    let on_page = |room: &&String| {
        (0..4).any(|k| leaf_pages_holding(&original, page_size, &start(room, k)).contains(&page))
    };
    let affected: Vec<&str> = rooms.iter().filter(on_page).map(String::as_str).collect();
    assert!(
        !affected.contains(&"aaa") && !affected.contains(&"zzz"),
        "{affected:?}"
    );
    let range = page * page_size..(page + 1) * page_size;
    let mut corrupted = original.clone();
    for (i, byte) in corrupted[range.clone()].iter_mut().enumerate() {
        *byte = b"garbage!"[i % 8];
    }
    std::fs::write(&s.db, &corrupted).unwrap();

    // SQLite reads only the schema at start-up; the damage shows when a request reaches it.
    let mut server = Server::start(serve_command(&s.config));
    let code = server.code("get_room_metadata", json!({"RoomId": "victim", "Keys": []}));
    assert_eq!(code, INTERNAL, "log:\n{}", server.log());
    let line = server.wait_for_log(&["sqlite store", "malformed"]);
    println!("page {page} corrupted, holding the rows of {affected:?}; store's log line: {line}");
    model.set(&server, "victim", &[("k0", "new")], INTERNAL);
    server.assert_alive();
    // Everything else is served, reads and writes.
    model.verify_except(&server, &affected);
    // A page holds a key range: a new room sorting between the victim's neighbours would have
    // its (empty) metadata looked up on the corrupt page too, so this one sorts near "aaa".
    model.create(&server, "b-new", 0);
    model.set(&server, "aaa", &[("k9", "new")], 0);
    // Writes to sound pages sent together with writes to the corrupt one succeed all the same,
    // also when committed in one batch with them (the store's own test makes sure of such a
    // batch; here it depends on timing, so it is only reported).
    server.mark();
    let sound = ["aaa", "zzz", "m-000", "w-029", "b-new"];
    let writes: Vec<(&str, String)> = (0..40)
        .map(|i| match i % 3 {
            0 => ("victim", format!("k{}", i % 4)),
            _ => (sound[i % sound.len()], format!("t{}", i % 6)),
        })
        .collect();
    let requests: Vec<_> = writes
        .iter()
        .map(|(room, key)| {
            let body = json!({"RoomId": room, "Metadata": [{"Key": key, "Value": "together"}]});
            ("set_room_metadata", body)
        })
        .collect();
    for ((room, key), code) in writes.iter().zip(server.codes(&requests)) {
        if *room == "victim" {
            assert_eq!(code, INTERNAL);
        } else {
            assert_eq!(code, 0, "{room}; log:\n{}", server.log());
            model.record(room, &[(key, "together")]);
        }
    }
    let log = server.log();
    let shared = log
        .lines()
        .filter(|l| l.contains("retrying the rest") && !l.ends_with("others=0"));
    println!(
        "writes to the corrupt page that shared a batch: {}",
        shared.count()
    );
    server.assert_alive();
    model.verify_except(&server, &affected);
    server.stop();

    // The page restored (from a backup, say): everything is back, the writes made meanwhile too.
    let mut repaired = std::fs::read(&s.db).unwrap();
    assert_eq!(
        repaired[range.clone()],
        corrupted[range.clone()],
        "nothing rewrote the corrupt page"
    );
    repaired[range.clone()].copy_from_slice(&original[range]);
    std::fs::write(&s.db, &repaired).unwrap();
    start_and_verify(&s, &model);
}

/// Every test here stops the server with SIGTERM and expects a clean exit, also right after
/// the "listening" line: the handler must be in place by then (it once was installed only when
/// the server first polled for shutdown, and an early SIGTERM killed it).
#[test]
fn sigterm_right_after_the_listening_line_stops_cleanly() {
    let s = setup();
    for _ in 0..10 {
        Server::start(serve_command(&s.config)).stop();
    }
}
