//! Shared set-up: a fresh topic, dead-letter topic, consumer group and schema per test, orders
//! built from the testkit's sample, and the consumer started in this process.

use std::net::SocketAddr;
use std::time::Duration;

use accounting::{Accounting, LedgerSettings, Settings};
use chrono::{DateTime, Utc};
use orderflow_core::db::DatabaseConfig;
use orderflow_core::OrderPlaced;
use orderflow_testkit as kit;
use sqlx::PgPool;

pub type Setup = kit::ConsumerFixture;

pub async fn setup(partitions: i32) -> Setup {
    kit::ConsumerFixture::new("accounting", partitions).await
}

pub fn ledger(schema: &str, time_zone: &str) -> LedgerSettings {
    LedgerSettings {
        database: DatabaseConfig {
            url: kit::database_url(),
            schema: schema.to_string(),
            max_connections: 4,
        },
        time_zone: time_zone.to_string(),
        chart_file: None,
    }
}

pub fn settings(s: &Setup, time_zone: &str) -> Settings {
    Settings {
        ledger: ledger(&s.schema, time_zone),
        kafka: kit::kafka(),
        consumer: s.batched_consumer_settings(),
        metrics_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
    }
}

pub async fn start(s: &Setup) -> Accounting {
    accounting::start(settings(s, "UTC"), s.pool.clone())
        .await
        .expect("accounting starts")
}

pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

/// The testkit's sample order (two lines, two suppliers, EUR), placed at `placed_at`.
pub fn order(order_id: &str, placed_at: DateTime<Utc>) -> OrderPlaced {
    let mut o = kit::sample_order_placed(order_id);
    o.placed_at = placed_at.timestamp_millis();
    o
}

/// Makes the totals and payment agree with the lines and shipping again after an edit.
pub fn fix_totals(o: &mut OrderPlaced) {
    for l in &mut o.lines {
        l.tax_minor = orderflow_core::event::tax_of(
            l.unit_price_minor * i64::from(l.quantity),
            l.tax_rate_bp,
        );
    }
    o.shipping.tax_minor =
        orderflow_core::event::tax_of(o.shipping.price_minor, o.shipping.tax_rate_bp);
    o.settle_totals();
}

pub fn encoded(orders: &[OrderPlaced]) -> Vec<(String, Vec<u8>)> {
    orders
        .iter()
        .map(|o| (o.order_id.clone(), o.encode().unwrap()))
        .collect()
}

pub async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

pub async fn entries(pool: &PgPool) -> i64 {
    scalar(pool, "SELECT count(*) FROM journal_entries").await
}

/// Waits until `order_id` has an entry.
pub async fn wait_journaled(pool: &PgPool, order_id: &str) -> bool {
    kit::eventually(Duration::from_secs(60), || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM journal_entries WHERE order_id = $1)",
        )
        .bind(order_id)
        .fetch_one(pool)
        .await
        .unwrap_or(false)
    })
    .await
}

pub async fn wait_entries(pool: &PgPool, n: i64) -> bool {
    kit::eventually(Duration::from_secs(60), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM journal_entries")
            .fetch_one(pool)
            .await
            .is_ok_and(|c| c >= n)
    })
    .await
}
