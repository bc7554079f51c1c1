//! The same events delivered twice, before and after their lines were archived, and an order
//! published again under a new event id, archive each line once.

use std::time::Duration;

use orderflow_testkit as kit;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn events_delivered_twice_are_archived_once() {
    // One partition, so the sentinel order is handled after everything before it.
    let s = setup(1).await;
    let orders: Vec<_> = (0..8).map(|i| order("again", i)).collect();
    let app = s.start(policy(1_000, 300)).await;

    // Twice in a row: the second copy arrives while the first is staged, not yet written.
    kit::produce(&s.topic, &encoded(&orders)).await;
    kit::produce(&s.topic, &encoded(&orders)).await;
    s.wait_written(line_count(&orders), Duration::from_secs(30))
        .await;

    // A replay after the files exist, and the first order under a new event id.
    kit::produce(&s.topic, &encoded(&orders)).await;
    let mut republished = orders[0].clone();
    republished.event_id = uuid::Uuid::new_v4().to_string();
    let sentinel = order("again-sentinel", 1);
    kit::produce(&s.topic, &encoded(&[republished, sentinel.clone()])).await;

    let mut everything = orders.clone();
    everything.push(sentinel);
    s.wait_written(line_count(&everything), Duration::from_secs(30))
        .await;
    // Anything still to come would have been handled before the sentinel.
    tokio::time::sleep(Duration::from_millis(800)).await;
    app.stop().await.unwrap();

    let p = s.progress().await;
    assert_eq!(p.staged, line_count(&everything) as i64, "{p:?}");
    assert_archive_holds_exactly(&s.read_archive(), &everything);
}
