//! The journal in Postgres. An entry and its postings are written in the transaction that claims
//! the event, and the database judges them at commit: a deferred constraint trigger refuses an
//! unbalanced or empty entry, and UNIQUE (order_id) refuses a second entry for an order.
//!
//! Exported days are closed. Booking holds a ROW SHARE lock on `exported_days` from choosing its
//! day until commit, and an export takes an EXCLUSIVE lock there before reading; so an export
//! waits for bookings in flight, later bookings see the day closed, and a day's file never
//! changes once written.

use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool};

use crate::chart::Side;
use crate::entry::Entry;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What booking an entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Booked {
    New {
        entry_id: i64,
        /// The order's date in the business time zone.
        placed_date: NaiveDate,
        /// The journal day: `placed_date`, or a later one when that day was already exported.
        entry_date: NaiveDate,
    },
    /// The order has an entry already, possibly from another event id (a replay).
    AlreadyJournaled(Existing),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub entry_id: i64,
    pub event_id: String,
    pub currency: String,
    pub total_minor: i64,
}

/// Whether Postgres knows `name` as an IANA time zone.
pub async fn is_time_zone(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)")
        .bind(name)
        .fetch_one(pool)
        .await
}

/// Writes `entry` in the caller's transaction, unless its order has an entry already.
pub async fn book(
    conn: &mut PgConnection,
    entry: &Entry,
    time_zone: &str,
) -> Result<Booked, sqlx::Error> {
    sqlx::query("LOCK TABLE exported_days IN ROW SHARE MODE")
        .execute(&mut *conn)
        .await?;
    // The first day on or after the order's own that is not exported: that day itself, or the
    // day after one of the exported days that follow it.
    let (placed_date, entry_date): (NaiveDate, NaiveDate) = sqlx::query_as(
        "WITH placed AS (SELECT ($1::timestamptz AT TIME ZONE $2)::date AS day)
         SELECT (SELECT day FROM placed), min(c.day)
         FROM (SELECT day FROM placed
               UNION ALL
               SELECT e.day + 1 FROM exported_days e, placed p WHERE e.day >= p.day) c
         WHERE NOT EXISTS (SELECT 1 FROM exported_days x WHERE x.day = c.day)",
    )
    .bind(entry.booked_at)
    .bind(time_zone)
    .fetch_one(&mut *conn)
    .await?;
    let entry_id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO journal_entries
             (order_id, event_id, currency, minor_exponent, total_minor, booked_at, entry_date)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (order_id) DO NOTHING
         RETURNING id",
    )
    .bind(&entry.order_id)
    .bind(&entry.event_id)
    .bind(&entry.currency)
    .bind(entry.minor_exponent as i16)
    .bind(entry.total_minor)
    .bind(entry.booked_at)
    .bind(entry_date)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(entry_id) = entry_id else {
        let (entry_id, event_id, currency, total_minor) = sqlx::query_as(
            "SELECT id, event_id, currency, total_minor FROM journal_entries WHERE order_id = $1",
        )
        .bind(&entry.order_id)
        .fetch_one(&mut *conn)
        .await?;
        return Ok(Booked::AlreadyJournaled(Existing {
            entry_id,
            event_id,
            currency,
            total_minor,
        }));
    };
    let p = &entry.postings;
    let amount = |side| -> Vec<i64> {
        p.iter()
            .map(|x| if x.side == side { x.amount_minor } else { 0 })
            .collect()
    };
    sqlx::query(
        "INSERT INTO postings
             (entry_id, line_no, account_code, account_name, counterparty,
              debit_minor, credit_minor, memo)
         SELECT $1, * FROM UNNEST($2::int[], $3::text[], $4::text[], $5::text[],
                                  $6::bigint[], $7::bigint[], $8::text[])",
    )
    .bind(entry_id)
    .bind((1..=p.len() as i32).collect::<Vec<_>>())
    .bind(p.iter().map(|x| x.account_code.clone()).collect::<Vec<_>>())
    .bind(p.iter().map(|x| x.account_name.clone()).collect::<Vec<_>>())
    .bind(p.iter().map(|x| x.counterparty.clone()).collect::<Vec<_>>())
    .bind(amount(Side::Debit))
    .bind(amount(Side::Credit))
    .bind(p.iter().map(|x| x.memo.clone()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(Booked::New {
        entry_id,
        placed_date,
        entry_date,
    })
}
