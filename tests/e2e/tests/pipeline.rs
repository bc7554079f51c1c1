//! Orders placed through the checkout API reach all five consumers, and each makes its effect
//! exactly once: one print job per (order, supplier), one customer e-mail per order and one agent
//! e-mail per order with an agent, one balanced journal entry per order, a monthly report whose
//! totals are the orders' sums, and every sold line archived once in Parquet.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::time::Duration;

use arrow_array::{Array, StringArray};
use orderflow_e2e::Pipeline;
use orderflow_simulators::storefront::sample_order;
use orderflow_testkit::eventually;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

const ORDERS: usize = 12;
const WAIT: Duration = Duration::from_secs(90);

struct Placed {
    order: Value,
    total_minor: i64,
}

impl Placed {
    fn id(&self) -> &str {
        self.order["order_id"].as_str().unwrap()
    }

    fn suppliers(&self) -> BTreeSet<String> {
        self.lines()
            .iter()
            .map(|l| l["supplier_id"].as_str().unwrap().to_string())
            .collect()
    }

    fn lines(&self) -> &Vec<Value> {
        self.order["lines"].as_array().unwrap()
    }

    fn has_agent(&self) -> bool {
        self.order.get("sales_agent").is_some()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_placed_through_checkout_reach_all_five_consumers_once() {
    let pipeline = Pipeline::start().await;
    let mut placed = Vec::new();
    for n in 0..ORDERS {
        let (order, total_minor) = sample_order(&pipeline.run, n);
        let (status, body) = pipeline.place(&order, total_minor).await;
        assert_eq!(
            status, 201,
            "checkout accepted {}: {body}",
            order["order_id"]
        );
        placed.push(Placed { order, total_minor });
    }

    let published =
        orderflow_testkit::read_topic(&pipeline.orders_topic, ORDERS + 1, Duration::from_secs(20))
            .await;
    assert_eq!(
        published.len(),
        ORDERS,
        "every accepted order is on the topic exactly once"
    );

    // Supplier dispatch: one job per (order, supplier), and no other.
    let expected_jobs: BTreeSet<String> = placed
        .iter()
        .flat_map(|p| {
            p.suppliers()
                .into_iter()
                .map(move |s| format!("{}:{s}", p.id()))
        })
        .collect();
    let jobs_done = eventually(WAIT, || async {
        pipeline.supplier.jobs().len() >= expected_jobs.len()
    })
    .await;
    assert!(
        jobs_done,
        "print jobs: {} of {}",
        pipeline.supplier.jobs().len(),
        expected_jobs.len()
    );

    // Notifications: one customer e-mail per order, one agent e-mail per order with an agent.
    let expected_mails = placed.len() + placed.iter().filter(|p| p.has_agent()).count();
    let mailed = eventually(WAIT, || async {
        pipeline.smtp.messages().len() >= expected_mails
    })
    .await;
    assert!(
        mailed,
        "e-mails: {} of {expected_mails}",
        pipeline.smtp.messages().len()
    );

    // Accounting: one entry per order.
    let ledger = pipeline.database_of("accounting").await;
    let journaled = eventually(WAIT, || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM journal_entries")
            .fetch_one(&ledger)
            .await
            .unwrap()
            >= ORDERS as i64
    })
    .await;
    assert!(journaled, "journal entries for every order");

    // Sales reporting: the month's totals.
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let total: i64 = placed.iter().map(|p| p.total_minor).sum();
    let report_path = format!("/v1/reports/monthly/{month}");
    let reported = eventually(WAIT, || async {
        pipeline.report(&report_path).await["currencies"][0]["orders"].as_i64()
            == Some(ORDERS as i64)
    })
    .await;
    assert!(
        reported,
        "the report counts every order: {}",
        pipeline.report(&report_path).await
    );

    // Product analytics: every line in a Parquet file.
    let line_count: usize = placed.iter().map(|p| p.lines().len()).sum();
    let archived = eventually(WAIT, || async {
        archived_lines(&pipeline.archive_dir).len() >= line_count
    })
    .await;
    assert!(
        archived,
        "archived lines: {} of {line_count}",
        archived_lines(&pipeline.archive_dir).len()
    );

    // Let any duplicate that was on its way arrive before counting exactly.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let jobs: BTreeMap<String, u32> = pipeline
        .supplier
        .jobs()
        .into_iter()
        .map(|j| (j.idempotency_key, j.requests))
        .collect();
    assert_eq!(jobs.keys().cloned().collect::<BTreeSet<_>>(), expected_jobs);

    let messages = pipeline.smtp.messages();
    for p in &placed {
        let of_order: Vec<_> = messages
            .iter()
            .filter(|m| String::from_utf8_lossy(&m.data).contains(p.id()))
            .collect();
        let to_customer = of_order
            .iter()
            .filter(|m| {
                m.rcpt_to
                    .iter()
                    .any(|r| r == p.order["customer"]["email"].as_str().unwrap())
            })
            .count();
        assert_eq!(to_customer, 1, "customer e-mails of {}", p.id());
        let to_agent = of_order
            .iter()
            .filter(|m| m.rcpt_to.iter().any(|r| r == "agent7@example.com"))
            .count();
        assert_eq!(
            to_agent,
            usize::from(p.has_agent()),
            "agent e-mails of {}",
            p.id()
        );
    }
    assert_eq!(messages.len(), expected_mails, "no other e-mail was sent");

    let (entries, debits, credits, receivable): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM journal_entries),
                sum(p.debit_minor)::BIGINT, sum(p.credit_minor)::BIGINT,
                (SELECT sum(total_minor)::BIGINT FROM journal_entries)
         FROM postings p",
    )
    .fetch_one(&ledger)
    .await
    .unwrap();
    assert_eq!(entries, ORDERS as i64, "one journal entry per order");
    assert_eq!(debits, credits, "the journal balances");
    assert_eq!(
        receivable, total,
        "receivable is the sum of the orders' totals"
    );

    let month_total = &pipeline
        .report(&format!("/v1/reports/monthly/{month}"))
        .await["currencies"][0];
    assert_eq!(month_total["currency"], "EUR");
    assert_eq!(month_total["orders"].as_i64(), Some(ORDERS as i64));
    assert_eq!(
        month_total["gross_minor"].as_i64(),
        Some(total),
        "report: {month_total}"
    );

    let archived = archived_lines(&pipeline.archive_dir);
    let expected_lines: Vec<(String, String)> = placed
        .iter()
        .flat_map(|p| {
            p.lines().iter().map(|l| {
                (
                    p.id().to_string(),
                    l["line_id"].as_str().unwrap().to_string(),
                )
            })
        })
        .collect();
    let mut sorted = archived.clone();
    sorted.sort();
    let mut expected_sorted = expected_lines.clone();
    expected_sorted.sort();
    assert_eq!(
        sorted, expected_sorted,
        "every sold line archived exactly once"
    );

    for group in &pipeline.groups {
        let dlq = orderflow_core::topics::dead_letter_topic(&pipeline.orders_topic, group);
        let dead = orderflow_testkit::read_topic(&dlq, 1, Duration::from_secs(1)).await;
        assert!(dead.is_empty(), "nothing was dead-lettered by {group}");
    }
    pipeline.stop().await;
}

/// (order id, line id) of every row in every Parquet file under `dir`.
fn archived_lines(dir: &Path) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for path in parquet_files(dir) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .unwrap_or_else(|| panic!("{} has no column {name}", path.display()))
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .clone()
            };
            let (orders, lines) = (column("order_id"), column("order_line_id"));
            for i in 0..batch.num_rows() {
                rows.push((orders.value(i).to_string(), lines.value(i).to_string()));
            }
            assert_eq!(orders.null_count(), 0);
        }
    }
    rows
}

fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    out
}
