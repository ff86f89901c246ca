//! The `liveroom` binary as the benchmark starts it: `liveroom serve --config …` as a child
//! process with a configuration file of the scenario's, its stderr to a file beside its data,
//! pinned and sized as the benchmark says. The webhook and cluster scenarios use it.

use std::fs::OpenOptions;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::system::ChildGuard;

/// How long the binary may take to print its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which binary, how many Tokio workers, on which CPUs.
pub struct Launch<'a> {
    pub binary: &'a Path,
    pub workers: usize,
    pub cpus: &'a [usize],
}

/// A `liveroom serve --config …` child and where it listens.
pub struct Liveroom {
    pub name: &'static str,
    pub guard: ChildGuard,
    pub addr: SocketAddr,
    /// Kept open: a closed pipe would fail the binary's later writes to stdout.
    _stdout: BufReader<ChildStdout>,
}

impl Liveroom {
    /// Starts the binary on `data_dir` with `config` as its configuration file. The file and
    /// its stderr (the request log) go beside `data_dir`.
    pub async fn start(
        launch: &Launch<'_>,
        name: &'static str,
        data_dir: &Path,
        config_text: &str,
    ) -> anyhow::Result<Self> {
        let config = data_dir.with_extension("toml");
        // Owner-only, as the binary advises for files holding secret keys.
        OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&config)
            .and_then(|mut f| f.write_all(config_text.as_bytes()))
            .with_context(|| format!("cannot write {}", config.display()))?;
        let stderr_path = data_dir.with_extension("log");
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .with_context(|| format!("cannot open {}", stderr_path.display()))?;
        let mut command = Command::new(launch.binary);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            // The binary leaves its runtime's size to tokio, which reads this.
            .env("TOKIO_WORKER_THREADS", launch.workers.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        // The configuration is the file's alone, whatever this shell sets.
        for (key, _) in std::env::vars_os() {
            if key.as_encoded_bytes().starts_with(b"LIVEROOM_") {
                command.env_remove(key);
            }
        }
        let affinity = cpu_set(launch.cpus);
        // SAFETY: between fork and exec only async-signal-safe system calls run, on a set
        // built before the fork.
        unsafe {
            command.pre_exec(move || {
                // Dies with the benchmark, as its own children do (system::die_with_parent).
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if let Some(set) = &affinity
                    && libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), set) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", launch.binary.display()))?;
        let stdout = child.stdout.take().context("the binary's stdout")?;
        let guard = ChildGuard::from(child);
        let (addr, stdout) = announced_addr(stdout).await.with_context(|| {
            format!(
                "{name} did not start; the end of its stderr ({}):\n{}",
                stderr_path.display(),
                crate::bench::tail(&stderr_path)
            )
        })?;
        Ok(Self {
            name,
            guard,
            addr,
            _stdout: stdout,
        })
    }
}

pub fn cpu_set(cpus: &[usize]) -> Option<libc::cpu_set_t> {
    if cpus.is_empty() {
        return None;
    }
    // SAFETY: a plain bitmask; CPU_SET only writes inside it for cpu < CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(cpu, &mut set);
        }
        Some(set)
    }
}

/// The binary prints `liveroom listening on http://<addr> (data in …)` once it listens.
pub async fn announced_addr(
    stdout: ChildStdout,
) -> anyhow::Result<(SocketAddr, BufReader<ChildStdout>)> {
    let read = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).map(|_| (line, reader))
    });
    // On timeout the blocked read ends when the caller's guard kills the child.
    let (line, reader) = tokio::time::timeout(START_TIMEOUT, read)
        .await
        .context("no address printed in time")???;
    let addr = line
        .trim()
        .strip_prefix("liveroom listening on http://")
        .and_then(|rest| rest.split_whitespace().next())
        .with_context(|| format!("the binary said {line:?} instead of its address"))?
        .parse()
        .context("the binary printed a bad address")?;
    Ok((addr, reader))
}
