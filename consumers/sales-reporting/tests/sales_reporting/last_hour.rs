//! The business gauges on `/metrics`: in "sales in the last hour", orders placed now count,
//! older ones don't, and a currency without recent sales reads zero; the month's top products are
//! the best SKUs by gross, as many as the gauges show and no more.

use std::collections::BTreeMap;

use crate::common::{self, expected, get, utc_ms, varied_orders};

/// Every sample of `name` on `/metrics`, by its label set as written.
fn samples(metrics: &str, name: &str) -> BTreeMap<String, i64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .map(|l| {
            let (labels, value) = l.split_once("} ").unwrap();
            (labels.to_string(), value.parse().unwrap())
        })
        .collect()
}

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

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_the_month_s_best_selling_products_by_gross() {
    let s = common::setup(1).await;
    let service = s.start("UTC").await;
    let now = chrono::Utc::now().timestamp_millis();
    // A product per order, in EUR and USD, each with a gross of its own: more products per
    // currency than the gauges show, so the cut is tested too.
    let mut orders = varied_orders("top", 36, now - 60_000);
    for (i, o) in orders.iter_mut().enumerate() {
        o.lines[0].sku = format!("SKU-{i:02}");
        o.lines[0].unit_price_minor = 1000 + 137 * i as i64;
        common::settle(o);
    }
    // A best seller of last year is not this month's.
    let mut old = varied_orders("old", 1, utc_ms(2025, 3, 1, 10, 0));
    old[0].lines[0].sku = "SKU-LAST-YEAR".into();
    old[0].lines[0].quantity = 500;
    common::settle(&mut old[0]);
    let all: Vec<_> = orders.iter().cloned().chain(old).collect();
    common::produce(&s.topic, &all).await;
    s.wait_processed(all.len() as i64).await;

    let metrics = get(&s.http, format!("http://{}/metrics", service.addr))
        .await
        .text()
        .await
        .unwrap();
    // The expected top: per currency, the SKUs of this month's orders by gross, then by name.
    let mut by_currency: BTreeMap<String, Vec<(i64, String, i64)>> = BTreeMap::new();
    for ((currency, dimension, sku), figures) in expected(&orders) {
        if dimension == "sku" {
            by_currency
                .entry(currency)
                .or_default()
                .push((-figures[5], sku, figures[1]));
        }
    }
    let (mut units, mut gross) = (BTreeMap::new(), BTreeMap::new());
    for (currency, mut skus) in by_currency {
        assert!(
            skus.len() > 10,
            "{currency}: the test needs more products than the top"
        );
        skus.sort();
        for (minus_gross, sku, sold) in skus.into_iter().take(10) {
            let labels = format!("currency=\"{currency}\",sku=\"{sku}\"");
            units.insert(labels.clone(), sold);
            gross.insert(labels, -minus_gross);
        }
    }
    assert_eq!(
        samples(&metrics, "orderflow_sales_month_top_sku_gross_minor"),
        gross,
        "{metrics}"
    );
    assert_eq!(
        samples(&metrics, "orderflow_sales_month_top_sku_units"),
        units
    );
    service.stop().await.unwrap();
}
