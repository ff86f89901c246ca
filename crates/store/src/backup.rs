//! The backup format (docs/cluster.md §9): one JSON object per line. A header line names the
//! format and its version; then, app by app, one line per live room (the room, its metadata,
//! its people, its message count) and one per account (its profile). Rooms and accounts are in
//! order; the same bytes come out of any backend holding the same state, so a backup moves
//! data between SQLite and PostgreSQL and two backups compare with `cmp`.

use std::io::{BufRead, Write};

use liveroom_domain::{Account, AppId, IfExists, NewAccounts, Profile, RoomId, RoomPeople};
use serde_json::Value;

use crate::codec;
use crate::{Saved, Store, StoreError};

const FORMAT: &str = "liveroom-backup";
const VERSION: u64 = 1;
/// Rooms (or accounts) read from the store, or restored, at once.
const PAGE: usize = 500;
/// The longest line a restore reads: a room is at most 16 KiB of metadata plus its people.
const MAX_LINE: u64 = 8 << 20;

/// What a backup holds, or a restore loaded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub rooms: u64,
    pub accounts: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {problem}")]
    Malformed { line: u64, problem: String },
}

/// Writes every app's rooms and accounts to `out`.
pub async fn export<S: Store>(store: &S, out: &mut impl Write) -> Result<Counts, BackupError> {
    let mut counts = Counts::default();
    writeln!(out, r#"{{"format":"{FORMAT}","version":{VERSION}}}"#)?;
    for app in store.apps().await? {
        let mut after: Option<RoomId> = None;
        loop {
            let rooms = store.saved_rooms(app, after.as_ref(), PAGE).await?;
            for saved in &rooms {
                let people = if saved.people.is_empty() {
                    "null".to_owned()
                } else {
                    codec::encode_people(&saved.people)
                };
                writeln!(
                    out,
                    r#"{{"app":{app},"room":{},"metadata":{},"people":{people},"messages":{}}}"#,
                    codec::encode_room_text(&saved.room),
                    codec::encode_metadata(&saved.metadata),
                    saved.messages
                )?;
            }
            counts.rooms += rooms.len() as u64;
            match rooms.last() {
                Some(last) if rooms.len() == PAGE => after = Some(last.room.id.clone()),
                _ => break,
            }
        }
        let mut after: Option<Account> = None;
        loop {
            let accounts = store.saved_accounts(app, after.as_ref(), PAGE).await?;
            for (account, profile) in &accounts {
                writeln!(
                    out,
                    r#"{{"app":{app},"account":{},"profile":{}}}"#,
                    Value::from(account.as_str()),
                    codec::encode_profile(profile)
                )?;
            }
            counts.accounts += accounts.len() as u64;
            match accounts.last() {
                Some((last, _)) if accounts.len() == PAGE => after = Some(last.clone()),
                _ => break,
            }
        }
    }
    out.flush()?;
    Ok(counts)
}

/// Loads a backup into `store`, which should hold none of its rooms and accounts: one that
/// exists stops the restore there (what was loaded before it stays).
pub async fn import<S: Store>(store: &S, input: impl BufRead) -> Result<Counts, BackupError> {
    let mut counts = Counts::default();
    let mut pending = Pending::default();
    let mut input = input.take(MAX_LINE);
    let mut text = String::new();
    let mut line = 0;
    loop {
        text.clear();
        input.set_limit(MAX_LINE);
        if input.read_line(&mut text)? == 0 {
            break;
        }
        line += 1;
        let malformed = |problem: String| BackupError::Malformed { line, problem };
        if !text.ends_with('\n') && input.limit() == 0 {
            return Err(malformed(format!("longer than {MAX_LINE} bytes")));
        }
        let value: Value =
            serde_json::from_str(&text).map_err(|e| malformed(format!("not JSON: {e}")))?;
        if line == 1 {
            if value["format"] != FORMAT || value["version"] != VERSION {
                return Err(malformed(format!(
                    "not a {FORMAT} of version {VERSION} (found {value})"
                )));
            }
            continue;
        }
        let app = value["app"]
            .as_u64()
            .and_then(|a| AppId::try_from(a).ok())
            .ok_or_else(|| malformed("no app".into()))?;
        if pending.app != Some(app) {
            pending.flush(store, &mut counts).await?;
            pending.app = Some(app);
        }
        if value.get("room").is_some() {
            pending
                .rooms
                .push(saved_of(&value).map_err(|e| malformed(e.to_string()))?);
        } else if let Some(account) = value["account"].as_str() {
            let account = Account::parse("account", account.to_owned())
                .map_err(|e| malformed(e.to_string()))?;
            let profile = codec::decode_profile(&value["profile"].to_string())
                .map_err(|e| malformed(e.to_string()))?;
            pending.accounts.push((account, profile));
        } else {
            return Err(malformed("neither a room nor an account".into()));
        }
        if pending.rooms.len() >= PAGE || pending.accounts.len() >= IMPORT_ACCOUNTS {
            pending.flush(store, &mut counts).await?;
        }
    }
    if line == 0 {
        return Err(BackupError::Malformed {
            line: 0,
            problem: "empty".into(),
        });
    }
    pending.flush(store, &mut counts).await?;
    Ok(counts)
}

/// Accounts restored at once: as many as one import may name.
const IMPORT_ACCOUNTS: usize = liveroom_domain::account::IMPORT_MAX_ACCOUNTS;

fn saved_of(value: &Value) -> Result<Saved, codec::Malformed> {
    let people = match &value["people"] {
        Value::Null => RoomPeople::default(),
        people => codec::decode_people(&people.to_string())?,
    };
    Ok(Saved {
        room: codec::decode_room_text(&value["room"].to_string())?,
        metadata: codec::decode_metadata(&value["metadata"].to_string())?,
        people,
        messages: value["messages"]
            .as_u64()
            .ok_or(codec::Malformed("messages"))?,
    })
}

/// What a restore has read of one app and not loaded yet.
#[derive(Default)]
struct Pending {
    app: Option<AppId>,
    rooms: Vec<Saved>,
    accounts: Vec<(Account, Profile)>,
}

impl Pending {
    async fn flush<S: Store>(&mut self, store: &S, counts: &mut Counts) -> Result<(), BackupError> {
        let Some(app) = self.app else {
            return Ok(());
        };
        if !self.rooms.is_empty() {
            let rooms = std::mem::take(&mut self.rooms);
            counts.rooms += store.restore_rooms(app, rooms).await? as u64;
        }
        if !self.accounts.is_empty() {
            let accounts = std::mem::take(&mut self.accounts);
            let loaded = accounts.len() as u64;
            let accounts = NewAccounts::new("accounts", accounts).map_err(StoreError::from)?;
            store
                .import_accounts(app, accounts, IfExists::Refuse)
                .await?;
            counts.accounts += loaded;
        }
        Ok(())
    }
}
