//! What the benchmark needs from Linux: CPU pinning, per-process CPU time and RSS from
//! `/proc`, machine facts for the report, and child processes that cannot outlive the run.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bitmask that sched_getaffinity fills in.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// Restricts the calling thread, and every thread or process it starts afterwards, to `cpus`.
pub fn pin_current_thread(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: `set` is a plain bitmask; CPU_SET only writes inside it for cpu < CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A child dies with its parent even if the parent is killed outright (no destructor runs).
/// Linux ties this to the thread that spawned the child: children are spawned from the
/// thread running `main`, which lives as long as the parent.
pub fn die_with_parent() {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
}

pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1)
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The filesystem holding `path`: fsync on tmpfs is free, which would fake durability.
pub fn filesystem(path: &Path) -> String {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return "unknown".into();
    };
    // SAFETY: `stat` is a plain struct that statfs fills in; `c_path` is NUL-terminated.
    let kind = unsafe {
        let mut stat: libc::statfs = std::mem::zeroed();
        if libc::statfs(c_path.as_ptr(), &mut stat) != 0 {
            return "unknown".into();
        }
        stat.f_type as u64
    };
    match kind {
        0xEF53 => "ext4".into(),
        0x0102_1994 => "tmpfs (fsync is free here: durable writes are NOT measured)".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x794C_7630 => "overlayfs".into(),
        other => format!("filesystem type {other:#x}"),
    }
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> std::io::Result<Duration> {
    stat_cpu_time(Path::new(&format!("/proc/{pid}/stat")))
}

/// CPU time (user + system) used so far by a process's threads named `name`: zero if none is.
pub fn thread_cpu_time(pid: u32, name: &str) -> std::io::Result<Duration> {
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let task = task?.path();
        // A thread that ended since the listing is simply not counted.
        let Ok(comm) = std::fs::read_to_string(task.join("comm")) else {
            continue;
        };
        if comm.trim_end() == name {
            total += stat_cpu_time(&task.join("stat")).unwrap_or_default();
        }
    }
    Ok(total)
}

/// utime + stime of a `/proc/…/stat` file (proc(5)).
fn stat_cpu_time(path: &Path) -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string(path)?;
    // The command name may hold spaces and parentheses; the fields after its last ')' do not.
    // Counted from there, utime and stime are fields 12 and 13 (14 and 15 of proc(5)).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (Some(utime), Some(stime)) = (ticks(11), ticks(12)) else {
        return Err(std::io::Error::other(format!(
            "unexpected {}",
            path.display()
        )));
    };
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(Duration::from_secs_f64((utime + stime) as f64 / per_second))
}

/// Resident memory of a process, in bytes.
pub fn rss_bytes(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| std::io::Error::other(format!("no VmRSS in /proc/{pid}/status")))
}

/// The open-file limit of this process (and of the children it starts afterwards, which
/// inherit it).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft open-file limit to the hard one, which no process can exceed; answers the
/// limit in force afterwards. Each real-time connection holds one file on each side.
pub fn raise_fd_limit() -> std::io::Result<FdLimit> {
    // SAFETY: `limit` is a plain struct that getrlimit fills in and setrlimit reads.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(FdLimit {
            soft: limit.rlim_cur,
            hard: limit.rlim_max,
        })
    }
}

/// A child process that is killed and reaped when this guard goes away, including when the
/// parent unwinds from a panic or returns early with an error.
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the child to exit by itself; fails if it does not succeed.
    pub fn wait_success(mut self, what: &str) -> anyhow::Result<()> {
        let status = self.child.wait()?;
        if !status.success() {
            bail!("{what} failed: {status}");
        }
        Ok(())
    }
}

impl From<Child> for ChildGuard {
    fn from(child: Child) -> Self {
        Self { child }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Already exited is fine; waiting reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This executable, to start again in a child mode: the running image itself, even if a
/// rebuild has replaced the file on disk meanwhile.
pub const THIS_EXE: &str = "/proc/self/exe";

/// Starts `exe` (this executable, or another build of it) in one of its hidden child modes,
/// its stdout piped to the parent and its stderr going to `stderr`.
pub fn spawn_child(
    exe: &Path,
    args: &[String],
    stderr: Stdio,
) -> anyhow::Result<(ChildGuard, ChildStdout)> {
    let mut child = Command::new(exe)
        .args(args)
        // A child that logs does so at production's defaults, whatever this shell sets.
        .env_remove("LIVEROOM_LOG")
        .env_remove("LIVEROOM_LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot start `{} {}`", exe.display(), args.join(" ")))?;
    let stdout = child.stdout.take().context("child stdout")?;
    Ok((ChildGuard { child }, stdout))
}

/// A server child prints `listening <addr>` once it accepts connections; waits for that line.
pub async fn listening_addr(stdout: ChildStdout, timeout: Duration) -> anyhow::Result<SocketAddr> {
    let read = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    // On timeout the blocked read ends when the caller's guard kills the child.
    let line = tokio::time::timeout(timeout, read)
        .await
        .context("server did not start in time")???;
    line.trim()
        .strip_prefix("listening ")
        .with_context(|| format!("server child said {line:?} instead of its address"))?
        .parse()
        .context("server child printed a bad address")
}
