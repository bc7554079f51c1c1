//! `dlq list|show|redrive` on dead letters written with the runtime's headers.

use orderflow_core::event::ORDER_PLACED_SCHEMAS;
use orderflow_core::headers::{
    OPERATOR_ACTION, ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_TOPIC, RETRY_ATTEMPTS,
    RETRY_NOT_BEFORE, RETRY_ROUND,
};
use orderflow_core::registry::SchemaRegistry;
use orderflow_core::topics::{dead_letter_topic, retry_topic};
use orderflow_testkit as testkit;
use orderflowctl::dlq::{self, DlqQuery, RedriveRequest, Selection};
use orderflowctl::record::Coordinates;
use orderflowctl::Error;
use std::time::Duration;

use crate::common::{cluster, dead_letter, ends, send};

/// A source topic name (never created: dead letters only name it), a group, and its
/// dead-letter topic with three dead letters: a decodable order, undecodable bytes, and an
/// inconsistent order. Returns the coordinates of the three.
async fn three_dead_letters(prefix: &str) -> (String, String, Vec<Coordinates>, Vec<u8>) {
    let topic = testkit::unique(&format!("test.{prefix}"));
    let group = testkit::unique(prefix);
    let dlq = dead_letter_topic(&topic, &group);
    testkit::create_topic(&dlq, 2).await;
    let order = testkit::sample_order_placed("o-1").encode().unwrap();
    let inconsistent = {
        let mut o = testkit::sample_order_placed("o-3");
        o.totals.total_minor += 1;
        o.encode().unwrap()
    };
    let at = send(
        &dlq,
        &[
            dead_letter(
                "o-1",
                order.clone(),
                "supplier answered 422: unknown sku",
                3,
                &group,
                (&topic, 1, 5),
            ),
            dead_letter(
                "o-2",
                vec![0xde, 0xad, 0xbe, 0xef],
                "undecodable: bad magic",
                1,
                &group,
                (&topic, 7, 9),
            ),
            dead_letter(
                "o-3",
                inconsistent,
                "inconsistent order: total_minor",
                1,
                &group,
                (&topic, 0, 2),
            ),
        ],
    )
    .await;
    (topic, group, at, order)
}

#[tokio::test]
async fn list_and_show_dead_letters() {
    let cluster = cluster();
    let (topic, group, at, order) = three_dead_letters("ctl-dlq-list").await;

    let report = dlq::list(
        &cluster,
        &DlqQuery {
            topic: topic.clone(),
            groups: Vec::new(),
            limit: 10,
        },
    )
    .await
    .unwrap();
    assert_eq!(report.groups.len(), 1, "found through the topic name");
    let g = &report.groups[0];
    assert_eq!((g.group.as_str(), g.total), (group.as_str(), 3));
    let letter = |order_key: &str| {
        g.dead_letters
            .iter()
            .find(|l| l.key.as_deref() == Some(order_key))
            .unwrap()
    };
    let first = letter("o-1");
    assert_eq!(first.at, at[0]);
    assert_eq!(first.order_id.as_deref(), Some("o-1"));
    assert!(first.event_id.is_some());
    assert_eq!(
        first.reason.as_deref(),
        Some("supplier answered 422: unknown sku")
    );
    assert_eq!(first.attempts, Some(3));
    assert_eq!(
        first.failed_at.as_deref(),
        Some("2026-11-22T04:00:00+00:00")
    );
    assert_eq!(first.origin.as_ref().unwrap().offset, 5);
    assert!(first.undecodable.is_none());
    let second = letter("o-2");
    assert_eq!(second.order_id, None);
    assert!(
        second.undecodable.as_deref().unwrap().contains("shorter"),
        "{second:?}"
    );
    assert_eq!(letter("o-3").order_id.as_deref(), Some("o-3"));
    let text = report.to_string();
    assert!(
        text.contains("key o-2, undecodable (message is 4 bytes"),
        "{text}"
    );
    assert!(text.contains("supplier answered 422"), "{text}");

    let limited = dlq::list(
        &cluster,
        &DlqQuery {
            topic: topic.clone(),
            groups: vec![group.clone()],
            limit: 2,
        },
    )
    .await
    .unwrap();
    assert_eq!(limited.groups[0].total, 3);
    assert_eq!(limited.groups[0].dead_letters.len(), 2);
    assert!(limited.to_string().contains("1 more"));

    let shown = dlq::show(&cluster, &topic, &group, at[0]).await.unwrap();
    assert_eq!(shown.event.as_ref().unwrap().order_id, "o-1");
    assert_eq!(shown.payload_hex, None);
    assert!(shown
        .headers
        .iter()
        .any(|h| h.name == "traceparent" && h.value.starts_with("00-0af7")));
    assert!(shown.to_string().contains("\"order_id\": \"o-1\""));
    assert!(!order.is_empty());

    let bytes = dlq::show(&cluster, &topic, &group, at[1]).await.unwrap();
    assert!(bytes.event.is_none());
    assert_eq!(bytes.payload_hex.as_deref(), Some("deadbeef"));

    let missing = Coordinates {
        partition: at[0].partition,
        offset: at[0].offset + 100,
    };
    let err = dlq::show(&cluster, &topic, &group, missing)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err}");
    assert!(err.to_string().contains("dlq list"), "{err}");
}

#[tokio::test]
async fn redrive_copies_only_the_chosen_dead_letters_to_the_groups_retry_topic() {
    let cluster = cluster();
    let (topic, group, at, order) = three_dead_letters("ctl-dlq-redrive").await;
    let retry = retry_topic(&topic, &group);
    testkit::create_topic(&retry, 3).await;
    // Another group's retry topic on the same source topic, which a redrive must not touch.
    let other_retry = retry_topic(&topic, &testkit::unique("ctl-dlq-other"));
    testkit::create_topic(&other_retry, 3).await;

    let request = |selection, dry_run| RedriveRequest {
        topic: topic.clone(),
        group: group.clone(),
        selection,
        dry_run,
    };
    let report = dlq::redrive(&cluster, &request(Selection::At(vec![at[0]]), false))
        .await
        .unwrap();
    assert_eq!(report.count, 1);
    assert_eq!(
        report.redriven[0].to_partition,
        Some(1),
        "the origin partition"
    );

    let copies = testkit::read_topic(&retry, 1, Duration::from_secs(20)).await;
    assert_eq!(copies.len(), 1);
    let copy = &copies[0];
    assert_eq!(rdkafka::Message::partition(copy), 1);
    assert_eq!(rdkafka::Message::key(copy), Some(b"o-1".as_slice()));
    assert_eq!(rdkafka::Message::payload(copy), Some(order.as_slice()));
    let header = |name| testkit::header(copy, name);
    assert_eq!(header(RETRY_ATTEMPTS).as_deref(), Some("3"));
    assert_eq!(header(ORIGIN_TOPIC).as_deref(), Some(topic.as_str()));
    assert_eq!(header(ORIGIN_PARTITION).as_deref(), Some("1"));
    assert_eq!(header(ORIGIN_OFFSET).as_deref(), Some("5"));
    assert!(header(OPERATOR_ACTION).unwrap().starts_with("redrive 20"));
    assert!(
        header("traceparent").is_some(),
        "non-runtime headers are kept"
    );
    assert_eq!(header(RETRY_ROUND), None);
    assert_eq!(header(RETRY_NOT_BEFORE), None);
    assert!(
        orderflow_core::kafka::header_pairs(copy)
            .iter()
            .all(|(k, _)| !k.starts_with("x-dlq-")),
        "the dead letter's own headers stay behind"
    );

    let report = dlq::redrive(
        &cluster,
        &request(Selection::ReasonContains("inconsistent".into()), false),
    )
    .await
    .unwrap();
    assert_eq!(report.count, 1);
    assert_eq!(
        report.redriven[0].dead_letter.order_id.as_deref(),
        Some("o-3")
    );

    let planned = dlq::redrive(&cluster, &request(Selection::All, true))
        .await
        .unwrap();
    assert_eq!(planned.count, 3);
    assert!(planned.to_string().contains("dry run"));
    assert_eq!(
        ends(&cluster, &retry).iter().sum::<i64>(),
        2,
        "a dry run writes nothing"
    );
    assert_eq!(ends(&cluster, &other_retry).iter().sum::<i64>(), 0);

    // Origin partition 7 does not exist on the 3-partition retry topic: the key decides.
    let report = dlq::redrive(&cluster, &request(Selection::At(vec![at[1]]), false))
        .await
        .unwrap();
    assert_eq!(report.redriven[0].to_partition, None);
    assert_eq!(ends(&cluster, &retry).iter().sum::<i64>(), 3);
}

#[tokio::test]
async fn redrive_without_a_retry_topic_is_refused_before_writing() {
    let cluster = cluster();
    let (topic, group, _, _) = three_dead_letters("ctl-dlq-noretry").await;
    let err = dlq::redrive(
        &cluster,
        &RedriveRequest {
            topic,
            group,
            selection: Selection::All,
            dry_run: false,
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("topics apply"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confluent_framed_dead_letter_shows_decoded_with_the_schema_registry() {
    let topic = testkit::unique("test.ctl-dlq-confluent");
    let group = testkit::unique("ctl-dlq-confluent");
    let dlq = dead_letter_topic(&topic, &group);
    testkit::create_topic(&dlq, 1).await;
    let registry = SchemaRegistry::new(testkit::schema_registry_url());
    let order = testkit::sample_order_placed("o-confluent");
    let framed = registry
        .confluent_frame(&topic, &ORDER_PLACED_SCHEMAS, &order.encode().unwrap())
        .await
        .unwrap();
    let at = send(
        &dlq,
        &[dead_letter(
            "o-confluent",
            framed,
            "permanent: supplier refused",
            1,
            &group,
            (&topic, 0, 0),
        )],
    )
    .await;

    let shown = dlq::show(
        &cluster().with_registry(Some(registry)),
        &topic,
        &group,
        at[0],
    )
    .await
    .unwrap();
    assert_eq!(shown.event, Some(order));
    assert_eq!(shown.summary.undecodable, None);

    let without = dlq::show(&cluster(), &topic, &group, at[0]).await.unwrap();
    assert!(without.event.is_none());
    let why = without.summary.undecodable.unwrap();
    assert!(why.contains("ORDERFLOW_SCHEMA_REGISTRY_URL"), "{why}");
}
