//! The event handler: checks an order and stages its sold lines in the same transaction that
//! claims the event id, so a redelivered event stages nothing. It writes no file itself, which
//! keeps it fast and exactly-once; the flusher does the files.

use orderflow_core::db;
use orderflow_core::idempotency::IdempotencyStore;
use orderflow_core::{Delivery, Handler, HandlerError, OrderPlaced};
use tracing::Instrument;

use crate::{line, staging};

pub struct StageLines {
    store: IdempotencyStore,
}

impl StageLines {
    pub fn new(store: IdempotencyStore) -> Self {
        Self { store }
    }
}

impl Handler for StageLines {
    type Event = OrderPlaced;

    async fn handle(&self, order: &OrderPlaced, delivery: &Delivery) -> Result<(), HandlerError> {
        order.check_consistency().map_err(HandlerError::permanent)?;
        let lines = line::sold_lines(order)
            .map_err(|e| HandlerError::permanent(format!("order {}: {e}", order.order_id)))?;
        let Some(mut tx) = self.store.claim(&order.event_id, delivery).await? else {
            tracing::debug!(order_id = %order.order_id, "event already archived");
            return Ok(());
        };
        let staged = staging::stage(&mut tx, &lines)
            .instrument(db::span("INSERT", "staged_lines"))
            .await?;
        db::commit(tx).await?;
        tracing::debug!(
            order_id = %order.order_id,
            partition = delivery.partition,
            offset = delivery.offset,
            lines = lines.len(),
            staged,
            "order lines staged"
        );
        Ok(())
    }
}
