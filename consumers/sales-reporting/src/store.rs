//! The report's tables in Postgres: the upsert that adds one order, the queries behind the report
//! and the last-hour gauges, and the business time zone the months are counted in.

use std::time::Duration;

use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};

use crate::sale::{Figures, Sale};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long minutes stay in `recent_sales_by_minute`: more than the hour the gauges look at, so
/// an order handled a little late still counts, and little enough to keep the table small.
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

/// Adds `sales` to their months in one statement (a single round trip): the month totals, every
/// breakdown row and, for recent orders, their minute of `recent_sales_by_minute`. A run's sales
/// are summed per row before the upserts, so a row is written once per run; a connection writes
/// its own shard of each row, so concurrent runs do not wait for each other's row locks; and rows
/// are upserted in one sorted order in every transaction, so runs sharing a shard never deadlock.
/// The month comes from the stored time zone, so every instance buckets alike; should it be
/// missing, the month is NULL and the statement fails instead of dropping the orders. An
/// operator's reprocess of an event counts it again, as asked, in its month and its minute.
pub async fn record(conn: &mut PgConnection, sales: &[&Sale]) -> Result<(), sqlx::Error> {
    let mut s = Columns::default();
    let mut b = Columns::default();
    let (mut sale_no, mut dimensions, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    for (n, sale) in sales.iter().enumerate() {
        s.push(&sale.total);
        for ((dimension, key), f) in &sale.breakdown {
            sale_no.push(n as i64 + 1);
            dimensions.push(dimension.as_str());
            keys.push(key.as_str());
            b.push(f);
        }
    }
    sqlx::query(
        "WITH sales AS (
             SELECT n, placed_at, currency,
                    date_trunc('month', placed_at AT TIME ZONE
                        (SELECT business_timezone FROM report_settings))::date AS month,
                    (pg_backend_pid() % 8)::int2 AS shard,
                    orders, units, net, tax, shipping, gross
             FROM UNNEST($1::timestamptz[], $2::text[], $3::int8[], $4::int8[], $5::int8[],
                         $6::int8[], $7::int8[], $8::int8[]) WITH ORDINALITY
                  AS s(placed_at, currency, orders, units, net, tax, shipping, gross, n)
         ),
         totals AS (
             INSERT INTO monthly_sales AS m (month, currency, shard,
                 orders, units, net_minor, tax_minor, shipping_minor, gross_minor)
             SELECT month, currency, shard, sum(orders), sum(units), sum(net), sum(tax),
                    sum(shipping), sum(gross)
             FROM sales GROUP BY month, currency, shard ORDER BY month, currency, shard
             ON CONFLICT (month, currency, shard) DO UPDATE SET
                 orders = m.orders + excluded.orders,
                 units = m.units + excluded.units,
                 net_minor = m.net_minor + excluded.net_minor,
                 tax_minor = m.tax_minor + excluded.tax_minor,
                 shipping_minor = m.shipping_minor + excluded.shipping_minor,
                 gross_minor = m.gross_minor + excluded.gross_minor
         ),
         breakdown AS (
             INSERT INTO monthly_sales_by AS m (month, currency, dimension, key, shard,
                 orders, units, net_minor, tax_minor, shipping_minor, gross_minor)
             SELECT s.month, s.currency, r.dimension, r.key, s.shard, sum(r.orders),
                    sum(r.units), sum(r.net), sum(r.tax), sum(r.shipping), sum(r.gross)
             FROM unnest($9::int8[], $10::text[], $11::text[], $12::int8[], $13::int8[],
                         $14::int8[], $15::int8[], $16::int8[], $17::int8[])
                      AS r(n, dimension, key, orders, units, net, tax, shipping, gross)
             JOIN sales s ON s.n = r.n
             GROUP BY s.month, s.currency, r.dimension, r.key, s.shard
             ORDER BY s.month, s.currency, r.dimension, r.key, s.shard
             ON CONFLICT (month, currency, dimension, key, shard) DO UPDATE SET
                 orders = m.orders + excluded.orders,
                 units = m.units + excluded.units,
                 net_minor = m.net_minor + excluded.net_minor,
                 tax_minor = m.tax_minor + excluded.tax_minor,
                 shipping_minor = m.shipping_minor + excluded.shipping_minor,
                 gross_minor = m.gross_minor + excluded.gross_minor
         )
         INSERT INTO recent_sales_by_minute AS m (minute, currency, shard, orders, gross_minor)
         SELECT date_trunc('minute', placed_at) AS minute, currency, shard, count(*), sum(gross)
         FROM sales
         WHERE placed_at > now() - $18::interval
         GROUP BY minute, currency, shard ORDER BY minute, currency, shard
         ON CONFLICT (minute, currency, shard) DO UPDATE SET
             orders = m.orders + excluded.orders,
             gross_minor = m.gross_minor + excluded.gross_minor",
    )
    .bind(sales.iter().map(|s| s.placed_at).collect::<Vec<_>>())
    .bind(
        sales
            .iter()
            .map(|s| s.currency.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(s.orders)
    .bind(s.units)
    .bind(s.net)
    .bind(s.tax)
    .bind(s.shipping)
    .bind(s.gross)
    .bind(sale_no)
    .bind(dimensions)
    .bind(keys)
    .bind(b.orders)
    .bind(b.units)
    .bind(b.net)
    .bind(b.tax)
    .bind(b.shipping)
    .bind(b.gross)
    .bind(format!("{} seconds", RECENT_RETENTION.as_secs()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Figures as the array columns of an upsert.
#[derive(Default)]
struct Columns {
    orders: Vec<i64>,
    units: Vec<i64>,
    net: Vec<i64>,
    tax: Vec<i64>,
    shipping: Vec<i64>,
    gross: Vec<i64>,
}

impl Columns {
    fn push(&mut self, f: &Figures) {
        self.orders.push(f.orders);
        self.units.push(f.units);
        self.net.push(f.net_minor);
        self.tax.push(f.tax_minor);
        self.shipping.push(f.shipping_minor);
        self.gross.push(f.gross_minor);
    }
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

/// Every row of `month` (its first day), optionally of one currency, its shards summed. One
/// statement, so the totals and the breakdowns come from the same snapshot and agree.
pub async fn report_rows(
    pool: &PgPool,
    month: NaiveDate,
    currency: Option<&str>,
) -> Result<Vec<ReportRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT currency, 'total' AS dimension, '' AS key,
                sum(orders)::int8 AS orders, sum(units)::int8 AS units,
                sum(net_minor)::int8 AS net_minor, sum(tax_minor)::int8 AS tax_minor,
                sum(shipping_minor)::int8 AS shipping_minor, sum(gross_minor)::int8 AS gross_minor
         FROM monthly_sales WHERE month = $1 AND ($2::text IS NULL OR currency = $2)
         GROUP BY currency
         UNION ALL
         SELECT currency, dimension, key,
                sum(orders)::int8, sum(units)::int8, sum(net_minor)::int8, sum(tax_minor)::int8,
                sum(shipping_minor)::int8, sum(gross_minor)::int8
         FROM monthly_sales_by WHERE month = $1 AND ($2::text IS NULL OR currency = $2)
         GROUP BY currency, dimension, key
         ORDER BY currency, gross_minor DESC, key",
    )
    .bind(month)
    .bind(currency)
    .fetch_all(pool)
    .await
}

/// Orders and gross placed in the last hour, per currency ever sold (zero when none), by the
/// database's clock so every instance answers alike. Counted in whole minutes: the current
/// minute and the 59 before it.
pub async fn last_hour(pool: &PgPool) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.currency, coalesce(sum(r.orders), 0)::bigint,
                coalesce(sum(r.gross_minor), 0)::bigint
         FROM (SELECT DISTINCT currency FROM monthly_sales) c
         LEFT JOIN recent_sales_by_minute r
                ON r.currency = c.currency
               AND r.minute > date_trunc('minute', now()) - interval '1 hour'
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
             SELECT currency, key, units, gross_minor,
                    row_number() OVER (PARTITION BY currency
                                       ORDER BY gross_minor DESC, key) AS rank
             FROM (
                 SELECT b.currency, b.key, sum(b.units)::int8 AS units,
                        sum(b.gross_minor)::int8 AS gross_minor
                 FROM monthly_sales_by b
                 WHERE b.dimension = 'sku'
                   AND b.month = date_trunc('month', now() AT TIME ZONE
                                     (SELECT business_timezone FROM report_settings))::date
                 GROUP BY b.currency, b.key
             ) skus
         ) ranked
         WHERE rank <= $1
         ORDER BY currency, rank",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Deletes minutes older than the retention; returns how many rows.
pub async fn prune_recent(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM recent_sales_by_minute WHERE minute < now() - $1::interval")
            .bind(format!("{} seconds", RECENT_RETENTION.as_secs()))
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
