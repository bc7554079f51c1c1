//! The handler of `orders.placed`: checks the order, then, for each of its suppliers at once,
//! makes sure the supplier has exactly one print job and `orders.dispatched` one event for it.
//!
//! Per (order, supplier) the steps are: count an attempt unless the row says accepted (one
//! upsert); if it was counted, POST the job under its idempotency key and record the answer; then
//! publish the event if the row has not recorded it yet. A crash between any two steps is
//! repaired by the next delivery: a POST whose answer was lost is sent again and the supplier
//! answers with the same job id, and an event published but not recorded is published again with
//! the same `event_id`.
//!
//! Retries: a 429 or 5xx is returned as retryable with the supplier's `Retry-After`, which the
//! runtime's backoff waits out; timeouts and 5xx without the header back off with jitter.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use orderflow_core::event::ORDER_DISPATCHED_SCHEMAS;
use orderflow_core::registry::SchemaRegistry;
use orderflow_core::{db, telemetry, Delivery, Handler, HandlerError, OrderPlaced};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use tracing::Instrument;

use crate::store::{self, Dispatch, Failure};
use crate::supplier::{print_jobs, PrintJob, SupplierClient, SupplierError};

/// Publishes `OrderDispatched` events.
#[derive(Clone)]
pub struct Publisher {
    pub producer: FutureProducer,
    pub topic: String,
    /// Send Confluent-framed events, registering the schema (`ORDERFLOW_SCHEMA_REGISTRY_URL`).
    pub registry: Option<SchemaRegistry>,
}

impl Publisher {
    /// Sends the event of an accepted dispatch, keyed by order id, and waits for the broker.
    async fn publish(&self, row: &Dispatch) -> Result<(), HandlerError> {
        let event = row.event().ok_or_else(|| {
            HandlerError::permanent(format!(
                "dispatch of order {} to {} is not accepted; nothing to publish",
                row.order_id, row.supplier_id
            ))
        })?;
        // Our own types failing to encode is a bug no retry fixes.
        let mut payload = event.encode().map_err(HandlerError::permanent)?;
        if let Some(registry) = &self.registry {
            payload = registry
                .confluent_frame(&self.topic, &ORDER_DISPATCHED_SCHEMAS, &payload)
                .await
                .map_err(|e| {
                    if e.is_retryable() {
                        HandlerError::retryable(e)
                    } else {
                        HandlerError::permanent(e)
                    }
                })?;
        }
        let span = telemetry::producer_span("kafka", &self.topic);
        span.record("messaging.message.id", event.event_id.as_str());
        let trace = telemetry::context_headers(&span);
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "content-type",
                value: Some("application/vnd.orderflow.order-dispatched+avro"),
            })
            .insert(Header {
                key: "event-id",
                value: Some(event.event_id.as_str()),
            });
        for (key, value) in &trace {
            headers = headers.insert(Header {
                key: key.as_str(),
                value: Some(value.as_str()),
            });
        }
        let record = FutureRecord::to(&self.topic)
            .key(&row.order_id)
            .payload(&payload)
            .headers(headers);
        if let Err((e, _)) = self
            .producer
            .send(record, Duration::ZERO)
            .instrument(span.clone())
            .await
        {
            telemetry::record_error(&span, "publish", &e.to_string());
            return Err(HandlerError::retryable(format!(
                "publishing to {}: {e}",
                self.topic
            )));
        }
        Ok(())
    }
}

/// Sends print jobs and publishes what the suppliers accepted.
pub struct SupplierDispatch {
    pool: PgPool,
    supplier: SupplierClient,
    publisher: Publisher,
}

impl SupplierDispatch {
    pub fn new(pool: PgPool, supplier: SupplierClient, publisher: Publisher) -> Self {
        Self {
            pool,
            supplier,
            publisher,
        }
    }

    /// One supplier's part of the order, from the row's state to an accepted, published job.
    async fn dispatch(&self, job: &PrintJob) -> Result<(), HandlerError> {
        // `submit` finds an accepted job itself: the common first delivery then costs no
        // separate read before the supplier's call.
        let row = self.submit(job).await?;
        if row.published_at.is_none() {
            self.publisher.publish(&row).await?;
            store::mark_published(&self.pool, &row.order_id, &row.supplier_id)
                .instrument(db::span("UPDATE", "dispatches"))
                .await?;
            tracing::info!(
                job_id = row.job_id.as_deref().unwrap_or_default(),
                attempts = row.attempts,
                "print job accepted and announced"
            );
        }
        Ok(())
    }

    /// Sends the job once, unless it is accepted already, and records the answer: accepted,
    /// refused (permanent) or unavailable (retryable, with the supplier's `Retry-After` when it
    /// gave one).
    async fn submit(&self, job: &PrintJob) -> Result<Dispatch, HandlerError> {
        if store::begin_attempt(&self.pool, job)
            .instrument(db::span("INSERT", "dispatches"))
            .await?
            .is_none()
        {
            // An earlier delivery of this order got the job accepted.
            return store::load(&self.pool, &job.order_id, &job.supplier_id)
                .instrument(db::span("SELECT", "dispatches"))
                .await?
                .ok_or_else(|| HandlerError::retryable("dispatch row vanished"));
        }
        let error = match self.supplier.submit(job).await {
            Ok(job_id) => {
                return Ok(store::mark_accepted(&self.pool, job, &job_id)
                    .instrument(db::span("UPDATE", "dispatches"))
                    .await?)
            }
            Err(e) => e,
        };
        match error {
            SupplierError::Refused { .. } => {
                store::record_failure(&self.pool, job, Failure::Rejected, &error.to_string())
                    .instrument(db::span("UPDATE", "dispatches"))
                    .await?;
                Err(HandlerError::permanent(error))
            }
            SupplierError::Unavailable { retry_after, .. } => {
                store::record_failure(&self.pool, job, Failure::Failed, &error.to_string())
                    .instrument(db::span("UPDATE", "dispatches"))
                    .await?;
                Err(match retry_after {
                    Some(after) => HandlerError::retry_after(error, after),
                    None => HandlerError::retryable(error),
                })
            }
        }
    }
}

impl Handler for SupplierDispatch {
    type Event = OrderPlaced;

    async fn handle(&self, order: &OrderPlaced, _delivery: &Delivery) -> Result<(), HandlerError> {
        order.check_consistency().map_err(HandlerError::permanent)?;
        let jobs = print_jobs(order);
        // Suppliers of one order are independent: a slow one must not hold up the others.
        let outcomes = join_all(jobs.iter().map(|job| {
            let span = tracing::info_span!(
                "dispatch",
                order_id = %job.order_id,
                supplier_id = %job.supplier_id,
            );
            self.dispatch(job).instrument(span)
        }))
        .await;
        combine(outcomes)
    }
}

/// One outcome for the order: a refusal by any supplier dead-letters it (with every refusal's
/// message), else any retryable failure retries it, after the longest `Retry-After` asked.
/// Accepted suppliers are skipped on the retry.
fn combine(outcomes: Vec<Result<(), HandlerError>>) -> Result<(), HandlerError> {
    let mut by_kind: HashMap<bool, Vec<String>> = HashMap::new();
    let mut retry_after: Option<Duration> = None;
    for error in outcomes.into_iter().filter_map(Result::err) {
        let message = match &error {
            HandlerError::Retryable {
                error,
                retry_after: after,
            } => {
                retry_after = retry_after.max(*after);
                error.to_string()
            }
            HandlerError::Permanent(e) => e.to_string(),
        };
        by_kind
            .entry(error.is_retryable())
            .or_default()
            .push(message);
    }
    if let Some(messages) = by_kind.remove(&false) {
        return Err(HandlerError::permanent(messages.join("; ")));
    }
    if let Some(messages) = by_kind.remove(&true) {
        let error = messages.join("; ");
        return Err(match retry_after {
            Some(after) => HandlerError::retry_after(error, after),
            None => HandlerError::retryable(error),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_wins_over_a_retryable_failure_and_keeps_every_message() {
        assert!(combine(vec![Ok(()), Ok(())]).is_ok());
        let e = combine(vec![
            Err(HandlerError::retryable("sup-a timed out")),
            Ok(()),
        ])
        .unwrap_err();
        assert!(e.is_retryable());
        let e = combine(vec![
            Err(HandlerError::retryable("sup-a timed out")),
            Err(HandlerError::permanent("sup-b: design not printable")),
            Err(HandlerError::permanent("sup-c: size XXS unknown")),
        ])
        .unwrap_err();
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            "permanent: sup-b: design not printable; sup-c: size XXS unknown"
        );
    }

    #[test]
    fn retries_wait_for_the_longest_retry_after_asked() {
        let e = combine(vec![
            Err(HandlerError::retry_after(
                "sup-a busy",
                Duration::from_secs(1),
            )),
            Err(HandlerError::retryable("sup-b timed out")),
            Err(HandlerError::retry_after(
                "sup-c busy",
                Duration::from_secs(3),
            )),
        ])
        .unwrap_err();
        assert!(matches!(
            e,
            HandlerError::Retryable { retry_after: Some(d), .. } if d == Duration::from_secs(3)
        ));
    }
}
