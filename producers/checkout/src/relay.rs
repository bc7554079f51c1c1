//! The outbox relay: publishes pending outbox rows to Kafka in insertion order with an idempotent
//! producer, then marks them published. Rows stay pending while Kafka is down and go out when it
//! returns, so an accepted order is never lost. One relay at a time holds a Postgres advisory
//! lock, so several checkout replicas never interleave their sends of one key.
//!
//! Each message carries its row in the `x-outbox-id` header. When a relay takes over, and after
//! a batch Kafka did not fully confirm, it first reads the topic's newest messages and marks the
//! pending rows it finds there as published: rows a relay sent just before it died, or before
//! its database connection broke, are not sent a second time.

mod tail;
pub mod wake;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures::future::join_all;
use orderflow_core::config::KafkaConfig;
use orderflow_core::event::ORDER_PLACED_SCHEMAS;
use orderflow_core::registry::SchemaRegistry;
use orderflow_core::telemetry;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tracing::Instrument;

use crate::store::OUTBOX_CHANNEL;

/// Header naming the outbox row a message was published from: `<schema>/<id>`.
pub const OUTBOX_ID: &str = "x-outbox-id";

/// Why the relay stopped leading for a while.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

#[derive(Clone)]
pub struct RelaySettings {
    pub batch_size: i64,
    /// Longest wait between looks at the outbox when no notification arrives.
    pub poll_interval: Duration,
    /// Re-frame the outbox's single-object payloads the Confluent way when sending.
    pub schema_registry: Option<SchemaRegistry>,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            schema_registry: None,
        }
    }
}

#[derive(sqlx::FromRow)]
struct PendingRow {
    id: i64,
    topic: String,
    message_key: String,
    payload: Vec<u8>,
    headers: sqlx::types::Json<HashMap<String, String>>,
    /// When the order was accepted (the row written), in epoch milliseconds.
    created_ms: i64,
}

pub struct Relay {
    pool: PgPool,
    producer: FutureProducer,
    kafka: KafkaConfig,
    settings: RelaySettings,
}

impl Relay {
    pub fn new(
        pool: PgPool,
        producer: FutureProducer,
        kafka: KafkaConfig,
        settings: RelaySettings,
    ) -> Self {
        Self {
            pool,
            producer,
            kafka,
            settings,
        }
    }

    /// Publishes until `shutdown` completes. Database and Kafka trouble is logged and retried.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut failures = 0u32;
        loop {
            let wait = tokio::select! {
                _ = &mut shutdown => return,
                result = self.lead() => match result {
                    Ok(()) => self.settings.poll_interval,
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, "outbox relay interrupted; retrying");
                        backoff(failures)
                    }
                },
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Waits to become the leader, then publishes for as long as the lock's connection lives.
    async fn lead(&self) -> Result<(), RelayError> {
        // Detached from the pool: when leadership ends, for whatever reason, the connection closes
        // and releases the lock instead of going back to the pool still holding it.
        let mut lock_conn: PgConnection = self.pool.acquire().await?.detach();
        loop {
            // One leader per outbox table: the lock is named after the table's schema.
            let got: bool = sqlx::query_scalar(
                "SELECT pg_try_advisory_lock(hashtext('orderflow.outbox.' || current_schema()))",
            )
            .fetch_one(&mut lock_conn)
            .await?;
            if got {
                break;
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
        tracing::info!("outbox relay is the leader");
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&mut lock_conn)
            .await?;
        self.reconcile(&schema).await?;
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(OUTBOX_CHANNEL).await?;
        let mut failures = 0u32;
        loop {
            // Keeps the lock's session alive and notices when it is gone.
            sqlx::query("SELECT 1").execute(&mut lock_conn).await?;
            match self.publish_batch(&schema).await? {
                BatchOutcome::Published(n) if n as i64 == self.settings.batch_size => {
                    failures = 0;
                    continue;
                }
                BatchOutcome::Published(_) => {
                    failures = 0;
                    // Woken by the next accepted order, or by the poll interval as a fallback.
                    let _ = tokio::time::timeout(self.settings.poll_interval, listener.try_recv())
                        .await;
                }
                BatchOutcome::RegistryFailed => {
                    failures += 1;
                    tokio::time::sleep(backoff(failures)).await;
                }
                BatchOutcome::KafkaFailed => {
                    failures += 1;
                    tokio::time::sleep(backoff(failures)).await;
                    // A send reported as failed may still have been written.
                    self.reconcile(&schema).await?;
                }
            }
        }
    }

    /// Marks as published the oldest pending rows that are already on their topic. Only the
    /// rows of the last batch a relay sent can be in doubt, and they are the oldest pending
    /// ones and among the newest messages, so a window of two batches per partition suffices.
    async fn reconcile(&self, schema: &str) -> Result<(), RelayError> {
        let pending: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, topic FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(self.settings.batch_size)
        .fetch_all(&self.pool)
        .await?;
        if pending.is_empty() {
            return Ok(());
        }
        let topics: BTreeSet<&str> = pending.iter().map(|(_, t)| t.as_str()).collect();
        let mut on_kafka = std::collections::HashSet::new();
        for topic in topics {
            on_kafka.extend(
                tail::header_values(&self.kafka, topic, OUTBOX_ID, 2 * self.settings.batch_size)
                    .await?,
            );
        }
        let sent: Vec<i64> = pending
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| on_kafka.contains(&format!("{schema}/{id}")))
            .collect();
        if !sent.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
                .bind(&sent)
                .execute(&self.pool)
                .await?;
            tracing::warn!(
                rows = sent.len(),
                "outbox rows sent before an interruption are on Kafka already; marked published, not sent again"
            );
        }
        Ok(())
    }

    /// The bytes to send for each row: as stored (single-object), or re-framed for the schema
    /// registry; `None` when the registry cannot help now, and the rows wait for a later batch.
    async fn payloads<'a>(&self, rows: &'a [PendingRow]) -> Option<Vec<Cow<'a, [u8]>>> {
        let Some(registry) = &self.settings.schema_registry else {
            return Some(
                rows.iter()
                    .map(|r| Cow::Borrowed(r.payload.as_slice()))
                    .collect(),
            );
        };
        let mut framed = Vec::with_capacity(rows.len());
        for row in rows {
            match registry
                .confluent_frame(&row.topic, &ORDER_PLACED_SCHEMAS, &row.payload)
                .await
            {
                Ok(bytes) => framed.push(Cow::Owned(bytes)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot frame outbox rows for the schema registry; they stay pending");
                    return None;
                }
            }
        }
        Some(framed)
    }

    async fn publish_batch(&self, schema: &str) -> Result<BatchOutcome, sqlx::Error> {
        let rows: Vec<PendingRow> = sqlx::query_as(
            "SELECT id, topic, message_key, payload, headers,
                    (extract(epoch FROM created_at) * 1000)::bigint AS created_ms
             FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(self.settings.batch_size)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(BatchOutcome::Published(0));
        }
        // All sends are queued at once and delivered in order per partition by the idempotent
        // producer; waiting on each in turn would cost a round trip per order.
        let Some(payloads) = self.payloads(&rows).await else {
            return Ok(BatchOutcome::RegistryFailed);
        };
        let outbox_ids: Vec<String> = rows.iter().map(|r| format!("{schema}/{}", r.id)).collect();
        // Each send is a producer span continuing the trace of the request that accepted the
        // order (its context is in the row), and the message carries the send's own context.
        let spans: Vec<tracing::Span> = rows
            .iter()
            .map(|row| {
                let span = telemetry::producer_span("kafka", &row.topic);
                telemetry::set_parent_from(&span, &*row.headers);
                span
            })
            .collect();
        let results = join_all(rows.iter().zip(&outbox_ids).zip(&spans).zip(&payloads).map(
            |(((row, outbox_id), span), payload)| {
                let mut carried = row.headers.0.clone();
                carried.extend(telemetry::context_headers(span));
                let mut headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "content-type",
                        value: Some("application/vnd.orderflow.order-placed+avro"),
                    })
                    .insert(Header {
                        key: OUTBOX_ID,
                        value: Some(outbox_id.as_str()),
                    });
                for (key, value) in &carried {
                    headers = headers.insert(Header {
                        key: key.as_str(),
                        value: Some(value.as_str()),
                    });
                }
                // The message's time is when the order was accepted, not when it left the
                // outbox: lag ages, end-to-end latency and replay windows count from the order.
                let record = FutureRecord::to(&row.topic)
                    .key(&row.message_key)
                    .payload(payload.as_ref())
                    .headers(headers)
                    .timestamp(row.created_ms);
                self.producer
                    .send(record, Duration::from_secs(0))
                    .instrument(span.clone())
            },
        ))
        .await;
        let mut published = Vec::with_capacity(rows.len());
        let mut first_error = None;
        for ((row, result), span) in rows.iter().zip(results).zip(&spans) {
            match result {
                Ok(_) => published.push(row.id),
                Err((e, _)) => {
                    telemetry::record_error(span, "publish", &e.to_string());
                    first_error.get_or_insert(e);
                }
            }
        }
        if !published.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
                .bind(&published)
                .execute(&self.pool)
                .await?;
        }
        match first_error {
            None => Ok(BatchOutcome::Published(published.len())),
            Some(e) => {
                tracing::warn!(
                    error = %e,
                    pending = rows.len() - published.len(),
                    "kafka did not take outbox rows; they stay pending and will be retried"
                );
                Ok(BatchOutcome::KafkaFailed)
            }
        }
    }
}

enum BatchOutcome {
    Published(usize),
    KafkaFailed,
    /// The schema registry could not give an id: nothing was sent.
    RegistryFailed,
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(200 * 2u64.pow(failures.min(5))).min(Duration::from_secs(5))
}
