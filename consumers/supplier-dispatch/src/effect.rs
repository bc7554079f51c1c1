//! What supplier-dispatch did for one order, from its own `dispatches` table, for operators
//! (`orderflowctl order`): the print job per supplier and where it stands.

use sqlx::PgPool;

/// The order's print jobs, one per supplier (`sup-a: job job-1 accepted; sup-b: pending, 2
/// attempts, last error: ...`), or `None` when no dispatch of the order is recorded.
pub async fn effect(pool: &PgPool, order_id: &str) -> Result<Option<String>, sqlx::Error> {
    /// Supplier, status, job id, attempts, last error.
    type Row = (String, String, Option<String>, i32, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT supplier_id, status, job_id, attempts, last_error
         FROM dispatches WHERE order_id = $1 ORDER BY supplier_id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let jobs: Vec<String> = rows
        .into_iter()
        .map(|(supplier, status, job_id, attempts, last_error)| {
            let mut text = match job_id {
                Some(job) => format!("{supplier}: print job {job} {status}"),
                None => format!("{supplier}: {status}"),
            };
            if status != "accepted" {
                text.push_str(&format!(", {attempts} attempts"));
                if let Some(error) = last_error {
                    text.push_str(&format!(", last error: {error}"));
                }
            }
            text
        })
        .collect();
    Ok(Some(jobs.join("; ")))
}

/// Whether supplier-dispatch is done with the order: it has print jobs and every one is accepted
/// and announced on `orders.dispatched`. The `dispatches` rows are this service's memory of an
/// order (it keeps no other record of processed events), so they are what tells.
pub async fn finished(pool: &PgPool, order_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) > 0 AND bool_and(status = 'accepted' AND published_at IS NOT NULL)
         FROM dispatches WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_one(pool)
    .await
}
