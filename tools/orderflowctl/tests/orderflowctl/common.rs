//! Helpers shared by the tests: records with explicit partitions, timestamps and headers, dead
//! letters as the runtime writes them, and a real consumer group committing offsets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orderflow_core::headers::{
    ATTEMPTS, FAILED_AT, GROUP, ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_TOPIC, REASON,
};
use orderflow_core::kafka;
use orderflow_testkit as testkit;
use orderflowctl::record::Coordinates;
use orderflowctl::Cluster;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

pub fn cluster() -> Cluster {
    Cluster::new(testkit::kafka()).expect("cluster client")
}

/// A record to write, with what the tests need to control.
#[derive(Default, Clone)]
pub struct Record {
    pub partition: Option<i32>,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
    pub timestamp_ms: Option<i64>,
}

/// Writes `records` in order and returns where each landed.
pub async fn send(topic: &str, records: &[Record]) -> Vec<Coordinates> {
    let producer =
        kafka::idempotent_producer(&testkit::kafka(), Duration::from_secs(30)).expect("producer");
    let mut at = Vec::new();
    for r in records {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &r.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record = FutureRecord::<str, [u8]>::to(topic)
            .payload(&r.payload)
            .headers(headers);
        if let Some(key) = &r.key {
            record = record.key(key);
        }
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        if let Some(ts) = r.timestamp_ms {
            record = record.timestamp(ts);
        }
        let delivery = producer
            .send(record, Duration::from_secs(0))
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
        at.push(Coordinates {
            partition: delivery.partition,
            offset: delivery.offset,
        });
    }
    at
}

/// `count` records on `partition`, keyed `key-<partition>-<i>`, with timestamps `base_ms + i`
/// seconds.
pub fn numbered(partition: i32, count: usize, base_ms: i64) -> Vec<Record> {
    (0..count)
        .map(|i| Record {
            partition: Some(partition),
            key: Some(format!("key-{partition}-{i}")),
            payload: format!("payload-{partition}-{i}").into_bytes(),
            headers: vec![("traceparent", format!("00-{i:032x}-{i:016x}-01"))],
            timestamp_ms: Some(base_ms + i as i64 * 1000),
        })
        .collect()
}

/// A dead letter as the runtime writes it.
pub fn dead_letter(
    key: &str,
    payload: Vec<u8>,
    reason: &str,
    attempts: u32,
    group: &str,
    origin: (&str, i32, i64),
) -> Record {
    Record {
        partition: None,
        key: Some(key.to_string()),
        payload,
        headers: vec![
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            ),
            (REASON, reason.to_string()),
            (ATTEMPTS, attempts.to_string()),
            (GROUP, group.to_string()),
            (ORIGIN_TOPIC, origin.0.to_string()),
            (ORIGIN_PARTITION, origin.1.to_string()),
            (ORIGIN_OFFSET, origin.2.to_string()),
            (FAILED_AT, "2026-11-22T04:00:00+00:00".into()),
        ],
        timestamp_ms: None,
    }
}

/// Offsets of `topic` per partition the broker holds now: the high watermarks.
pub fn ends(cluster: &Cluster, topic: &str) -> Vec<i64> {
    let n = cluster
        .partition_count(topic)
        .unwrap()
        .expect("topic exists");
    (0..n)
        .map(|p| cluster.watermarks(topic, p as i32).unwrap().1)
        .collect()
}

/// Joins `group` on `topic` as a real member, reads until every partition is assigned, commits
/// `offsets` and leaves.
pub async fn commit_as_member(group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let (group, topic, offsets) = (group.to_string(), topic.to_string(), offsets.to_vec());
    tokio::task::spawn_blocking(move || {
        let consumer = member(&group, &topic);
        let partitions = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .unwrap()
            .topics()[0]
            .partitions()
            .len();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while consumer.assignment().unwrap().count() < partitions {
            assert!(std::time::Instant::now() < deadline, "never assigned");
            let _ = consumer.poll(Duration::from_millis(100));
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            tpl.add_partition_offset(&topic, p, Offset::Offset(o))
                .unwrap();
        }
        consumer.commit(&tpl, CommitMode::Sync).expect("commit");
        consumer.unsubscribe();
        drop(consumer);
    })
    .await
    .unwrap();
}

fn member(group: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = kafka::client_config(&testkit::kafka())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

/// A member of `group` subscribed to `topic`, polling on a thread of its own until dropped.
pub struct HeldMember {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeldMember {
    pub fn join(group: &str, topic: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let consumer = member(group, topic);
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let _ = consumer.poll(Duration::from_millis(100));
            }
            // Leaves the group, so the group is empty once the thread ends.
            consumer.unsubscribe();
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    pub fn leave(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("member thread");
        }
    }
}

impl Drop for HeldMember {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// The offsets `group` committed on every partition of `topic`.
pub async fn committed(group: &str, topic: &str) -> Vec<Option<i64>> {
    let (group, topic) = (group.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let cluster = cluster();
        let n = cluster.partition_count(&topic).unwrap().unwrap();
        cluster.committed(&group, &topic, n).unwrap()
    })
    .await
    .unwrap()
}
