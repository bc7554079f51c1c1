//! The idempotency store on the real Postgres: an event's effect and its "done" mark commit
//! together, a second delivery finds it done, and a delivery marked for reprocessing goes
//! through again.

use std::time::Duration;

use orderflow_core::idempotency::IdempotencyStore;
use orderflow_core::Delivery;

fn delivery(reprocess: bool) -> Delivery {
    Delivery {
        group: "group".into(),
        topic: "orders.placed.group.retry".into(),
        partition: 0,
        offset: 0,
        key: None,
        headers: Vec::new(),
        reprocess,
        prior_attempts: 0,
    }
}

#[tokio::test]
async fn an_event_is_claimed_once_and_a_rolled_back_claim_is_free_again() {
    let pool = orderflow_testkit::database().await;
    sqlx::query("CREATE TABLE effects (event_id TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    let store = IdempotencyStore::new(pool.clone(), "group-a")
        .await
        .unwrap();

    // A handler that fails mid-way rolls back: the event is not marked done.
    let tx = store
        .claim("ev-1", &delivery(false))
        .await
        .unwrap()
        .expect("first claim");
    drop(tx);
    assert!(!store.is_processed("ev-1").await.unwrap());

    let mut tx = store
        .claim("ev-1", &delivery(false))
        .await
        .unwrap()
        .expect("claim after rollback");
    sqlx::query("INSERT INTO effects VALUES ('ev-1')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(store.is_processed("ev-1").await.unwrap());
    assert!(
        store
            .claim("ev-1", &delivery(false))
            .await
            .unwrap()
            .is_none(),
        "a redelivery finds it done"
    );

    // Another group processes the same event independently.
    let other = IdempotencyStore::new(pool.clone(), "group-b")
        .await
        .unwrap();
    assert!(other
        .claim("ev-1", &delivery(false))
        .await
        .unwrap()
        .is_some());

    let effects: i64 = sqlx::query_scalar("SELECT count(*) FROM effects")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(effects, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_deliveries_of_one_event_let_exactly_one_through() {
    let pool = orderflow_testkit::database().await;
    let store = IdempotencyStore::new(pool, "group-c").await.unwrap();
    let first = store
        .claim("ev-2", &delivery(false))
        .await
        .unwrap()
        .expect("first claim");
    // The second claim waits for the first transaction, then sees the event done.
    let second = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .claim("ev-2", &delivery(false))
                .await
                .unwrap()
                .is_some()
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.commit().await.unwrap();
    assert!(!second.await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reprocess_claims_a_done_event_again_one_at_a_time() {
    let pool = orderflow_testkit::database().await;
    let store = IdempotencyStore::new(pool.clone(), "group-d")
        .await
        .unwrap();
    let processed_at = || async {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
            "SELECT processed_at FROM processed_events WHERE event_id = 'ev-3'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let done = store.claim("ev-3", &delivery(false)).await.unwrap();
    done.expect("first claim").commit().await.unwrap();
    let first_done_at = processed_at().await;
    assert!(store
        .claim("ev-3", &delivery(false))
        .await
        .unwrap()
        .is_none());

    let again = store
        .claim("ev-3", &delivery(true))
        .await
        .unwrap()
        .expect("a reprocess claims a done event");
    // A second reprocess of the same event waits for the first, then goes through too.
    let second = tokio::spawn({
        let store = store.clone();
        async move {
            let tx = store.claim("ev-3", &delivery(true)).await.unwrap();
            let claimed = tx.is_some();
            if let Some(tx) = tx {
                tx.commit().await.unwrap();
            }
            claimed
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!second.is_finished(), "it waits for the first reprocess");
    again.commit().await.unwrap();
    assert!(second.await.unwrap());
    assert!(
        processed_at().await > first_done_at,
        "stamped processed again"
    );
    assert!(
        store
            .claim("ev-3", &delivery(false))
            .await
            .unwrap()
            .is_none(),
        "an ordinary delivery still finds it done"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}
