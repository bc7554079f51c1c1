//! Crashes: the real binary killed (SIGKILL) with lines staged but not written and with offsets
//! not committed, and a batch committed whose files were written but not marked, with a write
//! torn halfway. Every line ends up archived exactly once.

use std::time::Duration;

use orderflow_testkit::{self as kit, Service};
use product_analytics::staging::{self, PendingBatch};
use product_analytics::{columnar, line, Archive, ArchiveUrl, MIGRATOR};

use crate::common::*;

const BINARY: &str = env!("CARGO_BIN_EXE_product-analytics");

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_service_loses_and_duplicates_no_line() {
    let s = setup(3).await;
    let first: Vec<_> = (0..20).map(|i| order("kill-a", i)).collect();
    let second: Vec<_> = (20..40).map(|i| order("kill-b", i)).collect();
    let first_lines = line_count(&first);
    assert!(
        first_lines % 7 != 0,
        "the test needs staged lines left unwritten"
    );

    // Batches of 7 by size only: the last few lines stay staged when the process is killed.
    let service = Service::spawn(BINARY, &s.env(7, 3_600_000));
    kit::produce(&s.topic, &encoded(&first)).await;
    let staged = kit::eventually(Duration::from_secs(60), || async {
        s.progress().await.staged == first_lines as i64
    })
    .await;
    assert!(staged, "every line staged: {:?}", s.progress().await);
    s.wait_written(first_lines / 7 * 7, Duration::from_secs(60))
        .await;
    service.kill();
    let p = s.progress().await;
    assert!(
        p.staged > p.written,
        "killed with lines not yet archived: {p:?}"
    );

    // Restarted with a short interval, and killed again in the middle of the next orders.
    let service = Service::spawn(BINARY, &s.env(7, 200));
    kit::produce(&s.topic, &encoded(&second)).await;
    let busy = kit::eventually(Duration::from_secs(60), || async {
        s.progress().await.staged > first_lines as i64
    })
    .await;
    assert!(
        busy,
        "the restarted service consumes: {:?}",
        s.progress().await
    );
    service.kill();

    let service = Service::spawn(BINARY, &s.env(7, 200));
    let mut all = first;
    all.extend(second);
    s.wait_written(line_count(&all), Duration::from_secs(60))
        .await;
    assert!(service.terminate(), "a clean exit on SIGTERM");

    let archive = s.read_archive();
    let sizes = assert_archive_holds_exactly(&archive, &all);
    assert!(sizes.iter().all(|n| *n <= 7), "{sizes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_committed_but_not_marked_written_is_written_again_identically() {
    let s = setup(1).await;
    MIGRATOR.run(&s.pool).await.unwrap();
    let orders: Vec<_> = (0..6).map(|i| order("torn", i)).collect();
    let mut tx = s.pool.begin().await.unwrap();
    for o in &orders {
        staging::stage(&mut tx, &line::sold_lines(o).unwrap())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let cut = staging::cut_batch(&s.pool, &policy(1_000, 0))
        .await
        .unwrap()
        .expect("a due batch");
    assert_eq!(cut.lines, line_count(&orders) as u64);

    // The crashed writer stored the batch's files but died before marking it, and died again
    // halfway through a rewrite, leaving a temporary file beside the real one.
    let archive = Archive::open(&ArchiveUrl::Local(s.archive.clone())).unwrap();
    let pending = PendingBatch::next(&s.pool).await.unwrap().expect("pending");
    assert_eq!(pending.id, cut.id);
    let mut first_write = Vec::new();
    for (date, lines) in pending.by_date() {
        let name = Archive::file_name(date, pending.id);
        let bytes = columnar::encode(&lines).unwrap();
        archive.put(&name, bytes.clone()).await.unwrap();
        first_write.push((name, bytes));
    }
    drop(pending);
    let torn = s.archive.join(format!("{}#1", first_write[0].0));
    std::fs::write(&torn, b"PAR1 half a file").unwrap();

    let app = s.start(policy(1_000, 300)).await;
    s.wait_written(line_count(&orders), Duration::from_secs(30))
        .await;
    app.stop().await.unwrap();

    assert!(!torn.exists(), "the torn temporary file is removed");
    for (name, bytes) in &first_write {
        let now = std::fs::read(s.archive.join(name)).unwrap();
        assert!(now == *bytes, "{name} was rewritten with the same bytes");
    }
    let archive = s.read_archive();
    assert_eq!(archive.files.len(), first_write.len());
    assert_archive_holds_exactly(&archive, &orders);
}
