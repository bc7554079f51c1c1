//! The Kafka calls the commands share: metadata, watermarks, consumer groups and their committed
//! offsets, offsets by time, reading offset ranges and writing copies. librdkafka's consumer
//! calls block, so these functions are synchronous; the commands run them on tokio's blocking
//! pool through [`blocking`].

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orderflow_core::config::KafkaConfig;
use orderflow_core::kafka;
use orderflow_core::registry::SchemaRegistry;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;

use crate::error::{Context, Error};

/// How long one metadata, offsets or group request may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read may go without a record before it gives up.
const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Groups whose committed offsets are looked up at once.
const LOOKUP_THREADS: usize = 16;
/// Copies awaited together; bounds memory while keeping the producer's pipeline full.
const SEND_BATCH: usize = 1000;

/// Runs blocking Kafka work on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Refused(format!("interrupted: {e}"))),
    }
}

/// A consumer group as the broker describes it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupInfo {
    pub name: String,
    /// `Empty`, `Stable`, `PreparingRebalance`, `CompletingRebalance` or `Dead` (unknown group).
    pub state: String,
    /// `client_id@host` of each active member.
    pub members: Vec<String>,
}

/// Offsets `start..end` of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PartitionRange {
    pub partition: i32,
    pub start: i64,
    pub end: i64,
}

impl PartitionRange {
    pub fn count(&self) -> i64 {
        (self.end - self.start).max(0)
    }
}

/// A Kafka cluster, reached with the orderflow client settings (brokers, TLS, SASL).
#[derive(Clone)]
pub struct Cluster {
    kafka: KafkaConfig,
    /// Metadata, watermarks and group listings; it never joins a group nor commits.
    probe: Arc<BaseConsumer>,
    /// Where the writer schemas of Confluent-framed events are looked up.
    registry: Option<SchemaRegistry>,
}

impl Cluster {
    pub fn new(kafka: KafkaConfig) -> Result<Self, Error> {
        let probe = client(&kafka, &reader_group())
            .create()
            .context("creating a client")?;
        Ok(Self {
            kafka,
            probe: Arc::new(probe),
            registry: None,
        })
    }

    /// Decodes Confluent-framed events with the writer schemas of `registry`.
    pub fn with_registry(mut self, registry: Option<SchemaRegistry>) -> Self {
        self.registry = registry;
        self
    }

    pub fn registry(&self) -> Option<&SchemaRegistry> {
        self.registry.as_ref()
    }

    pub fn kafka(&self) -> &KafkaConfig {
        &self.kafka
    }

    /// The partition count of `topic`, or `None` when it does not exist.
    pub fn partition_count(&self, topic: &str) -> Result<Option<usize>, Error> {
        let metadata = self
            .probe
            .fetch_metadata(Some(topic), TIMEOUT)
            .context(format!("reading the metadata of {topic}"))?;
        let Some(t) = metadata.topics().first() else {
            return Ok(None);
        };
        match t.error().map(RDKafkaErrorCode::from) {
            None if !t.partitions().is_empty() => Ok(Some(t.partitions().len())),
            None | Some(RDKafkaErrorCode::UnknownTopicOrPartition) => Ok(None),
            Some(code) => Err(Error::Kafka {
                context: format!("reading the metadata of {topic}"),
                source: KafkaError::MetadataFetch(code),
            }),
        }
    }

    /// Like [`Cluster::partition_count`], but a missing topic is an error.
    pub fn partitions_of(&self, topic: &str) -> Result<usize, Error> {
        self.partition_count(topic)?
            .ok_or_else(|| Error::NoTopic(topic.to_string()))
    }

    /// Every topic of the cluster with its partition count (internal topics excluded).
    pub fn topics(&self) -> Result<BTreeMap<String, usize>, Error> {
        let metadata = self
            .probe
            .fetch_metadata(None, TIMEOUT)
            .context("listing the topics")?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
            .map(|t| (t.name().to_string(), t.partitions().len()))
            .collect())
    }

    /// The low and high watermarks (first offset kept, next offset to be written).
    pub fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64), Error> {
        self.probe
            .fetch_watermarks(topic, partition, TIMEOUT)
            .context(format!(
                "reading the offsets of {topic} partition {partition}"
            ))
    }

    /// The offsets `group` committed on each of the `partitions` partitions of `topic`.
    pub fn committed(
        &self,
        group: &str,
        topic: &str,
        partitions: usize,
    ) -> Result<Vec<Option<i64>>, Error> {
        let consumer: BaseConsumer = client(&self.kafka, group)
            .create()
            .context("creating a client")?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p as i32);
        }
        let committed = consumer.committed_offsets(tpl, TIMEOUT).context(format!(
            "reading the offsets group {group} committed on {topic}"
        ))?;
        Ok((0..partitions)
            .map(|p| {
                match committed
                    .find_partition(topic, p as i32)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(o)) => Some(o),
                    _ => None,
                }
            })
            .collect())
    }

    /// Every consumer group the brokers know.
    pub fn groups(&self) -> Result<Vec<GroupInfo>, Error> {
        let list = self
            .probe
            .fetch_group_list(None, TIMEOUT)
            .context("listing the consumer groups")?;
        let mut groups: Vec<GroupInfo> = list.groups().iter().map(group_info).collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(groups)
    }

    /// One consumer group; an unknown group has state `Dead` and no members.
    pub fn group(&self, name: &str) -> Result<GroupInfo, Error> {
        let list = self
            .probe
            .fetch_group_list(Some(name), TIMEOUT)
            .context(format!("describing consumer group {name}"))?;
        Ok(list
            .groups()
            .iter()
            .find(|g| g.name() == name)
            .map(group_info)
            .unwrap_or_else(|| GroupInfo {
                name: name.to_string(),
                state: "Dead".into(),
                members: Vec::new(),
            }))
    }

    /// Groups with a committed offset on any partition of `topic`. A group's offsets can only
    /// be fetched by a client of that group, so the groups are looked up on several threads.
    pub fn groups_on(&self, topic: &str) -> Result<Vec<String>, Error> {
        let partitions = self.partitions_of(topic)?;
        let names: Vec<String> = self.groups()?.into_iter().map(|g| g.name).collect();
        let next = AtomicUsize::new(0);
        let mut found: Vec<usize> = Vec::new();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..LOOKUP_THREADS.min(names.len()))
                .map(|_| {
                    scope.spawn(|| -> Result<Vec<usize>, Error> {
                        let mut found = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(group) = names.get(i) else {
                                return Ok(found);
                            };
                            if self
                                .committed(group, topic, partitions)?
                                .iter()
                                .any(Option::is_some)
                            {
                                found.push(i);
                            }
                        }
                    })
                })
                .collect();
            for worker in workers {
                match worker.join() {
                    Ok(result) => found.extend(result?),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            Ok::<(), Error>(())
        })?;
        found.sort_unstable();
        Ok(found.into_iter().map(|i| names[i].clone()).collect())
    }

    /// Per partition of `topic`, the first offset whose record's timestamp is at or after
    /// `millis`, or `None` when there is no such record yet.
    pub fn offsets_for_time(
        &self,
        topic: &str,
        partitions: usize,
        millis: i64,
    ) -> Result<Vec<Option<i64>>, Error> {
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p as i32, Offset::Offset(millis))
                .context("building a partition list")?;
        }
        let found = self
            .probe
            .offsets_for_times(tpl, TIMEOUT)
            .context(format!("looking up offsets by time on {topic}"))?;
        Ok((0..partitions)
            .map(
                |p| match found.find_partition(topic, p as i32).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => Some(o),
                    _ => None,
                },
            )
            .collect())
    }

    /// Commits `offsets` (partition, next offset to read) of `topic` for `group`, without
    /// joining it. The broker refuses such a commit while the group has members.
    pub fn commit(&self, group: &str, topic: &str, offsets: &[(i32, i64)]) -> Result<(), Error> {
        let consumer: BaseConsumer = client(&self.kafka, group)
            .create()
            .context("creating a client")?;
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in offsets {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .context("building a partition list")?;
        }
        consumer
            .commit(&tpl, CommitMode::Sync)
            .context(format!("committing offsets of group {group} on {topic}"))
    }

    /// Reads each range of `topic` in offset order per partition and hands every record to
    /// `visit`, until every range is read or `visit` breaks. Offsets no longer kept are skipped.
    pub fn read(
        &self,
        topic: &str,
        ranges: &[PartitionRange],
        mut visit: impl FnMut(&BorrowedMessage<'_>) -> Result<ControlFlow<()>, Error>,
    ) -> Result<(), Error> {
        let mut open: HashMap<i32, (i64, i64)> = ranges
            .iter()
            .filter(|r| r.start < r.end)
            .map(|r| (r.partition, (r.start, r.end)))
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let consumer: BaseConsumer = client(&self.kafka, &reader_group())
            // The end of a partition ends its range even when records were deleted before it.
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .create()
            .context("creating a reader")?;
        let mut tpl = TopicPartitionList::new();
        for r in ranges.iter().filter(|r| r.start < r.end) {
            tpl.add_partition_offset(topic, r.partition, Offset::Offset(r.start))
                .context("building a partition list")?;
        }
        consumer.assign(&tpl).context(format!("reading {topic}"))?;
        let close = |open: &mut HashMap<i32, (i64, i64)>, partition: i32| {
            open.remove(&partition);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, partition);
            // Stops fetching what lies past the range; failing to pause only costs bandwidth.
            let _ = consumer.pause(&tpl);
        };
        let mut last_progress = Instant::now();
        while !open.is_empty() {
            match consumer.poll(Duration::from_millis(200)) {
                None => {
                    if last_progress.elapsed() > READ_IDLE_TIMEOUT {
                        let mut left: Vec<i32> = open.keys().copied().collect();
                        left.sort_unstable();
                        return Err(Error::Timeout(format!(
                            "reading {topic} partitions {left:?}"
                        )));
                    }
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    last_progress = Instant::now();
                    close(&mut open, partition);
                }
                Some(Err(e)) => {
                    return Err(Error::Kafka {
                        context: format!("reading {topic}"),
                        source: e,
                    })
                }
                Some(Ok(message)) => {
                    last_progress = Instant::now();
                    let partition = rdkafka::Message::partition(&message);
                    let offset = rdkafka::Message::offset(&message);
                    let Some(&(start, end)) = open.get(&partition) else {
                        continue;
                    };
                    // Below the range only after an offset reset to the earliest record.
                    if offset < start {
                        continue;
                    }
                    if offset >= end {
                        close(&mut open, partition);
                        continue;
                    }
                    if visit(&message)?.is_break() {
                        return Ok(());
                    }
                    if offset + 1 >= end {
                        close(&mut open, partition);
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads every record of `topic` that is there now.
    pub fn read_all(
        &self,
        topic: &str,
        visit: impl FnMut(&BorrowedMessage<'_>) -> Result<ControlFlow<()>, Error>,
    ) -> Result<(), Error> {
        let partitions = self.partitions_of(topic)?;
        let mut ranges = Vec::with_capacity(partitions);
        for p in 0..partitions {
            let (start, end) = self.watermarks(topic, p as i32)?;
            ranges.push(PartitionRange {
                partition: p as i32,
                start,
                end,
            });
        }
        self.read(topic, &ranges, visit)
    }

    /// Reads the records of `topic` that `group` has not committed yet.
    pub fn read_uncommitted(
        &self,
        group: &str,
        topic: &str,
        visit: impl FnMut(&BorrowedMessage<'_>) -> Result<ControlFlow<()>, Error>,
    ) -> Result<(), Error> {
        let partitions = self.partitions_of(topic)?;
        let committed = self.committed(group, topic, partitions)?;
        let mut ranges = Vec::with_capacity(partitions);
        for (p, committed) in committed.into_iter().enumerate() {
            let (low, end) = self.watermarks(topic, p as i32)?;
            ranges.push(PartitionRange {
                partition: p as i32,
                start: committed.unwrap_or(low).max(low),
                end,
            });
        }
        self.read(topic, &ranges, visit)
    }

    /// A writer of copies (idempotent producer, `acks=all`).
    pub fn sender(&self) -> Result<Sender, Error> {
        Ok(Sender {
            producer: kafka::idempotent_producer(&self.kafka, Duration::from_secs(30))
                .context("creating a producer")?,
            pending: Vec::new(),
            delivered: 0,
        })
    }
}

/// Writes records and waits for the broker to have them, in batches.
pub struct Sender {
    producer: FutureProducer,
    pending: Vec<(String, DeliveryFuture)>,
    delivered: u64,
}

impl Sender {
    /// Queues one record; waits for earlier ones when the batch is full.
    pub fn send(&mut self, mut record: FutureRecord<'_, [u8], [u8]>) -> Result<(), Error> {
        let topic = record.topic.to_string();
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.pending.push((topic, delivery));
                    if self.pending.len() >= SEND_BATCH {
                        self.flush()?;
                    }
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.flush()?;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err((e, _)) => {
                    return Err(Error::Kafka {
                        context: format!("writing to {topic}"),
                        source: e,
                    })
                }
            }
        }
    }

    /// Waits until the broker has every queued record; returns how many it has in all.
    pub fn flush(&mut self) -> Result<u64, Error> {
        let handle = tokio::runtime::Handle::current();
        for (topic, delivery) in self.pending.drain(..) {
            match handle.block_on(delivery) {
                Ok(Ok(_)) => self.delivered += 1,
                Ok(Err((e, _))) => {
                    return Err(Error::Kafka {
                        context: format!("writing to {topic}"),
                        source: e,
                    })
                }
                Err(_) => {
                    return Err(Error::Kafka {
                        context: format!("writing to {topic}"),
                        source: KafkaError::Canceled,
                    })
                }
            }
        }
        Ok(self.delivered)
    }
}

/// Client settings for `group` that never commit on their own.
fn client(kafka: &KafkaConfig, group: &str) -> ClientConfig {
    let mut config = kafka::client_config(kafka);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    config
}

/// A group id for reading without a group: never joined nor committed, so the broker never
/// records it.
fn reader_group() -> String {
    format!("orderflowctl-reader-{}", uuid::Uuid::new_v4().simple())
}

fn group_info(group: &rdkafka::groups::GroupInfo) -> GroupInfo {
    GroupInfo {
        name: group.name().to_string(),
        state: group.state().to_string(),
        members: group
            .members()
            .iter()
            .map(|m| format!("{}@{}", m.client_id(), m.client_host()))
            .collect(),
    }
}
