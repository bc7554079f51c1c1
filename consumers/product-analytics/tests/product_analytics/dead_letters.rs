//! Orders that cannot be archived are dead-lettered with the reason, and archive nothing.

use std::time::Duration;

use orderflow_core::runtime::REASON;
use orderflow_testkit as kit;
use rdkafka::Message;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn invalid_orders_land_in_the_dead_letters_with_their_reason() {
    let s = setup(2).await;
    let good: Vec<_> = (0..3).map(|i| order("good", i)).collect();

    let mut inconsistent = order("bad-totals", 1);
    inconsistent.totals.total_minor += 1;
    let mut twice = order("bad-lines", 2);
    twice.lines[1].line_id = twice.lines[0].line_id.clone();
    twice.settle_totals();
    let mut timeless = order("bad-date", 0);
    timeless.placed_at = 400_000_000_000_000; // the year 14645

    let mut messages = encoded(&[inconsistent, twice, timeless]);
    messages.push(("bad-bytes".into(), b"not avro at all".to_vec()));
    messages.extend(encoded(&good));

    let app = s.start(policy(1_000, 300)).await;
    kit::produce(&s.topic, &messages).await;
    let dead = kit::read_topic(&s.dlq, 4, Duration::from_secs(30)).await;
    s.wait_written(line_count(&good), Duration::from_secs(30))
        .await;
    app.stop().await.unwrap();

    let reason_of = |key: &str| {
        let m = dead
            .iter()
            .find(|m| m.key() == Some(key.as_bytes()))
            .unwrap_or_else(|| panic!("{key} is not in the dead letters"));
        kit::header(m, REASON).unwrap_or_default()
    };
    assert_eq!(dead.len(), 4);
    let r = reason_of("bad-totals-1");
    assert!(r.contains("totals.total_minor"), "{r}");
    let r = reason_of("bad-lines-2");
    assert!(r.contains("\"line-0\" appears more than once"), "{r}");
    let r = reason_of("bad-date-0");
    assert!(r.contains("placed_at 400000000000000"), "{r}");
    assert!(!reason_of("bad-bytes").is_empty());

    // Only the good orders' lines were staged and archived.
    assert_eq!(s.progress().await.staged, line_count(&good) as i64);
    assert_archive_holds_exactly(&s.read_archive(), &good);
}
