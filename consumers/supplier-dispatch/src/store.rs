//! The `dispatches` table: one row per (order, supplier) recording where its print job stands.
//! Every write that could race with another delivery of the same order is conditional on the row
//! not being accepted yet, so an accepted job is never overwritten or sent again.

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::PgPool;

use crate::event::{self, OrderDispatched};
use crate::supplier::PrintJob;

/// This service's migrations, applied at start-up into its own schema.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Where the print job of one (order, supplier) stands.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Dispatch {
    pub order_id: String,
    pub supplier_id: String,
    /// `pending`, `failed`, `rejected` or `accepted`.
    pub status: String,
    pub job_id: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub line_ids: Vec<String>,
    pub units: i32,
    pub accepted_at: Option<DateTime<Utc>>,
    pub published_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "order_id, supplier_id, status, job_id, attempts, last_error, line_ids, \
                       units, accepted_at, published_at";

/// How a job that was not accepted ended.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// Worth sending again.
    Failed,
    /// Refused by the supplier.
    Rejected,
}

impl Dispatch {
    pub fn is_accepted(&self) -> bool {
        self.status == "accepted"
    }

    /// The event announcing this accepted job; the same on every call, so a republish after a
    /// crash is identical to the first publication. `None` until the job is accepted.
    pub fn event(&self) -> Option<OrderDispatched> {
        Some(OrderDispatched {
            event_id: event::event_id(&self.order_id, &self.supplier_id),
            order_id: self.order_id.clone(),
            supplier_id: self.supplier_id.clone(),
            job_id: self.job_id.clone().filter(|_| self.is_accepted())?,
            dispatched_at: self.accepted_at?.timestamp_millis(),
            line_ids: self.line_ids.clone(),
            units: self.units,
            attempts: self.attempts,
        })
    }
}

pub async fn load(
    pool: &PgPool,
    order_id: &str,
    supplier_id: &str,
) -> Result<Option<Dispatch>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM dispatches WHERE order_id = $1 AND supplier_id = $2"
    ))
    .bind(order_id)
    .bind(supplier_id)
    .fetch_optional(pool)
    .await
}

/// Counts one more request for `job` before it is sent, so a crash mid-request still counts
/// it. `None` when the job is already accepted and must not be sent.
pub async fn begin_attempt(pool: &PgPool, job: &PrintJob) -> Result<Option<Dispatch>, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO dispatches (order_id, supplier_id, status, attempts, line_ids, units)
         VALUES ($1, $2, 'pending', 1, $3, $4)
         ON CONFLICT (order_id, supplier_id) DO UPDATE
            SET status = 'pending', attempts = dispatches.attempts + 1, updated_at = now()
            WHERE dispatches.status <> 'accepted'
         RETURNING {COLUMNS}"
    ))
    .bind(&job.order_id)
    .bind(&job.supplier_id)
    .bind(job.line_ids())
    .bind(job.units())
    .fetch_optional(pool)
    .await
}

/// Records the supplier's job. If another delivery recorded it first, its row is kept as is.
pub async fn mark_accepted(
    pool: &PgPool,
    job: &PrintJob,
    job_id: &str,
) -> Result<Dispatch, sqlx::Error> {
    let updated: Option<Dispatch> = sqlx::query_as(&format!(
        "UPDATE dispatches
            SET status = 'accepted', job_id = $3, last_error = NULL,
                accepted_at = now(), updated_at = now()
          WHERE order_id = $1 AND supplier_id = $2 AND status <> 'accepted'
          RETURNING {COLUMNS}"
    ))
    .bind(&job.order_id)
    .bind(&job.supplier_id)
    .bind(job_id)
    .fetch_optional(pool)
    .await?;
    match updated {
        Some(row) => Ok(row),
        None => load(pool, &job.order_id, &job.supplier_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound),
    }
}

/// Records why the last request did not get the job accepted.
pub async fn record_failure(
    pool: &PgPool,
    job: &PrintJob,
    failure: Failure,
    error: &str,
) -> Result<(), sqlx::Error> {
    let status = match failure {
        Failure::Failed => "failed",
        Failure::Rejected => "rejected",
    };
    sqlx::query(
        "UPDATE dispatches SET status = $3, last_error = $4, updated_at = now()
          WHERE order_id = $1 AND supplier_id = $2 AND status <> 'accepted'",
    )
    .bind(&job.order_id)
    .bind(&job.supplier_id)
    .bind(status)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that the job's `OrderDispatched` is on Kafka.
pub async fn mark_published(
    pool: &PgPool,
    order_id: &str,
    supplier_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dispatches SET published_at = now(), updated_at = now()
          WHERE order_id = $1 AND supplier_id = $2 AND published_at IS NULL",
    )
    .bind(order_id)
    .bind(supplier_id)
    .execute(pool)
    .await?;
    Ok(())
}
