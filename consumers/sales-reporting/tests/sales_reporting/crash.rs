//! The real binary killed (SIGKILL) in the middle of a batch and started again: every order is
//! counted, none twice.

use std::time::Duration;

use orderflow_testkit::{self as kit, Service};

use crate::common::{self, expected, from_json, mid_november, produce, varied_orders};

const ORDERS: usize = 600;

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_mid_batch_loses_nothing_and_counts_nothing_twice() {
    let s = common::setup(3).await;
    let binary = env!("CARGO_BIN_EXE_sales-reporting");
    let first = Service::spawn(binary, &s.env());
    let orders = varied_orders("crash", ORDERS, mid_november());
    // Produced while the service runs, in small batches, so the kill falls mid-stream with
    // handlers in flight and offsets not yet committed.
    let producer = tokio::spawn({
        let (topic, orders) = (s.topic.clone(), orders.clone());
        async move {
            for chunk in orders.chunks(20) {
                produce(&topic, chunk).await;
            }
        }
    });
    let started = kit::eventually(Duration::from_secs(60), || async {
        s.processed().await >= 100
    })
    .await;
    assert!(
        started,
        "the first process counted orders (log: {:?})",
        first.log
    );
    first.kill();
    let at_kill = s.processed().await;
    assert!(
        at_kill < ORDERS as i64,
        "the kill must fall mid-batch; all {at_kill} orders were already counted"
    );

    let second = Service::spawn(binary, &s.env());
    producer.await.unwrap();
    let finished = kit::eventually(Duration::from_secs(90), || async {
        s.processed().await >= ORDERS as i64
    })
    .await;
    assert!(
        finished,
        "{} of {ORDERS} counted after the restart (log: {:?})",
        s.processed().await,
        second.log
    );
    assert!(second.terminate(), "a SIGTERM stops the service cleanly");

    let report = sales_reporting::report::Report::load(&s.pool, "2026-11".parse().unwrap(), None)
        .await
        .unwrap();
    let report = serde_json::to_value(&report).unwrap();
    assert_eq!(from_json(&report), expected(&orders));
    assert_eq!(s.processed().await, ORDERS as i64);
}
