//! Orders and the outbox in Postgres. An accepted order and its event are written in one
//! transaction, so an order is never accepted without its event, nor an event sent for an order
//! that was not stored.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::order::OrderRequest;
use orderflow_core::OrderPlaced;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The channel the relay listens on to wake up as soon as an order is accepted
/// (`relay::wake::OutboxWaker` notifies it).
pub const OUTBOX_CHANNEL: &str = "orderflow_outbox";

/// What happened to an insert.
pub enum Insert {
    Created,
    /// The order id exists already with this stored request.
    Exists(serde_json::Value),
}

/// Stores the order and its outbox row, or reports the order that already has this id.
pub async fn insert_order(
    pool: &PgPool,
    request: &OrderRequest,
    event: &OrderPlaced,
    payload: &[u8],
    topic: &str,
    headers: &serde_json::Value,
) -> Result<Insert, sqlx::Error> {
    let request_json = serde_json::to_value(request).expect("an order request serializes");
    let placed_at =
        DateTime::<Utc>::from_timestamp_millis(event.placed_at).expect("placed_at is now");
    // One statement, atomic on its own and one round trip: the outbox row is written exactly
    // when the order row is.
    let inserted = sqlx::query(
        "WITH accepted AS (
             INSERT INTO orders
                 (order_id, request, event_id, status, currency, total_minor, placed_at)
             VALUES ($1, $2, $3, 'accepted', $4, $5, $6)
             ON CONFLICT (order_id) DO NOTHING
             RETURNING order_id
         )
         INSERT INTO outbox (topic, message_key, payload, headers, order_id)
         SELECT $7, order_id, $8, $9, order_id FROM accepted",
    )
    .bind(&event.order_id)
    .bind(&request_json)
    .bind(&event.event_id)
    .bind(&event.currency)
    .bind(event.totals.total_minor)
    .bind(placed_at)
    .bind(topic)
    .bind(payload)
    .bind(headers)
    .execute(pool)
    .await?
    .rows_affected();
    if inserted == 0 {
        let existing = stored_request(pool, &event.order_id)
            .await?
            .expect("a conflicting order exists");
        return Ok(Insert::Exists(existing));
    }
    Ok(Insert::Created)
}

/// The request stored for an order id, if any.
pub async fn stored_request(
    pool: &PgPool,
    order_id: &str,
) -> Result<Option<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar("SELECT request FROM orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
}

/// An order as `GET /v1/orders/{id}` shows it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct OrderView {
    pub order_id: String,
    pub status: String,
    pub event_id: String,
    pub currency: String,
    pub total_minor: i64,
    pub placed_at: DateTime<Utc>,
    pub published: bool,
    pub published_at: Option<DateTime<Utc>>,
    pub order: serde_json::Value,
}

pub async fn find_order(pool: &PgPool, order_id: &str) -> Result<Option<OrderView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.order_id, o.status, o.event_id, o.currency, o.total_minor, o.placed_at,
                x.published_at IS NOT NULL AS published, x.published_at, o.request AS order
         FROM orders o JOIN outbox x ON x.order_id = o.order_id
         WHERE o.order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(pool)
    .await
}

/// Outbox rows not yet published, and the age in seconds of the oldest (0 when there is none).
pub async fn outbox_backlog(pool: &PgPool) -> Result<(i64, f64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
         FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await
}
