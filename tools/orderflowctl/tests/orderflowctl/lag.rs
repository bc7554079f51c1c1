//! `lag`: exact figures for a real consumer group on the topic and its retry topic.

use orderflow_core::topics::retry_topic;
use orderflow_testkit as testkit;
use orderflowctl::lag::{self, LagQuery};

use crate::common::{cluster, commit_as_member, numbered, send};

#[tokio::test]
async fn lag_per_partition_is_exact_with_the_oldest_unprocessed_event() {
    let cluster = cluster();
    let topic = testkit::topic("ctl-lag", 2).await;
    let group = testkit::unique("ctl-lag");
    let retry = retry_topic(&topic, &group);
    testkit::create_topic(&retry, 2).await;

    let base = chrono::Utc::now().timestamp_millis() - 600_000;
    send(&topic, &numbered(0, 10, base)).await;
    send(&topic, &numbered(1, 6, base)).await;
    send(&retry, &numbered(1, 3, base + 100_000)).await;
    commit_as_member(&group, &topic, &[(0, 4), (1, 6)]).await;

    // By default: every group with committed offsets on the topic; only ours has any.
    let report = lag::lag(
        &cluster,
        &LagQuery {
            topic: topic.clone(),
            groups: Vec::new(),
        },
    )
    .await
    .unwrap();
    assert_eq!(report.groups.len(), 1);
    let g = &report.groups[0];
    assert_eq!(g.group, group);
    assert_eq!(g.members, 0);
    assert_eq!(g.total_lag, 6 + 3);

    let row = |t: &str, p: i32| {
        g.partitions
            .iter()
            .find(|r| r.topic == t && r.partition == p)
            .unwrap_or_else(|| panic!("no row for {t}/{p}"))
    };
    let p0 = row(&topic, 0);
    assert_eq!((p0.committed, p0.end, p0.lag), (Some(4), 10, 6));
    assert_eq!(
        p0.oldest_unprocessed_at.unwrap().timestamp_millis(),
        base + 4_000,
        "the record at the committed offset"
    );
    let age = p0.oldest_unprocessed_age_secs.unwrap();
    assert!((595..=700).contains(&age), "age {age}s");
    let p1 = row(&topic, 1);
    assert_eq!((p1.committed, p1.end, p1.lag), (Some(6), 6, 0));
    assert_eq!(p1.oldest_unprocessed_at, None);

    let r0 = row(&retry, 0);
    assert_eq!((r0.committed, r0.end, r0.lag), (None, 0, 0));
    let r1 = row(&retry, 1);
    assert_eq!((r1.committed, r1.end, r1.lag), (None, 3, 3));
    assert_eq!(
        r1.oldest_unprocessed_at.unwrap().timestamp_millis(),
        base + 100_000
    );

    let text = report.to_string();
    assert!(text.contains(&format!("group {group}")), "{text}");
    assert!(text.contains("total lag 9"), "{text}");
}
