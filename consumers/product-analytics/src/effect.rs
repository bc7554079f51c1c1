//! What product-analytics did for one order, from its own `staged_lines` and `batches` tables,
//! for operators (`orderflowctl order`).

use sqlx::PgPool;

/// The order's staged lines and the batch files they were archived in (`2 lines in batch 7,
/// written to sold_lines/date=2026-11-22/batch-7.parquet`), or `None` when no line of the order
/// is staged.
pub async fn effect(pool: &PgPool, order_id: &str) -> Result<Option<String>, sqlx::Error> {
    /// Lines, batch id, batch files, whether the batch is written.
    type Row = (i64, Option<i64>, Option<Vec<String>>, bool);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT count(*), s.batch_id, b.files, b.written_at IS NOT NULL
         FROM staged_lines s LEFT JOIN batches b ON b.id = s.batch_id
         WHERE s.order_id = $1
         GROUP BY s.batch_id, b.files, b.written_at
         ORDER BY s.batch_id NULLS LAST",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let parts: Vec<String> = rows
        .into_iter()
        .map(|(lines, batch, files, written)| {
            let lines = if lines == 1 {
                "1 line".to_string()
            } else {
                format!("{lines} lines")
            };
            match (batch, written) {
                (None, _) => format!("{lines} staged, not yet in a batch"),
                (Some(batch), false) => format!("{lines} in batch {batch}, not yet written"),
                (Some(batch), true) => format!(
                    "{lines} in batch {batch}, written to {}",
                    files.unwrap_or_default().join(", ")
                ),
            }
        })
        .collect();
    Ok(Some(parts.join("; ")))
}
