//! The "sales in the last hour" gauges on `/metrics`: orders placed now count, older ones don't,
//! and a currency without recent sales reads zero.

use crate::common::{self, get, utc_ms, varied_orders};

fn gauge(metrics: &str, name: &str, currency: &str) -> Option<i64> {
    let prefix = format!("{name}{{currency=\"{currency}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_sales_placed_in_the_last_hour_only() {
    let s = common::setup(1).await;
    let service = s.start("UTC").await;
    let now = chrono::Utc::now().timestamp_millis();
    // varied_orders makes orders 1 and 2 EUR, 3 USD: three EUR orders placed now...
    let recent: Vec<_> = varied_orders("now", 6, now - 60_000)
        .into_iter()
        .filter(|o| o.currency == "EUR")
        .take(3)
        .collect();
    assert_eq!(recent.len(), 3);
    // ...one EUR order from 90 minutes ago and one USD order from last year.
    let earlier = varied_orders("earlier", 2, now - 90 * 60_000)
        .pop()
        .unwrap();
    assert_eq!(earlier.currency, "EUR");
    let old_usd = varied_orders("old", 1, utc_ms(2025, 3, 1, 10, 0))
        .pop()
        .unwrap();
    assert_eq!(old_usd.currency, "USD");
    let all: Vec<_> = recent.iter().cloned().chain([earlier, old_usd]).collect();
    common::produce(&s.topic, &all).await;
    s.wait_processed(5).await;

    let response = get(&s.http, format!("http://{}/metrics", service.addr)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let metrics = response.text().await.unwrap();
    let gross: i64 = recent.iter().map(|o| o.totals.total_minor).sum();
    assert_eq!(
        gauge(&metrics, "orderflow_sales_last_hour_orders", "EUR"),
        Some(3),
        "{metrics}"
    );
    assert_eq!(
        gauge(&metrics, "orderflow_sales_last_hour_gross_minor", "EUR"),
        Some(gross),
        "{metrics}"
    );
    assert_eq!(
        gauge(&metrics, "orderflow_sales_last_hour_orders", "USD"),
        Some(0)
    );
    assert_eq!(
        gauge(&metrics, "orderflow_sales_last_hour_gross_minor", "USD"),
        Some(0)
    );
    service.stop().await.unwrap();
}
