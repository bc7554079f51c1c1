//! The normal path: one print job per (order, supplier), recorded and announced once, and no
//! second effect when events come again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use orderflow_testkit as kit;
use rdkafka::Message;

use crate::common::{expected_jobs, order, test_env};

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_orders_gives_one_print_job_per_order_and_supplier() {
    let env = test_env(3).await;
    let mut orders: Vec<_> = (0..10)
        .map(|i| kit::sample_order_placed(&format!("batch-{i}")))
        .collect();
    // Two lines of one supplier go out as one job with two items.
    orders.push(order(
        "batch-grouped",
        &[("l1", "sup-a", 2), ("l2", "sup-b", 1), ("l3", "sup-a", 3)],
    ));
    let expected = expected_jobs(&orders);
    assert_eq!(expected.len(), 22);
    env.produce(&orders).await;
    let dispatcher = env.start().await;
    assert!(
        env.wait_published(22, Duration::from_secs(60)).await,
        "{} of 22 dispatched",
        env.count_published().await
    );

    // The supplier got exactly one job per key, with that supplier's lines and the address.
    let jobs = env.sim.jobs();
    let received: BTreeMap<String, Vec<(String, String, i32)>> = jobs
        .iter()
        .map(|j| {
            let items = j
                .request
                .items
                .iter()
                .map(|i| (i.line_id.clone(), i.sku.clone(), i.quantity))
                .collect();
            (j.idempotency_key.clone(), items)
        })
        .collect();
    assert_eq!(received, expected);
    assert_eq!(jobs.len(), 22, "no key got two jobs");
    let stats = env.sim.stats();
    assert_eq!((stats.requests, stats.duplicates), (22, 0));
    let grouped = env.sim.job("batch-grouped:sup-a").unwrap();
    assert_eq!(grouped.request.items[1].design_id, "dsg-l3");
    assert_eq!(grouped.request.ship_to.city, "Madrid");
    assert_eq!(grouped.request.ship_to.country, "ES");

    // Each dispatch is recorded with the supplier's job id.
    let rows = env.rows().await;
    assert_eq!(rows.len(), 22);
    for row in &rows {
        let key = format!("{}:{}", row.order_id, row.supplier_id);
        assert_eq!(row.status, "accepted", "{key}");
        assert_eq!(row.attempts, 1, "{key}");
        assert_eq!(row.last_error, None, "{key}");
        assert_eq!(
            row.job_id.as_deref(),
            Some(env.sim.job(&key).unwrap().job_id.as_str()),
            "{key}"
        );
    }

    // And announced once on orders.dispatched, keyed by order id, with trace context.
    let events = env.dispatched_events(22).await;
    assert_eq!(events.len(), 22, "one event per (order, supplier)");
    let mut seen = BTreeSet::new();
    for (message, event) in &events {
        let key = format!("{}:{}", event.order_id, event.supplier_id);
        assert!(seen.insert(key.clone()), "{key} announced twice");
        assert_eq!(message.key().unwrap(), event.order_id.as_bytes());
        assert_eq!(event.event_id, format!("dispatch:{key}"));
        assert_eq!(event.job_id, env.sim.job(&key).unwrap().job_id);
        let lines: Vec<String> = expected[&key].iter().map(|l| l.0.clone()).collect();
        assert_eq!(event.line_ids, lines);
        assert_eq!(event.units, expected[&key].iter().map(|l| l.2).sum::<i32>());
        assert_eq!(event.attempts, 1);
        assert!(event.dispatched_at > 1_700_000_000_000);
        assert!(kit::header(message, "traceparent").is_some(), "{key}");
        assert_eq!(
            kit::header(message, "event-id").as_deref(),
            Some(event.event_id.as_str())
        );
    }
    assert_eq!(seen, expected.keys().cloned().collect());
    dispatcher.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_events_delivered_twice_give_no_second_job_or_event() {
    let env = test_env(1).await;
    let orders: Vec<_> = (0..5)
        .map(|i| kit::sample_order_placed(&format!("twice-{i}")))
        .collect();
    // Each event twice in a row, before the consumer even starts.
    let doubled: Vec<_> = orders.iter().flat_map(|o| [o.clone(), o.clone()]).collect();
    env.produce(&doubled).await;
    let dispatcher = env.start().await;
    assert!(env.wait_published(10, Duration::from_secs(60)).await);
    assert!(env.wait_committed(10).await, "every copy was handled");
    // Later, checkout republishes the same orders under new event ids, and a replay comes too.
    let republished: Vec<_> = orders
        .iter()
        .map(|o| kit::sample_order_placed(&o.order_id))
        .collect();
    env.produce(&republished).await;
    env.produce(&orders).await;
    assert!(env.wait_committed(20).await, "every copy was handled");
    dispatcher.stop().await.unwrap();

    let stats = env.sim.stats();
    assert_eq!(stats.jobs, 10);
    assert_eq!(
        stats.requests, 10,
        "an accepted job is not even sent again: {stats:?}"
    );
    let rows = env.rows().await;
    assert_eq!(rows.len(), 10);
    assert!(rows
        .iter()
        .all(|r| r.status == "accepted" && r.attempts == 1));
    let events = env.dispatched_events(10).await;
    assert_eq!(events.len(), 10, "no second event");
}
