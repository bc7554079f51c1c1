//! The consumer's handler: adds each order to its month, exactly once per event.

use orderflow_core::db;
use orderflow_core::idempotency::IdempotencyStore;
use orderflow_core::{Delivery, Handler, HandlerError, OrderPlaced};
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
        order.check_consistency().map_err(HandlerError::permanent)?;
        let sale = Sale::from_order(order).map_err(HandlerError::permanent)?;
        // The upserts commit with the "processed" mark or not at all, so a redelivery after a
        // crash finds either nothing done or everything done.
        let Some(mut tx) = self.idempotency.claim(&order.event_id, delivery).await? else {
            tracing::debug!(event_id = %order.event_id, "already counted");
            return Ok(());
        };
        store::record(&mut tx, &sale)
            .instrument(db::span("INSERT", "monthly_sales"))
            .await?;
        db::commit(tx).await?;
        tracing::debug!(order_id = %order.order_id, gross_minor = sale.total.gross_minor, "order counted");
        Ok(())
    }
}
