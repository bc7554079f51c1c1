//! Writers counting at the same time, as the lanes of an instance and the instances of a group
//! do: none waits for another's uncommitted run, and the report and the gauges add up what each
//! wrote.

use std::time::Duration;

use sales_reporting::sale::Sale;
use sales_reporting::{metrics::LastHourSales, report, store};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Postgres};

use crate::common::{self, expected, from_json, varied_orders};

/// Two connections whose backends write different shards.
async fn two_writers(pool: &sqlx::PgPool) -> [PoolConnection<Postgres>; 2] {
    let mut held = Vec::new();
    let mut shards = Vec::new();
    while held.len() < 8 {
        let mut conn = pool.acquire().await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        if let Some(other) = shards.iter().position(|s| *s != pid % 8) {
            return [held.swap_remove(other), conn];
        }
        shards.push(pid % 8);
        held.push(conn);
    }
    panic!("eight connections of the pool, all on shard {}", shards[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_in_flight_at_once_do_not_wait_for_each_other_and_add_up() {
    let s = common::setup(1).await;
    store::MIGRATOR.run(&s.pool).await.unwrap();
    store::pin_time_zone(&s.pool, "UTC").await.unwrap();
    // Placed now, so they count in the last hour and in this month, the month the gauges read.
    let orders = varied_orders("concurrent", 12, chrono::Utc::now().timestamp_millis());
    let sales: Vec<Sale> = orders
        .iter()
        .map(|o| Sale::from_order(o).unwrap())
        .collect();
    let (first, second) = sales.split_at(5);

    let [mut a, mut b] = two_writers(&s.pool).await;
    let mut tx_a = a.begin().await.unwrap();
    let mut tx_b = b.begin().await.unwrap();
    store::record(&mut tx_a, &first.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    // The same month, currencies and keys, while the first run is not committed yet.
    tokio::time::timeout(
        Duration::from_secs(10),
        store::record(&mut tx_b, &second.iter().collect::<Vec<_>>()),
    )
    .await
    .expect("the second writer waited for the first one's commit")
    .unwrap();
    tx_b.commit().await.unwrap();
    tx_a.commit().await.unwrap();

    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let report = report::Report::load(&s.pool, month.parse().unwrap(), None)
        .await
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&report.render(report::Format::Json)).unwrap();
    assert_eq!(from_json(&json), expected(&orders));

    let metrics = LastHourSales::new(s.pool.clone()).render().await.unwrap();
    for currency in ["EUR", "USD"] {
        let of_currency: Vec<_> = orders.iter().filter(|o| o.currency == currency).collect();
        assert!(!of_currency.is_empty(), "the test needs {currency} orders");
        let gross: i64 = of_currency.iter().map(|o| o.totals.total_minor).sum();
        assert!(
            metrics.contains(&format!(
                "orderflow_sales_last_hour_orders{{currency=\"{currency}\"}} {}\n",
                of_currency.len()
            )),
            "{metrics}"
        );
        assert!(
            metrics.contains(&format!(
                "orderflow_sales_last_hour_gross_minor{{currency=\"{currency}\"}} {gross}\n"
            )),
            "{metrics}"
        );
    }
}
