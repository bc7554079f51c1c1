//! What sales-reporting did for one order, from its own tables, for operators (`orderflowctl
//! order`). The report keeps sums, not orders, so the effect is the month row an order placed at
//! a given time in a given currency counts in; whether the order was counted is the runtime's
//! `processed_events` to tell.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// The month row (in the report's pinned business time zone) an order placed at `placed_at` in
/// `currency` counts in, with the row's current totals (`month 2026-11 EUR: 12 orders, gross
/// 123456 minor units`), or `None` when that row does not exist.
pub async fn effect(
    pool: &PgPool,
    placed_at: DateTime<Utc>,
    currency: &str,
) -> Result<Option<String>, sqlx::Error> {
    // The same bucketing as the upsert in store::record, so the row found is the one counted in.
    let row: Option<(chrono::NaiveDate, i64, i64)> = sqlx::query_as(
        "SELECT month, sum(orders)::int8, sum(gross_minor)::int8 FROM monthly_sales
         WHERE currency = $2
           AND month = date_trunc('month', $1::timestamptz AT TIME ZONE
                           (SELECT business_timezone FROM report_settings))::date
         GROUP BY month",
    )
    .bind(placed_at)
    .bind(currency)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(month, orders, gross)| {
        format!(
            "month {} {currency}: {orders} orders, gross {gross} minor units",
            month.format("%Y-%m")
        )
    }))
}
