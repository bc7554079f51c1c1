//! What the database itself refuses, whoever writes: SQL typed by hand, from another search path,
//! as an operator fixing the journal in psql would.

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};

use crate::common;

/// A connection on the default search path, naming the schema as psql users do.
async fn by_hand() -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(&orderflow_testkit::database_url())
        .await
        .unwrap()
}

async fn new_entry(tx: &mut Transaction<'static, Postgres>, schema: &str, order_id: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "INSERT INTO {schema}.journal_entries
             (order_id, event_id, currency, minor_exponent, total_minor, booked_at, entry_date)
         VALUES ($1, 'by-hand', 'EUR', 2, 1000, now(), current_date) RETURNING id"
    ))
    .bind(order_id)
    .fetch_one(&mut **tx)
    .await
    .unwrap()
}

async fn post(
    tx: &mut Transaction<'static, Postgres>,
    schema: &str,
    entry: i64,
    line: i32,
    account: &str,
    debit: i64,
    credit: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO {schema}.postings
             (entry_id, line_no, account_code, account_name, debit_minor, credit_minor)
         VALUES ($1, $2, $3, 'by hand', $4, $5)"
    ))
    .bind(entry)
    .bind(line)
    .bind(account)
    .bind(debit)
    .bind(credit)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// A prepared ledger in a schema of its own: its pool, the schema, and a connection by hand.
async fn ledger() -> (PgPool, String, PgPool) {
    let (pool, schema) = orderflow_testkit::database_with_schema().await;
    accounting::prepare(&pool, &common::ledger(&schema, "UTC"))
        .await
        .unwrap();
    (pool, schema, by_hand().await)
}

/// Books a balanced entry of 10.00 for `order_id` by hand; returns its id.
async fn balanced_entry(db: &PgPool, schema: &str, order_id: &str) -> i64 {
    let mut tx = db.begin().await.unwrap();
    let id = new_entry(&mut tx, schema, order_id).await;
    post(&mut tx, schema, id, 1, "1200", 1000, 0).await.unwrap();
    post(&mut tx, schema, id, 2, "4000", 0, 1000).await.unwrap();
    tx.commit().await.unwrap();
    id
}

fn refusal(e: sqlx::Error) -> (String, String) {
    let db = e.as_database_error().expect("a database error");
    (db.code().unwrap().into_owned(), db.message().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_refuses_unbalanced_or_empty_entries_and_a_second_entry_per_order() {
    let (pool, schema, db) = ledger().await;

    // Debits 10.00, credits 9.00: refused when the transaction commits.
    let mut tx = db.begin().await.unwrap();
    let id = new_entry(&mut tx, &schema, "ord-1").await;
    post(&mut tx, &schema, id, 1, "1200", 1000, 0)
        .await
        .unwrap();
    post(&mut tx, &schema, id, 2, "4000", 0, 900).await.unwrap();
    let (code, message) = refusal(tx.commit().await.unwrap_err());
    assert_eq!(code, "23514");
    assert_eq!(
        message,
        format!("journal entry {id} is unbalanced: debits 1000 <> credits 900")
    );

    // An entry without postings.
    let mut tx = db.begin().await.unwrap();
    let id = new_entry(&mut tx, &schema, "ord-1").await;
    let (code, message) = refusal(tx.commit().await.unwrap_err());
    assert_eq!(code, "23514");
    assert_eq!(message, format!("journal entry {id} has no postings"));

    // A posting with both sides, or neither.
    let mut tx = db.begin().await.unwrap();
    let id = new_entry(&mut tx, &schema, "ord-1").await;
    let (code, _) = refusal(
        post(&mut tx, &schema, id, 1, "1200", 1000, 1000)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "23514", "CHECK one_side_positive");
    tx.rollback().await.unwrap();

    // A balanced entry is accepted...
    let id = balanced_entry(&db, &schema, "ord-1").await;

    // ...and cannot be unbalanced afterwards, nor emptied.
    let mut tx = db.begin().await.unwrap();
    sqlx::query(&format!(
        "UPDATE {schema}.postings SET credit_minor = 999 WHERE entry_id = $1 AND line_no = 2"
    ))
    .bind(id)
    .execute(&mut *tx)
    .await
    .unwrap();
    let (_, message) = refusal(tx.commit().await.unwrap_err());
    assert!(message.contains("is unbalanced"), "{message}");
    let e = sqlx::query(&format!(
        "DELETE FROM {schema}.postings WHERE entry_id = $1"
    ))
    .bind(id)
    .execute(&db)
    .await
    .unwrap_err();
    assert_eq!(refusal(e).1, format!("journal entry {id} has no postings"));

    // Nor grown by a posting added later, even in a transaction that touched the entry too:
    // only the transaction that wrote an entry leaves its postings to the entry's own check.
    for touch_entry in [false, true] {
        let mut tx = db.begin().await.unwrap();
        if touch_entry {
            sqlx::query(&format!(
                "UPDATE {schema}.journal_entries SET event_id = event_id WHERE id = $1"
            ))
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        post(&mut tx, &schema, id, 3, "1200", 500, 0).await.unwrap();
        let (_, message) = refusal(tx.commit().await.unwrap_err());
        assert!(
            message.contains("is unbalanced"),
            "{touch_entry}: {message}"
        );
    }

    // A second entry for the same order.
    let mut tx = db.begin().await.unwrap();
    let e = sqlx::query(&format!(
        "INSERT INTO {schema}.journal_entries
             (order_id, event_id, currency, minor_exponent, total_minor, booked_at, entry_date)
         VALUES ('ord-1', 'another', 'EUR', 2, 1000, now(), current_date)"
    ))
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert_eq!(refusal(e).0, "23505");
    tx.rollback().await.unwrap();

    let stored: Vec<(i32, i64, i64)> =
        sqlx::query_as("SELECT line_no, debit_minor, credit_minor FROM postings ORDER BY line_no")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        stored,
        [(1, 1000, 0), (2, 0, 1000)],
        "only the balanced entry"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postings_refer_to_accounts_and_entries_that_exist_and_are_never_removed() {
    let (pool, schema, db) = ledger().await;

    // A posting to an account missing from the chart, or to no entry, is refused at once.
    let mut tx = db.begin().await.unwrap();
    let id = new_entry(&mut tx, &schema, "ord-1").await;
    let e = post(&mut tx, &schema, id, 1, "9999", 1000, 0)
        .await
        .unwrap_err();
    assert_eq!(
        refusal(e),
        (
            "23503".into(),
            "account 9999 is not in the chart of accounts".into()
        )
    );
    tx.rollback().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    let e = post(&mut tx, &schema, 424_242, 1, "1200", 1000, 0)
        .await
        .unwrap_err();
    assert_eq!(
        refusal(e),
        ("23503".into(), "journal entry 424242 does not exist".into())
    );
    tx.rollback().await.unwrap();

    let id = balanced_entry(&db, &schema, "ord-1").await;

    // What postings refer to stays: no deleted or truncated entry or account, no new code.
    for statement in [
        format!("DELETE FROM {schema}.journal_entries WHERE id = {id}"),
        format!("TRUNCATE {schema}.postings, {schema}.journal_entries"),
        format!("DELETE FROM {schema}.accounts WHERE code = '1200'"),
        format!("DELETE FROM {schema}.accounts WHERE role IS NULL"),
        format!("TRUNCATE {schema}.accounts CASCADE"),
        format!("UPDATE {schema}.accounts SET code = '1201' WHERE code = '1200'"),
    ] {
        let e = sqlx::query(&statement).execute(&db).await.unwrap_err();
        let (code, message) = refusal(e);
        assert_eq!(code, "23001", "{statement}: {message}");
        assert!(
            message.ends_with("are never deleted or given a new key: postings refer to them"),
            "{statement}: {message}"
        );
    }
    // Renaming an account is still fine: postings keep the name they were booked with.
    sqlx::query(&format!(
        "UPDATE {schema}.accounts SET name = 'Debtors' WHERE code = '1200'"
    ))
    .execute(&db)
    .await
    .unwrap();

    let stored: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT p.entry_id, p.account_code, a.name
         FROM postings p JOIN accounts a ON a.code = p.account_code ORDER BY p.line_no",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        stored,
        [
            (id, "1200".into(), "Debtors".into()),
            (id, "4000".into(), "Sales revenue".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_file_is_upserted_and_a_bad_one_or_time_zone_stops_start_up() {
    let (pool, schema) = orderflow_testkit::database_with_schema().await;
    let mut ledger = common::ledger(&schema, "UTC");
    accounting::prepare(&pool, &ledger).await.unwrap();

    // Finance renames an account and moves the tax role to a new account.
    let chart = accounting::chart::DEFAULT_CHART
        .replace("1200,Accounts receivable - customers", "1200,\"Debtors, web shop\"")
        .replace("2200,Sales tax payable,liability,credit,tax_payable", "2200,Sales tax payable,liability,credit,\n2210,\"VAT payable (EU OSS)\",liability,credit,tax_payable");
    let path = std::env::temp_dir().join(format!("{schema}-chart.csv"));
    std::fs::write(&path, chart).unwrap();
    ledger.chart_file = Some(path.clone());
    let chart = accounting::prepare(&pool, &ledger).await.unwrap();
    assert_eq!(
        chart.account(accounting::chart::Role::TaxPayable).code,
        "2210"
    );
    let accounts: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT code, name, role FROM accounts WHERE code IN ('1200', '2200', '2210') ORDER BY code")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        accounts,
        [
            (
                "1200".into(),
                "Debtors, web shop".into(),
                Some("receivable".into())
            ),
            ("2200".into(), "Sales tax payable".into(), None),
            (
                "2210".into(),
                "VAT payable (EU OSS)".into(),
                Some("tax_payable".into())
            ),
        ]
    );

    std::fs::write(
        &path,
        "code,name,type,normal_side,role\n1,Cash,asset,debit,\n",
    )
    .unwrap();
    let e = accounting::prepare(&pool, &ledger)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no account has the role receivable"), "{e}");
    std::fs::remove_file(&path).unwrap();

    let e = accounting::prepare(&pool, &common::ledger(&schema, "Mars/Olympus_Mons"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("ORDERFLOW_BUSINESS_TIMEZONE is \"Mars/Olympus_Mons\""),
        "{e}"
    );
}
