//! `replay`: windows resolved by time, copies only into the chosen group's retry topic (with
//! the reprocess flag only when asked), and rewinds only of a group without members.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use orderflow_core::headers::{
    OPERATOR_ACTION, ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_TOPIC, REASON, REPROCESS,
};
use orderflow_core::topics::retry_topic;
use orderflow_testkit as testkit;
use orderflowctl::replay::{self, Groups, Method, ReplayRequest, Window};
use orderflowctl::Error;
use rdkafka::Message;

use crate::common::{cluster, commit_as_member, committed, ends, numbered, send, HeldMember};

fn request(topic: &str, groups: &[&str], window: Window, method: Method) -> ReplayRequest {
    ReplayRequest {
        topic: topic.to_string(),
        groups: Groups::Named(groups.iter().map(|g| g.to_string()).collect()),
        window,
        method,
        dry_run: false,
        rate: None,
        reprocess: false,
        progress: false,
    }
}

#[tokio::test]
async fn dry_run_counts_a_time_window_per_partition() {
    let cluster = cluster();
    let topic = testkit::topic("ctl-replay-window", 2).await;
    let group = testkit::unique("ctl-replay-window");
    let retry = retry_topic(&topic, &group);
    testkit::create_topic(&retry, 2).await;
    let base = Utc::now().timestamp_millis() - 3_600_000;
    send(&topic, &numbered(0, 10, base)).await;
    send(&topic, &numbered(1, 5, base)).await;
    let at = |secs: i64| Utc.timestamp_millis_opt(base + secs * 1000).unwrap();

    let mut r = request(
        &topic,
        &[&group],
        Window::Time {
            from: at(3),
            to: Some(at(7)),
        },
        Method::Copy,
    );
    r.dry_run = true;
    let report = replay::replay(&cluster, &r).await.unwrap();
    let ranges: Vec<(i32, i64, i64, i64)> = report
        .partitions
        .iter()
        .map(|p| (p.partition, p.start, p.end, p.count))
        .collect();
    assert_eq!(ranges, vec![(0, 3, 7, 4), (1, 3, 5, 2)]);
    assert_eq!(report.records, 6);
    assert_eq!(report.copies[0].copies, 6);
    assert_eq!(
        ends(&cluster, &retry),
        vec![0, 0],
        "a dry run writes nothing"
    );
    let text = report.to_string();
    assert!(
        text.contains("dry run") && text.contains("6 records"),
        "{text}"
    );

    r.window = Window::Time {
        from: at(3),
        to: None,
    };
    let open = replay::replay(&cluster, &r).await.unwrap();
    assert_eq!(open.records, 7 + 2);

    r.window = Window::Time {
        from: at(60),
        to: None,
    };
    assert_eq!(replay::replay(&cluster, &r).await.unwrap().records, 0);
}

#[tokio::test]
async fn copy_reaches_only_the_chosen_groups_retry_topic() {
    let cluster = cluster();
    let topic = testkit::topic("ctl-replay-copy", 2).await;
    let chosen = testkit::unique("ctl-replay-chosen");
    let other = testkit::unique("ctl-replay-other");
    let (chosen_retry, other_retry) = (retry_topic(&topic, &chosen), retry_topic(&topic, &other));
    testkit::create_topic(&chosen_retry, 2).await;
    testkit::create_topic(&other_retry, 2).await;
    let mut records = numbered(0, 5, Utc::now().timestamp_millis());
    // A runtime header on a source record must not reach the copy.
    records[2].headers.push((REASON, "stale".into()));
    send(&topic, &records).await;
    commit_as_member(&other, &topic, &[(0, 5)]).await;
    commit_as_member(&chosen, &topic, &[(0, 5)]).await;

    let window = Window::Offsets {
        partition: 0,
        start: 1,
        end: Some(4),
    };
    let report = replay::replay(
        &cluster,
        &request(&topic, &[&chosen], window.clone(), Method::Copy),
    )
    .await
    .unwrap();
    assert_eq!(report.copies[0].copies, 3);
    let copies = testkit::read_topic(&chosen_retry, 3, Duration::from_secs(20)).await;
    assert_eq!(copies.len(), 3);
    for (i, copy) in copies.iter().enumerate() {
        let source = i + 1;
        assert_eq!(copy.partition(), 0, "the source's partition");
        assert_eq!(copy.key(), Some(format!("key-0-{source}").as_bytes()));
        assert_eq!(
            copy.payload(),
            Some(format!("payload-0-{source}").as_bytes())
        );
        let header = |name| testkit::header(copy, name);
        assert_eq!(header(ORIGIN_TOPIC).as_deref(), Some(topic.as_str()));
        assert_eq!(header(ORIGIN_PARTITION).as_deref(), Some("0"));
        assert_eq!(header(ORIGIN_OFFSET), Some(source.to_string()));
        assert!(header(OPERATOR_ACTION).unwrap().starts_with("replay 20"));
        assert_eq!(header(REPROCESS), None, "no reprocessing unless asked");
        assert_eq!(header(REASON), None);
        assert!(header("traceparent").is_some());
    }

    let mut again = request(&topic, &[&chosen], window, Method::Copy);
    again.reprocess = true;
    again.rate = Some(10);
    let started = Instant::now();
    replay::replay(&cluster, &again).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "3 copies at 10/s take 0.3 s"
    );
    let copies = testkit::read_topic(&chosen_retry, 6, Duration::from_secs(20)).await;
    assert_eq!(copies.len(), 6);
    let reprocess: Vec<Option<String>> = copies
        .iter()
        .map(|c| testkit::header(c, REPROCESS))
        .collect();
    assert_eq!(
        reprocess
            .iter()
            .filter(|r| r.as_deref() == Some("true"))
            .count(),
        3
    );

    assert_eq!(
        ends(&cluster, &other_retry),
        vec![0, 0],
        "the other group got nothing"
    );
    assert_eq!(committed(&other, &topic).await, vec![Some(5), None]);
    assert_eq!(
        committed(&chosen, &topic).await,
        vec![Some(5), None],
        "copy moves no offset"
    );
}

#[tokio::test]
async fn rewind_refuses_an_active_group_and_moves_a_stopped_one_back() {
    let cluster = cluster();
    let topic = testkit::topic("ctl-replay-rewind", 2).await;
    let group = testkit::unique("ctl-replay-rewind");
    let bystander = testkit::unique("ctl-replay-bystander");
    let base = Utc::now().timestamp_millis() - 3_600_000;
    send(&topic, &numbered(0, 10, base)).await;
    send(&topic, &numbered(1, 10, base)).await;
    commit_as_member(&group, &topic, &[(0, 10), (1, 8)]).await;
    commit_as_member(&bystander, &topic, &[(0, 10), (1, 10)]).await;
    let from = Utc.timestamp_millis_opt(base + 5_000).unwrap();
    let rewind = request(
        &topic,
        &[&group],
        Window::Time { from, to: None },
        Method::Rewind,
    );

    let member = HeldMember::join(&group, &topic);
    assert!(
        testkit::eventually(Duration::from_secs(30), || async {
            let cluster = crate::common::cluster();
            let group = group.clone();
            tokio::task::spawn_blocking(move || cluster.group(&group).unwrap().members.len() == 1)
                .await
                .unwrap()
        })
        .await,
        "the member joined"
    );
    let err = replay::replay(&cluster, &rewind).await.unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err}");
    assert!(err.to_string().contains("1 active member"), "{err}");
    assert!(err.to_string().contains("--method copy"), "{err}");
    assert_eq!(committed(&group, &topic).await, vec![Some(10), Some(8)]);
    member.leave();

    let mut planned = rewind.clone();
    planned.dry_run = true;
    let plan = replay::replay(&cluster, &planned).await.unwrap();
    assert_eq!(plan.rewinds[0].partitions[0].to, Some(5));
    assert_eq!(plan.rewinds[0].partitions[0].redelivered, 5);
    assert_eq!(plan.rewinds[0].partitions[1].redelivered, 3);
    assert_eq!(committed(&group, &topic).await, vec![Some(10), Some(8)]);

    let report = replay::replay(&cluster, &rewind).await.unwrap();
    assert_eq!(report.rewinds.len(), 1);
    assert_eq!(committed(&group, &topic).await, vec![Some(5), Some(5)]);
    assert_eq!(
        committed(&bystander, &topic).await,
        vec![Some(10), Some(10)],
        "other groups keep their offsets"
    );

    // A group already before the window's start is never moved forward.
    let later = Utc.timestamp_millis_opt(base + 7_000).unwrap();
    let report = replay::replay(
        &cluster,
        &request(
            &topic,
            &[&group],
            Window::Time {
                from: later,
                to: None,
            },
            Method::Rewind,
        ),
    )
    .await
    .unwrap();
    assert!(report.rewinds[0].partitions.iter().all(|p| p.to.is_none()));
    assert_eq!(committed(&group, &topic).await, vec![Some(5), Some(5)]);
}
