//! The binary as a user meets it: zero-config start, `usersig`, bad configuration, signals.

mod common;

use std::io::{BufRead, Read, Write};
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::{Value, json};

fn post(url: &str, body: Value) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(post_json(&reqwest::Client::new(), url, &body))
        .unwrap()
}

/// Reads the credentials block printed after the "listening" line.
fn printed(running: &mut Running) -> (u32, String, String) {
    let mut lines = Vec::new();
    for line in running.stdout.by_ref().lines() {
        let line = line.unwrap();
        let done = line.contains("curl");
        lines.push(line);
        if done {
            break;
        }
    }
    let field = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
            .trim()
            .to_owned()
    };
    let sdkappid = field("sdkappid:").parse().unwrap();
    let usersig = field("usersig:")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(field("admin:"), "administrator");
    assert!(field("secret key:").contains("default-app.toml"));
    let curl = lines.last().unwrap();
    let url = curl.split('\'').nth(1).unwrap().to_owned();
    (sdkappid, usersig, url)
}

fn terminate(running: &mut Running) -> std::process::ExitStatus {
    // SAFETY: sending a signal to our own child process by its PID.
    unsafe { libc::kill(running.child.id() as i32, libc::SIGTERM) };
    running.child.wait().unwrap()
}

#[test]
fn zero_config_start_prints_working_credentials_and_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let serve = || {
        let mut command = liveroom();
        command
            .current_dir(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"]);
        command
    };
    let mut running = start(serve());
    let (sdkappid, usersig, url) = printed(&mut running);
    assert!(url.starts_with(&running.base));
    // The printed curl example works as printed.
    let answer = post(&url, json!({"RoomInfo": {"RoomId": "live-room"}}));
    assert_eq!(answer["ErrorCode"], 0, "{answer}");
    assert!(dir.path().join("liveroom-data/default-app.toml").exists());
    assert!(dir.path().join("liveroom-data/liveroom.db").exists());
    assert!(terminate(&mut running).success());

    // A restart reuses the app and the data.
    let mut running = start(serve());
    let (again, _, _) = printed(&mut running);
    assert_eq!(again, sdkappid);
    let info = running.base.clone()
        + &format!(
            "/v4/live_engine_http_srv/get_room_info?sdkappid={sdkappid}&identifier=administrator&usersig={usersig}&random=7&contenttype=json"
        );
    let answer = post(&info, json!({"RoomId": "live-room"}));
    assert_eq!(answer["ErrorCode"], 0, "{answer}");
    assert!(terminate(&mut running).success());
}

#[test]
fn usersig_command_signs_like_the_official_libraries() {
    let output = liveroom()
        .args([
            "usersig",
            "--sdkappid",
            "1400000000",
            "--key",
            KEY,
            "--identifier",
            "xiaojun",
            "--expire",
            "600",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let sig = String::from_utf8(output.stdout).unwrap();
    let decoded = liveroom_usersig::verify(
        sig.trim(),
        1_400_000_000,
        "xiaojun",
        KEY,
        liveroom_usersig::decode(sig.trim()).unwrap().time(),
    )
    .unwrap();
    assert_eq!(decoded.expire(), 600);
}

/// `liveroom usersig` with `args`, `stdin` written to its standard input.
fn usersig(args: &[&str], stdin: &str) -> Output {
    let mut child = liveroom()
        .arg("usersig")
        .args(args)
        .env("LIVEROOM_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that does not read its input may have exited already.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

/// The UserSig `output` printed, checked against `sdkappid`, `identifier` and `key`; the key
/// itself is printed nowhere.
fn signed(output: &Output, sdkappid: u32, identifier: &str, key: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stdout.contains(key) && !stderr.contains(key),
        "the key was printed"
    );
    let sig = stdout.trim();
    let made_at = liveroom_usersig::decode(sig).unwrap().time();
    liveroom_usersig::verify(sig, sdkappid, identifier, key, made_at).unwrap();
    sig.to_owned()
}

/// The error `output` printed: a failure that does not print `key`.
fn usersig_error(output: &Output, key: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{stderr}");
    assert!(!stderr.contains(key), "the key was printed: {stderr}");
    stderr
}

fn path_arg(path: &std::path::Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

#[test]
fn usersig_reads_the_key_from_a_file_or_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret-key");
    std::fs::write(&file, format!("{KEY}\n")).unwrap();
    fn with<'a>(source: &[&'a str]) -> Vec<&'a str> {
        [&["--sdkappid", "1400000000", "--identifier", ADMIN], source].concat()
    }
    let from_file = usersig(&with(&["--key-file", path_arg(&file)]), "");
    signed(&from_file, APP, ADMIN, KEY);
    let from_stdin = usersig(&with(&["--key-file", "-"]), &format!("{KEY}\r\n"));
    signed(&from_stdin, APP, ADMIN, KEY);

    let empty = usersig(&with(&["--key-file", "-"]), "\n");
    assert!(usersig_error(&empty, KEY).contains("empty"));
    let missing = dir.path().join("no-such-file");
    let missing = usersig(&with(&["--key-file", path_arg(&missing)]), "");
    assert!(usersig_error(&missing, KEY).contains("no-such-file"));
}

#[test]
fn usersig_takes_the_key_of_a_configured_app() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let other_key = "the-other-app-s-key";
    let mut text = std::fs::read_to_string(&config).unwrap();
    text +=
        &format!("[[apps]]\nsdkappid = 1400000001\nsecret_key = {other_key:?}\nadmins = [\"a\"]\n");
    std::fs::write(&config, text).unwrap();
    let from_config = |more: &[&str]| {
        usersig(
            &[&["--config", path_arg(&config), "--identifier", "a"], more].concat(),
            "",
        )
    };
    signed(&from_config(&["--sdkappid", "1400000000"]), APP, "a", KEY);
    let other = from_config(&["--sdkappid", "1400000001"]);
    signed(&other, 1_400_000_001, "a", other_key);

    let unknown = usersig_error(&from_config(&["--sdkappid", "7"]), KEY);
    assert!(!unknown.contains(other_key), "a key was printed: {unknown}");
    assert!(
        unknown.contains("liveroom.toml") && unknown.contains("sdkappid 7"),
        "{unknown}"
    );
    assert!(usersig_error(&from_config(&[]), KEY).contains("--sdkappid"));
}

#[test]
fn usersig_takes_the_key_of_the_default_app() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("liveroom-data");
    let from_data_dir = |more: &[&str]| {
        usersig(
            &[
                &["--data-dir", path_arg(&data), "--identifier", ADMIN],
                more,
            ]
            .concat(),
            "",
        )
    };
    // Before any start there is no default app, and usersig makes none.
    let none_yet = usersig_error(&from_data_dir(&[]), KEY);
    assert!(none_yet.contains("default-app.toml"), "{none_yet}");
    assert!(!data.exists());

    let mut serve = liveroom();
    serve
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let mut running = start(serve);
    let (sdkappid, _, _) = printed(&mut running);
    let app = std::fs::read_to_string(data.join("default-app.toml")).unwrap();
    let key = app
        .lines()
        .find_map(|line| line.strip_prefix("secret_key = "))
        .unwrap()
        .trim_matches('"');
    let sig = signed(&from_data_dir(&[]), sdkappid, ADMIN, key);
    // The server accepts it.
    let list = running.base.clone()
        + &format!(
            "/v4/live_engine_http_srv/get_room_list?sdkappid={sdkappid}&identifier={ADMIN}&usersig={sig}&random=7&contenttype=json"
        );
    let answer = post(&list, json!({"Next": "", "Count": 10}));
    assert_eq!(answer["ErrorCode"], 0, "{answer}");

    signed(
        &from_data_dir(&["--sdkappid", &sdkappid.to_string()]),
        sdkappid,
        ADMIN,
        key,
    );
    let other = usersig_error(&from_data_dir(&["--sdkappid", "7"]), key);
    assert!(
        other.contains(&format!("sdkappid {sdkappid}, not 7")),
        "{other}"
    );
    assert!(terminate(&mut running).success());
}

#[test]
fn a_broken_file_is_reported_without_quoting_its_key() {
    let dir = tempfile::tempdir().unwrap();
    // The key's closing quote is missing: TOML's own message would quote the line.
    let app = format!("sdkappid = {APP}\nsecret_key = \"{KEY}\nadmins = [\"{ADMIN}\"]\n");
    let config = dir.path().join("broken.toml");
    std::fs::write(&config, format!("[[apps]]\n{app}")).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("default-app.toml"), &app).unwrap();

    let mut serve = liveroom();
    serve.args(["serve", "--config"]).arg(&config);
    let stderr = refused(serve);
    assert!(stderr.contains("broken.toml: line 3"), "{stderr}");
    assert!(!stderr.contains(KEY), "the key was printed: {stderr}");
    let with_config = ["--config", path_arg(&config), "--sdkappid", "1400000000"];
    let stderr = usersig_error(
        &usersig(&[&with_config[..], &["--identifier", ADMIN]].concat(), ""),
        KEY,
    );
    assert!(stderr.contains("broken.toml: line 3"), "{stderr}");
    let with_data_dir = ["--data-dir", path_arg(&data), "--identifier", ADMIN];
    let stderr = usersig_error(&usersig(&with_data_dir, ""), KEY);
    assert!(stderr.contains("default-app.toml: line 2"), "{stderr}");
}

#[test]
fn usersig_wants_exactly_one_key_source() {
    for source in [
        &[][..],
        &["--key", KEY, "--key-file", "-"],
        &["--key", KEY, "--config", "liveroom.toml"],
        &["--key-file", "-", "--data-dir", "liveroom-data"],
    ] {
        let args = [&["--sdkappid", "1400000000", "--identifier", ADMIN], source].concat();
        let output = usersig(&args, "");
        let stderr = usersig_error(&output, KEY);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{source:?}: usage error: {stderr}"
        );
        assert!(stderr.contains("--key"), "{source:?}: {stderr}");
    }
    let help = String::from_utf8(usersig(&["--help"], "").stdout).unwrap();
    assert!(
        help.contains("--key-file") && help.contains("--data-dir"),
        "{help}"
    );
    assert!(help.contains("Other users can see it"), "{help}");
}

#[test]
fn help_lists_every_command() {
    let output = liveroom().arg("--help").output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("serve") && help.contains("usersig"), "{help}");
}

#[test]
fn bad_config_stops_start_with_file_setting_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[apps]]\nsdkappid = 1\nsecret_key = \"k\"\nadmins = [\"a\"]\ndisabled_commands = [\"launch_rocket\"]\n").unwrap();
    let output = liveroom()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(stderr.contains("disabled_commands"), "{stderr}");
    assert!(stderr.contains("launch_rocket"), "{stderr}");
}

/// Runs `command`, which must stop with an error instead of serving; its stderr. Bounded, so
/// that a server which starts anyway fails the test rather than hanging it.
fn refused(mut command: Command) -> String {
    let mut child = command
        .env("LIVEROOM_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_zero_that_would_break_serving_stops_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zero.toml");
    let serve = || {
        let mut command = liveroom();
        command
            .current_dir(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"]);
        command
    };
    for (table, setting) in [
        ("connections", "body_timeout_secs"),
        ("connections", "header_timeout_secs"),
        ("connections", "max_connections"),
        ("auth_failure_throttle", "window_secs"),
        ("auth_failure_throttle", "block_secs"),
    ] {
        let name = format!("{table}.{setting}");
        std::fs::write(&config, format!("[{table}]\n{setting} = 0\n")).unwrap();
        let mut from_file = serve();
        from_file.arg("--config").arg(&config);
        let stderr = refused(from_file);
        assert!(stderr.contains("zero.toml"), "{name}: {stderr}");
        assert!(stderr.contains(&name), "{name}: {stderr}");

        let variable = format!("LIVEROOM_{table}__{setting}").to_uppercase();
        let mut from_environment = serve();
        from_environment.env(&variable, "0");
        let stderr = refused(from_environment);
        assert!(stderr.contains(&name), "{variable}=0: {stderr}");
    }
}

#[test]
fn second_server_on_the_same_data_dir_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut first = liveroom();
    first.args(["serve", "--config"]).arg(&config);
    let mut running = start(first);
    let output = liveroom()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("another liveroom process"), "{stderr}");
    assert!(terminate(&mut running).success());
}

#[test]
fn logs_never_hold_secret_keys_or_usersigs() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let log_path = dir.path().join("stderr.log");
    let mut command = liveroom();
    command
        .args(["serve", "--config"])
        .arg(&config)
        .env("LIVEROOM_LOG", "trace")
        .stderr(std::fs::File::create(&log_path).unwrap());
    let mut running = start_with_logs(command);
    let good = admin_sig();
    let wrong_key = liveroom_usersig::generate(APP, "not-the-key", ADMIN, 1_700_000_000, 86_400);
    let expired = liveroom_usersig::generate(APP, KEY, ADMIN, 1_000_000_000, 10);
    for sig in [&good, &wrong_key, &expired, &"garbage-usersig".to_owned()] {
        post(
            &running.url("create_room", sig),
            json!({"RoomInfo": {"RoomId": "r"}}),
        );
        post(
            &running.url("set_room_metadata", sig),
            json!({"RoomId": "r", "Metadata": [{"Key": "k", "Value": "v"}]}),
        );
    }
    assert!(terminate(&mut running).success());
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.contains("request"), "the requests were logged: {logs}");
    for secret in [KEY, &good, &wrong_key, &expired, "garbage-usersig"] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
    // A file is not a terminal: no colour codes in it.
    assert!(!logs.contains('\x1b'), "terminal escapes in a log file");
}

#[test]
fn a_config_file_others_can_read_gets_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let log_path = dir.path().join("stderr.log");
    let serve = |mode: u32| {
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut command = liveroom();
        command
            .args(["serve", "--config"])
            .arg(&config)
            .env("LIVEROOM_LOG", "warn")
            .stderr(std::fs::File::create(&log_path).unwrap());
        let mut running = start_with_logs(command);
        assert!(terminate(&mut running).success());
        std::fs::read_to_string(&log_path).unwrap()
    };
    assert!(serve(0o644).contains("readable by other users"));
    assert!(!serve(0o600).contains("readable by other users"));
}
