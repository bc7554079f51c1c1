//! The Kafka side: for each `OrderPlaced`, render the order's e-mails and hand them to
//! RabbitMQ, and only once the broker confirmed them mark the event processed.
//!
//! A crash between the confirm and the commit republishes the same e-mails on redelivery;
//! they carry the same `Message-ID`, and the mailer sends each `Message-ID` once. A later event
//! for an order already queued (a replay with a new event id) publishes nothing.

use orderflow_core::db;
use orderflow_core::idempotency::IdempotencyStore;
use orderflow_core::{telemetry, Delivery, Handler, HandlerError, OrderPlaced};
use tracing::Instrument;

use crate::queue::Publisher;
use crate::render::{Rendered, Renderer};
use crate::store;

/// The `notifications` handler.
pub struct Notifier {
    pub renderer: Renderer,
    pub publisher: Publisher,
    pub idempotency: IdempotencyStore,
}

impl Handler for Notifier {
    type Event = OrderPlaced;

    async fn handle(&self, order: &OrderPlaced, delivery: &Delivery) -> Result<(), HandlerError> {
        order.check_consistency().map_err(HandlerError::permanent)?;
        let rendered = self
            .renderer
            .order_emails(order)
            .map_err(HandlerError::permanent)?;
        let Some(mut tx) = self.idempotency.claim(&order.event_id, delivery).await? else {
            tracing::debug!(order_id = %order.order_id, "event already processed");
            return Ok(());
        };
        let ids: Vec<String> = rendered
            .iter()
            .map(|r| r.email.message_id.clone())
            .collect();
        let queued = store::already_queued(&mut tx, &ids)
            .instrument(db::span("SELECT", "queued_emails"))
            .await?;
        let fresh: Vec<&Rendered> = rendered
            .iter()
            .filter(|r| !queued.contains(&r.email.message_id))
            .collect();
        if !fresh.is_empty() {
            let span = telemetry::producer_span("rabbitmq", self.publisher.queue());
            let trace = telemetry::context_headers(&span);
            let messages: Vec<(&[u8], _)> = fresh
                .iter()
                .map(|r| (r.email.raw.as_slice(), r.email.properties(trace.clone())))
                .collect();
            if let Err(e) = self
                .publisher
                .publish(messages)
                .instrument(span.clone())
                .await
            {
                telemetry::record_error(&span, "publish", &e.to_string());
                return Err(HandlerError::retryable(e));
            }
        }
        for r in &fresh {
            store::record_queued(&mut tx, &order.event_id, r)
                .instrument(db::span("INSERT", "queued_emails"))
                .await?;
        }
        db::commit(tx).await?;
        tracing::info!(
            order_id = %order.order_id,
            queued = fresh.len(),
            already_queued = queued.len(),
            "order e-mails queued"
        );
        Ok(())
    }
}
