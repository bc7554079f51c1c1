//! The real binary killed (SIGKILL) mid-batch and started again: every order journaled once.

use std::time::Duration;

use orderflow_testkit::{self as kit, Service};

use crate::common::{self, at, encoded, entries, order, scalar};

fn spawn(s: &common::Setup) -> Service {
    Service::spawn(
        env!("CARGO_BIN_EXE_accounting"),
        &[
            s.service_env(),
            // Small runs one at a time, so the kill lands mid-batch.
            vec![
                ("ORDERFLOW_CONSUMER_CONCURRENCY", "1".to_string()),
                ("ORDERFLOW_CONSUMER_BATCH_SIZE", "4".to_string()),
            ],
        ]
        .concat(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_process_restarted_journals_every_order_exactly_once() {
    const N: i64 = 600;
    let s = common::setup(3).await;
    let batch: Vec<_> = (0..N)
        .map(|i| order(&format!("crash-{i:03}"), at("2026-11-10T12:00:00Z")))
        .collect();
    kit::produce(&s.topic, &encoded(&batch)).await;

    let first = spawn(&s);
    assert!(
        common::wait_entries(&s.pool, 30).await,
        "first process journaled nothing; see {}",
        first.log.display()
    );
    first.kill();
    let at_kill = entries(&s.pool).await;
    assert!(at_kill < N, "the kill came mid-batch ({at_kill} journaled)");

    let second = spawn(&s);
    assert!(
        common::wait_entries(&s.pool, N).await,
        "restart journaled {} of {N}; see {}",
        entries(&s.pool).await,
        second.log.display()
    );
    // Anything still redelivered after the count is reached must not add a second entry.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(second.terminate(), "a clean exit on SIGTERM");

    assert_eq!(entries(&s.pool).await, N);
    assert_eq!(
        scalar(
            &s.pool,
            "SELECT count(DISTINCT order_id) FROM journal_entries"
        )
        .await,
        N
    );
    assert_eq!(
        scalar(&s.pool, "SELECT count(*) FROM postings").await,
        N * 9,
        "every entry whole: receivable, 2 sales, tax, shipping, 2 × (cost, payable)"
    );
    assert_eq!(
        scalar(&s.pool, "SELECT count(*) FROM processed_events").await,
        N
    );
    assert!(kit::read_topic(&s.dlq, 1, Duration::from_secs(2))
        .await
        .is_empty());
}
