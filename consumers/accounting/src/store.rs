//! The journal in Postgres. An entry and its postings are written in the transaction that claims
//! the event, and the database judges them at commit: a deferred constraint trigger refuses an
//! unbalanced or empty entry, and UNIQUE (order_id) refuses a second entry for an order.
//!
//! Exported days are closed. Booking holds a ROW SHARE lock on `exported_days` from choosing its
//! day until commit, and an export takes an EXCLUSIVE lock there before reading; so an export
//! waits for bookings in flight, later bookings see the day closed, and a day's file never
//! changes once written.

use std::collections::{HashMap, HashSet};

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
    match book_run(conn, &[entry], time_zone).await? {
        RunBooked::New(mut booked) => Ok(booked.remove(0)),
        RunBooked::AlreadyJournaled(_) => {
            let (entry_id, event_id, currency, total_minor) = sqlx::query_as(
                "SELECT id, event_id, currency, total_minor FROM journal_entries WHERE order_id = $1",
            )
            .bind(&entry.order_id)
            .fetch_one(&mut *conn)
            .await?;
            Ok(Booked::AlreadyJournaled(Existing {
                entry_id,
                event_id,
                currency,
                total_minor,
            }))
        }
    }
}

/// What booking a run of entries did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunBooked {
    /// Every entry was written: `Booked::New` for each, in the run's order.
    New(Vec<Booked>),
    /// This order has an entry already (or twice in the run). Some of the run's entries may be
    /// written: the caller rolls back and books them one by one.
    AlreadyJournaled(String),
}

/// Writes `entries` (of different orders) in the caller's transaction with one statement per
/// table.
pub async fn book_run(
    conn: &mut PgConnection,
    entries: &[&Entry],
    time_zone: &str,
) -> Result<RunBooked, sqlx::Error> {
    let mut orders = HashSet::new();
    if let Some(twice) = entries.iter().find(|e| !orders.insert(&e.order_id)) {
        return Ok(RunBooked::AlreadyJournaled(twice.order_id.clone()));
    }
    sqlx::query("LOCK TABLE exported_days IN ROW SHARE MODE")
        .execute(&mut *conn)
        .await?;
    // For each entry, the first day on or after the order's own that is not exported: that day
    // itself, or the day after one of the exported days that follow it.
    let days: Vec<(NaiveDate, NaiveDate)> = sqlx::query_as(
        "WITH placed AS (
             SELECT n, (t AT TIME ZONE $2)::date AS day
             FROM UNNEST($1::timestamptz[]) WITH ORDINALITY AS u(t, n)
         )
         SELECT p.day,
                (SELECT min(c.day)
                 FROM (SELECT p.day
                       UNION ALL
                       SELECT e.day + 1 FROM exported_days e WHERE e.day >= p.day) c
                 WHERE NOT EXISTS (SELECT 1 FROM exported_days x WHERE x.day = c.day))
         FROM placed p
         ORDER BY p.n",
    )
    .bind(entries.iter().map(|e| e.booked_at).collect::<Vec<_>>())
    .bind(time_zone)
    .fetch_all(&mut *conn)
    .await?;
    let col = |get: fn(&Entry) -> &str| entries.iter().map(|e| get(e)).collect::<Vec<_>>();
    let inserted: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO journal_entries
             (order_id, event_id, currency, minor_exponent, total_minor, booked_at, entry_date)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int2[], $5::int8[],
                              $6::timestamptz[], $7::date[])
         ON CONFLICT (order_id) DO NOTHING
         RETURNING order_id, id",
    )
    .bind(col(|e| &e.order_id))
    .bind(col(|e| &e.event_id))
    .bind(col(|e| &e.currency))
    .bind(
        entries
            .iter()
            .map(|e| e.minor_exponent as i16)
            .collect::<Vec<_>>(),
    )
    .bind(entries.iter().map(|e| e.total_minor).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.booked_at).collect::<Vec<_>>())
    .bind(
        days.iter()
            .map(|(_, entry_date)| *entry_date)
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let ids: HashMap<String, i64> = inserted.into_iter().collect();
    let mut booked = Vec::with_capacity(entries.len());
    let mut postings = Postings::default();
    for (entry, (placed_date, entry_date)) in entries.iter().zip(days) {
        let Some(&entry_id) = ids.get(&entry.order_id) else {
            return Ok(RunBooked::AlreadyJournaled(entry.order_id.clone()));
        };
        postings.add(entry_id, entry);
        booked.push(Booked::New {
            entry_id,
            placed_date,
            entry_date,
        });
    }
    postings.insert(conn).await?;
    Ok(RunBooked::New(booked))
}

/// The postings of a run's entries, as the columns of one insert.
#[derive(Default)]
struct Postings<'a> {
    entry_id: Vec<i64>,
    line_no: Vec<i32>,
    account_code: Vec<&'a str>,
    account_name: Vec<&'a str>,
    counterparty: Vec<Option<&'a str>>,
    debit_minor: Vec<i64>,
    credit_minor: Vec<i64>,
    memo: Vec<&'a str>,
}

impl<'a> Postings<'a> {
    fn add(&mut self, entry_id: i64, entry: &'a Entry) {
        for (n, p) in entry.postings.iter().enumerate() {
            self.entry_id.push(entry_id);
            self.line_no.push(n as i32 + 1);
            self.account_code.push(&p.account_code);
            self.account_name.push(&p.account_name);
            self.counterparty.push(p.counterparty.as_deref());
            let (debit, credit) = match p.side {
                Side::Debit => (p.amount_minor, 0),
                Side::Credit => (0, p.amount_minor),
            };
            self.debit_minor.push(debit);
            self.credit_minor.push(credit);
            self.memo.push(&p.memo);
        }
    }

    async fn insert(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO postings
                 (entry_id, line_no, account_code, account_name, counterparty,
                  debit_minor, credit_minor, memo)
             SELECT * FROM UNNEST($1::int8[], $2::int[], $3::text[], $4::text[], $5::text[],
                                  $6::bigint[], $7::bigint[], $8::text[])",
        )
        .bind(self.entry_id)
        .bind(self.line_no)
        .bind(self.account_code)
        .bind(self.account_name)
        .bind(self.counterparty)
        .bind(self.debit_minor)
        .bind(self.credit_minor)
        .bind(self.memo)
        .execute(conn)
        .await?;
        Ok(())
    }
}
