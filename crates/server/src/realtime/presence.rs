//! Presence: who is in each room right now, rebuilt from this server's connections and never
//! stored (docs/protocol.md, "Members and presence"). A member is a user that entered a room
//! over a connection; one connection per user and room (the newer wins). A member whose
//! connection died is remembered for the grace period, so that coming back is a recovery and
//! not a new entry. On a store whose nodes share presence, this is the node's own part: what
//! it reports to the others (docs/cluster.md §4).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use liveroom_domain::{Account, AppId, DomainError, RoomId};
pub(crate) use liveroom_store::{Listed, MemberInfo};
use liveroom_store::{Reported, Roster};

use super::fanout::ConnectionId;

/// Why a member came or went.
pub(crate) use liveroom_domain::MemberCause as Cause;

struct Online {
    connection: ConnectionId,
    info: MemberInfo,
}

#[derive(Default)]
struct RoomMembers {
    online: BTreeMap<String, Online>,
    /// Members whose connection died, and when; forgotten after the grace period.
    interrupted: HashMap<String, Instant>,
    /// Whether the count changed since the last [`Presence::tick`].
    recount: bool,
    /// The room's robots as of the last entry, for counting.
    robots: BTreeSet<Account>,
}

/// An entry into a room.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Entered {
    /// The user's older connection in the room, which must be told it is no longer in it.
    pub replaced: Option<ConnectionId>,
    /// How to announce the member to the others: `None` when it was in the room already.
    pub cause: Option<Cause>,
    /// Members in the room now, robots included.
    pub members: usize,
}

/// What a [`Presence::tick`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Tick {
    /// Rooms whose member count changed, with their members now.
    pub counts: Vec<((AppId, RoomId), usize)>,
    /// Interrupted members whose grace period ended without their return: gone for good.
    pub gone: Vec<((AppId, RoomId), String)>,
}

/// Every room's members on this server.
pub(crate) struct Presence {
    rooms: Mutex<HashMap<(AppId, RoomId), RoomMembers>>,
    grace: Duration,
}

/// Members counted in a room: the connected ones and the robots that are not connected.
fn count(members: Option<&RoomMembers>, robots: &BTreeSet<Account>) -> usize {
    let online = members.map_or(0, |m| m.online.len());
    let absent_robots = robots
        .iter()
        .filter(|r| members.is_none_or(|m| !m.online.contains_key(r.as_str())))
        .count();
    online + absent_robots
}

/// The room's members as listed, up to `limit` after `after`, and how many there are: the
/// connected ones of `roster` (a page of them) and the robots, connected or not.
pub(crate) fn listing(
    roster: Roster,
    robots: &BTreeSet<Account>,
    after: Option<&str>,
    limit: usize,
) -> (Vec<Listed>, usize) {
    let total = roster.connected + robots.len() - roster.robots_connected.min(robots.len());
    let after = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut page = roster.page;
    // A robot not on the connected page is added; one connected beyond a full page sorts
    // after all of it and is cut off with the rest.
    let absent: Vec<Listed> = robots
        .range::<str, _>((after, Bound::Unbounded))
        .filter(|r| !page.iter().any(|l| l.account == r.as_str()))
        .map(|r| Listed {
            account: r.as_str().to_owned(),
            info: MemberInfo::default(),
        })
        .collect();
    page.extend(absent);
    page.sort_unstable_by(|a, b| a.account.cmp(&b.account));
    page.truncate(limit);
    (page, total)
}

impl Presence {
    pub fn new(grace: Duration) -> Self {
        Self {
            rooms: Mutex::default(),
            grace,
        }
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<(AppId, RoomId), RoomMembers>> {
        // Every update below is complete or not begun when a panic could happen.
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `user` enters `room` over `connection`. Refused when the room holds `max_members`
    /// members already (0: no limit) and the user is not one of them.
    #[allow(clippy::too_many_arguments)]
    pub fn enter(
        &self,
        app: AppId,
        room: &RoomId,
        user: &str,
        connection: ConnectionId,
        info: MemberInfo,
        max_members: u32,
        robots: &BTreeSet<Account>,
        now: Instant,
    ) -> Result<Entered, DomainError> {
        let mut rooms = self.rooms();
        let key = (app, room.clone());
        let present = rooms.get(&key).is_some_and(|m| m.online.contains_key(user));
        let is_robot = robots.contains(user);
        if !present && !is_robot && max_members > 0 {
            let members = count(rooms.get(&key), robots);
            if members >= max_members as usize {
                return Err(DomainError::RoomFull);
            }
        }
        let members = rooms.entry(key).or_default();
        members.robots.clone_from(robots);
        let previous = members
            .online
            .insert(user.to_owned(), Online { connection, info });
        let cause = match previous {
            Some(_) => None,
            None => {
                members.recount = true;
                let recovering = members
                    .interrupted
                    .remove(user)
                    .is_some_and(|at| now.duration_since(at) < self.grace);
                Some(if recovering {
                    Cause::HeartbeatRecover
                } else {
                    Cause::Enter
                })
            }
        };
        let replaced = previous
            .map(|p| p.connection)
            .filter(|&old| old != connection);
        Ok(Entered {
            replaced,
            cause,
            members: count(Some(members), robots),
        })
    }

    /// `user`'s `connection` leaves `room`; nothing when the user is in the room over another
    /// connection (it replaced this one) or not at all. Answers the members left.
    pub fn leave(
        &self,
        app: AppId,
        room: &RoomId,
        user: &str,
        connection: ConnectionId,
        cause: Cause,
        now: Instant,
    ) -> Option<usize> {
        let mut rooms = self.rooms();
        let key = (app, room.clone());
        let members = rooms.get_mut(&key)?;
        if members.online.get(user)?.connection != connection {
            return None;
        }
        members.online.remove(user);
        members.recount = true;
        if cause == Cause::HeartbeatInterrupt {
            members.interrupted.insert(user.to_owned(), now);
        }
        let left = count(Some(members), &members.robots);
        if members.online.is_empty() && members.interrupted.is_empty() {
            rooms.remove(&key);
        }
        Some(left)
    }

    /// Takes `user` out of the room without a departure, for it entered through another
    /// node: its connection here, if it had one.
    pub fn hand_over(&self, app: AppId, room: &RoomId, user: &str) -> Option<ConnectionId> {
        let mut rooms = self.rooms();
        let key = (app, room.clone());
        let members = rooms.get_mut(&key)?;
        let online = members.online.remove(user)?;
        members.recount = true;
        if members.online.is_empty() && members.interrupted.is_empty() {
            rooms.remove(&key);
        }
        Some(online.connection)
    }

    /// Everyone is out: the room was destroyed.
    pub fn forget_room(&self, app: AppId, room: &RoomId) {
        self.rooms().remove(&(app, room.clone()));
    }

    pub fn is_member(&self, app: AppId, room: &RoomId, user: &str) -> bool {
        self.rooms()
            .get(&(app, room.clone()))
            .is_some_and(|m| m.online.contains_key(user))
    }

    /// What others see of `user` in the room (nothing when it is not a member).
    pub fn info(&self, app: AppId, room: &RoomId, user: &str) -> MemberInfo {
        self.rooms()
            .get(&(app, room.clone()))
            .and_then(|m| m.online.get(user))
            .map(|online| online.info.clone())
            .unwrap_or_default()
    }

    /// Members in the room now, robots included.
    pub fn count(&self, app: AppId, room: &RoomId, robots: &BTreeSet<Account>) -> usize {
        count(self.rooms().get(&(app, room.clone())), robots)
    }

    /// Up to `limit` connected members in account order after `after`, how many are
    /// connected, and how many of `robots` are among them.
    pub fn roster(
        &self,
        app: AppId,
        room: &RoomId,
        robots: &BTreeSet<Account>,
        after: Option<&str>,
        limit: usize,
    ) -> Roster {
        let rooms = self.rooms();
        let Some(members) = rooms.get(&(app, room.clone())) else {
            return Roster::default();
        };
        let after = after.map_or(Bound::Unbounded, Bound::Excluded);
        let page = members
            .online
            .range::<str, _>((after, Bound::Unbounded))
            .take(limit)
            .map(|(account, online)| Listed {
                account: account.clone(),
                info: online.info.clone(),
            })
            .collect();
        Roster {
            page,
            connected: members.online.len(),
            robots_connected: robots
                .iter()
                .filter(|r| members.online.contains_key(r.as_str()))
                .count(),
        }
    }

    /// Every member connected here, as reports: for the other nodes to see them again.
    pub fn everyone(&self) -> Vec<Reported> {
        let rooms = self.rooms();
        let mut all = Vec::new();
        for ((app, room), members) in rooms.iter() {
            for (account, online) in &members.online {
                all.push(Reported::In {
                    app: *app,
                    room: room.clone(),
                    account: account.clone(),
                    info: online.info.clone(),
                });
            }
        }
        all
    }

    /// The rooms whose member count changed since the last tick, with their members now; and
    /// the interrupted members that the grace period ended, forgotten now.
    pub fn tick(&self, now: Instant) -> Tick {
        let mut rooms = self.rooms();
        let mut tick = Tick::default();
        rooms.retain(|key, members| {
            members.interrupted.retain(|user, at| {
                let within = now.duration_since(*at) < self.grace;
                if !within {
                    tick.gone.push((key.clone(), user.clone()));
                }
                within
            });
            if std::mem::take(&mut members.recount) {
                tick.counts
                    .push((key.clone(), count(Some(members), &members.robots)));
            }
            !(members.online.is_empty() && members.interrupted.is_empty())
        });
        tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> RoomId {
        RoomId::parse("r".into()).unwrap()
    }

    fn no_robots() -> BTreeSet<Account> {
        BTreeSet::new()
    }

    fn enter(
        p: &Presence,
        user: &str,
        connection: u64,
        max: u32,
        now: Instant,
    ) -> Result<Entered, DomainError> {
        p.enter(
            1,
            &room(),
            user,
            connection,
            MemberInfo::default(),
            max,
            &no_robots(),
            now,
        )
    }

    #[test]
    fn the_newer_connection_wins_and_the_older_cannot_remove_it() {
        let p = Presence::new(Duration::from_secs(30));
        let now = Instant::now();
        let first = enter(&p, "u", 1, 0, now).unwrap();
        assert_eq!(
            (first.cause, first.replaced, first.members),
            (Some(Cause::Enter), None, 1)
        );
        let second = enter(&p, "u", 2, 0, now).unwrap();
        assert_eq!((second.cause, second.replaced), (None, Some(1)));
        assert_eq!(p.leave(1, &room(), "u", 1, Cause::Leave, now), None);
        assert!(p.is_member(1, &room(), "u"));
        assert_eq!(p.leave(1, &room(), "u", 2, Cause::Leave, now), Some(0));
        assert!(!p.is_member(1, &room(), "u"));
    }

    #[test]
    fn an_interrupted_member_recovers_within_the_grace_period() {
        let p = Presence::new(Duration::from_secs(30));
        let now = Instant::now();
        enter(&p, "u", 1, 0, now).unwrap();
        p.leave(1, &room(), "u", 1, Cause::HeartbeatInterrupt, now);
        let back = enter(&p, "u", 2, 0, now + Duration::from_secs(29)).unwrap();
        assert_eq!(back.cause, Some(Cause::HeartbeatRecover));
        p.leave(1, &room(), "u", 2, Cause::HeartbeatInterrupt, now);
        let late = enter(&p, "u", 3, 0, now + Duration::from_secs(31)).unwrap();
        assert_eq!(late.cause, Some(Cause::Enter));
        // A clean leave is never recovered from.
        p.leave(1, &room(), "u", 3, Cause::Leave, now);
        assert_eq!(enter(&p, "u", 4, 0, now).unwrap().cause, Some(Cause::Enter));
    }

    #[test]
    fn a_full_room_refuses_newcomers_but_not_members_and_robots_count() {
        let p = Presence::new(Duration::from_secs(30));
        let now = Instant::now();
        let robots: BTreeSet<Account> = [Account::parse("a", "bot".into()).unwrap()].into();
        let enter = |user: &str, connection| {
            p.enter(
                1,
                &room(),
                user,
                connection,
                MemberInfo::default(),
                2,
                &robots,
                now,
            )
        };
        assert_eq!(enter("a", 1).unwrap().members, 2);
        assert_eq!(enter("b", 2), Err(DomainError::RoomFull));
        assert!(enter("a", 3).is_ok());
        // The robot itself may connect: it is counted once.
        assert_eq!(enter("bot", 4).unwrap().members, 2);
        let (page, total) = listing(p.roster(1, &room(), &robots, None, 10), &robots, None, 10);
        assert_eq!(total, 2);
        assert_eq!(
            page.iter().map(|l| l.account.as_str()).collect::<Vec<_>>(),
            ["a", "bot"]
        );
        let roster = p.roster(1, &room(), &robots, Some("a"), 10);
        let (page, _) = listing(roster, &robots, Some("a"), 10);
        assert_eq!(page.len(), 1);
    }

    #[test]
    fn ticks_report_changed_counts_once_and_sweep() {
        let p = Presence::new(Duration::from_secs(30));
        let now = Instant::now();
        enter(&p, "u", 1, 0, now).unwrap();
        assert_eq!(p.tick(now).counts, [((1, room()), 1)]);
        assert_eq!(p.tick(now), Tick::default());
        p.leave(1, &room(), "u", 1, Cause::HeartbeatInterrupt, now);
        assert_eq!(p.tick(now).counts, [((1, room()), 0)]);
        // The grace period over, the interrupted member is gone for good, once.
        let later = now + Duration::from_secs(31);
        assert_eq!(p.tick(later).gone, [((1, room()), "u".to_owned())]);
        assert_eq!(p.tick(later), Tick::default());
        assert!(p.rooms().is_empty());
    }
}
