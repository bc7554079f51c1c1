//! The day's batch file: its layout, byte-identical on a second export (even after orders of other
//! days and late orders of that day arrive), the business time zone, and the command line.

use std::process::Command;

use accounting::entry::decimal;
use accounting::export::{export_day, ExportError};
use accounting::store::{self, Booked};
use chrono::NaiveDate;
use orderflow_core::OrderPlaced;
use orderflow_testkit as kit;
use sqlx::PgPool;

use crate::common::{self, at, encoded, fix_totals, order};

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

async fn entry_id(pool: &PgPool, order_id: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM journal_entries WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn entry_date(pool: &PgPool, order_id: &str) -> NaiveDate {
    sqlx::query_scalar("SELECT entry_date FROM journal_entries WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn text(csv: &[u8]) -> &str {
    std::str::from_utf8(csv).unwrap()
}

/// Books orders through the library, as the handler does, without Kafka.
async fn book(pool: &PgPool, time_zone: &str, orders: &[OrderPlaced]) {
    let chart =
        accounting::chart::Chart::parse(accounting::chart::DEFAULT_CHART, "built-in").unwrap();
    for o in orders {
        let entry = accounting::entry::entry_for(o, &chart).unwrap();
        let mut tx = pool.begin().await.unwrap();
        let booked = store::book(&mut tx, &entry, time_zone).await.unwrap();
        assert!(matches!(booked, Booked::New { .. }));
        tx.commit().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_day_exported_twice_is_the_same_file_even_after_later_and_late_orders() {
    let s = common::setup(3).await;
    let d = day("2026-11-10");
    let mut quoted = order("exp-q", at("2026-11-10T08:30:00Z"));
    quoted.lines[1].sku = "MUG, \"11oz\"".into();
    let mut yen = order("exp-yen", at("2026-11-10T23:59:59.999Z"));
    yen.currency = "JPY".into();
    fix_totals(&mut yen);
    let first = [
        order("exp-b", at("2026-11-10T10:00:00Z")),
        order("exp-a", at("2026-11-10T00:00:00Z")),
        order("exp-prev", at("2026-11-09T23:59:59.999Z")),
        quoted,
        yen,
    ];
    kit::produce(&s.topic, &encoded(&first)).await;
    let consumer = common::start(&s).await;
    assert!(common::wait_entries(&s.pool, 5).await);

    let once = export_day(&s.pool, "UTC", d).await.unwrap();
    assert_eq!((once.entries, once.postings), (4, 36));
    let csv = text(&once.csv);
    let rows: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert_eq!(
        rows[0],
        "entry_id,entry_date,booked_at,order_id,line_no,account_code,account_name,counterparty,memo,debit,credit,currency"
    );
    let sample = order("exp-a", at("2026-11-10T00:00:00Z"));
    let a = entry_id(&s.pool, "exp-a").await;
    assert_eq!(
        rows[1..=9],
        [
            format!("{a},2026-11-10,2026-11-10T00:00:00.000Z,exp-a,1,1200,Accounts receivable - customers,cus-1,order exp-a,{},0.00,EUR", decimal(sample.totals.total_minor, 2)),
            format!("{a},2026-11-10,2026-11-10T00:00:00.000Z,exp-a,2,4000,Sales revenue,,line l1 TSHIRT-ORG-M-BLK x2,0.00,39.98,EUR"),
            format!("{a},2026-11-10,2026-11-10T00:00:00.000Z,exp-a,3,4000,Sales revenue,,line l2 MUG-11OZ-WHT x1,0.00,12.99,EUR"),
            format!("{a},2026-11-10,2026-11-10T00:00:00.000Z,exp-a,4,2200,Sales tax payable,,tax on lines and shipping,0.00,{},EUR", decimal(sample.totals.tax_minor, 2)),
            format!("{a},2026-11-10,2026-11-10T00:00:00.000Z,exp-a,5,4100,Shipping revenue,,shipping standard,0.00,4.95,EUR"),
            format!("{a},2026-11-10,2026-11-10T00:00:00.000Z,exp-a,6,5000,Cost of goods sold,sup-gelato,cost of goods from sup-gelato,6.49,0.00,EUR"),
            format!("{a},2026-11-10,2026-11-10T00:00:00.000Z,exp-a,7,2000,Accounts payable - suppliers,sup-gelato,payable to sup-gelato,0.00,6.49,EUR"),
            format!("{a},2026-11-10,2026-11-10T00:00:00.000Z,exp-a,8,5000,Cost of goods sold,sup-printful,cost of goods from sup-printful,19.98,0.00,EUR"),
            format!("{a},2026-11-10,2026-11-10T00:00:00.000Z,exp-a,9,2000,Accounts payable - suppliers,sup-printful,payable to sup-printful,0.00,19.98,EUR"),
        ]
    );
    let order_ids: Vec<&str> = rows[1..]
        .iter()
        .map(|r| r.split(',').nth(3).unwrap())
        .collect();
    let mut sorted = order_ids.clone();
    sorted.sort();
    assert_eq!(order_ids, sorted, "rows sorted by order id");
    assert!(!csv.contains("exp-prev"), "the previous day stays out");
    assert!(
        csv.contains(
            ",exp-q,3,4000,Sales revenue,,\"line l2 MUG, \"\"11oz\"\" x1\",0.00,12.99,EUR\r\n"
        ),
        "{csv}"
    );
    assert!(
        csv.contains(",exp-yen,1,1200,Accounts receivable - customers,cus-1,order exp-yen,")
            && csv.contains(",0,JPY\r\n"),
        "{csv}"
    );

    // Orders of the next day, and one of the exported day arriving late.
    let late = order("exp-late", at("2026-11-10T15:00:00Z"));
    let next = order("exp-next", at("2026-11-11T09:00:00Z"));
    kit::produce(&s.topic, &encoded(&[late, next])).await;
    assert!(common::wait_entries(&s.pool, 7).await);
    consumer.stop().await.unwrap();

    let twice = export_day(&s.pool, "UTC", d).await.unwrap();
    assert_eq!(twice.csv, once.csv, "byte-identical");
    assert_eq!(
        entry_date(&s.pool, "exp-late").await,
        day("2026-11-11"),
        "a late order goes to the next open day"
    );
    let next_day = export_day(&s.pool, "UTC", day("2026-11-11")).await.unwrap();
    let next_csv = text(&next_day.csv);
    assert_eq!(next_day.entries, 2);
    assert!(next_csv.contains(",2026-11-11,2026-11-10T15:00:00.000Z,exp-late,1,"));
    assert!(next_csv.contains(",exp-next,1,"));
}

#[tokio::test(flavor = "multi_thread")]
async fn days_follow_the_business_time_zone_and_only_ended_days_are_exported() {
    let (pool, schema) = kit::database_with_schema().await;
    let tz = "America/New_York";
    accounting::prepare(&pool, &common::ledger(&schema, tz))
        .await
        .unwrap();
    // 03:00 UTC is still the evening before in New York (UTC-5 in November).
    book(
        &pool,
        tz,
        &[
            order("ny-evening", at("2026-11-10T03:00:00Z")),
            order("ny-morning", at("2026-11-10T06:00:00Z")),
        ],
    )
    .await;
    assert_eq!(entry_date(&pool, "ny-evening").await, day("2026-11-09"));
    assert_eq!(entry_date(&pool, "ny-morning").await, day("2026-11-10"));
    let ninth = export_day(&pool, tz, day("2026-11-09")).await.unwrap();
    assert_eq!(ninth.entries, 1);
    assert!(text(&ninth.csv).contains(",2026-11-09,2026-11-10T03:00:00.000Z,ny-evening,1,"));

    let today: NaiveDate =
        sqlx::query_scalar("SELECT (now() AT TIME ZONE 'America/New_York')::date")
            .fetch_one(&pool)
            .await
            .unwrap();
    let e = export_day(&pool, tz, today).await.unwrap_err();
    assert!(
        matches!(&e, ExportError::DayNotOver { day, .. } if *day == today),
        "{e}"
    );
    let closed: Vec<NaiveDate> = sqlx::query_scalar("SELECT day FROM exported_days")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        closed,
        [day("2026-11-09")],
        "a refused export closes nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_export_command_writes_the_file_or_standard_output() {
    let (pool, schema) = kit::database_with_schema().await;
    accounting::prepare(&pool, &common::ledger(&schema, "UTC"))
        .await
        .unwrap();
    book(
        &pool,
        "UTC",
        &[
            order("cli-1", at("2026-11-12T10:00:00Z")),
            order("cli-2", at("2026-11-12T11:00:00Z")),
        ],
    )
    .await;
    let export = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_accounting"))
            .arg("export")
            .args(args)
            .env("ORDERFLOW_DATABASE_URL", kit::database_url())
            .env("ORDERFLOW_DATABASE_SCHEMA", &schema)
            .output()
            .unwrap()
    };
    let file = std::env::temp_dir().join(format!("{schema}-2026-11-12.csv"));
    let written = export(&["--date", "2026-11-12", "--out", file.to_str().unwrap()]);
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    assert!(written.stdout.is_empty());
    let printed = export(&["--date", "2026-11-12"]);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let in_file = std::fs::read(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    assert_eq!(printed.stdout, in_file);
    assert_eq!(text(&in_file).matches("\r\n").count(), 1 + 2 * 9);
    assert_eq!(
        export_day(&pool, "UTC", day("2026-11-12"))
            .await
            .unwrap()
            .csv,
        in_file
    );

    let bad = export(&["--date", "12/11/2026"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--date"));
}
