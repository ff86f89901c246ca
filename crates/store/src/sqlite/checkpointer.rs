//! Copies the WAL back into the database file mostly off the writer thread.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, on the
//! writer thread: that batch, and every request queued behind it, waited while up to a
//! thousand pages were written to the database file and it was fsynced (tens of milliseconds
//! with writes spread over a million rooms). Here a thread of its own, with its own
//! connection, runs PASSIVE checkpoints as the WAL grows, while the writer goes on
//! committing. The writer still finishes the job itself at the old threshold, because the WAL
//! is only rewound to its start by a transaction that finds every frame copied; by then little
//! is left to copy.

use std::ffi::c_int;
use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::Connection;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;

use super::{open_error, writer};
use crate::{StoreError, StoreResult};

/// WAL frames after which the background thread is asked for a checkpoint.
const BACKGROUND_FRAMES: c_int = 256;

/// WAL frames after which the writer checkpoints what is left, so that its next transaction
/// can rewind the WAL: SQLite's own automatic threshold.
const REWIND_FRAMES: c_int = 1000;

pub(super) struct Checkpointer {
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Opens the checkpointer's connection to `path` and hooks it to `writer`'s commits.
    pub(super) fn start(path: &Path, writer: &mut Connection) -> StoreResult<Self> {
        let conn = Connection::open(path).map_err(|e| open_error(path, e))?;
        super::configure(&conn).map_err(|e| open_error(path, e))?;
        let (wake, woken) = mpsc::sync_channel(1);
        // Taken for each checkpoint, by either side.
        let turn = Arc::new(Mutex::new(()));
        let background_turn = Arc::clone(&turn);
        // The last multiple of BACKGROUND_FRAMES the thread was woken for: once per step, so
        // that it is not copying all the time and the writer finds the checkpoint lock free.
        let mut woken_at = 0;
        writer
            .wal_hook(Some(move |wal: &mut Wal, frames: c_int| {
                let step = frames / BACKGROUND_FRAMES;
                if frames >= REWIND_FRAMES {
                    // Waits for a background pass to end, instead of finding SQLite's
                    // checkpoint lock taken (SQLITE_BUSY) commit after commit while the WAL grows.
                    let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Err(error) = wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                        // Another program checkpoints, or the disk failed: the next commit
                        // tries again.
                        tracing::debug!(%error, "sqlite store: writer's checkpoint not done");
                    }
                } else if step < woken_at {
                    // The WAL was rewound.
                    woken_at = step;
                } else if step > woken_at {
                    woken_at = step;
                    // Full: a request is already pending.
                    let _ = wake.try_send(());
                }
                // An error here would make the COMMIT that called the hook report failure
                // although it is durable, so there never is one.
                Ok(())
            }))
            .map_err(|e| open_error(path, e))?;
        let thread = std::thread::Builder::new()
            .name("liveroom-ckpt".into())
            .spawn(move || run(&conn, &woken, &background_turn))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Self { thread })
    }

    /// Unhooks `writer` and waits for a checkpoint in progress to end.
    pub(super) fn stop(self, writer: &mut Connection) {
        // Dropping the hook drops the sender, which ends the thread's loop.
        if let Err(error) = writer.wal_hook(None::<fn(&mut Wal, c_int) -> rusqlite::Result<()>>) {
            tracing::error!(%error, "sqlite store: cannot unhook the checkpointer");
        }
        if self.thread.join().is_err() {
            tracing::error!("sqlite store: the checkpoint thread panicked");
        }
    }
}

fn run(conn: &Connection, woken: &Receiver<()>, turn: &Mutex<()>) {
    while woken.recv().is_ok() {
        let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            let error = writer::describe(conn, &error);
            tracing::warn!(%error, "sqlite store: background checkpoint failed; the WAL is kept");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_frames(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
            .unwrap()
    }

    /// Under writes that never pause, the WAL keeps being rewound: it stays near the writer's
    /// threshold instead of growing with every commit.
    #[test]
    fn the_wal_stays_bounded_under_continuous_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB);",
            )
            .unwrap();
        let checkpointer = Checkpointer::start(&path, &mut writer).unwrap();
        let mut largest = 0;
        for i in 0..1500 {
            // Ten pages per commit.
            writer
                .execute(
                    "INSERT OR REPLACE INTO t VALUES (?1, zeroblob(40000))",
                    [i % 50],
                )
                .unwrap();
            let wal = std::fs::metadata(dir.path().join("db-wal")).unwrap().len();
            largest = largest.max(wal);
        }
        checkpointer.stop(&mut writer);
        let page = 4096 + 24;
        assert!(
            largest < 2 * REWIND_FRAMES as u64 * page,
            "the WAL grew to {largest} bytes"
        );
        assert!(wal_frames(&writer) < i64::from(2 * REWIND_FRAMES));
    }
}
