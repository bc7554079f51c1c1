//! The Postgres side of the archive. Handlers stage lines (in the idempotency transaction, so a
//! line is staged once per event); the flusher cuts staged lines into numbered batches and marks
//! a batch written once its files are stored. A file write and a commit cannot be atomic, so a
//! batch is committed *before* its files are written, and written again until it is marked:
//! the files of a batch are deterministic, so writing them twice changes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::line::SoldLine;

/// Stages an order's lines; a line already staged (same order id and line id) is left alone.
/// One statement whatever the number of lines.
pub async fn stage(conn: &mut PgConnection, lines: &[SoldLine]) -> Result<u64, sqlx::Error> {
    fn col<'a, T>(lines: &'a [SoldLine], get: impl Fn(&'a SoldLine) -> T) -> Vec<T> {
        lines.iter().map(get).collect()
    }
    let inserted = sqlx::query(
        "INSERT INTO staged_lines (order_line_id, order_id, placed_at, sku, category, design_id,
             print_technique, size, colour, material, attributes, quantity, unit_price_minor,
             currency, shipping_country, channel)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::jsonb[],
             $12::int4[], $13::int8[], $14::text[], $15::text[], $16::text[])
         ON CONFLICT (order_id, order_line_id) DO NOTHING",
    )
    .bind(col(lines, |l| l.order_line_id.as_str()))
    .bind(col(lines, |l| l.order_id.as_str()))
    .bind(col(lines, |l| l.placed_at))
    .bind(col(lines, |l| l.sku.as_str()))
    .bind(col(lines, |l| l.category.as_str()))
    .bind(col(lines, |l| l.design_id.as_str()))
    .bind(col(lines, |l| l.print_technique.as_str()))
    .bind(col(lines, |l| l.size.as_str()))
    .bind(col(lines, |l| l.colour.as_str()))
    .bind(col(lines, |l| l.material.as_str()))
    .bind(col(lines, |l| Json(&l.attributes)))
    .bind(col(lines, |l| l.quantity))
    .bind(col(lines, |l| l.unit_price_minor))
    .bind(col(lines, |l| l.currency.as_str()))
    .bind(col(lines, |l| l.shipping_country.as_str()))
    .bind(col(lines, |l| l.channel.as_str()))
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected())
}

/// When staged lines become a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// This many staged lines make a batch at once (and a batch holds at most this many).
    pub rows: usize,
    /// A staged line waits at most about this long.
    pub interval: Duration,
}

/// A batch just cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutBatch {
    pub id: i64,
    pub lines: u64,
}

/// Makes a batch of up to `policy.rows` staged lines, oldest first, when there are that many or
/// the oldest waited `policy.interval`; `None` when neither holds. Instances cutting at the same
/// moment take disjoint lines (`SKIP LOCKED`), so a line belongs to exactly one batch.
pub async fn cut_batch(
    pool: &PgPool,
    policy: &FlushPolicy,
) -> Result<Option<CutBatch>, sqlx::Error> {
    let limit = i64::try_from(policy.rows).unwrap_or(i64::MAX);
    let interval_ms = i64::try_from(policy.interval.as_millis()).unwrap_or(i64::MAX);
    let mut tx = pool.begin().await?;
    let due: bool = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM staged_lines WHERE batch_id IS NULL
                                       LIMIT $1) AS waiting) >= $1
             OR COALESCE((SELECT min(staged_at) FROM staged_lines WHERE batch_id IS NULL)
                         <= now() - $2 * interval '1 millisecond', false)",
    )
    .bind(limit)
    .bind(interval_ms)
    .fetch_one(&mut *tx)
    .await?;
    if !due {
        return Ok(None);
    }
    let id: i64 = sqlx::query_scalar("INSERT INTO batches DEFAULT VALUES RETURNING id")
        .fetch_one(&mut *tx)
        .await?;
    let lines = sqlx::query(
        "WITH picked AS (
             SELECT order_id, order_line_id FROM staged_lines WHERE batch_id IS NULL
             ORDER BY staged_at, order_id, order_line_id LIMIT $2
             FOR UPDATE SKIP LOCKED)
         UPDATE staged_lines s SET batch_id = $1 FROM picked
         WHERE s.order_id = picked.order_id AND s.order_line_id = picked.order_line_id",
    )
    .bind(id)
    .bind(limit)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if lines == 0 {
        // Another instance took them between our count and our update.
        tx.rollback().await?;
        return Ok(None);
    }
    sqlx::query("UPDATE batches SET line_count = $2 WHERE id = $1")
        .bind(id)
        .bind(i32::try_from(lines).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(CutBatch { id, lines }))
}

/// A batch whose files are still to be written, locked by this instance until it is marked or
/// dropped (the lock ends with the transaction, so a crashed writer leaves it to the next one).
pub struct PendingBatch {
    pub id: i64,
    /// Its lines, in file order: placed_at, order id, line id.
    pub lines: Vec<SoldLine>,
    tx: Transaction<'static, Postgres>,
}

impl PendingBatch {
    /// The oldest batch not yet written that no other instance is writing.
    pub async fn next(pool: &PgPool) -> Result<Option<Self>, sqlx::Error> {
        let mut tx = pool.begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM batches WHERE written_at IS NULL ORDER BY id LIMIT 1
             FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            return Ok(None);
        };
        let lines = sqlx::query_as::<_, SoldLine>(
            "SELECT order_line_id, order_id, placed_at, sku, category, design_id,
                    print_technique, size, colour, material, attributes, quantity,
                    unit_price_minor, currency, shipping_country, channel
             FROM staged_lines WHERE batch_id = $1
             ORDER BY placed_at, order_id, order_line_id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        Ok(Some(Self { id, lines, tx }))
    }

    /// The batch's lines grouped by partition date, each group in file order.
    pub fn by_date(&self) -> BTreeMap<chrono::NaiveDate, Vec<SoldLine>> {
        let mut groups: BTreeMap<_, Vec<SoldLine>> = BTreeMap::new();
        for line in &self.lines {
            groups.entry(line.date()).or_default().push(line.clone());
        }
        groups
    }

    /// Records that every file of the batch is stored.
    pub async fn mark_written(mut self, files: &[String]) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE batches SET written_at = now(), files = $2 WHERE id = $1")
            .bind(self.id)
            .bind(files)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await
    }
}

/// How far the archive is, in lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub staged: i64,
    /// Lines in a batch, written or not.
    pub batched: i64,
    /// Lines in a written batch.
    pub written: i64,
}

pub async fn progress(pool: &PgPool) -> Result<Progress, sqlx::Error> {
    let (staged, batched, written) = sqlx::query_as(
        "SELECT count(*), count(s.batch_id), count(b.written_at)
         FROM staged_lines s LEFT JOIN batches b ON b.id = s.batch_id",
    )
    .fetch_one(pool)
    .await?;
    Ok(Progress {
        staged,
        batched,
        written,
    })
}
