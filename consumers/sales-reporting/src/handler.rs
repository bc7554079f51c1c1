//! The consumer's handler: adds each order to its month, exactly once per event.

use orderflow_core::db;
use orderflow_core::idempotency::IdempotencyStore;
use orderflow_core::{Batched, Delivery, Handler, HandlerError, OrderPlaced};
use tracing::Instrument;

use crate::sale::Sale;
use crate::store;

/// Adds every order on `orders.placed` to the monthly report.
pub struct SalesHandler {
    idempotency: IdempotencyStore,
}

impl SalesHandler {
    pub fn new(idempotency: IdempotencyStore) -> Self {
        Self { idempotency }
    }
}

impl Handler for SalesHandler {
    type Event = OrderPlaced;

    async fn handle(&self, order: &OrderPlaced, delivery: &Delivery) -> Result<(), HandlerError> {
        let sale = sale_of(order)?;
        // The upserts commit with the "processed" mark or not at all, so a redelivery after a
        // crash finds either nothing done or everything done.
        let Some(mut tx) = self.idempotency.claim(&order.event_id, delivery).await? else {
            tracing::debug!(event_id = %order.event_id, "already counted");
            return Ok(());
        };
        store::record(&mut tx, &[&sale])
            .instrument(db::span("INSERT", "monthly_sales"))
            .await?;
        db::commit(tx).await?;
        tracing::debug!(order_id = %order.order_id, gross_minor = sale.total.gross_minor, "order counted");
        Ok(())
    }

    /// One claim and one upsert statement for the run, the run's sales summed per report row.
    async fn handle_batch(&self, batch: &[Batched<OrderPlaced>]) -> Result<(), HandlerError> {
        let sales: Vec<Sale> = batch
            .iter()
            .map(|b| sale_of(&b.event))
            .collect::<Result<_, _>>()?;
        let (mut tx, fresh) = self
            .idempotency
            .claim_many(&sales, |s| s.event_id.as_str())
            .await?;
        if !fresh.is_empty() {
            store::record(&mut tx, &fresh)
                .instrument(db::span("INSERT", "monthly_sales"))
                .await?;
        }
        db::commit(tx).await?;
        tracing::debug!(
            events = batch.len(),
            counted = fresh.len(),
            "run of orders counted"
        );
        Ok(())
    }
}

/// The order's contribution to the report, or why it cannot be counted.
fn sale_of(order: &OrderPlaced) -> Result<Sale, HandlerError> {
    order.check_consistency().map_err(HandlerError::permanent)?;
    Sale::from_order(order).map_err(HandlerError::permanent)
}
