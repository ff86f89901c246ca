//! What the nodes share beyond durable state (docs/cluster.md §4): who is connected to each
//! room, and the live-only frames. Each node writes its own members and frames through one
//! task, in call order, a batch per transaction without waiting for the disk (presence is
//! rebuilt from connections; a frame is best effort). Each node holds a lease that it renews
//! about once a second; when a lease ends, the first node to sweep removes that node's members
//! and announces them gone.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use liveroom_domain::{Account, AppId, RoomId};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{Failure, Inner, big, committed, describe, unsigned};
use crate::{
    Departed, Listed, MemberInfo, Relay, Relayed, Reported, Returning, Roster, StoreResult, Swept,
};

/// Reports and frames that may wait for the task; a report beyond waits for room, a frame
/// beyond is dropped (and counted).
pub(super) const QUEUE: usize = 65_536;
/// Reports and frames written together.
const BATCH: usize = 512;
/// Frames read from other nodes per query.
const PAGE: i64 = 1000;
/// How long a frame stays in the table: far longer than any node takes to read it.
const FRAMES_KEPT: Duration = Duration::from_secs(30);
/// Other nodes whose frame positions are remembered; beyond, they are read again from the table.
const MAX_CURSORS: usize = 1024;
/// Relayed batches a subscriber may fall behind before it misses some (best effort).
const RELAY_CAPACITY: usize = 1024;

pub(super) enum Job {
    Report(Vec<Reported>, oneshot::Sender<StoreResult<()>>),
    Frame {
        app: AppId,
        room: RoomId,
        at_ms: i64,
        relay: Relay,
    },
}

/// A random number naming this process among the nodes: a node restarted under the same name
/// is a new node, and the old one's members still leave.
pub(super) fn node_key() -> i64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    // Seeded from the operating system's randomness, anew for each process.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    (hasher.finish() >> 1) as i64
}

pub(super) fn relay_channel() -> broadcast::Sender<Arc<[Relayed]>> {
    broadcast::channel(RELAY_CAPACITY).0
}

const REGISTER: &str = "INSERT INTO nodes VALUES ($1, $2, $3) ON CONFLICT (node_key) \
    DO UPDATE SET lease_until_ms = EXCLUDED.lease_until_ms RETURNING (xmax = 0)";
const UPSERT_MEMBER: &str = "INSERT INTO members VALUES ($1, $2, $3, $4, $5, $6, NULL) \
    ON CONFLICT (app, room_id, account, node_key) \
    DO UPDATE SET nick = EXCLUDED.nick, avatar = EXCLUDED.avatar, interrupted_ms = NULL";
const INTERRUPT_MEMBER: &str = "UPDATE members SET interrupted_ms = $5 \
    WHERE app = $1 AND room_id = $2 AND account = $3 AND node_key = $4";
/// Whether the member is connected through another node (`$4` this one), and if not, takes
/// over its rows interrupted at `$5` or later.
const RETURNING: &str = "WITH elsewhere AS (SELECT 1 FROM members \
    WHERE app = $1 AND room_id = $2 AND account = $3 AND node_key <> $4 \
    AND interrupted_ms IS NULL LIMIT 1), \
    taken AS (DELETE FROM members WHERE app = $1 AND room_id = $2 AND account = $3 \
    AND interrupted_ms >= $5 AND NOT EXISTS (SELECT 1 FROM elsewhere) RETURNING 1) \
    SELECT EXISTS (SELECT 1 FROM elsewhere), EXISTS (SELECT 1 FROM taken)";
const END_INTERRUPTION: &str = "DELETE FROM members \
    WHERE app = $1 AND room_id = $2 AND account = $3 AND node_key = $4 \
    AND interrupted_ms IS NOT NULL";
const DELETE_MEMBER: &str =
    "DELETE FROM members WHERE app = $1 AND room_id = $2 AND account = $3 AND node_key = $4";
const CLEAR_ROOM: &str = "DELETE FROM members WHERE app = $1 AND room_id = $2";
const INSERT_FRAMES: &str = "INSERT INTO live_frames SELECT $1, * FROM \
    UNNEST($2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[])";
/// Removes the members of nodes whose lease ended; answers those no other node still has.
const SWEEP_NODES: &str = "WITH dead AS \
    (DELETE FROM nodes WHERE lease_until_ms < $1 RETURNING node_key), \
    gone AS (DELETE FROM members WHERE node_key IN (SELECT node_key FROM dead) \
    RETURNING app, room_id, account, nick, avatar, interrupted_ms) \
    SELECT DISTINCT ON (app, room_id, account) app, room_id, account, nick, avatar, \
    interrupted_ms IS NOT NULL FROM gone g \
    WHERE NOT EXISTS (SELECT 1 FROM members m WHERE m.app = g.app AND m.room_id = g.room_id \
    AND m.account = g.account AND m.node_key NOT IN (SELECT node_key FROM dead)) \
    ORDER BY app, room_id, account, interrupted_ms IS NOT NULL";
const PRUNE_FRAMES: &str = "DELETE FROM live_frames WHERE at_ms < $1";
const MEMBER_PAGE: &str = "SELECT DISTINCT ON (account) account, nick, avatar FROM members \
    WHERE app = $1 AND room_id = $2 AND account > $3 AND interrupted_ms IS NULL \
    ORDER BY account, node_key LIMIT $4";
const MEMBER_COUNTS: &str = "SELECT count(DISTINCT account), \
    count(DISTINCT account) FILTER (WHERE account = ANY($3)) \
    FROM members WHERE app = $1 AND room_id = $2 AND interrupted_ms IS NULL";
const FRAMES_AFTER: &str = "SELECT f.node_key, f.seq, f.app, f.room_id, f.frame, f.replaces \
    FROM live_frames f LEFT JOIN UNNEST($2::bigint[], $3::bigint[]) AS c(node_key, seq) \
    ON c.node_key = f.node_key WHERE f.node_key <> $1 AND f.seq > COALESCE(c.seq, 0) \
    ORDER BY f.node_key, f.seq LIMIT $4";
const FRAME_HEADS: &str = "SELECT node_key, max(seq) FROM live_frames GROUP BY node_key";

/// Writes queued reports and frames in call order, a batch per transaction.
pub(super) async fn write(inner: Arc<Inner>, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut next_seq: i64 = 1;
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        let first_seq = next_seq;
        let frames = jobs
            .iter()
            .filter(|job| matches!(job, Job::Frame { .. }))
            .count() as i64;
        next_seq += frames;
        let outcome = inner
            .transact("sharing presence", |client| {
                let (inner, jobs) = (&*inner, &jobs);
                committed!(client, tx => {
                    tx.batch_execute("SET LOCAL synchronous_commit = off").await?;
                    apply(&tx, inner, jobs, first_seq).await
                })
            })
            .await;
        if let Err(error) = &outcome
            && frames > 0
        {
            tracing::warn!(%error, frames, "postgres store: live frames for other nodes dropped");
        }
        for job in jobs {
            if let Job::Report(_, reply) = job {
                let _ = reply.send(outcome.clone());
            }
        }
    }
}

async fn apply(
    tx: &deadpool_postgres::Transaction<'_>,
    inner: &Inner,
    jobs: &[Job],
    first_seq: i64,
) -> Result<(), Failure> {
    let key = inner.node_key;
    let mut seqs = Vec::new();
    let mut at = Vec::new();
    let mut apps = Vec::new();
    let mut rooms = Vec::new();
    let mut texts = Vec::new();
    let mut replaces = Vec::new();
    for job in jobs {
        match job {
            Job::Report(changes, _) => {
                for change in changes {
                    match change {
                        Reported::In {
                            app,
                            room,
                            account,
                            info,
                        } => {
                            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
                                &i64::from(*app),
                                &room.as_str(),
                                account,
                                &key,
                                &info.nick,
                                &info.avatar,
                            ];
                            tx.execute(&tx.prepare_cached(UPSERT_MEMBER).await?, &params)
                                .await?;
                        }
                        Reported::Interrupted {
                            app,
                            room,
                            account,
                            at_ms,
                        } => {
                            let at = big(*at_ms);
                            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                                [&i64::from(*app), &room.as_str(), account, &key, &at];
                            tx.execute(&tx.prepare_cached(INTERRUPT_MEMBER).await?, &params)
                                .await?;
                        }
                        Reported::Out { app, room, account } => {
                            tx.execute(
                                &tx.prepare_cached(DELETE_MEMBER).await?,
                                &[&i64::from(*app), &room.as_str(), account, &key],
                            )
                            .await?;
                        }
                        Reported::Cleared { app, room } => {
                            tx.execute(
                                &tx.prepare_cached(CLEAR_ROOM).await?,
                                &[&i64::from(*app), &room.as_str()],
                            )
                            .await?;
                        }
                    }
                }
            }
            Job::Frame {
                app,
                room,
                at_ms,
                relay,
            } => {
                seqs.push(first_seq + seqs.len() as i64);
                at.push(*at_ms);
                apps.push(i64::from(*app));
                rooms.push(room.as_str());
                let (text, replaced) = match relay {
                    Relay::Frame(text) => (text.as_str(), None),
                    Relay::Replace { account } => ("", Some(account.as_str())),
                };
                texts.push(text);
                replaces.push(replaced);
            }
        }
    }
    if !seqs.is_empty() {
        tx.execute(
            &tx.prepare_cached(INSERT_FRAMES).await?,
            &[&key, &seqs, &at, &apps, &rooms, &texts, &replaces],
        )
        .await?;
        if inner.notify {
            super::notify_others(tx, inner).await?;
        }
    }
    Ok(())
}

/// Takes this node's lease until `now + lease` (answering whether it had to be taken anew),
/// then removes the members of nodes whose lease ended and frames every node has read.
pub(super) async fn sweep(inner: &Inner, now: Duration) -> StoreResult<Swept> {
    let now_ms = big(now.as_millis() as u64);
    let until = now_ms.saturating_add(big(inner.presence_lease.as_millis() as u64));
    let kept = now_ms.saturating_sub(big(FRAMES_KEPT.as_millis() as u64));
    let (key, node) = (inner.node_key, inner.node.as_str());
    inner
        .transact("sweeping members", |client| {
            committed!(client, tx => {
                tx.batch_execute("SET LOCAL synchronous_commit = off").await?;
                let rejoined: bool = tx.query_one(&tx.prepare_cached(REGISTER).await?, &[&key, &node, &until]).await?.get(0);
                let rows = tx.query(&tx.prepare_cached(SWEEP_NODES).await?, &[&now_ms]).await?;
                tx.execute(&tx.prepare_cached(PRUNE_FRAMES).await?, &[&kept]).await?;
                let mut gone = Vec::with_capacity(rows.len());
                for row in rows {
                    let (Ok(app), Ok(room)) = (
                        AppId::try_from(row.get::<_, i64>(0)),
                        RoomId::parse(row.get(1)),
                    ) else {
                        continue;
                    };
                    gone.push(Departed {
                        app,
                        room,
                        member: listed(&row, 2),
                        interrupted: row.get(5),
                    });
                }
                Ok(Swept { gone, rejoined })
            })
        })
        .await
}

/// Registers this node at start; `now` is the process's clock.
pub(super) async fn register(inner: &Inner) -> StoreResult<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    sweep(inner, now).await.map(|_| ())
}

/// The node's row and its members go with a clean stop: nobody needs to wait for its lease.
pub(super) async fn deregister(inner: &Inner) {
    let key = inner.node_key;
    let outcome = inner
        .transact("leaving the cluster", |client| {
            committed!(client, tx => {
                tx.execute("DELETE FROM members WHERE node_key = $1", &[&key]).await?;
                tx.execute("DELETE FROM nodes WHERE node_key = $1", &[&key]).await?;
                Ok(())
            })
        })
        .await;
    if let Err(error) = outcome {
        tracing::warn!(%error, "postgres store: could not leave the cluster; the lease will end");
    }
}

pub(super) async fn returning(
    inner: &Inner,
    (app, room, account): (AppId, &RoomId, &str),
    since_ms: u64,
) -> StoreResult<Returning> {
    let (app, key, since) = (i64::from(app), inner.node_key, big(since_ms));
    inner
        .transact("finding a member", |client| async move {
            let statement = client.prepare_cached(RETURNING).await?;
            let row = client
                .query_one(&statement, &[&app, &room.as_str(), &account, &key, &since])
                .await?;
            let (elsewhere, recovered): (bool, bool) = (row.get(0), row.get(1));
            Ok::<_, Failure>(match (elsewhere, recovered) {
                (true, _) => Returning::Elsewhere,
                (false, true) => Returning::Recovered,
                (false, false) => Returning::New,
            })
        })
        .await
}

pub(super) async fn end_interruption(
    inner: &Inner,
    (app, room, account): (AppId, &RoomId, &str),
) -> StoreResult<bool> {
    let (app, key) = (i64::from(app), inner.node_key);
    inner
        .transact("ending an interruption", |client| async move {
            let statement = client.prepare_cached(END_INTERRUPTION).await?;
            let taken = client
                .execute(&statement, &[&app, &room.as_str(), &account, &key])
                .await?;
            Ok::<_, Failure>(taken > 0)
        })
        .await
}

fn listed(row: &tokio_postgres::Row, from: usize) -> Listed {
    Listed {
        account: row.get(from),
        info: MemberInfo {
            nick: row.get(from + 1),
            avatar: row.get(from + 2),
        },
    }
}

pub(super) async fn members(
    inner: &Inner,
    app: AppId,
    room: &RoomId,
    robots: &BTreeSet<Account>,
    after: Option<&str>,
    limit: usize,
) -> StoreResult<Roster> {
    let app = i64::from(app);
    let robots: Vec<&str> = robots.iter().map(Account::as_str).collect();
    let after = after.unwrap_or("");
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    inner
        .read("listing members", |client| async move {
            let room = room.as_str();
            let page_params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                [&app, &room, &after, &limit];
            let count_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                [&app, &room, &robots];
            // One round trip: the two statements are pipelined.
            let (page, counts) = futures_util::future::try_join(
                client.query(&client.prepare_cached(MEMBER_PAGE).await?, &page_params),
                client.query_one(&client.prepare_cached(MEMBER_COUNTS).await?, &count_params),
            )
            .await?;
            Ok(Roster {
                page: page.iter().map(|row| listed(row, 0)).collect(),
                connected: unsigned(counts.get(0)) as usize,
                robots_connected: unsigned(counts.get(1)) as usize,
            })
        })
        .await
}

/// Where this node is in each other node's frames.
pub(super) struct FrameCursors(HashMap<i64, i64>);

impl FrameCursors {
    /// Every node's newest frame now: a node follows from here.
    pub(super) async fn now(client: &tokio_postgres::Client) -> Result<Self, String> {
        let rows = client
            .query(FRAME_HEADS, &[])
            .await
            .map_err(|e| describe(&e))?;
        Ok(Self(rows.iter().map(|r| (r.get(0), r.get(1))).collect()))
    }

    /// Publishes to `relay` every frame of the other nodes after the cursors, in each node's
    /// order.
    pub(super) async fn catch_up(
        &mut self,
        client: &tokio_postgres::Client,
        me: i64,
        relay: &broadcast::Sender<Arc<[Relayed]>>,
    ) -> Result<(), String> {
        if self.0.len() > MAX_CURSORS {
            *self = Self::now(client).await?;
        }
        loop {
            let (nodes, seqs): (Vec<i64>, Vec<i64>) = self.0.iter().map(|(k, s)| (*k, *s)).unzip();
            let rows = client
                .query(FRAMES_AFTER, &[&me, &nodes, &seqs, &PAGE])
                .await
                .map_err(|e| describe(&e))?;
            let mut frames = Vec::with_capacity(rows.len());
            for row in &rows {
                self.0.insert(row.get(0), row.get(1));
                let (Ok(app), Ok(room)) = (
                    AppId::try_from(row.get::<_, i64>(2)),
                    RoomId::parse(row.get(3)),
                ) else {
                    continue;
                };
                let relay = match row.get::<_, Option<String>>(5) {
                    Some(account) => Relay::Replace { account },
                    None => Relay::Frame(row.get(4)),
                };
                frames.push(Relayed { app, room, relay });
            }
            if !frames.is_empty() {
                // Nobody listening is not an error: frames are live only.
                let _ = relay.send(frames.into());
            }
            if rows.len() < PAGE as usize {
                return Ok(());
            }
        }
    }
}
