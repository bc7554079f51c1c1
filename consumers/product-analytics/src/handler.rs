//! The event handler: checks an order and stages its sold lines in the same transaction that
//! claims the event id, so a redelivered event stages nothing. It writes no file itself, which
//! keeps it fast and exactly-once; the flusher does the files.

use orderflow_core::db;
use orderflow_core::idempotency::IdempotencyStore;
use orderflow_core::{Batched, Delivery, Handler, HandlerError, OrderPlaced};
use tracing::Instrument;

use crate::line::{self, SoldLine};
use crate::staging;

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
        let lines = checked_lines(order)?;
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

    /// One claim and one insert for the whole run; a duplicate of an event in the run stages
    /// nothing, as its id is claimed once.
    async fn handle_batch(&self, batch: &[Batched<OrderPlaced>]) -> Result<(), HandlerError> {
        let orders: Vec<(&OrderPlaced, Vec<SoldLine>)> = batch
            .iter()
            .map(|b| Ok((&b.event, checked_lines(&b.event)?)))
            .collect::<Result<_, HandlerError>>()?;
        let (mut tx, fresh) = self
            .store
            .claim_many(orders, |(order, _)| order.event_id.as_str())
            .await?;
        let lines: Vec<SoldLine> = fresh.into_iter().flat_map(|(_, lines)| lines).collect();
        let staged = staging::stage(&mut tx, &lines)
            .instrument(db::span("INSERT", "staged_lines"))
            .await?;
        db::commit(tx).await?;
        tracing::debug!(events = batch.len(), staged, "run of orders staged");
        Ok(())
    }
}

/// The order's sold lines, or why it cannot be archived.
fn checked_lines(order: &OrderPlaced) -> Result<Vec<SoldLine>, HandlerError> {
    order.check_consistency().map_err(HandlerError::permanent)?;
    line::sold_lines(order)
        .map_err(|e| HandlerError::permanent(format!("order {}: {e}", order.order_id)))
}
