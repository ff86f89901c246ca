//! Who a room's people are, durably (docs/behaviour.md §14): its administrators, its muted and
//! banned members, its robots. Who is connected right now (presence) is not here: it is
//! rebuilt from the connections and never stored.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Account, DomainError};

/// Most administrators one room may have (Tencent's AVChatRoom groups allow 5).
pub const ADMINS_MAX: usize = 5;
/// Most robots one room may have (Tencent's limit).
pub const ROBOTS_MAX: usize = 3;
/// Most mutes, and most bans, in force in one room at once; expired ones do not count.
pub const MODERATED_MAX: usize = 1000;
/// Most accounts one moderation or robot request may name (Tencent's `ban_member` bound).
pub const ACCOUNTS_PER_REQUEST_MAX: usize = 20;
/// Longest ban `Reason`.
pub const BAN_REASON_MAX_BYTES: usize = 200;
/// Longest mute or ban: ten years.
pub const MODERATION_MAX_SECS: u64 = 10 * 365 * 24 * 3600;

/// A ban in force until `until` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub until: u64,
    pub reason: String,
}

/// The people of one room that outlive connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomPeople {
    pub admins: BTreeSet<Account>,
    /// Muted accounts and when each mute ends (Unix seconds). Entries past their end are
    /// dropped by the next moderation write and ignored until then.
    pub muted: BTreeMap<Account, u64>,
    pub banned: BTreeMap<Account, Ban>,
    pub robots: BTreeSet<Account>,
}

/// Whether a list change adds or removes (`OpType` `add`/`delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOp {
    Add,
    Delete,
}

impl ListOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ListOp::Add => "add",
            ListOp::Delete => "delete",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "add" => Some(ListOp::Add),
            "delete" => Some(ListOp::Delete),
            _ => None,
        }
    }
}

impl RoomPeople {
    pub fn is_empty(&self) -> bool {
        self.admins.is_empty()
            && self.muted.is_empty()
            && self.banned.is_empty()
            && self.robots.is_empty()
    }

    pub fn is_admin(&self, account: &str) -> bool {
        self.admins.contains(account)
    }

    /// When `account`'s mute ends, if it is muted at `now` (Unix seconds).
    pub fn muted_until(&self, account: &str, now: u64) -> Option<u64> {
        self.muted
            .get(account)
            .copied()
            .filter(|&until| until > now)
    }

    /// `account`'s ban, if it is in force at `now`.
    pub fn ban(&self, account: &str, now: u64) -> Option<&Ban> {
        self.banned.get(account).filter(|ban| ban.until > now)
    }

    /// The mutes in force at `now`, by account.
    pub fn muted_at(&self, now: u64) -> impl Iterator<Item = (&Account, u64)> {
        self.muted
            .iter()
            .map(|(account, &until)| (account, until))
            .filter(move |&(_, until)| until > now)
    }

    /// The bans in force at `now`, by account.
    pub fn banned_at(&self, now: u64) -> impl Iterator<Item = (&Account, &Ban)> {
        self.banned.iter().filter(move |(_, ban)| ban.until > now)
    }

    /// Forgets mutes and bans that ended by `now`.
    pub(crate) fn prune(&mut self, now: u64) {
        self.muted.retain(|_, until| *until > now);
        self.banned.retain(|_, ban| ban.until > now);
    }

    /// Roughly the bytes this holds, for caches that weigh what they keep.
    pub fn approximate_bytes(&self) -> usize {
        const NODE: usize = 48;
        let accounts =
            |set: &BTreeSet<Account>| set.iter().map(|a| a.as_str().len() + NODE).sum::<usize>();
        accounts(&self.admins)
            + accounts(&self.robots)
            + self
                .muted
                .keys()
                .map(|a| a.as_str().len() + NODE + 8)
                .sum::<usize>()
            + self
                .banned
                .iter()
                .map(|(a, ban)| a.as_str().len() + ban.reason.len() + NODE + 32)
                .sum::<usize>()
    }
}

/// The accounts a request names: 1 to [`ACCOUNTS_PER_REQUEST_MAX`], each a valid account,
/// repeats folded; in account order.
pub fn request_accounts(
    field: &'static str,
    raw: Vec<String>,
) -> Result<BTreeSet<Account>, DomainError> {
    if raw.is_empty() || raw.len() > ACCOUNTS_PER_REQUEST_MAX {
        return Err(DomainError::invalid(
            field,
            format!("must name 1 to {ACCOUNTS_PER_REQUEST_MAX} accounts"),
        ));
    }
    raw.into_iter()
        .map(|account| Account::parse(field, account))
        .collect()
}

/// A mute or ban duration in seconds: 0 to [`MODERATION_MAX_SECS`].
pub fn moderation_secs(field: &'static str, raw: i64) -> Result<u64, DomainError> {
    u64::try_from(raw)
        .ok()
        .filter(|&secs| secs <= MODERATION_MAX_SECS)
        .ok_or_else(|| {
            DomainError::invalid(field, format!("must be 0 to {MODERATION_MAX_SECS} seconds"))
        })
}

/// A ban reason: at most [`BAN_REASON_MAX_BYTES`].
pub fn ban_reason(raw: Option<String>) -> Result<String, DomainError> {
    let reason = raw.unwrap_or_default();
    if reason.len() > BAN_REASON_MAX_BYTES {
        return Err(DomainError::invalid(
            "Reason",
            format!("must be at most {BAN_REASON_MAX_BYTES} bytes"),
        ));
    }
    Ok(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str) -> Account {
        Account::parse("a", name.into()).unwrap()
    }

    #[test]
    fn mutes_and_bans_end_by_themselves() {
        let mut people = RoomPeople::default();
        people.muted.insert(account("a"), 100);
        people.banned.insert(
            account("b"),
            Ban {
                until: 200,
                reason: String::new(),
            },
        );
        assert_eq!(people.muted_until("a", 99), Some(100));
        assert_eq!(people.muted_until("a", 100), None);
        assert!(people.ban("b", 199).is_some());
        assert!(people.ban("b", 200).is_none());
        assert_eq!(people.muted_at(50).count(), 1);
        people.prune(150);
        assert!(people.muted.is_empty());
        assert_eq!(people.banned.len(), 1);
    }

    #[test]
    fn request_bounds() {
        assert!(request_accounts("x", vec![]).is_err());
        assert!(request_accounts("x", vec!["a".into(); 21]).is_err());
        assert_eq!(
            request_accounts("x", vec!["b".into(), "a".into(), "b".into()])
                .unwrap()
                .len(),
            2
        );
        assert!(request_accounts("x", vec![String::new()]).is_err());
        assert_eq!(moderation_secs("d", 0), Ok(0));
        assert!(moderation_secs("d", -1).is_err());
        assert!(moderation_secs("d", i64::MAX).is_err());
        assert!(ban_reason(Some("r".repeat(201))).is_err());
    }
}
