//! Services that share a schema start side by side (notifications and its mailer), so connecting
//! must succeed while another service is creating the same schema.

use std::time::Duration;

use orderflow_core::db::{DatabaseConfig, LOCK_SCHEMA_CREATION};
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
    sqlx::query(LOCK_SCHEMA_CREATION)
        .execute(&mut *creating)
        .await
        .unwrap();
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
