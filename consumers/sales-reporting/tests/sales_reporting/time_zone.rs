//! Months follow the business time zone, which must be a real IANA zone and cannot change under
//! months already counted.

use orderflow_core::OrderPlaced;

use crate::common::{self, expected, from_json, utc_ms, varied_orders};

fn placed(id: &str, placed_at: i64) -> OrderPlaced {
    let mut o = varied_orders(id, 2, placed_at).pop().unwrap();
    o.order_id = id.to_string();
    o
}

#[tokio::test(flavor = "multi_thread")]
async fn months_follow_the_business_time_zone() {
    let s = common::setup(1).await;
    let service = s.start("Europe/Madrid").await;
    // Madrid is UTC+1 in late October and November 2026 (summer time ended on 25 October).
    let october = placed("oct-31-23h30-madrid", utc_ms(2026, 10, 31, 22, 30));
    let november = placed("nov-1-00h30-madrid", utc_ms(2026, 10, 31, 23, 30));
    let december = placed("dec-1-00h30-madrid", utc_ms(2026, 11, 30, 23, 30));
    common::produce(
        &s.topic,
        &[october.clone(), november.clone(), december.clone()],
    )
    .await;
    s.wait_processed(3).await;

    for (month, order) in [
        ("2026-10", october),
        ("2026-11", november),
        ("2026-12", december),
    ] {
        let report = common::report_json(&s, &service, month).await;
        assert_eq!(report["business_timezone"], "Europe/Madrid");
        assert_eq!(
            from_json(&report),
            expected(std::slice::from_ref(&order)),
            "{} belongs to {month}",
            order.order_id
        );
    }
    service.stop().await.unwrap();

    // Counted in Madrid time, the months cannot be recounted in UTC by a configuration change.
    let error = sales_reporting::start(s.settings("UTC"), s.pool.clone())
        .await
        .err()
        .expect("a changed time zone is refused");
    let message = error.to_string();
    assert!(
        message.contains("ORDERFLOW_BUSINESS_TIMEZONE is UTC")
            && message.contains("counted in Europe/Madrid"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_time_zone_is_refused_naming_the_variable() {
    let s = common::setup(1).await;
    for zone in ["Mars/Olympus_Mons", "UTC+1", "europe/madrid"] {
        let error = sales_reporting::start(s.settings(zone), s.pool.clone())
            .await
            .err()
            .expect("an unknown time zone is refused");
        let message = error.to_string();
        assert!(
            message.starts_with("ORDERFLOW_BUSINESS_TIMEZONE is malformed")
                && message.contains(zone),
            "{message}"
        );
    }
    // Before any order is counted the zone may still be chosen again.
    let service = s.start("UTC").await;
    service.stop().await.unwrap();
    let service = s.start("America/New_York").await;
    service.stop().await.unwrap();
}
