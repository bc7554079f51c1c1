//! The idempotency store: which events a consumer group has processed. A handler opens a
//! transaction that claims the event id and does its own writes in it, so the effect and its
//! "done" mark commit together or not at all. An operator can ask for an event to be processed
//! again (`orderflowctl replay --reprocess`); the claim then lets it through once more.

use std::collections::HashSet;

use sqlx::{PgPool, Postgres, Transaction};
use tracing::Instrument;

use crate::db;
use crate::runtime::Delivery;

/// Creates the table of processed event ids in the pool's schema, if it is missing.
pub async fn create_table(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(db::LOCK_DDL).execute(&mut *tx).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS processed_events (
            consumer_group TEXT NOT NULL,
            event_id TEXT NOT NULL,
            processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer_group, event_id)
        )",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Processed event ids of one consumer group.
#[derive(Clone)]
pub struct IdempotencyStore {
    pool: PgPool,
    group: String,
}

impl IdempotencyStore {
    /// Creates the store's table if needed. The table belongs to the core runtime, not to one
    /// service's migrations, so every service can share the definition.
    pub async fn new(pool: PgPool, group: impl Into<String>) -> Result<Self, sqlx::Error> {
        create_table(&pool).await?;
        Ok(Self {
            pool,
            group: group.into(),
        })
    }

    /// Starts a transaction that claims `event_id`, or `None` when the group already processed
    /// it. A concurrent claim of the same id waits for the first transaction and then sees it
    /// done, so two deliveries can never both proceed.
    ///
    /// A delivery an operator marked for reprocessing (`delivery.reprocess`) claims the id even
    /// when it is done, and stamps it processed again; concurrent reprocessing claims still wait
    /// for each other, so they run one after the other.
    pub async fn claim(
        &self,
        event_id: &str,
        delivery: &Delivery,
    ) -> Result<Option<Transaction<'static, Postgres>>, sqlx::Error> {
        self.claim_once(event_id, delivery)
            .instrument(db::span("INSERT", "processed_events"))
            .await
    }

    async fn claim_once(
        &self,
        event_id: &str,
        delivery: &Delivery,
    ) -> Result<Option<Transaction<'static, Postgres>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let statement = if delivery.reprocess {
            "INSERT INTO processed_events (consumer_group, event_id) VALUES ($1, $2)
             ON CONFLICT (consumer_group, event_id) DO UPDATE SET processed_at = now()"
        } else {
            "INSERT INTO processed_events (consumer_group, event_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING"
        };
        let claimed = sqlx::query(statement)
            .bind(&self.group)
            .bind(event_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if claimed == 1 {
            Ok(Some(tx))
        } else {
            tx.rollback().await?;
            Ok(None)
        }
    }

    /// Starts a transaction that claims, in one statement, the event ids of `items` (given by
    /// `event_id`) the group has not processed, and returns it with the items it claimed, in
    /// their order; of items sharing an id, the first. For a run of source-topic events
    /// (`Handler::handle_batch`), which never ask for reprocessing.
    pub async fn claim_many<T: Send>(
        &self,
        items: impl IntoIterator<Item = T>,
        event_id: impl Fn(&T) -> &str + Send,
    ) -> Result<(Transaction<'static, Postgres>, Vec<T>), sqlx::Error> {
        let items: Vec<T> = items.into_iter().collect();
        let ids: Vec<&str> = items.iter().map(&event_id).collect();
        let (tx, mut claimed) = self.claim_ids(&ids).await?;
        let fresh = items
            .into_iter()
            .filter(|item| claimed.remove(event_id(item)))
            .collect();
        Ok((tx, fresh))
    }

    async fn claim_ids(
        &self,
        event_ids: &[&str],
    ) -> Result<(Transaction<'static, Postgres>, HashSet<String>), sqlx::Error> {
        async {
            let mut tx = self.pool.begin().await?;
            let claimed: Vec<String> = sqlx::query_scalar(
                "INSERT INTO processed_events (consumer_group, event_id)
                 SELECT $1, id FROM UNNEST($2::text[]) AS id
                 ON CONFLICT DO NOTHING
                 RETURNING event_id",
            )
            .bind(&self.group)
            .bind(event_ids)
            .fetch_all(&mut *tx)
            .await?;
            Ok((tx, claimed.into_iter().collect()))
        }
        .instrument(db::span("INSERT", "processed_events"))
        .await
    }

    /// Whether the group has processed `event_id`.
    pub async fn is_processed(&self, event_id: &str) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM processed_events WHERE consumer_group = $1 AND event_id = $2)",
        )
        .bind(&self.group)
        .bind(event_id)
        .fetch_one(&self.pool)
        .await
    }
}
