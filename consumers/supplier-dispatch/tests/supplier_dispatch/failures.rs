//! A supplier that rate-limits, fails, times out or refuses: retryable trouble still ends in one
//! job per (order, supplier); a refusal or an inconsistent order ends in the dead letters.

use std::collections::BTreeMap;
use std::time::Duration;

use orderflow_core::runtime::{ATTEMPTS, REASON};
use orderflow_testkit as kit;
use rdkafka::Message;

use crate::common::{order, test_env};

#[tokio::test(flavor = "multi_thread")]
async fn a_429_with_retry_after_is_waited_out_and_gives_one_job() {
    let env = test_env(1).await;
    env.sim.rate_limit_next(2, 1);
    env.produce(&[kit::sample_order_placed("limited")]).await;
    let dispatcher = env.start().await;
    assert!(env.wait_published(2, Duration::from_secs(30)).await);
    dispatcher.stop().await.unwrap();

    assert_eq!(env.sim.jobs().len(), 2);
    let mut by_key: BTreeMap<String, Vec<(u16, u64)>> = BTreeMap::new();
    for r in env.sim.requests() {
        by_key
            .entry(r.idempotency_key.unwrap())
            .or_default()
            .push((r.status, r.at_ms));
    }
    for (key, requests) in &by_key {
        let statuses: Vec<u16> = requests.iter().map(|r| r.0).collect();
        assert_eq!(statuses, vec![429, 201], "{key}");
        // The runtime alone would retry after 20 ms: a second's gap is the Retry-After.
        let gap = requests[1].1 - requests[0].1;
        assert!(gap >= 1_000, "{key} was sent again after {gap} ms");
    }
    for row in env.rows().await {
        assert_eq!((row.status.as_str(), row.attempts), ("accepted", 2));
        assert_eq!(row.last_error, None);
    }
    assert_eq!(env.dispatched_events(2).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_supplier_failing_for_a_while_gets_one_job_per_key_when_it_recovers() {
    let env = test_env(1).await;
    env.sim.fail_next(6, 503);
    env.produce(&[kit::sample_order_placed("flaky")]).await;
    let dispatcher = env.start().await;
    assert!(env.wait_published(2, Duration::from_secs(30)).await);
    dispatcher.stop().await.unwrap();

    let stats = env.sim.stats();
    assert_eq!(stats.injected_failures, 6);
    assert_eq!((stats.jobs, stats.duplicates), (2, 0));
    let rows = env.rows().await;
    assert_eq!(
        rows.iter().map(|r| r.attempts).sum::<i32>(),
        8,
        "six failures and two successes are counted: {rows:?}"
    );
    assert!(rows.iter().all(|r| r.status == "accepted"));
    assert_eq!(env.dispatched_events(2).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_request_whose_job_was_created_is_not_created_again() {
    let env = test_env(1).await;
    // The supplier takes the job, then answers too late for the client's 300 ms.
    env.sim.set_latency(Duration::from_millis(1_000));
    env.produce(&[kit::sample_order_placed("slow")]).await;
    let mut settings = env.settings();
    settings.supplier_timeout = Duration::from_millis(300);
    let dispatcher = env.start_with(settings).await;
    assert!(
        kit::eventually(Duration::from_secs(30), || async {
            env.sim.stats().requests >= 4
        })
        .await
    );
    env.sim.set_latency(Duration::ZERO);
    assert!(env.wait_published(2, Duration::from_secs(30)).await);
    dispatcher.stop().await.unwrap();

    let stats = env.sim.stats();
    assert_eq!(stats.jobs, 2, "{stats:?}");
    assert!(stats.duplicates >= 2, "each key was sent again: {stats:?}");
    for row in env.rows().await {
        let key = format!("{}:{}", row.order_id, row.supplier_id);
        let job = env.sim.job(&key).unwrap();
        assert_eq!(row.job_id.as_deref(), Some(job.job_id.as_str()));
        assert_eq!(
            row.attempts as u32, job.requests,
            "{key}: every request counted"
        );
    }
    assert_eq!(env.dispatched_events(2).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_and_inconsistent_orders_are_dead_lettered_with_the_reason() {
    let env = test_env(1).await;
    let refusal = "design dsg-l1 cannot be printed on SKU-l1";
    env.sim.reject_next(1, refusal);
    env.produce(&[order("refused", &[("l1", "sup-a", 1)])])
        .await;
    let dispatcher = env.start().await;
    // The refusal is scripted for the next job, so that order goes alone first.
    let dead = kit::read_topic(&env.dlq, 1, Duration::from_secs(30)).await;
    assert_eq!(dead.len(), 1);

    let mut inconsistent = kit::sample_order_placed("inconsistent");
    inconsistent.totals.total_minor += 1;
    let mut unprintable = order("unprintable", &[("l1", "sup-a", 1)]);
    unprintable.lines[0].product.design_id = String::new();
    env.produce(&[inconsistent, unprintable, kit::sample_order_placed("fine")])
        .await;
    assert!(env.wait_committed(4).await);
    dispatcher.stop().await.unwrap();

    let dead = kit::read_topic(&env.dlq, 4, Duration::from_secs(5)).await;
    assert_eq!(dead.len(), 3, "refused, inconsistent and unprintable");
    let reasons: BTreeMap<String, (String, String)> = dead
        .iter()
        .map(|m| {
            (
                String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                (
                    kit::header(m, REASON).unwrap(),
                    kit::header(m, ATTEMPTS).unwrap(),
                ),
            )
        })
        .collect();
    let (reason, attempts) = &reasons["refused"];
    assert_eq!(
        reason,
        &format!(
            "permanent: supplier sup-a refused the print job for order refused (422): {refusal}"
        )
    );
    assert_eq!(attempts, "1", "a refusal is not retried");
    let (reason, _) = &reasons["inconsistent"];
    assert!(
        reason.starts_with("permanent: inconsistent order: totals.total_minor"),
        "{reason}"
    );
    let (reason, _) = &reasons["unprintable"];
    assert!(
        reason.ends_with("(422): items[].design_id is empty"),
        "the supplier's own validation message: {reason}"
    );

    let rows = env.rows().await;
    let by_order: BTreeMap<&str, _> = rows.iter().map(|r| (r.order_id.as_str(), r)).collect();
    let refused = by_order["refused"];
    assert_eq!(
        (refused.status.as_str(), refused.job_id.as_deref()),
        ("rejected", None)
    );
    assert!(refused.last_error.as_deref().unwrap().ends_with(refusal));
    assert_eq!(by_order["unprintable"].status, "rejected");
    assert!(
        !by_order.contains_key("inconsistent"),
        "an inconsistent order never reaches the supplier"
    );
    assert_eq!(by_order["fine"].status, "accepted");
    assert!(env.sim.requests().iter().all(|r| !r
        .idempotency_key
        .as_deref()
        .unwrap()
        .starts_with("inconsistent")));
    let events = env.dispatched_events(2).await;
    let announced: Vec<&str> = events.iter().map(|(_, e)| e.order_id.as_str()).collect();
    assert_eq!(
        announced,
        vec!["fine", "fine"],
        "only accepted jobs are announced"
    );
}
