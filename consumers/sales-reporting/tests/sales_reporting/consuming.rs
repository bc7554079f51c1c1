//! Orders in, report out: a batch counts exactly once, redelivery adds nothing, an operator's
//! reprocess counts again, and events that cannot be counted are dead-lettered with their reason.

use std::time::Duration;

use orderflow_core::runtime::REASON;
use orderflow_testkit as kit;
use rdkafka::Message;

use crate::common::{self, expected, from_json, mid_november, produce, varied_orders};

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_orders_gives_exactly_the_expected_report() {
    let s = common::setup(3).await;
    let service = s.start("UTC").await;
    let orders = varied_orders("batch", 40, mid_november());
    produce(&s.topic, &orders).await;
    s.wait_processed(40).await;

    let report = common::report_json(&s, &service, "2026-11").await;
    assert_eq!(report["month"], "2026-11");
    assert_eq!(report["business_timezone"], "UTC");
    let currencies: Vec<&str> = report["currencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["currency"].as_str().unwrap())
        .collect();
    assert_eq!(currencies, ["EUR", "USD"]);
    assert_eq!(from_json(&report), expected(&orders));
    let eur = &report["currencies"][0];
    let grosses: Vec<i64> = eur["by_sku"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["gross_minor"].as_i64().unwrap())
        .collect();
    assert!(
        grosses.windows(2).all(|w| w[0] >= w[1]),
        "SKUs are listed by gross, largest first: {grosses:?}"
    );
    let other = common::report_json(&s, &service, "2026-10").await;
    assert_eq!(other["currencies"], serde_json::json!([]));
    service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_events_delivered_twice_count_once() {
    let s = common::setup(1).await;
    let service = s.start("UTC").await;
    let orders = varied_orders("twice", 12, mid_november());
    produce(&s.topic, &orders).await;
    // The same events again, as a relay retry or a replay would send them.
    produce(&s.topic, &orders).await;
    let consumed_all = kit::eventually(Duration::from_secs(60), || async {
        kit::committed_offset(&s.group, &s.topic, 0).await == Some(24)
    })
    .await;
    assert!(consumed_all, "all 24 messages were consumed");
    assert_eq!(s.processed().await, 12);
    let report = common::report_json(&s, &service, "2026-11").await;
    assert_eq!(from_json(&report), expected(&orders));
    service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn events_that_cannot_be_counted_are_dead_lettered_with_their_reason() {
    let s = common::setup(1).await;
    let service = s.start("UTC").await;
    let mut good = varied_orders("dlq", 2, mid_november());
    let mut inconsistent = good.pop().unwrap();
    inconsistent.order_id = "dlq-inconsistent".into();
    inconsistent.totals.tax_minor += 1;
    let mut off_calendar = good[0].clone();
    off_calendar.order_id = "dlq-off-calendar".into();
    off_calendar.event_id = "off-calendar-event".into();
    off_calendar.placed_at = i64::MAX;
    produce(&s.topic, &[inconsistent, off_calendar]).await;
    kit::produce(&s.topic, &[("dlq-poison".into(), b"not avro".to_vec())]).await;
    produce(&s.topic, &good).await;

    let dead = kit::read_topic(&s.dlq, 3, Duration::from_secs(60)).await;
    assert_eq!(dead.len(), 3);
    let reason = |key: &str| {
        let m = dead
            .iter()
            .find(|m| m.key() == Some(key.as_bytes()))
            .unwrap_or_else(|| panic!("{key} dead-lettered"));
        kit::header(m, REASON).unwrap()
    };
    let r = reason("dlq-inconsistent");
    assert!(
        r.starts_with("permanent: inconsistent order") && r.contains("totals.tax_minor"),
        "{r}"
    );
    let r = reason("dlq-off-calendar");
    assert!(r.contains("outside the range of dates"), "{r}");
    assert!(reason("dlq-poison").starts_with("poison"));

    s.wait_processed(1).await;
    let report = common::report_json(&s, &service, "2026-11").await;
    assert_eq!(from_json(&report), expected(&good));
    service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reprocessed_order_is_counted_again_and_never_dead_lettered() {
    let s = common::setup(1).await;
    let service = s.start("UTC").await;
    // Placed a minute ago, so it is among the recent sales too.
    let mut order = kit::sample_order_placed("reprocessed");
    order.placed_at = chrono::Utc::now().timestamp_millis() - 60_000;
    produce(&s.topic, std::slice::from_ref(&order)).await;
    s.wait_processed(1).await;

    // `orderflowctl replay --reprocess` copies the event to the group's retry topic.
    kit::produce_with_headers(
        &s.retry,
        &order.order_id,
        &order.encode().unwrap(),
        &[(orderflow_core::headers::REPROCESS, "true")],
    )
    .await;
    assert!(
        kit::eventually(Duration::from_secs(60), || async {
            kit::committed_offset(&s.group, &s.retry, 0).await == Some(1)
        })
        .await
    );
    service.stop().await.unwrap();
    let (orders, gross): (i64, i64) =
        sqlx::query_as("SELECT sum(orders)::int8, sum(gross_minor)::int8 FROM monthly_sales")
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert_eq!(
        (orders, gross),
        (2, 2 * order.totals.total_minor),
        "counted again, as asked"
    );
    let recent: i64 = sqlx::query_scalar("SELECT sum(orders)::int8 FROM recent_sales_by_minute")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(recent, 2, "counted again in its minute too");
    assert!(kit::read_topic(&s.dlq, 1, Duration::from_secs(2))
        .await
        .is_empty());
}
