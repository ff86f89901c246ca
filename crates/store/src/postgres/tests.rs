//! The conformance suites against a real PostgreSQL server: the one `TEST_POSTGRES`
//! names (`scripts/test` starts a throwaway one). Each test gets a schema of its own.

use super::*;
use crate::conformance::Shorthand;
use crate::conformance::postgres::{fresh_schema, url as test_url};
use liveroom_domain::{NewRoom, RoomChanges};

fn options() -> PostgresOptions {
    let mut options = PostgresOptions::new(test_url());
    options.schema = Some(fresh_schema());
    options.pool_size = 4;
    options.poll = Duration::from_millis(50);
    options
}

async fn store() -> Box<PostgresStore> {
    Box::new(PostgresStore::open(options()).await.unwrap())
}

async fn store_with_outboxes() -> Box<PostgresStore> {
    let mut options = options();
    options.outboxes = crate::conformance::suite_outboxes();
    Box::new(PostgresStore::open(options).await.unwrap())
}

crate::conformance_tests!(store().await);

mod feed {
    use super::*;

    crate::feed_conformance!(store_with_outboxes().await);
}

#[tokio::test]
async fn retention_bounds_the_log() {
    let retention = Retention {
        events_per_room: 5,
        ..Retention::default()
    };
    let mut options = options();
    options.retention = retention;
    let store = PostgresStore::open(options).await.unwrap();
    crate::conformance::retention_bounds_the_log(&store, retention).await;
}

/// Two stores on one schema are two nodes: each sees the other's writes, and its subscribers
/// get them in order.
#[tokio::test]
async fn nodes_see_each_other_commits() {
    let a_options = options();
    let mut b_options = PostgresOptions::new(test_url());
    b_options.schema = a_options.schema.clone();
    b_options.poll = Duration::from_secs(3600);
    let a = PostgresStore::open(a_options).await.unwrap();
    let b = PostgresStore::open(b_options).await.unwrap();
    let mut followed = b.subscribe();
    let app = 1_400_000_001;
    let room = NewRoom::validate(
        "r".into(),
        None,
        Some("o".into()),
        "admin",
        RoomChanges::default(),
    )
    .unwrap();
    a.create_room(app, room, 1_700_000_000).await.unwrap();
    let id = RoomId::parse("r".into()).unwrap();
    assert!(
        b.room(app, &id).await.unwrap().is_some(),
        "read on the other node"
    );
    // Only NOTIFY (the poll is an hour) can bring these to b in time.
    for i in 0..5 {
        let op = liveroom_domain::ops::SetMetadata {
            room: id.clone(),
            entries: liveroom_domain::MetadataEntries::new(vec![
                liveroom_domain::MetadataEntry::new("k".into(), i.to_string()).unwrap(),
            ])
            .unwrap(),
        };
        a.write(
            app,
            Account::parse("UserID", "admin".into()).unwrap(),
            Box::new(op),
            Duration::from_secs(1_700_000_002),
        )
        .await
        .unwrap();
    }
    let mut seqs = Vec::new();
    while seqs.len() < 6 {
        let batch = tokio::time::timeout(Duration::from_secs(10), followed.recv())
            .await
            .expect("b hears of a's commits")
            .unwrap();
        seqs.extend(batch.iter().map(|e| e.position.seq));
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    a.close().await;
    b.close().await;
}

/// Two nodes on one schema, for the suite of [`crate::Shared`].
async fn two_nodes(lease: Duration) -> (PostgresStore, PostgresStore) {
    let mut a_options = options();
    a_options.presence_lease = lease;
    let mut b_options = a_options.clone();
    b_options.node = "b".into();
    let a = PostgresStore::open(a_options).await.unwrap();
    let b = PostgresStore::open(b_options).await.unwrap();
    (a, b)
}

mod shared {
    use super::*;
    use crate::Shared as _;
    use crate::conformance::shared;

    #[tokio::test]
    async fn members_are_seen_by_every_node() {
        let (a, b) = two_nodes(Duration::from_secs(10)).await;
        shared::members_are_seen_by_every_node(&a, &b).await;
    }

    #[tokio::test]
    async fn a_silent_nodes_members_leave() {
        let lease = Duration::from_secs(10);
        let (a, b) = two_nodes(lease).await;
        shared::a_silent_nodes_members_leave(&a, &b, lease).await;
    }

    #[tokio::test]
    async fn an_interrupted_member_recovers_on_another_node() {
        let (a, b) = two_nodes(Duration::from_secs(10)).await;
        shared::an_interrupted_member_recovers_on_another_node(&a, &b).await;
    }

    #[tokio::test]
    async fn frames_reach_the_other_nodes() {
        let (a, b) = two_nodes(Duration::from_secs(10)).await;
        shared::frames_reach_the_other_nodes(&a, &b).await;
    }

    /// A clean stop takes the node's members out at once.
    #[tokio::test]
    async fn a_stopped_nodes_members_leave_with_it() {
        let (a, b) = two_nodes(Duration::from_secs(10)).await;
        let room = RoomId::parse("r".into()).unwrap();
        let info = crate::MemberInfo::default();
        let member = crate::Reported::In {
            app: 1,
            room: room.clone(),
            account: "u".into(),
            info,
        };
        a.report_members(vec![member]).await.unwrap();
        a.close().await;
        let roster = b
            .members(1, &room, &Default::default(), None, 10)
            .await
            .unwrap();
        assert_eq!(roster.connected, 0);
    }
}

/// Over TLS, the server's certificate is checked: a node trusting the authority that signed it
/// connects (and sees the connection encrypted), one trusting only Mozilla's roots does not.
#[tokio::test]
async fn tls_connects_only_to_a_trusted_server() {
    use crate::conformance::postgres::tls_url_and_authority;

    let (url, authority) = tls_url_and_authority();
    let mut options = PostgresOptions::new(url);
    options.schema = Some(fresh_schema());
    options.pool_size = 2;
    options.tls = Some(PostgresTls::with_pem_authorities(&authority).unwrap());
    let store = PostgresStore::open(options.clone()).await.unwrap();
    let encrypted: bool = store
        .inner
        .read("checking TLS", |client| async move {
            let row = client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await?;
            Ok(row.get(0))
        })
        .await
        .unwrap();
    assert!(encrypted);
    store.close().await;

    options.tls = Some(PostgresTls::default());
    let refused = PostgresStore::open(options).await.unwrap_err();
    assert!(
        refused.to_string().contains("certificate"),
        "refused for its certificate: {refused}"
    );
    assert!(PostgresTls::with_pem_authorities(b"not a certificate").is_err());
}
