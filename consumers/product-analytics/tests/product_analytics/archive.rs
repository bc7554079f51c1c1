//! A batch of orders becomes Parquet files, by size and then by age, with every field intact.

use std::time::Duration;

use orderflow_testkit as kit;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn lines_are_archived_by_size_then_by_age_with_every_field() {
    let s = setup(3).await;
    let orders: Vec<_> = (0..14).map(|i| order("size", i)).collect();
    let total = line_count(&orders);
    let full_batches = total / 5 * 5;
    assert!(
        total % 5 != 0,
        "the test needs lines left over after full batches"
    );

    // Size only: batches of 5, and the rest waits (an hour is never reached here).
    let app = s.start(policy(5, 3_600_000)).await;
    kit::produce(&s.topic, &encoded(&orders)).await;
    let staged = kit::eventually(Duration::from_secs(30), || async {
        s.progress().await.staged == total as i64
    })
    .await;
    assert!(staged, "every line staged: {:?}", s.progress().await);
    s.wait_written(full_batches, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let p = s.progress().await;
    assert_eq!(
        (p.batched, p.written),
        (full_batches as i64, full_batches as i64),
        "only full batches are written"
    );
    app.stop().await.unwrap();

    // Age: the lines left over are written once they waited the interval.
    let app = s.start(policy(5, 300)).await;
    s.wait_written(total, Duration::from_secs(30)).await;
    app.stop().await.unwrap();

    let archive = s.read_archive();
    let sizes = assert_archive_holds_exactly(&archive, &orders);
    assert!(
        sizes.iter().all(|n| *n <= 5),
        "a batch holds at most 5 lines: {sizes:?}"
    );
    let dates: std::collections::BTreeSet<_> = archive
        .data_set_rows
        .iter()
        .map(|(_, _, d)| d.as_str())
        .collect();
    assert_eq!(
        dates.into_iter().collect::<Vec<_>>(),
        ["2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"]
    );
}
