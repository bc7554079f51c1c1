//! The idempotency store on the real Postgres: an event's effect and its "done" mark commit
//! together, and a second delivery finds it done.

use orderflow_core::idempotency::IdempotencyStore;

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
    let tx = store.claim("ev-1").await.unwrap().expect("first claim");
    drop(tx);
    assert!(!store.is_processed("ev-1").await.unwrap());

    let mut tx = store
        .claim("ev-1")
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
        store.claim("ev-1").await.unwrap().is_none(),
        "a redelivery finds it done"
    );

    // Another group processes the same event independently.
    let other = IdempotencyStore::new(pool.clone(), "group-b")
        .await
        .unwrap();
    assert!(other.claim("ev-1").await.unwrap().is_some());

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
    let first = store.claim("ev-2").await.unwrap().expect("first claim");
    // The second claim waits for the first transaction, then sees the event done.
    let second = tokio::spawn({
        let store = store.clone();
        async move { store.claim("ev-2").await.unwrap().is_some() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    first.commit().await.unwrap();
    assert!(!second.await.unwrap());
}
