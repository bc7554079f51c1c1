//! The report's tables in Postgres: the upsert that adds one order, the queries behind the report
//! and the last-hour gauges, and the business time zone the months are counted in.

use std::time::Duration;

use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};

use crate::sale::{Figures, Sale};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long orders stay in `recent_sales`: more than the hour the gauges look at, so an order
/// handled a little late still counts, and little enough to keep the table small.
pub const RECENT_RETENTION: Duration = Duration::from_secs(2 * 3600);

/// Whether Postgres knows `name` as an IANA time zone. Abbreviations and POSIX offsets such as
/// `UTC+1` are refused on purpose: Postgres reads the latter with the sign inverted.
pub async fn is_time_zone(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)")
        .bind(name)
        .fetch_one(pool)
        .await
}

/// Records `time_zone` as the one the months are counted in, unless orders were already counted
/// in another; returns the time zone in force.
pub async fn pin_time_zone(pool: &PgPool, time_zone: &str) -> Result<String, sqlx::Error> {
    sqlx::query(
        "INSERT INTO report_settings AS s (singleton, business_timezone) VALUES (true, $1)
         ON CONFLICT (singleton) DO UPDATE SET business_timezone = excluded.business_timezone
         WHERE NOT EXISTS (SELECT 1 FROM monthly_sales)",
    )
    .bind(time_zone)
    .execute(pool)
    .await?;
    sqlx::query_scalar("SELECT business_timezone FROM report_settings")
        .fetch_one(pool)
        .await
}

/// The time zone the months were counted in, if the consumer ever started on this schema.
pub async fn pinned_time_zone(pool: &PgPool) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT business_timezone FROM report_settings")
        .fetch_optional(pool)
        .await
}

/// Adds `sale` to its month in one statement (a single round trip): the month total, every
/// breakdown row (one multi-row upsert from arrays) and, for a recent order, `recent_sales`.
/// The month comes from the stored time zone, so every instance buckets alike; should it be
/// missing, the month is NULL and the statement fails instead of dropping the order. An
/// operator's reprocess of an event counts it again in the months, as asked, but its recent sale
/// is already there and stays one.
pub async fn record(conn: &mut PgConnection, sale: &Sale) -> Result<(), sqlx::Error> {
    let n = sale.breakdown.len();
    let (mut dimensions, mut keys) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut orders, mut units) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut net, mut tax) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut shipping, mut gross) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for ((dimension, key), f) in &sale.breakdown {
        dimensions.push(dimension.as_str());
        keys.push(key.as_str());
        orders.push(f.orders);
        units.push(f.units);
        net.push(f.net_minor);
        tax.push(f.tax_minor);
        shipping.push(f.shipping_minor);
        gross.push(f.gross_minor);
    }
    let t = &sale.total;
    sqlx::query(
        "WITH bucket AS (
             SELECT date_trunc('month', $1::timestamptz AT TIME ZONE
                        (SELECT business_timezone FROM report_settings))::date AS month
         ),
         totals AS (
             INSERT INTO monthly_sales AS m
                 (month, currency, orders, units, net_minor, tax_minor, shipping_minor, gross_minor)
             SELECT month, $2, $3, $4, $5, $6, $7, $8 FROM bucket
             ON CONFLICT (month, currency) DO UPDATE SET
                 orders = m.orders + excluded.orders,
                 units = m.units + excluded.units,
                 net_minor = m.net_minor + excluded.net_minor,
                 tax_minor = m.tax_minor + excluded.tax_minor,
                 shipping_minor = m.shipping_minor + excluded.shipping_minor,
                 gross_minor = m.gross_minor + excluded.gross_minor
         ),
         breakdown AS (
             INSERT INTO monthly_sales_by AS m
                 (month, currency, dimension, key,
                  orders, units, net_minor, tax_minor, shipping_minor, gross_minor)
             SELECT bucket.month, $2, r.dimension, r.key,
                    r.orders, r.units, r.net, r.tax, r.shipping, r.gross
             FROM bucket,
                  unnest($9::text[], $10::text[], $11::bigint[], $12::bigint[], $13::bigint[],
                         $14::bigint[], $15::bigint[], $16::bigint[])
                      AS r(dimension, key, orders, units, net, tax, shipping, gross)
             ON CONFLICT (month, currency, dimension, key) DO UPDATE SET
                 orders = m.orders + excluded.orders,
                 units = m.units + excluded.units,
                 net_minor = m.net_minor + excluded.net_minor,
                 tax_minor = m.tax_minor + excluded.tax_minor,
                 shipping_minor = m.shipping_minor + excluded.shipping_minor,
                 gross_minor = m.gross_minor + excluded.gross_minor
         )
         INSERT INTO recent_sales (event_id, placed_at, currency, gross_minor)
         SELECT $17, $1, $2, $8 WHERE $1 > now() - $18::interval
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(sale.placed_at)
    .bind(&sale.currency)
    .bind(t.orders)
    .bind(t.units)
    .bind(t.net_minor)
    .bind(t.tax_minor)
    .bind(t.shipping_minor)
    .bind(t.gross_minor)
    .bind(&dimensions)
    .bind(&keys)
    .bind(&orders)
    .bind(&units)
    .bind(&net)
    .bind(&tax)
    .bind(&shipping)
    .bind(&gross)
    .bind(&sale.event_id)
    .bind(format!("{} seconds", RECENT_RETENTION.as_secs()))
    .execute(conn)
    .await?;
    Ok(())
}

/// One row of a month's report: the total (`dimension` "total", empty key) or a breakdown row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReportRow {
    pub currency: String,
    pub dimension: String,
    pub key: String,
    #[sqlx(flatten)]
    pub figures: Figures,
}

/// Every row of `month` (its first day), optionally of one currency. One statement, so the
/// totals and the breakdowns come from the same snapshot and agree with each other.
pub async fn report_rows(
    pool: &PgPool,
    month: NaiveDate,
    currency: Option<&str>,
) -> Result<Vec<ReportRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT currency, 'total' AS dimension, '' AS key,
                orders, units, net_minor, tax_minor, shipping_minor, gross_minor
         FROM monthly_sales WHERE month = $1 AND ($2::text IS NULL OR currency = $2)
         UNION ALL
         SELECT currency, dimension, key,
                orders, units, net_minor, tax_minor, shipping_minor, gross_minor
         FROM monthly_sales_by WHERE month = $1 AND ($2::text IS NULL OR currency = $2)
         ORDER BY currency, gross_minor DESC, key",
    )
    .bind(month)
    .bind(currency)
    .fetch_all(pool)
    .await
}

/// Orders and gross placed within the last hour, per currency ever sold (zero when none), by
/// the database's clock so every instance answers alike.
pub async fn last_hour(pool: &PgPool) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.currency, count(r.event_id), coalesce(sum(r.gross_minor), 0)::bigint
         FROM (SELECT DISTINCT currency FROM monthly_sales) c
         LEFT JOIN recent_sales r
                ON r.currency = c.currency AND r.placed_at > now() - interval '1 hour'
         GROUP BY c.currency
         ORDER BY c.currency",
    )
    .fetch_all(pool)
    .await
}

/// The best-selling SKUs of the current month (in the business time zone): up to `limit` per
/// currency, by gross, as (currency, sku, units, gross_minor).
pub async fn top_products(
    pool: &PgPool,
    limit: i64,
) -> Result<Vec<(String, String, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT currency, key, units, gross_minor FROM (
             SELECT b.currency, b.key, b.units, b.gross_minor,
                    row_number() OVER (PARTITION BY b.currency
                                       ORDER BY b.gross_minor DESC, b.key) AS rank
             FROM monthly_sales_by b
             WHERE b.dimension = 'sku'
               AND b.month = date_trunc('month', now() AT TIME ZONE
                                 (SELECT business_timezone FROM report_settings))::date
         ) ranked
         WHERE rank <= $1
         ORDER BY currency, rank",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Deletes orders older than the retention; returns how many.
pub async fn prune_recent(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM recent_sales WHERE placed_at < now() - $1::interval")
            .bind(format!("{} seconds", RECENT_RETENTION.as_secs()))
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
