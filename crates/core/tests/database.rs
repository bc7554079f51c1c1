//! Services that share a schema start side by side (notifications and its mailer), and replicas
//! of one service start together when they scale: creating the schema and the runtime's tables
//! must succeed while another process is creating the same.

use std::time::Duration;

use orderflow_core::db::{DatabaseConfig, LOCK_DDL};
use orderflow_core::idempotency::IdempotencyStore;
use orderflow_testkit as kit;
use sqlx::Connection;

#[tokio::test]
async fn a_service_connecting_while_another_creates_its_schema_waits_and_connects() {
    let schema = kit::unique("shared").replace('-', "_");
    // The other service, caught between creating the schema and committing.
    let mut other = sqlx::PgConnection::connect(&kit::database_url())
        .await
        .unwrap();
    let mut creating = other.begin().await.unwrap();
    sqlx::query(LOCK_DDL).execute(&mut *creating).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut *creating)
        .await
        .unwrap();
    let config = DatabaseConfig {
        url: kit::database_url(),
        schema: schema.clone(),
        max_connections: 1,
    };
    let connecting = tokio::spawn(async move { config.connect().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !connecting.is_finished(),
        "connect must wait for the schema being created"
    );
    creating.commit().await.unwrap();
    let pool = connecting
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("connecting once {schema} was created: {e}"));
    let current: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(current, schema);
}

#[tokio::test]
async fn a_replica_creating_the_idempotency_table_while_another_does_waits_and_succeeds() {
    let (pool, schema) = kit::database_with_schema().await;
    let mut other = sqlx::PgConnection::connect(&kit::database_url())
        .await
        .unwrap();
    let mut creating = other.begin().await.unwrap();
    sqlx::query(LOCK_DDL).execute(&mut *creating).await.unwrap();
    sqlx::query(&format!(
        "CREATE TABLE {schema}.processed_events (consumer_group TEXT NOT NULL, \
         event_id TEXT NOT NULL, processed_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
         PRIMARY KEY (consumer_group, event_id))"
    ))
    .execute(&mut *creating)
    .await
    .unwrap();
    let starting = tokio::spawn(async move { IdempotencyStore::new(pool, "group").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!starting.is_finished(), "the second replica waits");
    creating.commit().await.unwrap();
    if let Err(e) = starting.await.unwrap() {
        panic!("the second replica failed once the table existed: {e}");
    }
}
