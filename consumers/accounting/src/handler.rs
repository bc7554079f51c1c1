//! The consumer's handler: one journal entry per order, exactly once. The event id is claimed in
//! the same transaction that writes the entry, and UNIQUE (order_id) catches the same order
//! replayed under a new event id, which is then marked done without a second entry. It catches an
//! operator's reprocess of a journaled event too (the claim lets it through): same order, same
//! money, so nothing is written.

use std::sync::Arc;

use orderflow_core::db;
use orderflow_core::idempotency::IdempotencyStore;
use orderflow_core::{Batched, Delivery, Handler, HandlerError, OrderPlaced};
use tracing::Instrument;

use crate::chart::Chart;
use crate::entry;
use crate::store::{self, Booked, RunBooked};

pub struct Journal {
    pub processed: IdempotencyStore,
    pub chart: Arc<Chart>,
    pub time_zone: String,
}

impl Handler for Journal {
    type Event = OrderPlaced;

    async fn handle(&self, order: &OrderPlaced, delivery: &Delivery) -> Result<(), HandlerError> {
        let entry = entry::entry_for(order, &self.chart).map_err(HandlerError::permanent)?;
        if entry.postings.is_empty() {
            // A free order with no costs moves no money: there is nothing to journal, and an
            // entry without postings is refused by the database.
            tracing::info!(order_id = %order.order_id, "nothing to journal for a zero order");
            return Ok(());
        }
        let Some(mut tx) = self.processed.claim(&order.event_id, delivery).await? else {
            tracing::debug!(event_id = %order.event_id, "already journaled");
            return Ok(());
        };
        match store::book(&mut tx, &entry, &self.time_zone)
            .instrument(db::span("INSERT", "journal_entries"))
            .await?
        {
            Booked::New {
                entry_id,
                placed_date,
                entry_date,
            } => {
                db::commit(tx).await?;
                if placed_date != entry_date {
                    tracing::warn!(order_id = %order.order_id, entry_id, %placed_date, %entry_date,
                        "order arrived after its day was exported; journaled on the next open day");
                }
                tracing::info!(order_id = %order.order_id, entry_id, %entry_date,
                    postings = entry.postings.len(), "journaled");
            }
            Booked::AlreadyJournaled(existing) => {
                if existing.currency != entry.currency || existing.total_minor != entry.total_minor
                {
                    // Same order, different money: a replay would be harmless, this is not.
                    // Leave it to a person rather than guess which event is right.
                    return Err(HandlerError::permanent(format!(
                        "order {} is already journaled (entry {}, event {}) with a total of {} \
                         {} minor units; this event says {} {}",
                        order.order_id,
                        existing.entry_id,
                        existing.event_id,
                        existing.total_minor,
                        existing.currency,
                        entry.total_minor,
                        entry.currency,
                    )));
                }
                db::commit(tx).await?;
                tracing::info!(order_id = %order.order_id, entry_id = existing.entry_id,
                    first_event_id = %existing.event_id, reprocess = delivery.reprocess,
                    "order already journaled");
            }
        }
        Ok(())
    }

    /// One claim and one insert per table for the run. A run holding an order journaled
    /// already (a replay under a new event id) is refused whole: one by one, `handle` tells a
    /// harmless replay from a conflict.
    async fn handle_batch(&self, batch: &[Batched<OrderPlaced>]) -> Result<(), HandlerError> {
        let mut entries = Vec::with_capacity(batch.len());
        for b in batch {
            let entry = entry::entry_for(&b.event, &self.chart).map_err(HandlerError::permanent)?;
            // A free order with no costs has nothing to journal (see `handle`).
            if !entry.postings.is_empty() {
                entries.push(entry);
            }
        }
        let (mut tx, fresh) = self
            .processed
            .claim_many(&entries, |e| e.event_id.as_str())
            .await?;
        if fresh.is_empty() {
            return Ok(());
        }
        let booked = store::book_run(&mut tx, &fresh, &self.time_zone)
            .instrument(db::span("INSERT", "journal_entries"))
            .await?;
        let RunBooked::New(booked) = booked else {
            return Err(HandlerError::permanent(format!(
                "{booked:?}: the run is booked one order at a time"
            )));
        };
        db::commit(tx).await?;
        for (entry, booked) in fresh.iter().zip(booked) {
            if let Booked::New {
                entry_id,
                placed_date,
                entry_date,
            } = booked
            {
                if placed_date != entry_date {
                    tracing::warn!(order_id = %entry.order_id, entry_id, %placed_date, %entry_date,
                        "order arrived after its day was exported; journaled on the next open day");
                }
            }
        }
        tracing::info!(entries = fresh.len(), "run of orders journaled");
        Ok(())
    }
}
