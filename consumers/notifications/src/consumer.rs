//! The Kafka side: for each `OrderPlaced`, render the order's e-mails and hand them to
//! RabbitMQ, and only once the broker confirmed them mark the event processed. A run of events
//! is published with one confirm wait and recorded with one transaction.
//!
//! A crash between the confirm and the commit republishes the same e-mails on redelivery;
//! they carry the same `Message-ID`, and the mailer sends each `Message-ID` once. A later event
//! for an order already queued (a replay with a new event id) publishes nothing.

use std::collections::HashSet;

use orderflow_core::db;
use orderflow_core::idempotency::IdempotencyStore;
use orderflow_core::{telemetry, Batched, Delivery, Handler, HandlerError, OrderPlaced};
use sqlx::PgConnection;
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
        let rendered = self.render(order)?;
        let Some(mut tx) = self.idempotency.claim(&order.event_id, delivery).await? else {
            tracing::debug!(order_id = %order.order_id, "event already processed");
            return Ok(());
        };
        let outgoing = Outgoing {
            order,
            span: tracing::Span::current(),
            emails: rendered,
        };
        let (queued, already) = self.queue(&mut tx, &[outgoing]).await?;
        db::commit(tx).await?;
        tracing::info!(
            order_id = %order.order_id,
            queued,
            already_queued = already,
            "order e-mails queued"
        );
        Ok(())
    }

    /// One claim, one publish (one confirm wait) and one insert for the run.
    async fn handle_batch(&self, batch: &[Batched<OrderPlaced>]) -> Result<(), HandlerError> {
        let rendered: Vec<Outgoing> = batch
            .iter()
            .map(|b| {
                Ok(Outgoing {
                    order: &b.event,
                    span: b.span.clone(),
                    emails: self.render(&b.event)?,
                })
            })
            .collect::<Result<_, HandlerError>>()?;
        let (mut tx, fresh) = self
            .idempotency
            .claim_many(rendered, |o| o.order.event_id.as_str())
            .await?;
        let (queued, already) = self.queue(&mut tx, &fresh).await?;
        db::commit(tx).await?;
        tracing::info!(
            orders = fresh.len(),
            queued,
            already_queued = already,
            "run of orders' e-mails queued"
        );
        Ok(())
    }
}

/// An order's e-mails to queue, with the span in the order's trace that their messages carry on
/// to the mailer.
struct Outgoing<'a> {
    order: &'a OrderPlaced,
    span: tracing::Span,
    emails: Vec<Rendered>,
}

impl Notifier {
    fn render(&self, order: &OrderPlaced) -> Result<Vec<Rendered>, HandlerError> {
        order.check_consistency().map_err(HandlerError::permanent)?;
        self.renderer
            .order_emails(order)
            .map_err(HandlerError::permanent)
    }

    /// Hands the orders' e-mails not queued yet to RabbitMQ and, once confirmed, records them
    /// in the caller's transaction; returns how many were queued and how many were already.
    async fn queue(
        &self,
        tx: &mut PgConnection,
        orders: &[Outgoing<'_>],
    ) -> Result<(usize, usize), HandlerError> {
        let ids: Vec<String> = orders
            .iter()
            .flat_map(|o| o.emails.iter().map(|r| r.email.message_id.clone()))
            .collect();
        let queued = store::already_queued(tx, &ids)
            .instrument(db::span("SELECT", "queued_emails"))
            .await?;
        // An order twice in a run (a replay under a new event id) renders the same e-mails.
        let mut seen = HashSet::new();
        let mut sends = Vec::new();
        let mut fresh: Vec<(&str, &Rendered)> = Vec::new();
        let mut messages: Vec<(&[u8], _)> = Vec::new();
        for o in orders {
            let emails: Vec<&Rendered> = o
                .emails
                .iter()
                .filter(|r| {
                    !queued.contains(&r.email.message_id)
                        && seen.insert(r.email.message_id.as_str())
                })
                .collect();
            if emails.is_empty() {
                continue;
            }
            // One send span per order, in its trace, so the mailer's spans join the order's.
            let send = o
                .span
                .in_scope(|| telemetry::producer_span("rabbitmq", self.publisher.queue()));
            let trace = telemetry::context_headers(&send);
            for r in emails {
                messages.push((r.email.raw.as_slice(), r.email.properties(trace.clone())));
                fresh.push((o.order.event_id.as_str(), r));
            }
            sends.push(send);
        }
        if fresh.is_empty() {
            return Ok((0, queued.len()));
        }
        if let Err(e) = self.publisher.publish(messages).await {
            for send in &sends {
                telemetry::record_error(send, "publish", &e.to_string());
            }
            return Err(HandlerError::retryable(e));
        }
        drop(sends);
        store::record_queued(tx, &fresh)
            .instrument(db::span("INSERT", "queued_emails"))
            .await?;
        Ok((fresh.len(), queued.len()))
    }
}
