//! The day's journal as a CSV batch for the on-premises ledger. The layout (README, "Accounting"):
//!
//! `entry_id,entry_date,booked_at,order_id,line_no,account_code,account_name,counterparty,memo,debit,credit,currency`
//!
//! one row per posting, a header row first, RFC 4180 quoting, CRLF line ends, UTF-8. Amounts are
//! decimal strings with the currency's minor-unit places (`12.34`, `0.00`; `1500` for JPY), one
//! side positive and the other zero. `booked_at` is the order's time in UTC (RFC 3339, millis).
//! Rows are sorted by order id (bytewise) then line number.
//!
//! Exporting closes the day (see `store`), so the same day exported again gives the same bytes.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use sqlx::PgPool;

use crate::csv;
use crate::entry::decimal;

pub const HEADER: [&str; 12] = [
    "entry_id",
    "entry_date",
    "booked_at",
    "order_id",
    "line_no",
    "account_code",
    "account_name",
    "counterparty",
    "memo",
    "debit",
    "credit",
    "currency",
];

/// A day's batch file and what is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub day: NaiveDate,
    pub entries: usize,
    pub postings: usize,
    pub csv: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{day} has not ended yet in {time_zone}; a day is exported once it is over, because exporting closes it")]
    DayNotOver { day: NaiveDate, time_zone: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(sqlx::FromRow)]
struct Row {
    entry_id: i64,
    entry_date: NaiveDate,
    booked_at: DateTime<Utc>,
    order_id: String,
    line_no: i32,
    account_code: String,
    account_name: String,
    counterparty: Option<String>,
    memo: String,
    debit_minor: i64,
    credit_minor: i64,
    currency: String,
    minor_exponent: i16,
}

/// Closes `day` (if it is over in `time_zone`) and returns its journal as CSV.
pub async fn export_day(
    pool: &PgPool,
    time_zone: &str,
    day: NaiveDate,
) -> Result<Batch, ExportError> {
    let over: bool = sqlx::query_scalar("SELECT $1::date < (now() AT TIME ZONE $2)::date")
        .bind(day)
        .bind(time_zone)
        .fetch_one(pool)
        .await?;
    if !over {
        return Err(ExportError::DayNotOver {
            day,
            time_zone: time_zone.to_string(),
        });
    }
    let mut tx = pool.begin().await?;
    // Waits for bookings in flight and holds new ones back until the day is marked closed.
    sqlx::query("LOCK TABLE exported_days IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT e.id AS entry_id, e.entry_date, e.booked_at, e.order_id, p.line_no,
                p.account_code, p.account_name, p.counterparty, p.memo,
                p.debit_minor, p.credit_minor, e.currency, e.minor_exponent
         FROM journal_entries e JOIN postings p ON p.entry_id = e.id
         WHERE e.entry_date = $1
         ORDER BY e.order_id COLLATE \"C\", p.line_no",
    )
    .bind(day)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO exported_days (day) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(day)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    let mut out = String::new();
    csv::write_record(&mut out, HEADER);
    let mut entries = 0;
    let mut last_entry = None;
    for r in &rows {
        if last_entry != Some(r.entry_id) {
            entries += 1;
            last_entry = Some(r.entry_id);
        }
        // The column is CHECKed to 0..=4.
        let exponent = r.minor_exponent as u16;
        csv::write_record(
            &mut out,
            [
                r.entry_id.to_string().as_str(),
                &r.entry_date.to_string(),
                &r.booked_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                &r.order_id,
                &r.line_no.to_string(),
                &r.account_code,
                &r.account_name,
                r.counterparty.as_deref().unwrap_or(""),
                &r.memo,
                &decimal(r.debit_minor, exponent),
                &decimal(r.credit_minor, exponent),
                &r.currency,
            ],
        );
    }
    Ok(Batch {
        day,
        entries,
        postings: rows.len(),
        csv: out.into_bytes(),
    })
}
